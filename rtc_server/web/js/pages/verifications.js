// /staff/verifications.html: pending registrations, what was entered next to the record on
// file, and Approve / Reject (with a reason). Staff and admins decide.
//
// Undo after Approve is real because nothing has happened yet: the page holds the approval
// for UNDO_SECONDS before it sends it, and says so. Undo puts the card back; nothing was
// sent, so there is no emailed link to chase. If the page is closed or left while an
// approval waits, it is sent at once (fetch keepalive): leaving is not undoing.

import { get, post } from "../api.js";
import { $, h, replaceChildren, focusElement, notice, timeElement, formatDate, uniqueId } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { initPortal, withLoading } from "../portal.js";

const UNDO_SECONDS = 8;
const queue = $("#queue");
const decisions = $("#decisions");
let canDecide = false;
/** Approvals held for undo: id -> {item, timer, ticker}. */
const held = new Map();

function norm(value) {
  return String(value || "").trim().toLowerCase().replace(/\s+/g, " ");
}

function notOnFile() {
  return h("span", { class: "badge", text: "Not on file" });
}

function compareRow(label, entered, onFile, { compare = true } = {}) {
  const missing = onFile === "" || onFile === null || onFile === undefined;
  const differs = compare && entered !== "" && !missing && norm(entered) !== norm(onFile);
  return h(
    "tr",
    { class: differs ? "differs" : null },
    h("th", { scope: "row", text: label }),
    h("td", { text: entered || "—" }),
    h(
      "td",
      {},
      missing ? notOnFile() : onFile,
      differs ? [" ", h("span", { class: "badge badge--warning", text: "Differs" })] : null,
    ),
  );
}

function comparison(item) {
  const e = item.entered || {};
  const p = item.patient || null;
  const enteredName = [e.first_name, e.last_name].filter(Boolean).join(" ");
  const rows = [
    compareRow("Name", enteredName, p ? p.name : ""),
    compareRow("Date of birth", formatDate(e.birth_date), p ? formatDate(p.birth_date) : ""),
    compareRow("ZIP code", e.zip || "", p ? p.zip : ""),
    compareRow("Email", e.email || "", p ? p.email : ""),
    compareRow("Phone", "", p ? p.phone : "", { compare: false }),
    compareRow("MRN", "", p ? p.mrn : "", { compare: false }),
  ];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "compare" },
      h("caption", { class: "visually-hidden", text: `Entered details compared with the record on file for ${enteredName}` }),
      h(
        "thead",
        {},
        h("tr", {}, h("th", { scope: "col", text: "Detail" }), h("th", { scope: "col", text: "Entered" }), h("th", { scope: "col", text: "Record on file" })),
      ),
      h("tbody", {}, rows),
    ),
  );
}

/** A banner at the top of the queue (role=status), replacing the one for the same card. */
function banner(key, kind, ...children) {
  const old = decisions.querySelector(`[data-for="${CSS.escape(String(key))}"]`);
  const box = notice(kind, ...children);
  box.dataset.for = String(key);
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  if (old) old.replaceWith(box);
  else decisions.prepend(box);
  return box;
}

function afterRemoval(next) {
  if (!queue.querySelector(".verification")) renderEmpty();
  return (next && next.querySelector("h3")) || $("#queue-heading");
}

// --- approve, held for undo -----------------------------------------------------------

function readCsrf() {
  for (const name of ["__Host-rtc_csrf", "rtc_csrf"]) {
    const hit = document.cookie.split(";").map((p) => p.trim()).find((p) => p.startsWith(`${name}=`));
    if (hit) return decodeURIComponent(hit.slice(name.length + 1));
  }
  return null;
}

function approveUrl(id) {
  return `/staff/verifications/${encodeURIComponent(id)}/approve`;
}

/** Put a held card back where it was (or reload the list if it was refreshed meanwhile). */
function restore(card, placeholder) {
  for (const b of card.querySelectorAll("button")) b.disabled = false;
  const empty = queue.querySelector(".queue-empty");
  if (placeholder.isConnected) {
    placeholder.replaceWith(card);
    if (empty) empty.remove();
  } else load();
}

async function sendApproval(item, name, card, placeholder) {
  held.delete(item.id);
  const key = item.id;
  banner(key, "info", h("p", { text: `Approving ${name}…` }));
  try {
    await post(approveUrl(item.id), {});
  } catch (error) {
    restore(card, placeholder);
    banner(key, "error", h("p", { text: `Could not approve ${name}. ${error.message}` }));
    return;
  }
  placeholder.remove();
  banner(key, "success", h("p", { text: `Approved ${name}. The activation email was sent; they will choose their username and password from its link.` }));
}

