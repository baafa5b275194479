// /app/help.html (Help Desk tab): the common questions, a message to the help desk, and
// the person's own help requests with the staff's replies, updated live from
// /ws/v1/events. The portal layout checks the session.

import { initPortal, withLoading } from "../portal.js";
import { get, post } from "../api.js";
import { h, replaceChildren, focusElement, notice, timeElement, announce } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { onLiveEvent } from "../live-events.js";
import { renderFaq } from "../faq.js";

const $ = (id) => document.getElementById(id);
const STATUS = {
  open: { label: "Waiting for the clinic", badge: "" },
  answered: { label: "Answered", badge: "badge--success" },
  closed: { label: "Closed", badge: "badge--warning" },
};
const TOPICS = {
  login: "Signing in", account: "Account", technical: "Something doesn't work", appointments: "Appointments",
  refills: "Prescription refills", records: "Medical records", other: "Something else",
};
/** Tickets whose conversation is shown (kept open across live reloads). */
const expanded = new Set();

function setPageStatus(kind, text) {
  const area = $("page-status");
  replaceChildren(area, text ? notice(kind, h("p", { text })) : null);
  if (text) focusElement(area);
}

function messageItem(m) {
  return h("li", { class: `message${m.from_staff ? " message--staff" : ""}` },
    h("p", { class: "message__meta" }, h("strong", { text: m.author }), " · ", timeElement(m.created_at)),
    h("p", { class: "message__body", text: m.body }));
}

function conversation(ticket) {
  const form = h("form", { novalidate: true, class: "reply-form" },
    h("div", { class: "field" },
      h("label", { for: `again-${ticket.id}`, text: "Write again" }),
      h("textarea", { id: `again-${ticket.id}`, name: "message", rows: "3", maxlength: "4000", required: true,
        "data-required-message": "Enter your message." })),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button--secondary", text: "Send" })));
  handleSubmit(form, async (data) => {
    await post(`/help/tickets/${ticket.id}/messages`, { message: data.message });
    setPageStatus("success", `Your message was added to ${ticket.reference}.`);
    await loadTickets();
  });
  return h("div", { class: "conversation", id: `conversation-${ticket.id}` },
    h("ol", { class: "messages", "aria-label": `Messages of ${ticket.reference}` }, ticket.messages.map(messageItem)),
    form);
}

async function ticketItem(t) {
  const status = STATUS[t.status] || { label: t.status, badge: "" };
  const open = expanded.has(t.id);
  const toggle = h("button", {
    type: "button", class: "button button--secondary button--small", "aria-expanded": String(open),
    "aria-controls": `conversation-${t.id}`,
  }, open ? "Hide conversation" : "Show conversation", h("span", { class: "visually-hidden", text: ` of ${t.reference}` }));
  const item = h("li", { class: "ticket", dataset: { ticket: String(t.id), status: t.status } },
    h("h3", {}, t.subject, h("span", { class: `badge ${status.badge}`, text: status.label }),
      t.new_reply ? h("span", { class: "badge badge--success", text: "New reply" }) : null),
    h("p", { class: "muted" }, `${t.reference} · ${TOPICS[t.topic] || t.topic} · updated `, timeElement(t.updated_at)),
    h("div", { class: "button-row" }, toggle));
  toggle.addEventListener("click", async () => {
    if (expanded.has(t.id)) expanded.delete(t.id);
    else expanded.add(t.id);
    await loadTickets();
    const again = document.querySelector(`[data-ticket="${t.id}"] button[aria-expanded]`);
    if (again) again.focus();
  });
  if (open) {
    const full = await get(`/help/tickets/${t.id}`);
    item.append(conversation(full));
  }
  return item;
}

async function loadTickets() {
  const tickets = await get("/help/tickets");
  const list = $("ticket-list");
  if (!tickets.length) {
    replaceChildren(list, h("p", { class: "empty-state", text: "You have not sent the help desk a message yet." }));
    return tickets;
  }
  const items = [];
  for (const t of tickets) items.push(await ticketItem(t));
  replaceChildren(list, h("ul", { class: "ticket-list" }, items));
  return tickets;
}

async function sendTicket(data, form) {
  const ticket = await post("/help/tickets", data);
  form.reset();
  expanded.add(ticket.id);
  setPageStatus("success", `Thank you. Your message was sent to the help desk as ${ticket.reference}; the reply will appear under Your help requests, and we'll email you.`);
  await loadTickets();
}

let reloading = null;
function reloadSoon() {
  if (reloading) return;
  reloading = window.setTimeout(async () => {
    reloading = null;
    try {
      await loadTickets();
      announce("Your help requests were updated.");
    } catch {
      // The next event tries again.
    }
  }, 50);
}

renderFaq($("faq"), { signedIn: true });
const session = await initPortal();
if (session) {
  try {
    await withLoading($("help-load"), "your help requests", loadTickets);
    $("contact").hidden = false;
    $("mine").hidden = false;
    handleSubmit($("ticket-form"), sendTicket);
    onLiveEvent(["help_ticket"], reloadSoon);
  } catch {
    // withLoading showed the error; the questions and the phone number stay.
  }
}
