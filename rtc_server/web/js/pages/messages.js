// /app/messages.html (Messaging tab): the patient's conversations with their care team,
// unread counts and archive; New Message (category, subject, text; the page says it is not
// for emergencies, gives the emergency number and the clinic's usual reply time before
// anything is sent; a refill request shows the refill form: medication, pharmacy, note, made
// with the refill API and carried by its conversation); and one conversation, live.
//
// One page, three views chosen by the address: ?c=<id> a conversation, ?new=1 (and
// &category=…) New Message, ?archived=1 the archived ones, nothing the inbox. Moving between
// them keeps the page (and its socket); the links are real links all the same.

import { initPortal, withLoading } from "../portal.js";
import { api, get, post, ApiError } from "../api.js";
import { h, replaceChildren, focusElement, timeElement, notice, announce } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { getChat, newClientId, messageLength, badgeMessagingTab, CHAT_EVENT_KINDS } from "../chat-client.js";
import { mountConversation, setArchived, pageStatus, followViewLinks, attachField } from "../chat-view.js";
import { clinicInfo, applyClinic } from "../shell.js";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 50;
const BASE = "/app/messages.html";

const state = {
  me: null,
  info: null, // GET /conversations/compose-info
  labels: {},
  view: null, // the open conversation's controller
  archived: false,
  offset: 0,
  composeClientId: newClientId(),
  refillKey: newClientId(), // Idempotency-Key of the refill request being made
  refillOptions: null, // {medications, pharmacies} once loaded
  composeFiles: null, // the New Message form's "Attach a file" field
  refreshUnread: null,
};

// --- navigation inside the page ------------------------------------------------------------

function where() {
  const params = new URLSearchParams(window.location.search);
  const c = Number(params.get("c"));
  if (Number.isInteger(c) && c > 0) return { name: "conversation", id: c };
  if (params.get("new")) return { name: "compose", category: params.get("category") };
  return { name: "inbox", archived: params.get("archived") === "1" };
}

function go(href, { replace = false } = {}) {
  if (replace) window.history.replaceState(null, "", href);
  else window.history.pushState(null, "", href);
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
  $("compose-view").hidden = place.name !== "compose";
  $("conversation-view").hidden = place.name !== "conversation";
  if (place.name === "compose") {
    showCompose(place.category);
  } else if (place.name === "conversation") {
    await showConversation(place.id);
  } else {
    await showInbox(place.archived);
  }
}

// --- inbox ------------------------------------------------------------------------------------------

function conversationItem(c) {
  const href = `${BASE}?c=${c.id}`;
  const archive = h("button", { type: "button", class: "button button--secondary button--small" },
    c.archived ? "Move to inbox" : "Archive", h("span", { class: "visually-hidden", text: ` “${c.subject}”` }));
  archive.addEventListener("click", async () => {
    archive.disabled = true;
    try {
      await setArchived(c.id, !c.archived);
      setPageStatus("success", c.archived ? `“${c.subject}” is back in your inbox.` : `“${c.subject}” was archived. Find it under Archived.`);
      await loadList();
      focusElement($("inbox-heading"));
    } catch (error) {
      archive.disabled = false;
      setPageStatus("error", `Could not change “${c.subject}”. ${error.message}`);
    }
  });
  const details = [state.labels[c.category] || c.category, c.provider ? c.provider.name : "Your care team"];
  return h("li", { class: `conversation-item${c.unread ? " conversation-item--unread" : ""}`, dataset: { conversationId: String(c.id) } },
    h("div", { class: "conversation-item__main" },
      h("h3", { class: "conversation-item__subject" }, h("a", { href, "data-view-link": true, text: c.subject })),
      h("p", { class: "conversation-item__meta" }, details.join(" · "), " · ",
        c.last_message_at ? timeElement(c.last_message_at) : null,
        c.status === "closed" ? [" ", h("span", { class: "badge", text: "Closed" })] : null)),
    h("p", { class: "conversation-item__side" },
      c.unread ? h("span", { class: "badge badge--unread", dataset: { unread: String(c.unread) } },
        `${c.unread} unread`) : null,
      archive));
}

let listRun = null;
let listAgain = false;

