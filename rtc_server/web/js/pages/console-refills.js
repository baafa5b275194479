// /console/refills.html: the provider's refill queue. Approve (optionally changing the
// quantity or the number of refills; the prescription then goes to the patient's
// pharmacy) or deny with a reason the patient reads. New requests arrive live; an item
// the provider is working on is never redrawn under them.

import { initConsole } from "../console-shell.js";
import { get, post } from "../api.js";
import { h, replaceChildren, focusElement, notice, timeElement, formatDate, announce } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { onLiveEvent } from "../live-events.js";

const $ = (id) => document.getElementById(id);
const STATUS = {
  requested: { label: "Waiting", badge: "badge--warning" },
  approved: { label: "Approved, not yet sent", badge: "badge--warning" },
  sent: { label: "Sent to pharmacy", badge: "badge--success" },
  denied: { label: "Denied", badge: "badge--danger" },
  cancelled: { label: "Withdrawn by the patient", badge: "" },
};
const HEADINGS = { open: "Waiting for your decision", done: "Decided in the last 30 days" };
const state = { status: "open", nodes: new Map() };

function setPageStatus(kind, text) {
  const area = $("page-status");
  replaceChildren(area, text ? notice(kind, h("p", { text })) : null);
  if (text) focusElement(area);
}

function pharmacyText(p) {
  return [p.name, [p.address_line, p.city, p.state].filter(Boolean).join(", "), p.phone].filter(Boolean).join(" · ");
}

function fact(term, ...value) {
  return [h("dt", { text: term }), h("dd", {}, ...value)];
}

function numberField(id, name, label, hint, { min, max }) {
  return h("div", { class: "field" },
    h("label", { for: id, text: label }),
    h("p", { class: "hint", id: `${id}-hint`, text: hint }),
    h("input", { id, name, type: "number", min: String(min), max: String(max), inputmode: "numeric", "aria-describedby": `${id}-hint` }));
}

function decisionForms(item) {
  const approve = h("form", { novalidate: true, "aria-labelledby": `approve-${item.id}` },
    h("h4", { id: `approve-${item.id}`, text: "Approve" }),
    h("div", { class: "alert alert--error", role: "alert", "data-form-alert": true }),
    numberField(`qty-${item.id}`, "quantity", "Quantity (optional)", "Units to dispense; empty keeps the prescription's.", { min: 1, max: 1000 }),
    numberField(`refills-${item.id}`, "refills", "Refills (optional)", "Further refills; empty keeps the prescription's.", { min: 0, max: 12 }),
    h("div", { class: "field" },
      h("label", { for: `note-${item.id}`, text: "Note to the pharmacist (optional; the patient sees it)" }),
      h("textarea", { id: `note-${item.id}`, name: "note", rows: "2", maxlength: "500" })),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button" },
      `Approve and send to ${item.pharmacy.name}`)));
  handleSubmit(approve, async (data) => {
    const body = {
      quantity: data.quantity ? Number(data.quantity) : null,
      refills: data.refills !== "" && data.refills !== undefined ? Number(data.refills) : null,
      note: data.note || null,
    };
    const out = await post(`/console/refills/${item.id}/approve`, body);
    state.nodes.delete(item.id);
    setPageStatus(out.status === "sent" ? "success" : "warning", out.status === "sent"
      ? `Approved. ${item.medication_name} for ${item.patient.name} was sent to ${item.pharmacy.name}.`
      : `Approved, but the pharmacy network did not take the prescription. It is under Decided: use Send again.`);
    await load();
  });
  const deny = h("form", { novalidate: true, "aria-labelledby": `deny-${item.id}` },
    h("h4", { id: `deny-${item.id}`, text: "Deny" }),
    h("div", { class: "alert alert--error", role: "alert", "data-form-alert": true }),
    h("div", { class: "field" },
      h("label", { for: `reason-${item.id}`, text: "Reason (the patient reads it)" }),
      h("textarea", { id: `reason-${item.id}`, name: "reason", rows: "3", maxlength: "500", required: true,
        "data-required-message": "Give the patient a reason, for example what to do next." })),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button--danger", text: "Deny request" })));
  handleSubmit(deny, async (data) => {
    await post(`/console/refills/${item.id}/deny`, { reason: data.reason });
    state.nodes.delete(item.id);
    setPageStatus("success", `Denied. ${item.patient.name} can read your reason in the portal.`);
    await load();
  });
  return h("div", { class: "decision" }, approve, deny);
}

