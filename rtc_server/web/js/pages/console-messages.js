// /console/messages.html: the care team's inbox. Providers see the conversations of their
// patients and those routed to them, front-desk staff all of them (the server decides).
// Open one to read and reply (live: the patient's messages, typing and read receipts);
// route it to another provider, close it, reopen it, archive it for yourself. The list and
// its unread counts follow the socket; without it they are fetched now and then.
//
// ?c=<id> opens a conversation, ?filter=closed|archived picks the list.

import { initConsole } from "../console-shell.js";
import { get, post, ApiError } from "../api.js";
import { h, replaceChildren, focusElement, timeElement, notice, announce } from "../dom.js";
import { withLoading } from "../portal.js";
import { getChat, watchUnread, showUnreadOnLink, CHAT_EVENT_KINDS } from "../chat-client.js";
import { mountConversation, setArchived, pageStatus, followViewLinks } from "../chat-view.js";

const $ = (id) => document.getElementById(id);
const BASE = "/console/messages.html";
const PAGE_SIZE = 50;
const FILTERS = {
  open: { heading: "Open conversations", query: { status: "open" }, empty: "No open conversations." },
  closed: { heading: "Closed conversations", query: { status: "closed" }, empty: "No closed conversations." },
  archived: { heading: "Archived conversations", query: { archived: true }, empty: "Nothing archived." },
};

const state = { me: null, labels: {}, maxChars: 4000, view: null, filter: "open", offset: 0, targets: null };

function where() {
  const params = new URLSearchParams(window.location.search);
  const c = Number(params.get("c"));
  if (Number.isInteger(c) && c > 0) return { name: "conversation", id: c };
  const filter = params.get("filter");
  return { name: "inbox", filter: FILTERS[filter] ? filter : "open" };
}

function go(href) {
  window.history.pushState(null, "", href);
  show().catch(() => {});
}

const setPageStatus = pageStatus($("page-status"));
followViewLinks({ go, show, clear: () => setPageStatus(null, null) });

async function show() {
  const place = where();
  if (state.view) {
    state.view.destroy();
    state.view = null;
  }
  $("inbox-view").hidden = place.name !== "inbox";
  $("conversation-view").hidden = place.name !== "conversation";
  if (place.name === "conversation") await showConversation(place.id);
  else await showInbox(place.filter);
}

// --- the list -----------------------------------------------------------------------------------------

function conversationItem(c) {
  const details = [state.labels[c.category] || c.category,
    c.provider ? `Provider: ${c.provider.name}` : "Not yet routed to a provider"];
  return h("li", { class: `conversation-item${c.unread ? " conversation-item--unread" : ""}`, dataset: { conversationId: String(c.id) } },
    h("div", { class: "conversation-item__main" },
      h("h3", { class: "conversation-item__subject" },
        h("a", { href: `${BASE}?c=${c.id}`, "data-view-link": true }, c.patient.name, ": ", c.subject)),
      h("p", { class: "conversation-item__meta" }, details.join(" · "), " · ",
        c.last_message_at ? timeElement(c.last_message_at) : null,
        c.status === "closed" ? [" ", h("span", { class: "badge", text: "Closed" })] : null)),
    h("p", { class: "conversation-item__side" },
      c.unread ? h("span", { class: "badge badge--unread", dataset: { unread: String(c.unread) } }, `${c.unread} unread`) : null));
}

let listRun = null;
let listAgain = false;

async function loadList() {
  if (listRun) {
    listAgain = true;
    return listRun;
  }
  listRun = (async () => {
    try {
      do {
        listAgain = false;
        const filter = FILTERS[state.filter];
        const out = await get("/conversations", { query: { ...filter.query, limit: PAGE_SIZE + state.offset } });
        drawList(out, filter);
      } while (listAgain);
    } finally {
      listRun = null;
    }
  })();
  return listRun;
}

function drawList(out, filter) {
  if (!out.conversations.length) {
    replaceChildren($("conversation-list"));
    replaceChildren($("list-status"), h("p", { class: "muted", text: filter.empty }));
  } else {
    replaceChildren($("list-status"));
    replaceChildren($("conversation-list"), out.conversations.map(conversationItem));
  }
  if (out.conversations.length >= PAGE_SIZE + state.offset) {
    const button = h("button", { type: "button", class: "button button--secondary button--small", text: "Show more" });
    button.addEventListener("click", () => {
      state.offset += PAGE_SIZE;
      loadList().catch(() => {});
    });
    replaceChildren($("list-more"), button);
  } else {
    replaceChildren($("list-more"));
  }
}

async function showInbox(filter) {
  state.filter = filter;
  state.offset = 0;
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.setAttribute("aria-pressed", String(button.dataset.filter === filter));
  }
  $("inbox-heading").textContent = FILTERS[filter].heading;
  document.title = document.title.replace(/^[^·]*·/, "Inbox ·");
  try {
    await withLoading($("list-status"), "the inbox", loadList);
  } catch {
    // withLoading shows the error.
  }
}

for (const button of document.querySelectorAll("[data-filter]")) {
  button.addEventListener("click", () => {
    setPageStatus(null, null);
    go(button.dataset.filter === "open" ? BASE : `${BASE}?filter=${button.dataset.filter}`);
  });
}

// --- one conversation -------------------------------------------------------------------------------------

async function routeTargets() {
  if (!state.targets) state.targets = await get("/conversations/route-targets");
  return state.targets;
}

