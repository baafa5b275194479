// /console/tickets.html: the help desk's queue. Read a ticket, reply (the requester is
// told: in the portal, or by email when they wrote from the public help page), close it.
// New tickets and follow-ups arrive live.

import { initConsole } from "../console-shell.js";
import { get, post } from "../api.js";
import { h, replaceChildren, focusElement, notice, timeElement, announce } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { onLiveEvent } from "../live-events.js";

const $ = (id) => document.getElementById(id);
const HEADINGS = { open: "Waiting for the clinic", answered: "Answered", closed: "Closed" };
const TOPICS = {
  login: "Signing in", account: "Account", technical: "Something doesn't work", appointments: "Appointments",
  refills: "Prescription refills", records: "Medical records", other: "Something else",
};
const state = { status: "open", current: null };

function setPageStatus(kind, text) {
  const area = $("page-status");
  replaceChildren(area, text ? notice(kind, h("p", { text })) : null);
  if (text) focusElement(area);
}

function requesterText(r) {
  if (r.kind === "email") return `${r.name} (not signed in; replies go to ${r.email})`;
  return [r.name, r.username ? `@${r.username}` : null, r.role && r.role !== "patient" ? r.role : null].filter(Boolean).join(" · ");
}

function row(t) {
  const open = h("button", { type: "button", class: "button button--secondary button--small" },
    "Open", h("span", { class: "visually-hidden", text: ` ${t.reference}: ${t.subject}` }));
  open.addEventListener("click", () => show(t.id, { focus: true }));
  return h("li", { class: "queue-item", dataset: { ticket: String(t.id) } },
    h("h3", {}, t.subject, t.requester.kind === "email" ? h("span", { class: "badge", text: "By email" }) : null),
    h("p", { class: "muted" }, `${t.reference} · ${TOPICS[t.topic] || t.topic} · ${requesterText(t.requester)} · updated `,
      timeElement(t.updated_at)),
    open);
}

async function load() {
  const tickets = await get("/console/tickets", { query: { status: state.status } });
  $("tickets-heading").textContent = HEADINGS[state.status];
  replaceChildren($("tickets"), tickets.length
    ? h("ul", { class: "queue" }, tickets.map(row))
    : h("p", { class: "empty-state", text: state.status === "open" ? "No tickets are waiting." : "None." }));
  return tickets;
}

function messageItem(m) {
  return h("li", { class: `message${m.from_staff ? " message--staff" : ""}` },
    h("p", { class: "message__meta" }, h("strong", { text: m.author }), m.from_staff ? " (help desk)" : "", " · ",
      timeElement(m.created_at)),
    h("p", { class: "message__body", text: m.body }));
}

function replyForm(ticket) {
  const byEmail = ticket.requester.kind === "email";
  const form = h("form", { novalidate: true, id: "reply-form" },
    h("div", { class: "alert alert--error", role: "alert", "data-form-alert": true }),
    byEmail ? notice("warning", h("p", { text: `This reply is emailed to ${ticket.requester.email}, an address we have not verified. Don't include health information.` })) : null,
    h("div", { class: "field" },
      h("label", { for: "reply", text: "Your reply" }),
      h("textarea", { id: "reply", name: "message", rows: "5", maxlength: "4000", required: true,
        "data-required-message": "Write your reply." })),
    h("div", { class: "check" }, h("input", { type: "checkbox", id: "close", name: "close" }),
      h("label", { for: "close", text: "Close the ticket with this reply" })),
    byEmail ? h("div", { class: "check" },
      h("input", { type: "checkbox", id: "no_health_data", name: "no_health_data", required: true,
        "data-required-message": "Confirm the reply contains no health information." }),
      h("label", { for: "no_health_data", text: "This reply contains no health information" })) : null,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button", text: "Send reply" })));
  handleSubmit(form, async (data) => {
    const out = await post(`/console/tickets/${ticket.id}/reply`,
      { message: data.message, close: data.close, no_health_data: Boolean(data.no_health_data) });
    setPageStatus("success", byEmail
      ? `Reply sent to ${ticket.requester.email} (${out.reference}).`
      : `Reply sent. ${ticket.requester.name} is told there is a reply in the portal (${out.reference}).`);
    await load();
    await show(ticket.id);
  });
  return form;
}

async function show(id, { focus = false } = {}) {
  const ticket = await get(`/console/tickets/${id}`);
  state.current = id;
  $("ticket-heading").textContent = `${ticket.reference}: ${ticket.subject}`;
  const close = ticket.status !== "closed"
    ? h("button", { type: "button", class: "button button--secondary", text: "Close without replying" })
    : null;
  if (close) {
    close.addEventListener("click", async () => {
      close.disabled = true;
      try {
        await post(`/console/tickets/${id}/close`);
        setPageStatus("success", `${ticket.reference} was closed.`);
      } catch (error) {
        setPageStatus("error", error.message);
      }
      await load();
      await show(id);
    });
  }
  replaceChildren($("ticket-body"),
    h("dl", { class: "facts" },
      h("dt", { text: "From" }), h("dd", { text: requesterText(ticket.requester) }),
      h("dt", { text: "Topic" }), h("dd", { text: TOPICS[ticket.topic] || ticket.topic }),
      h("dt", { text: "Status" }), h("dd", { text: HEADINGS[ticket.status] || ticket.status })),
    h("ol", { class: "messages", "aria-label": "Messages" }, ticket.messages.map(messageItem)),
    replyForm(ticket),
    close ? h("p", {}, close) : null);
  $("ticket").hidden = false;
  if (focus) focusElement($("ticket"));
}

const session = await initConsole({ roles: ["staff", "admin"] });
if (session) {
  for (const button of document.querySelectorAll(".queue-tabs button")) {
    button.addEventListener("click", async () => {
      state.status = button.dataset.status;
      for (const b of document.querySelectorAll(".queue-tabs button")) b.setAttribute("aria-pressed", String(b === button));
      await load().catch((error) => setPageStatus("error", `Could not load the tickets. ${error.message}`));
    });
  }
  try {
    await load();
  } catch (error) {
    setPageStatus("error", `Could not load the tickets. ${error.message}`);
  }
  onLiveEvent(["help_ticket_queue"], async (event) => {
    try {
      await load();
      const typing = $("reply") && $("reply").value.trim();
      if (state.current !== null && event.id === state.current && !typing) await show(state.current);
      if (event.kind !== "ready") announce("The help desk queue was updated.");
    } catch {
      // The next event tries again.
    }
  });
}