/** Fetch the list again (once more if asked while a fetch runs). */
async function loadList() {
  if (listRun) {
    listAgain = true;
    return listRun;
  }
  listRun = (async () => {
    try {
      do {
        listAgain = false;
        const out = await get("/conversations", { query: { archived: state.archived, limit: PAGE_SIZE + state.offset } });
        drawList(out);
      } while (listAgain);
    } finally {
      listRun = null;
    }
  })();
  return listRun;
}

function drawList(out) {
  const list = $("conversation-list");
  if (!out.conversations.length) {
    replaceChildren(list);
    replaceChildren($("list-status"), h("p", { class: "muted" }, state.archived
      ? "No archived conversations."
      : "No conversations yet. To write to your care team, choose New message above."));
  } else {
    replaceChildren($("list-status"));
    replaceChildren(list, out.conversations.map(conversationItem));
  }
  const more = $("list-more");
  if (out.conversations.length >= PAGE_SIZE + state.offset) {
    const button = h("button", { type: "button", class: "button button--secondary button--small", text: "Show more" });
    button.addEventListener("click", () => {
      state.offset += PAGE_SIZE;
      loadList().catch(() => {});
    });
    replaceChildren(more, button);
  } else {
    replaceChildren(more);
  }
}

async function showInbox(archived) {
  state.archived = archived;
  state.offset = 0;
  for (const button of document.querySelectorAll("[data-archived]")) {
    button.setAttribute("aria-pressed", String((button.dataset.archived === "true") === archived));
  }
  $("inbox-heading").textContent = archived ? "Archived conversations" : "Your conversations";
  document.title = document.title.replace(/^[^·]*·/, "Messaging ·");
  try {
    await withLoading($("list-status"), "your conversations", loadList);
  } catch {
    // withLoading shows the error.
  }
}

for (const button of document.querySelectorAll("[data-archived]")) {
  button.addEventListener("click", () => {
    setPageStatus(null, null);
    go(button.dataset.archived === "true" ? `${BASE}?archived=1` : BASE);
  });
}

// --- new message ------------------------------------------------------------------------------------

function emergencyText(info) {
  const text = info.emergency_notice;
  const at = text.indexOf(info.emergency_number);
  if (at < 0) return [text];
  return [text.slice(0, at), h("a", { href: `tel:${info.emergency_number}`, class: "nowrap emergency-number", text: info.emergency_number }),
    text.slice(at + info.emergency_number.length)];
}

function drawComposeInfo(info) {
  replaceChildren($("emergency-text"), emergencyText(info));
  $("compose-reply-time").textContent = info.reply_time;
  $("inbox-reply-time").textContent = info.reply_time;
  for (const link of document.querySelectorAll(".emergency-line .emergency-number")) {
    link.textContent = info.emergency_number;
    link.setAttribute("href", `tel:${info.emergency_number}`);
  }
  const options = info.categories.map((c) => {
    const id = `category-${c.value}`;
    return h("div", { class: "check category-option" },
      h("input", { type: "radio", name: "category", id, value: c.value, "aria-describedby": `${id}-hint` }),
      h("label", { for: id, text: c.label }),
      h("p", { class: "hint", id: `${id}-hint`, text: c.hint }));
  });
  replaceChildren($("category-options"), options);
  $("compose-body").setAttribute("maxlength", String(info.max_chars * 2));
  updateComposeCount();
}

function updateComposeCount() {
  const max = state.info ? state.info.max_chars : 4000;
  const n = messageLength($("compose-body").value);
  const over = n - max;
  const count = $("compose-body-count");
  count.textContent = over > 0 ? `${n} of ${max} characters: ${over} too many.` : `${n} of ${max} characters.`;
  count.classList.toggle("is-over", over > 0);
}

function chosenCategory() {
  const checked = document.querySelector('input[name="category"]:checked');
  return checked ? checked.value : null;
}

function showCompose(category) {
  document.title = document.title.replace(/^[^·]*·/, "New message ·");
  if (category && document.getElementById(`category-${category}`)) {
    document.getElementById(`category-${category}`).checked = true;
  }
  composeMode();
  focusElement($("compose-heading"));
}

/** A refill request shows the refill form instead of subject and message. */
function composeMode() {
  const refill = chosenCategory() === "refill";
  $("refill-fields").hidden = !refill;
  $("message-fields").hidden = refill;
  if (refill && !state.refillOptions) loadRefillOptions().catch(() => {});
}