function routeForm(detail) {
  const select = h("select", { id: "route-to", name: "provider_id" },
    h("option", { value: "", text: "Choose a provider" }));
  routeTargets().then((targets) => {
    for (const t of targets) {
      if (detail.provider && t.id === detail.provider.id) continue;
      select.append(h("option", { value: String(t.id), text: t.specialty ? `${t.name} (${t.specialty})` : t.name }));
    }
  }).catch(() => {});
  const error = h("p", { class: "field-error", id: "route-to-error", hidden: true });
  const form = h("form", { class: "route-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "route-to", text: "Route to another provider" }), select, error),
    h("button", { type: "submit", class: "button button--secondary button--small", text: "Route" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    select.removeAttribute("aria-invalid");
    if (!select.value) {
      error.textContent = "Choose the provider who should answer.";
      error.hidden = false;
      select.setAttribute("aria-invalid", "true");
      select.setAttribute("aria-describedby", "route-to-error");
      select.focus();
      return;
    }
    const name = select.selectedOptions[0].textContent;
    try {
      await post(`/conversations/${detail.id}/route`, { provider_id: Number(select.value) });
      setPageStatus("success", `Routed to ${name}.`);
      announce(`Routed to ${name}.`);
      if (state.view) await state.view.refresh().catch(() => {});
    } catch (err) {
      setPageStatus("error", `Could not route the conversation. ${err.message}`);
    }
  });
  return form;
}

function conversationActions(detail) {
  const closing = detail.status === "open";
  const toggle = h("button", { type: "button", class: "button button--secondary button--small",
    text: closing ? "Close conversation" : "Reopen conversation" });
  toggle.addEventListener("click", async () => {
    toggle.disabled = true;
    try {
      await post(`/conversations/${detail.id}/${closing ? "close" : "reopen"}`);
      setPageStatus("success", closing ? "The conversation is closed. The patient can start a new message." : "The conversation is open again.");
      if (state.view) await state.view.refresh();
    } catch (error) {
      toggle.disabled = false;
      setPageStatus("error", `Could not change the conversation. ${error.message}`);
    }
  });
  const archive = h("button", { type: "button", class: "button button--secondary button--small",
    text: detail.archived ? "Move to inbox" : "Archive for me" });
  archive.addEventListener("click", async () => {
    archive.disabled = true;
    try {
      await setArchived(detail.id, !detail.archived);
      setPageStatus("success", detail.archived ? "Back in your inbox." : "Archived for you. It comes back when a new message arrives.");
      if (state.view) await state.view.refresh();
    } catch (error) {
      archive.disabled = false;
      setPageStatus("error", `Could not change the conversation. ${error.message}`);
    }
  });
  return h("div", { class: "conversation-tools" },
    h("p", { class: "button-row" }, toggle, archive),
    closing ? routeForm(detail) : null);
}

function closedNotice() {
  return notice("info", h("p", { text: "This conversation is closed. Reopen it to reply." }));
}

async function showConversation(id) {
  const area = $("conversation-view");
  const backLink = h("p", { class: "back-link" }, h("a", { href: BASE, "data-view-link": true, text: "Inbox" }));
  try {
    state.view = await withLoading(area, "the conversation", () => mountConversation(area, {
      me: state.me, conversationId: id, labels: state.labels, maxChars: state.maxChars,
      maxFileBytes: state.maxFileBytes,
      backLink, whenClosed: closedNotice, actions: conversationActions,
      onChange: (d) => {
        document.title = document.title.replace(/^[^·]*·/, `${d.patient.name}: ${d.subject} ·`);
      },
    }));
    focusElement(area.querySelector(".conversation__title"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      replaceChildren(area, notice("error", h("p", {}, "This conversation was not found, or it is no longer yours to answer. ",
        h("a", { href: BASE, "data-view-link": true, text: "Back to the inbox" }), ".")));
    }
  }
}

// --- start -------------------------------------------------------------------------------------------------

const session = await initConsole({ roles: ["provider", "staff"] });
if (session) {
  state.me = session.user;
  let info = null;
  try {
    info = await withLoading($("inbox-load"), "the inbox", () => get("/conversations/compose-info"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      replaceChildren($("main-content"), notice("info", h("p", { text: "Secure messaging is not part of this server yet." })));
      replaceChildren($("inbox-load"));
    }
  }
  if (info) {
    state.labels = Object.fromEntries(info.categories.map((c) => [c.value, c.label]));
    state.maxChars = info.max_chars;
    state.maxFileBytes = info.attachment_max_bytes;
    const chat = getChat();
    watchUnread((counts) => showUnreadOnLink(document.querySelector(`#console-nav a[href="${BASE}"]`), counts.total));
    let soon = null;
    let poll = null;
    const listLater = () => {
      if (where().name !== "inbox") return;
      window.clearTimeout(soon);
      soon = window.setTimeout(() => loadList().catch(() => {}), 150);
    };
    chat.on("event", (event) => CHAT_EVENT_KINDS.includes(event.kind) && listLater());
    chat.on("ready", () => {
      window.clearInterval(poll);
      listLater();
    });
    chat.on("down", () => {
      window.clearInterval(poll);
      poll = window.setInterval(listLater, 30000);
    });
    // New conversations arrive as chat.conversation events: to their members, and to
    // every staff page (the clinic's shared channel).
    await show();
  }
}