function holdApproval(item, name, card, approveButton) {
  const placeholder = h("div", { hidden: true, "data-held": String(item.id) });
  card.replaceWith(placeholder);
  let left = UNDO_SECONDS;
  const count = h("span", { "aria-hidden": "true", text: `${left} s` });
  const undo = h("button", { type: "button", class: "button button--secondary button--small" }, "Undo", h("span", { class: "visually-hidden", text: ` approval of ${name}` }));
  banner(
    item.id,
    "success",
    h("p", {}, `Approved ${name}. `, h("span", { class: "visually-hidden", text: `The activation email will be sent in ${UNDO_SECONDS} seconds unless you undo.` }), h("span", { "aria-hidden": "true" }, "The activation email goes out in ", count, ".")),
    h("div", { class: "button-row" }, undo),
  );
  focusElement(undo);
  const ticker = window.setInterval(() => {
    left = Math.max(0, left - 1);
    count.textContent = `${left} s`;
  }, 1000);
  const timer = window.setTimeout(() => {
    window.clearInterval(ticker);
    sendApproval(item, name, card, placeholder);
  }, UNDO_SECONDS * 1000);
  held.set(item.id, { timer, ticker, item });
  undo.addEventListener("click", () => {
    window.clearTimeout(timer);
    window.clearInterval(ticker);
    held.delete(item.id);
    restore(card, placeholder);
    banner(item.id, "info", h("p", { text: `Undone. ${name}'s registration is still waiting; nothing was sent.` }));
    focusElement(approveButton);
  });
  if (!queue.querySelector(".verification")) renderEmpty();
}

// Leaving the page sends what is held (an approval is only undone by Undo).
window.addEventListener("pagehide", () => {
  if (!held.size) return;
  const csrf = readCsrf();
  for (const { item, timer, ticker } of held.values()) {
    window.clearTimeout(timer);
    window.clearInterval(ticker);
    fetch(`/api/v1${approveUrl(item.id)}`, {
      method: "POST",
      keepalive: true,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", ...(csrf ? { "X-CSRF-Token": csrf } : {}) },
      body: "{}",
    });
  }
  held.clear();
});
window.addEventListener("beforeunload", (event) => {
  if (held.size) event.preventDefault();
});

// --- the cards ---------------------------------------------------------------------------

function decisionControls(item, card, name) {
  const who = h("span", { class: "visually-hidden", text: ` ${name}` });
  const approve = h("button", { type: "button", class: "button" }, "Approve", who);
  const reject = h("button", { type: "button", class: "button button--secondary" }, "Reject", who.cloneNode(true));
  const reasonId = uniqueId("reason");
  const rejectForm = h(
    "form",
    { hidden: true, class: "reject-form" },
    h(
      "div",
      { class: "field" },
      h("label", { for: reasonId }, "Reason for rejecting", h("span", { class: "visually-hidden", text: ` ${name}` })),
      h("textarea", { id: reasonId, name: "reason", required: true, maxlength: "500", rows: "3", "data-required-message": "Give a reason for rejecting this registration." }),
    ),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "button button--danger", text: "Reject registration" }),
      h("button", { type: "button", class: "button button--secondary", text: "Cancel", "data-cancel": true }),
    ),
  );

  approve.addEventListener("click", () => {
    approve.disabled = true;
    reject.disabled = true;
    holdApproval(item, name, card, approve);
  });

  reject.addEventListener("click", () => {
    rejectForm.hidden = false;
    approve.disabled = true;
    reject.disabled = true;
    rejectForm.querySelector("textarea").focus();
  });
  rejectForm.querySelector("[data-cancel]").addEventListener("click", () => {
    rejectForm.hidden = true;
    approve.disabled = false;
    reject.disabled = false;
    reject.focus();
  });
  handleSubmit(rejectForm, async ({ reason }) => {
    await post(`/staff/verifications/${encodeURIComponent(item.id)}/reject`, { reason });
    const next = card.nextElementSibling;
    card.remove();
    banner(item.id, "success", h("p", { text: `Rejected the registration for ${name}. Nothing was sent to them.` }));
    focusElement(afterRemoval(next));
  });

  return [h("div", { class: "button-row" }, approve, reject), rejectForm];
}

function card(item) {
  const e = item.entered || {};
  const name = [e.first_name, e.last_name].filter(Boolean).join(" ") || "Unnamed applicant";
  const headingId = uniqueId("verification");
  const article = h(
    "article",
    { class: "card verification", "aria-labelledby": headingId },
    h("h3", { id: headingId, text: name }),
    h("p", { class: "verification__meta" }, "Submitted ", timeElement(item.created_at)),
  );
  if (!item.patient) {
    article.append(notice("warning", h("p", { text: "No record on file matched these details." })));
  }
  article.append(comparison(item));
  if (canDecide) article.append(...decisionControls(item, article, name));
  else article.append(h("p", { class: "muted", text: "Only staff and administrators can approve or reject registrations." }));
  return article;
}

function renderEmpty() {
  if (queue.querySelector(".queue-empty")) return;
  queue.append(h("p", { class: "card queue-empty", text: "No registrations are waiting for verification." }));
}

async function load() {
  let items;
  try {
    items = await withLoading(queue, "pending registrations", () => get("/staff/verifications"));
  } catch {
    return;
  }
  // Approvals still held for undo stay out of the list until they are sent or undone.
  const list = (Array.isArray(items) ? items : []).filter((i) => !held.has(i.id));
  if (!list.length) {
    replaceChildren(queue);
    renderEmpty();
  } else replaceChildren(queue, list.map(card));
}

const session = await initPortal({ roles: ["staff", "admin"] });
if (session) {
  canDecide = ["staff", "admin"].includes(session.user.role);
  $("#queue-refresh").addEventListener("click", load);
  load();
}
