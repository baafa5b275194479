// /staff/verifications.html: pending registrations, what was entered next to the record on
// file, and Approve / Reject (with a reason). Providers may look; staff and admins decide.

import { get, post } from "../api.js";
import { $, h, replaceChildren, focusElement, notice, timeElement, formatDate, announce, uniqueId } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { initPortal, withLoading } from "../portal.js";

const queue = $("#queue");
let canDecide = false;

function norm(value) {
  return String(value || "").trim().toLowerCase().replace(/\s+/g, " ");
}

function compareRow(label, entered, onFile, { compare = true } = {}) {
  const differs = compare && entered !== "" && onFile !== "" && norm(entered) !== norm(onFile);
  return h(
    "tr",
    { class: differs ? "differs" : null },
    h("th", { scope: "row", text: label }),
    h("td", { text: entered || "—" }),
    h("td", {}, onFile || "—", differs ? [" ", h("span", { class: "badge badge--warning", text: "Differs" })] : null),
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
    compareRow("Email", e.email || "", "", { compare: false }),
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

function removeCard(card, message) {
  const next = card.nextElementSibling;
  card.remove();
  announce(message);
  if (!queue.querySelector(".verification")) renderEmpty();
  focusElement((next && next.querySelector("h3")) || $("#queue-heading"));
}

function decisionControls(item, card, name) {
  const who = h("span", { class: "visually-hidden", text: ` ${name}` });
  const approve = h("button", { type: "button", class: "button" }, "Approve", who);
  const reject = h("button", { type: "button", class: "button button--secondary" }, "Reject", who.cloneNode(true));
  const alertBox = h("div", { role: "alert" });
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

  approve.addEventListener("click", async () => {
    approve.disabled = true;
    reject.disabled = true;
    alertBox.replaceChildren();
    try {
      await post(`/staff/verifications/${encodeURIComponent(item.id)}/approve`, {});
    } catch (error) {
      approve.disabled = false;
      reject.disabled = false;
      alertBox.append(notice("error", h("p", { text: `Could not approve. ${error.message}` })));
      return;
    }
    removeCard(card, `Approved the registration for ${name}. An activation link was emailed.`);
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
    removeCard(card, `Rejected the registration for ${name}.`);
  });

  return [h("div", { class: "button-row" }, approve, reject), rejectForm, alertBox];
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
  replaceChildren(queue, h("p", { class: "card", text: "No registrations are waiting for verification." }));
}

async function load() {
  let items;
  try {
    items = await withLoading(queue, "pending registrations", () => get("/staff/verifications"));
  } catch {
    return;
  }
  const list = Array.isArray(items) ? items : [];
  if (!list.length) renderEmpty();
  else replaceChildren(queue, list.map(card));
}

const session = await initPortal({ roles: ["staff", "admin"] });
if (session) {
  canDecide = ["staff", "admin"].includes(session.user.role);
  $("#queue-refresh").addEventListener("click", load);
  load();
}
