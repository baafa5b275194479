// /app/refills.html (reached from Messaging): ask for a refill of a medication on the
// active list, at a pharmacy of the clinic's directory, and follow each request
// (requested, approved or denied, sent to the pharmacy) live from /ws/v1/events.

import { initPortal, withLoading } from "../portal.js";
import { api, get, post, ApiError } from "../api.js";
import { h, replaceChildren, focusElement, notice, timeElement, announce } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { onLiveEvent } from "../live-events.js";

const $ = (id) => document.getElementById(id);
const STATUS = {
  requested: { label: "Requested", badge: "" },
  approved: { label: "Approved", badge: "badge--success" },
  sent: { label: "Sent to pharmacy", badge: "badge--success" },
  denied: { label: "Denied", badge: "badge--danger" },
  cancelled: { label: "Withdrawn", badge: "badge--warning" },
};
const state = { page: null, shown: new Map(), key: newKey() };

function newKey() {
  if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
  return `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

function setPageStatus(kind, text) {
  const area = $("page-status");
  replaceChildren(area, text ? notice(kind, h("p", { text })) : null);
  if (text) focusElement(area);
}

function pharmacyLine(p) {
  const where = [p.address_line, p.city, p.state].filter(Boolean).join(", ");
  const phone = p.phone ? ` · ${p.phone}` : "";
  return `${where}${phone}`;
}

// --- the form --------------------------------------------------------------------------

function medicationChoice(med) {
  const id = `med-${med.id}`;
  const why = med.controlled
    ? "Controlled substance: please call the clinic for this refill."
    : med.open_request_id
      ? "A request for this medication is already waiting (see Your requests)."
      : null;
  const input = h("input", { type: "radio", name: "medication_id", id, value: String(med.id), disabled: Boolean(why) });
  const detail = [med.dosage, med.prescriber ? `Prescribed by ${med.prescriber}` : null].filter(Boolean).join(" · ");
  return h("div", { class: `choice${why ? " choice--disabled" : ""}` }, input,
    h("label", { for: id }, med.name,
      detail ? h("span", { class: "choice__detail", text: detail }) : null,
      why ? h("span", { class: "choice__detail", text: why }) : null));
}

function pharmacyChoice(p, { preferred = false, checked = false } = {}) {
  state.shown.set(p.id, p);
  const id = `pharmacy-${p.id}`;
  return h("div", { class: "choice" },
    h("input", { type: "radio", name: "pharmacy_id", id, value: String(p.id), checked }),
    h("label", { for: id }, p.name, preferred ? " (your usual pharmacy)" : "",
      h("span", { class: "choice__detail", text: pharmacyLine(p) })));
}

function renderForm(page) {
  const meds = page.medications;
  const form = $("refill-form");
  const empty = $("no-medications");
  if (!meds.length) {
    form.hidden = true;
    empty.hidden = false;
    replaceChildren(empty, notice("info",
      h("p", { text: "There are no active medications on file for you, so there is nothing to refill online." }),
      h("p", {}, "If you need a new prescription, ", h("a", { href: "/app/appointments.html", text: "book a visit" }),
        " or call the clinic.")));
    return;
  }
  form.hidden = false;
  empty.hidden = true;
  const before = form.elements.namedItem("medication_id");
  const chosen = before && before.value ? before.value : null;
  replaceChildren($("medication-choices"), meds.map(medicationChoice));
  if (chosen) {
    const again = document.getElementById(`med-${chosen}`);
    if (again && !again.disabled) again.checked = true;
  }
  const holder = $("pharmacy-choices");
  if (!holder.childElementCount) {
    state.shown.clear();
    if (page.preferred_pharmacy) {
      holder.append(pharmacyChoice(page.preferred_pharmacy, { preferred: true, checked: true }));
    } else {
      holder.append(h("p", { class: "hint", text: "Search for the pharmacy that should fill your prescription." }));
    }
  }
}

async function searchPharmacies() {
  const q = $("pharmacy-q").value.trim();
  const results = $("pharmacy-results");
  let found;
  try {
    found = await get("/pharmacies", { query: { q } });
  } catch (error) {
    replaceChildren(results, notice("error", h("p", { text: `Could not search the directory. ${error.message}` })));
    return;
  }
  const preferred = state.page && state.page.preferred_pharmacy;
  const others = found.filter((p) => !preferred || p.id !== preferred.id);
  if (!others.length) {
    replaceChildren(results, h("p", { class: "hint", text: q ? `No pharmacy in the directory matches “${q}”.` : "No other pharmacies in the directory." }));
    return;
  }
  replaceChildren(results,
    h("p", { class: "hint", text: `${others.length} ${others.length === 1 ? "pharmacy" : "pharmacies"} found. Choose one:` }),
    h("div", { class: "choice-list" }, others.map((p) => pharmacyChoice(p))));
}

async function submitRequest(data, form) {
  const medication = form.querySelector("input[name=medication_id]:checked");
  const pharmacy = form.querySelector("input[name=pharmacy_id]:checked");
  const body = {
    medication_id: Number(medication.value),
    pharmacy_id: Number(pharmacy.value),
    note: data.note || null,
    remember_pharmacy: Boolean(data.remember_pharmacy),
  };
  let made;
  for (let attempt = 0; ; attempt += 1) {
    try {
      made = await api("/refills", { method: "POST", body, headers: { "Idempotency-Key": state.key } });
      break;
    } catch (error) {
      // A request lost on the way is sent again with the same key: it is made at most once.
      if (!(error instanceof ApiError && error.status === 0) || attempt >= 2) throw error;
    }
  }
  state.key = newKey();
  form.reset();
  $("remember").checked = true;
  replaceChildren($("pharmacy-results"));
  replaceChildren($("pharmacy-choices"));
  setPageStatus("success", `Your request for ${made.medication_name} was sent${made.provider ? ` to ${made.provider}` : ""}. You'll see each step below.`);
  await load();
}