function medicationOption(med) {
  const why = med.controlled ? " (controlled substance: call the clinic for this refill)"
    : med.open_request_id ? " (a request is already waiting)" : "";
  const detail = med.dosage ? ` · ${med.dosage}` : "";
  return h("option", { value: String(med.id), disabled: Boolean(why), text: `${med.name}${detail}${why}` });
}

async function loadRefillOptions() {
  const [page, directory] = await withLoading($("refill-load"), "your medications",
    () => Promise.all([get("/refills"), get("/pharmacies", { query: { limit: 50 } })]));
  state.refillOptions = { page };
  const meds = page.medications;
  replaceChildren($("refill-medication"), h("option", { value: "", text: meds.length ? "Choose a medication" : "No active medications on file" }),
    meds.map(medicationOption));
  const preferred = page.preferred_pharmacy;
  const others = directory.filter((p) => !preferred || p.id !== preferred.id);
  const label = (p) => `${p.name} · ${[p.address_line, p.city].filter(Boolean).join(", ")}`;
  replaceChildren($("refill-pharmacy"), h("option", { value: "", text: "Choose a pharmacy" }),
    preferred ? h("option", { value: String(preferred.id), selected: true, text: `${label(preferred)} (your usual pharmacy)` }) : null,
    others.map((p) => h("option", { value: String(p.id), text: label(p) })));
}

/** Make the refill request (the refill API), then the conversation that carries it. */
async function startRefill(data) {
  const select = $("refill-medication");
  const medName = select.selectedOptions[0] ? select.selectedOptions[0].textContent.split(" · ")[0] : "medication";
  const pharmacy = $("refill-pharmacy").selectedOptions[0];
  const note = $("refill-note").value.trim();
  const refill = await api("/refills", { method: "POST", headers: { "Idempotency-Key": state.refillKey },
    body: { medication_id: Number(data.medication_id), pharmacy_id: Number(data.pharmacy_id), note: note || null } });
  const body = `Please refill ${refill.medication_name}, to be sent to ${refill.pharmacy.name}.${note ? `\n${note}` : ""}`;
  const started = await post("/conversations", {
    category: "refill", subject: `Refill: ${refill.medication_name || medName}`.slice(0, 120), body,
    client_id: state.composeClientId, refill_request_id: refill.id,
  });
  state.refillKey = newClientId();
  state.refillOptions = null; // the medication now has an open request
  return started;
}

function wireCompose() {
  const form = $("compose-form");
  state.composeFiles = attachField({ maxFileBytes: state.info.attachment_max_bytes, getForm: () => form });
  $("compose-attach").replaceWith(state.composeFiles.field);
  form.addEventListener("change", (event) => {
    if (event.target.name === "category") composeMode();
  });
  $("compose-body").addEventListener("input", updateComposeCount);
  handleSubmit(form, async (data) => {
    let started;
    if (data.category === "refill") {
      started = await startRefill(data);
    } else {
      const uploads = await state.composeFiles.ready();
      if (uploads === null) return;
      started = await post("/conversations", {
        category: data.category, subject: data.subject, body: $("compose-body").value,
        client_id: state.composeClientId, attachments: uploads.map((u) => u.id),
      });
      state.composeFiles.clear();
    }
    // The next message is a new one; a retry of this one (same id) would not start another.
    state.composeClientId = newClientId();
    form.reset();
    updateComposeCount();
    composeMode();
    setPageStatus("success", "Your message was sent to your care team.");
    announce("Your message was sent.");
    go(`${BASE}?c=${started.conversation.id}`);
  }, {
    validate: () => {
      const problems = chosenCategory() ? [] : [{ field: "category", message: "Choose what your message is about." }];
      const max = state.info ? state.info.max_chars : 4000;
      const n = messageLength($("compose-body").value);
      if (n > max) {
        problems.push({ field: "body", message: `A message can be at most ${max} characters; this one has ${n}. Split it into several messages.` });
      }
      return problems;
    },
    fieldForCode: { controlled_substance: "medication_id", already_requested: "medication_id" },
  });
}

// --- one conversation ---------------------------------------------------------------------------------