function itemNode(item) {
  const status = STATUS[item.status] || { label: item.status, badge: "" };
  const p = item.patient;
  const facts = [
    ...fact("Medication", item.medication_name, item.dosage ? h("span", { class: "muted", text: ` — ${item.dosage}` }) : null),
    ...fact("On file", [
      item.prescribed_at ? `prescribed ${new Date(item.prescribed_at).toLocaleDateString()}` : null,
      item.refills_on_file !== null ? `${item.refills_on_file} refills allowed` : null,
    ].filter(Boolean).join(", ") || "—"),
    ...fact("Pharmacy", pharmacyText(item.pharmacy)),
    ...fact("Patient's note", item.note || "—"),
    ...fact("Requested", timeElement(item.requested_at)),
  ];
  if (item.decided_at) {
    facts.push(...fact("Decided", timeElement(item.decided_at), item.decided_by ? ` by ${item.decided_by}` : ""));
    if (item.quantity || item.refills !== null) {
      facts.push(...fact("Approved as", [item.quantity ? `quantity ${item.quantity}` : null,
        item.refills !== null ? `${item.refills} refills` : null].filter(Boolean).join(", ")));
    }
    if (item.decision_note) facts.push(...fact(item.status === "denied" ? "Reason" : "Note", item.decision_note));
  }
  if (item.sent_at) facts.push(...fact("Sent", timeElement(item.sent_at)));
  let action = null;
  if (item.status === "requested") action = decisionForms(item);
  else if (item.status === "approved") {
    const again = h("button", { type: "button", class: "button", text: "Send again" });
    again.addEventListener("click", async () => {
      again.disabled = true;
      try {
        const out = await post(`/console/refills/${item.id}/send`);
        setPageStatus(out.status === "sent" ? "success" : "error", out.status === "sent"
          ? `Sent to ${item.pharmacy.name}.` : "The pharmacy network still did not take it. Try again later or phone the pharmacy.");
      } catch (error) {
        setPageStatus("error", error.message);
      }
      state.nodes.delete(item.id);
      await load();
    });
    action = notice(item.send_failed ? "error" : "warning",
      h("p", { text: item.send_failed
        ? `The pharmacy network did not take this prescription (${item.send_attempts} ${item.send_attempts === 1 ? "try" : "tries"}).`
        : "Approved; waiting to be sent." }), h("p", {}, again));
  }
  return h("li", { class: "queue-item", dataset: { refill: String(item.id), status: item.status } },
    h("h3", {}, p.name, h("span", { class: "muted", text: ` · born ${formatDate(p.birth_date)}${p.mrn ? ` · MRN ${p.mrn}` : ""}` }),
      h("span", { class: `badge ${status.badge}`, text: status.label }),
      item.assigned_to_you ? null : h("span", { class: "badge", text: "Covering" })),
    h("dl", { class: "facts" }, facts), action);
}

async function load() {
  const items = await get("/console/refills", { query: { status: state.status } });
  $("queue-heading").textContent = HEADINGS[state.status];
  const holder = $("queue");
  if (!items.length) {
    state.nodes.clear();
    replaceChildren(holder, h("p", { class: "empty-state", text: state.status === "open"
      ? "No refill requests are waiting for you." : "No requests were decided in the last 30 days." }));
    return items;
  }
  // Keep the node of an item whose status did not change: a form being filled stays as it is.
  const next = new Map();
  const nodes = items.map((item) => {
    const key = `${item.status}:${item.send_attempts}`;
    const kept = state.nodes.get(item.id);
    const node = kept && kept.key === key ? kept.node : itemNode(item);
    next.set(item.id, { key, node });
    return node;
  });
  state.nodes = next;
  let list = holder.querySelector("ul.queue");
  if (!list) {
    list = h("ul", { class: "queue" });
    replaceChildren(holder, list);
  }
  for (const [index, node] of nodes.entries()) {
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  }
  while (list.children.length > nodes.length) list.lastElementChild.remove();
  return items;
}

const session = await initConsole({ roles: ["provider"] });
if (session) {
  for (const button of document.querySelectorAll(".queue-tabs button")) {
    button.addEventListener("click", async () => {
      state.status = button.dataset.status;
      for (const b of document.querySelectorAll(".queue-tabs button")) b.setAttribute("aria-pressed", String(b === button));
      state.nodes.clear();
      replaceChildren($("queue"));
      await load().catch((error) => setPageStatus("error", `Could not load the requests. ${error.message}`));
    });
  }
  try {
    await load();
  } catch (error) {
    setPageStatus("error", `Could not load the refill requests. ${error.message}`);
  }
  onLiveEvent(["refill_queue"], async (event) => {
    try {
      await load();
      if (event.kind === "refill_queue") announce("The refill queue was updated.");
    } catch {
      // The next event tries again.
    }
  });
}