function validate(form) {
  const problems = [];
  if (!form.querySelector("input[name=medication_id]:checked")) {
    problems.push({ field: "medication_id", message: "Choose the medication to refill." });
  }
  if (!form.querySelector("input[name=pharmacy_id]:checked")) {
    problems.push({ field: "pharmacy_id", message: "Choose a pharmacy." });
  }
  return problems;
}

// --- the requests ----------------------------------------------------------------------

function timeline(r) {
  return h("ol", { class: "timeline", "aria-label": "Progress" }, r.steps.map((s) =>
    h("li", { class: s.status === "denied" ? "is-denied" : null },
      h("strong", { text: STATUS[s.status] ? STATUS[s.status].label : s.status }), timeElement(s.at))));
}

function requestItem(r) {
  const status = STATUS[r.status] || { label: r.status, badge: "" };
  const cancel = r.status === "requested"
    ? h("button", { type: "button", class: "button button--secondary button--small", onClick: (e) => withdraw(r, e.currentTarget) },
      "Withdraw", h("span", { class: "visually-hidden", text: ` the request for ${r.medication_name}` }))
    : null;
  const decision = r.decision_note
    ? h("p", {}, h("strong", { text: r.status === "denied" ? "Reason: " : "Note from your provider: " }), r.decision_note)
    : null;
  return h("li", { class: "request", dataset: { refill: String(r.id), status: r.status } },
    h("h3", {}, r.medication_name, h("span", { class: `badge ${status.badge}`, text: status.label })),
    r.dosage ? h("p", { class: "muted", text: r.dosage }) : null,
    h("p", {}, `Pharmacy: ${r.pharmacy.name}`, h("span", { class: "muted", text: ` (${pharmacyLine(r.pharmacy)})` })),
    r.provider ? h("p", { class: "muted", text: `Decided by ${r.provider}` }) : null,
    timeline(r),
    r.quantity || r.refills !== null ? h("p", { class: "muted", text: [
      r.quantity ? `Quantity: ${r.quantity}` : null, r.refills !== null && r.refills !== undefined ? `Refills: ${r.refills}` : null,
    ].filter(Boolean).join(" · ") }) : null,
    decision,
    r.status === "denied" ? h("p", {}, "If you still need this medication, ", h("a", { href: "/app/appointments.html", text: "book a visit" }), " or call the clinic.") : null,
    r.note ? h("p", { class: "muted", text: `Your note: ${r.note}` }) : null,
    cancel ? h("div", { class: "button-row" }, cancel) : null);
}

function renderRequests(page) {
  const list = $("request-list");
  if (!page.requests.length) {
    replaceChildren(list, h("p", { class: "empty-state", text: "You have not requested a refill yet." }));
    return;
  }
  replaceChildren(list, h("ul", { class: "request-list" }, page.requests.map(requestItem)));
}

async function withdraw(r, button) {
  button.disabled = true;
  try {
    await post(`/refills/${r.id}/cancel`);
    setPageStatus("success", `Your request for ${r.medication_name} was withdrawn.`);
  } catch (error) {
    setPageStatus("error", `Could not withdraw the request. ${error.message}`);
  }
  await load();
}

// --- loading ---------------------------------------------------------------------------

async function load() {
  const page = await get("/refills");
  state.page = page;
  renderForm(page);
  renderRequests(page);
  return page;
}

let reloading = null;
function reloadSoon() {
  // Several events in a burst cause one refetch.
  if (reloading) return;
  reloading = window.setTimeout(async () => {
    reloading = null;
    try {
      await load();
      announce("Your refill requests were updated.");
    } catch {
      // The next event or reload tries again.
    }
  }, 50);
}

const session = await initPortal({ roles: ["patient"] });
if (session) {
  try {
    await withLoading($("refills-load"), "your medications", load);
    $("request").hidden = false;
    $("requests").hidden = false;
    handleSubmit($("refill-form"), submitRequest, { validate });
    $("pharmacy-search").addEventListener("click", searchPharmacies);
    $("pharmacy-q").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        searchPharmacies();
      }
    });
    onLiveEvent(["refill"], reloadSoon);
  } catch {
    // withLoading showed the error.
  }
}