function replyNotice() {
  const info = state.info;
  const number = info ? info.emergency_number : "911";
  return h("p", { class: "hint reply-note" },
    info ? `${info.reply_time} ` : "",
    "Not for emergencies: in an emergency, call ", h("a", { href: `tel:${number}`, class: "nowrap", text: number }), ".");
}

function closedNotice(detail) {
  return notice("info", h("p", {}, "This conversation was closed",
    detail.closed_at ? [" on ", timeElement(detail.closed_at)] : null,
    ". To write to your care team again, start a ",
    h("a", { href: `${BASE}?new=1`, "data-view-link": true, text: "new message" }), "."));
}

function conversationActions(detail) {
  const button = h("button", { type: "button", class: "button button--secondary button--small",
    text: detail.archived ? "Move to inbox" : "Archive" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await setArchived(detail.id, !detail.archived);
      setPageStatus("success", detail.archived ? "The conversation is back in your inbox." : "The conversation was archived. Messages are kept.");
      if (state.view) await state.view.refresh();
    } catch (error) {
      button.disabled = false;
      setPageStatus("error", `Could not change the conversation. ${error.message}`);
    }
  });
  return h("p", { class: "button-row" }, button);
}

async function showConversation(id) {
  const area = $("conversation-view");
  const backLink = h("p", { class: "back-link" }, h("a", { href: BASE, "data-view-link": true, text: "All messages" }));
  try {
    state.view = await withLoading(area, "the conversation", () => mountConversation(area, {
      me: state.me, conversationId: id, labels: state.labels, maxChars: state.info ? state.info.max_chars : 4000,
      maxFileBytes: state.info ? state.info.attachment_max_bytes : undefined,
      backLink, beforeComposer: replyNotice, whenClosed: closedNotice, actions: conversationActions,
      onChange: (d) => {
        document.title = document.title.replace(/^[^·]*·/, `${d.subject} ·`);
      },
    }));
    focusElement(area.querySelector(".conversation__title"));
    if (state.refreshUnread) state.refreshUnread();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      replaceChildren(area, notice("error", h("p", {}, "This conversation was not found. ",
        h("a", { href: BASE, "data-view-link": true, text: "See all your messages" }), ".")));
    }
  }
}

// --- start -------------------------------------------------------------------------------------------

/** Messaging is not part of this server: say so, with what to do instead. */
function notAvailable() {
  const main = $("main-content");
  main.className = "card empty-state";
  replaceChildren(main,
    h("h2", { text: "Secure messaging is not available yet" }),
    h("p", { text: "You cannot send messages to your care team from the portal yet." }),
    h("p", {}, h("strong", { text: "Next step:" }), " for a question about your care, call ",
      h("span", { "data-clinic-phone": true, text: "the clinic" }), h("span", { "data-clinic-hours": true }), "."),
    h("p", { class: "alert alert--warning", text: "In an emergency, call 911." }));
  clinicInfo().then((clinic) => clinic && applyClinic(clinic));
}

const session = await initPortal({ roles: ["patient"] });
if (session) {
  state.me = session.user;
  let info = null;
  try {
    info = await withLoading($("messages-load"), "messaging", () => get("/conversations/compose-info"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      replaceChildren($("messages-load"));
      notAvailable();
    }
  }
  if (info) {
    state.info = info;
    state.labels = Object.fromEntries(info.categories.map((c) => [c.value, c.label]));
    drawComposeInfo(info);
    wireCompose();
    const chat = getChat();
    state.refreshUnread = badgeMessagingTab(BASE);
    const listKinds = new Set(CHAT_EVENT_KINDS);
    let soon = null;
    const listLater = () => {
      if (where().name !== "inbox") return;
      window.clearTimeout(soon);
      soon = window.setTimeout(() => loadList().catch(() => {}), 150);
    };
    chat.on("event", (event) => listKinds.has(event.kind) && listLater());
    // Without the socket, the inbox asks now and then instead (started once, not
    // again on every failed reconnection, which would keep putting it off).
    let listPoll = null;
    chat.on("ready", () => {
      window.clearInterval(listPoll);
      listPoll = null;
      listLater();
    });
    chat.on("down", () => {
      if (listPoll === null) listPoll = window.setInterval(listLater, 30000);
    });
    await show();
  }
}
