// One conversation, drawn and kept live, for the patient's Messaging tab and the clinic's
// inbox: the messages as text (never HTML; links are not made clickable), a composer whose
// messages show Sending…, Sent, Delivered, Read, or "Not sent" with Retry; who is typing;
// and one polite announcement for new messages (a burst is read out as "3 new messages",
// not one by one; the history on screen is never read out).
//
//   const view = await mountConversation(container, { me, conversationId, labels });
//   view.destroy();   // stop following it (leaving the page or opening another)

import { get, post, ApiError } from "./api.js";
import { h, replaceChildren, timeElement, focusElement, uniqueId, notice } from "./dom.js";
import { clearErrors, showFieldError } from "./forms.js";
import { onLiveEvent } from "./live-events.js";
import { getChat, newClientId, messageLength, keepSignedIn, uploadAttachment, fileSize } from "./chat-client.js";

const TYPING_SHOWN_MS = 5000;
const TYPING_EVERY_MS = 3000;
const POLL_MS = 15000;
const ANNOUNCE_AFTER_MS = 1200;
const PAGE = 50;
const ROLE_WORDS = { provider: "Provider", staff: "Care team", patient: "Patient", admin: "Clinic" };
/** What people call each accepted kind of file. */
const KIND_WORDS = {
  "image/png": "PNG image", "image/jpeg": "JPEG image", "image/gif": "GIF image",
  "image/webp": "WebP image", "application/pdf": "PDF document",
};
const ACCEPTED_WORDS = "a PNG, JPEG, GIF or WebP image, or a PDF document";
const REFILL_STATUS = {
  requested: { label: "Requested", badge: "" },
  approved: { label: "Approved", badge: "badge--success" },
  sent: { label: "Sent to pharmacy", badge: "badge--success" },
  denied: { label: "Denied", badge: "badge--danger" },
  cancelled: { label: "Withdrawn", badge: "badge--warning" },
};
/** Events on the user's channel that mean a refill request changed (patient, prescriber). */
const REFILL_EVENTS = new Set(["refill", "refill_queue"]);

/** The refill request a conversation carries, with its status and history. */
function refillCard(r, me) {
  const status = REFILL_STATUS[r.status] || { label: r.status, badge: "" };
  const headingId = uniqueId("refill-card");
  const rows = [
    ["Medication", [r.medication_name, r.dosage].filter(Boolean).join(" · ")],
    ["Pharmacy", r.pharmacy ? r.pharmacy.name : ""],
    r.note ? ["Note", r.note] : null,
    r.provider ? ["Provider", r.provider] : null,
    r.decision_note ? [r.status === "denied" ? "Reason" : "Provider's note", r.decision_note] : null,
  ].filter(Boolean);
  return h("section", { class: "refill-card", "aria-labelledby": headingId, dataset: { refillStatus: r.status } },
    h("h3", { id: headingId, class: "refill-card__title" }, "Refill request ",
      h("span", { class: `badge ${status.badge}`, text: status.label })),
    h("dl", { class: "refill-card__facts" }, rows.map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })])),
    h("ol", { class: "timeline", "aria-label": "Progress of the request" }, r.steps.map((step) =>
      h("li", {}, `${(REFILL_STATUS[step.status] || { label: step.status }).label} `, timeElement(step.at)))),
    me.role === "patient" ? null
      : h("p", {}, h("a", { href: "/console/refills.html", text: "Approve or deny it in the refill queue" })));
}
const MAX_FILES = 5;

/** Download links for a message's files (each name shown as text). */
export function attachmentList(files) {
  if (!files || !files.length) return null;
  return h("ul", { class: "msg__files", "aria-label": "Attached files" },
    ...files.map((f) => h("li", {},
      h("a", { href: `/api/v1/conversations/attachments/${f.id}`, download: f.name, class: "msg__file", text: f.name }),
      h("span", { class: "hint", text: ` (${KIND_WORDS[f.content_type] || "file"}, ${fileSize(f.size)})` }))));
}

/** What a status shows on the person's own message. */
const STATE_TEXT = { sending: "Sending…", sent: "Sent", delivered: "Delivered", read: "Read" };

function nearBottom() {
  const doc = document.documentElement;
  return window.innerHeight + window.scrollY >= doc.scrollHeight - 160;
}

function shorten(text, max = 140) {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/**
 * An "Attach a file" field (a labelled file input, keyboard and screen-reader friendly as
 * the browser makes it): each chosen file is checked (kind, size) and refused in words, or
 * uploaded at once and listed with its size, state and a Remove button. `getForm()` is the
 * form it sits in (errors show under the field).
 * Returns {field, ready(), clear(), restore(uploads)}: `ready()` waits for uploads in flight
 * and resolves to the uploads to send, or null (after showing why) when one failed.
 */
export function attachField({ maxFileBytes = 10 * 1024 * 1024, getForm }) {
  const fileId = uniqueId("attach");
  const fileInput = h("input", {
    type: "file", id: fileId, name: "file", multiple: true, class: "composer__file",
    accept: "image/png,image/jpeg,image/gif,image/webp,application/pdf,.png,.jpg,.jpeg,.gif,.webp,.pdf",
    "aria-describedby": `${fileId}-hint`,
  });
  const fileList = h("ul", { class: "composer__files", "aria-label": "Files to send", "aria-live": "polite" });
  const attached = []; // {file, li, state: "uploading"|"ready"|"failed", upload: {id,...}, promise}
  const field = h("div", { class: "field composer__attach" },
    h("label", { for: fileId, text: "Attach a file" }),
    h("p", { class: "hint", id: `${fileId}-hint`,
      text: `Optional. ${ACCEPTED_WORDS[0].toUpperCase()}${ACCEPTED_WORDS.slice(1)}, up to ${fileSize(maxFileBytes)} each; at most ${MAX_FILES} files.` }),
    fileInput, fileList);

  function drawAttached(item) {
    const remove = h("button", { type: "button", class: "button button--secondary button--small", text: "Remove" });
    remove.setAttribute("aria-label", `Remove ${item.file.name}`);
    remove.addEventListener("click", () => {
      const at = attached.indexOf(item);
      if (at >= 0) attached.splice(at, 1);
      item.li.remove();
      fileInput.focus();
    });
    const state = item.state === "uploading" ? "uploading…"
      : item.state === "failed" ? `not attached: ${item.error}` : "attached";
    replaceChildren(item.li, h("span", { class: "composer__file-name", text: item.file.name }),
      h("span", { class: "hint", text: ` (${fileSize(item.file.size)}) ${state} ` }), remove);
    item.li.dataset.state = item.state;
  }

  function problemWith(file) {
    const known = Object.keys(KIND_WORDS).includes(file.type) || /\.(png|jpe?g|gif|webp|pdf)$/i.test(file.name);
    if (!known) return `“${file.name}” cannot be attached: only ${ACCEPTED_WORDS} can be sent.`;
    if (file.size > maxFileBytes) {
      return `“${file.name}” is ${fileSize(file.size)}; a file can be at most ${fileSize(maxFileBytes)}.`;
    }
    if (!file.size) return `“${file.name}” is empty.`;
    return null;
  }

  function add(item) {
    attached.push(item);
    fileList.append(item.li);
    drawAttached(item);
  }

  fileInput.addEventListener("change", () => {
    const form = getForm();
    clearErrors(form);
    const problems = [];
    for (const file of Array.from(fileInput.files || [])) {
      if (attached.length >= MAX_FILES) {
        problems.push(`At most ${MAX_FILES} files can go in one message.`);
        break;
      }
      const problem = problemWith(file);
      if (problem) {
        problems.push(problem);
        continue;
      }
      const item = { file, li: h("li", {}), state: "uploading" };
      add(item);
      item.promise = uploadAttachment(file).then((upload) => {
        item.upload = upload;
        item.state = "ready";
        drawAttached(item);
      }, (error) => {
        item.state = "failed";
        item.error = error.message;
        drawAttached(item);
        showFieldError(form, "file", `“${file.name}”: ${error.message}`);
      });
    }
    fileInput.value = "";
    if (problems.length) showFieldError(form, "file", problems.join(" "));
    keepSignedIn();
  });

  return {
    field,
    async ready() {
      await Promise.all(attached.map((item) => item.promise));
      if (attached.some((item) => item.state === "failed")) {
        showFieldError(getForm(), "file", "Remove the files that could not be attached, or choose them again.");
        fileInput.focus();
        return null;
      }
      return attached.map((item) => item.upload);
    },
    clear() {
      attached.splice(0);
      replaceChildren(fileList);
    },
    restore(uploads) {
      for (const upload of uploads) {
        add({ file: { name: upload.name, size: upload.size }, li: h("li", {}), state: "ready", upload,
          promise: Promise.resolve() });
      }
    },
  };
}

/**
 * Draw conversation `conversationId` into `container` and follow it live.
 * Options: `me` (the session's user), `labels` (category value -> label), `maxChars`,
 * `beforeComposer(detail)` (a node above the message box, e.g. the reply-time notice),
 * `whenClosed(detail)` (what replaces the message box of a closed conversation),
 * `actions(detail, view)` (buttons under the title), `onChange(detail)` (after each fetch),
 * `backLink` (a node above the title).
 * Resolves to {destroy, refresh, detail()} once the conversation is on screen.
 */
export async function mountConversation(container, options) {
  const { me, conversationId: cid, labels = {}, maxChars = 4000, maxFileBytes = 10 * 1024 * 1024 } = options;
  const chat = getChat();
  const items = new Map(); // seq -> {li, mine, status, clientId}
  const waiting = new Map(); // client id -> own message not yet stored
  const typingTimers = new Map(); // user id -> timeout
  const names = new Map(); // user id -> name
  const receipts = { read: 0, delivered: 0 };
  const heard = []; // new messages from others, not yet announced
  let detail = null;
  let readSent = 0;
  let firstSeq = null;
  let lastTypingSent = 0;
  let announceTimer = null;
  let pollTimer = null;
  let gone = false;
  const off = [];

  const titleId = uniqueId("conversation-title");
  const title = h("h2", { id: titleId, class: "conversation__title", tabindex: "-1" });
  const meta = h("p", { class: "conversation__meta" });
  const actionsSlot = h("div", { class: "conversation__actions" });
  const refillSlot = h("div", { class: "conversation__refill" });
  let refillStatus = null;
  const statusSlot = h("div", { class: "conversation__status" });
  const earlier = h("div", { class: "conversation__earlier" });
  const log = h("ol", { class: "message-log", id: "message-log", "aria-labelledby": titleId });
  const typingLine = h("p", { class: "typing-indicator", id: "typing-indicator" });
  const announcer = h("div", { class: "visually-hidden", role: "status", id: "chat-announcer" });
  const connection = h("p", { class: "connection-note hint", id: "connection-note", hidden: true },
    "Live updates are paused while the connection is down. Your messages are still sent, and new ones are checked every 15 seconds.");
  const composerSlot = h("div", { class: "conversation__composer" });
  const section = h("section", { class: "conversation card", "aria-labelledby": titleId, dataset: { conversationId: String(cid) } },
    options.backLink || null, title, meta, actionsSlot, refillSlot, statusSlot, earlier, log, typingLine, connection, composerSlot, announcer);

  // --- the composer ---------------------------------------------------------------------------

  const bodyId = uniqueId("message-body");
  const textarea = h("textarea", {
    id: bodyId, name: "body", rows: "3", required: true, autocomplete: "off",
    "aria-describedby": `${bodyId}-hint ${bodyId}-count`,
  });
  const count = h("p", { class: "hint composer__count", id: `${bodyId}-count` });
  const sendButton = h("button", { type: "submit", class: "button", text: "Send" });
  const files = attachField({ maxFileBytes, getForm: () => form });
  const form = h("form", { class: "composer", novalidate: true, "aria-label": "Write a message" },
    h("div", { class: "field" },
      h("label", { for: bodyId, text: "Your message" }),
      h("p", { class: "hint", id: `${bodyId}-hint`, text: "Sent as plain text. Press Ctrl+Enter to send." }),
      textarea, count),
    files.field,
    h("div", { class: "form-actions" }, sendButton));

  function updateCount() {
    const n = messageLength(textarea.value);
    const over = n - maxChars;
    count.textContent = over > 0
      ? `${n} of ${maxChars} characters: ${over} too many.`
      : `${n} of ${maxChars} characters.`;
    count.classList.toggle("is-over", over > 0);
  }
  updateCount();

  textarea.addEventListener("input", () => {
    updateCount();
    if (form.querySelector(".field-error") && messageLength(textarea.value) <= maxChars) clearErrors(form);
    if (textarea.value.trim() && Date.now() - lastTypingSent > TYPING_EVERY_MS) {
      lastTypingSent = Date.now();
      chat.typing(cid);
      keepSignedIn();
    }
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const text = textarea.value;
    const n = messageLength(text);
    let problem = null;
    sendButton.disabled = true;
    const uploads = await files.ready();
    sendButton.disabled = false;
    if (uploads === null) return;
    if (!text.trim() && !uploads.length) problem = "Write a message first.";
    else if (n > maxChars) {
      problem = `A message can be at most ${maxChars} characters; this one has ${n}. Split it into several messages.`;
    }
    if (problem) {
      showFieldError(form, "body", problem);
      textarea.focus();
      return;
    }
    const own = addOwn(text, newClientId(), uploads);
    files.clear();
    textarea.value = "";
    lastTypingSent = 0;
    updateCount();
    deliver(own);
  });

  // --- messages ---------------------------------------------------------------------------------

  function placeLi(li, seq) {
    if (seq === null) {
      log.append(li);
      return;
    }
    let before = null;
    for (const other of log.children) {
      const otherSeq = other.dataset.seq ? Number(other.dataset.seq) : Infinity;
      if (otherSeq > seq && other !== li) {
        before = other;
        break;
      }
    }
    log.insertBefore(li, before);
  }

  function messageLi(m, mine) {
    const who = mine ? "You" : m.sender_name || names.get(m.sender_id) || "Care team";
    const role = !mine && m.sender_role && m.sender_role !== "patient" ? ROLE_WORDS[m.sender_role] : null;
    const status = mine ? h("p", { class: "msg__status" }) : null;
    const li = h("li", { class: `msg ${mine ? "msg--mine" : "msg--theirs"}` },
      h("p", { class: "msg__meta" },
        h("span", { class: "msg__who", text: who }),
        role ? h("span", { class: "msg__role", text: ` · ${role}` }) : null,
        h("span", { class: "msg__when" }, " · ", m.sent_at ? timeElement(m.sent_at) : h("span", { text: "now" }))),
      m.body ? h("p", { class: "msg__body", text: m.body }) : null,
      attachmentList(m.attachments),
      status);
    return { li, status };
  }

  function setSeq(entry, seq, sentAt) {
    entry.seq = seq;
    entry.li.dataset.seq = String(seq);
    if (sentAt) {
      const when = entry.li.querySelector(".msg__when");
      if (when) replaceChildren(when, " · ", timeElement(sentAt));
    }
    items.set(seq, entry);
    placeLi(entry.li, seq);
    if (firstSeq === null || seq < firstSeq) firstSeq = seq;
  }

  /** A stored message (history, live, replayed or polled); each sequence once. */
  function addMessage(m, { fresh = false } = {}) {
    if (items.has(m.seq)) return;
    const own = m.sender_id === me.id ? waiting.get(m.client_id) : null;
    if (own) {
      stored(own, m);
      return;
    }
    const mine = m.sender_id === me.id;
    const { li, status } = messageLi(m, mine);
    const entry = { li, status, mine, clientId: m.client_id };
    if (m.sender_name) names.set(m.sender_id, m.sender_name);
    const follow = fresh && nearBottom();
    setSeq(entry, m.seq, null);
    if (mine) showState(entry);
    if (fresh && !mine) {
      stopTyping(m.sender_id);
      heard.push(m);
      window.clearTimeout(announceTimer);
      announceTimer = window.setTimeout(announceHeard, ANNOUNCE_AFTER_MS);
    }
    if (follow) li.scrollIntoView({ block: "nearest" });
  }

  function addOwn(text, clientId, files = []) {
    const { li, status } = messageLi({ body: text, sent_at: null, attachments: files }, true);
    li.dataset.clientId = clientId;
    const entry = { li, status, mine: true, clientId, body: text, files, seq: null, state: "sending" };
    waiting.set(clientId, entry);
    placeLi(li, null);
    showState(entry);
    li.scrollIntoView({ block: "nearest" });
    return entry;
  }

  function deliver(entry) {
    entry.state = "sending";
    showState(entry);
    chat.send(cid, entry.body, entry.clientId, (entry.files || []).map((f) => f.id)).then(
      (out) => stored(entry, out),
      (error) => {
        entry.state = "failed";
        entry.error = error;
        showState(entry);
        say(`Your message was not sent. ${error.message}`);
      },
    );
  }

  function stored(entry, out) {
    waiting.delete(entry.clientId);
    if (entry.seq !== null) return;
    const existing = items.get(out.seq);
    if (existing && existing !== entry) {
      // Shown already (a poll brought it first): keep one.
      entry.li.remove();
      return;
    }
    entry.state = "sent";
    setSeq(entry, out.seq, out.sent_at);
    showState(entry);
    markRead();
  }

  function showState(entry) {
    if (!entry.status) return;
    let state = entry.state || "sent";
    if (entry.seq !== null && entry.seq !== undefined) {
      state = entry.seq <= receipts.read ? "read" : entry.seq <= receipts.delivered ? "delivered" : "sent";
    }
    entry.li.dataset.state = state;
    if (state !== "failed") {
      replaceChildren(entry.status, STATE_TEXT[state]);
      return;
    }
    const retry = h("button", { type: "button", class: "button button--small", text: "Retry" });
    retry.addEventListener("click", () => {
      deliver(entry);
      focusElement(textarea);
    });
    const edit = h("button", { type: "button", class: "button button--secondary button--small", text: "Edit" });
    edit.addEventListener("click", () => {
      waiting.delete(entry.clientId);
      entry.li.remove();
      textarea.value = entry.body;
      files.restore(entry.files || []);
      updateCount();
      textarea.focus();
    });
    replaceChildren(entry.status,
      h("span", { class: "msg__failed", text: `Not sent. ${entry.error ? entry.error.message : ""}` }), " ", retry, " ", edit);
  }

  function refreshStates() {
    for (const entry of items.values()) if (entry.mine) showState(entry);
  }

  function noteReceipt(kind, userId, seq) {
    if (userId === me.id || typeof seq !== "number") return;
    if (kind === "read" && seq > receipts.read) receipts.read = seq;
    if (seq > receipts.delivered) receipts.delivered = seq;
    refreshStates();
  }

  // --- announcements and typing -------------------------------------------------------------------

  function say(text) {
    announcer.textContent = "";
    window.setTimeout(() => {
      announcer.textContent = text;
    }, 50);
  }

  function announceHeard() {
    const batch = heard.splice(0);
    if (!batch.length) return;
    const from = [...new Set(batch.map((m) => m.sender_name || names.get(m.sender_id) || "your care team"))];
    const gist = (m) => m.body ? shorten(m.body) : `${(m.attachments || []).length} file(s) attached`;
    if (batch.length === 1) say(`New message from ${from[0]}: ${gist(batch[0])}`);
    else say(`${batch.length} new messages from ${from.join(" and ")}.`);
  }

  function drawTyping() {
    const who = [...typingTimers.keys()].map((id) => names.get(id) || "Someone");
    typingLine.textContent = !who.length ? ""
      : `${who.join(" and ")} ${who.length === 1 ? "is" : "are"} typing…`;
  }

  function startTyping(userId) {
    if (userId === me.id) return;
    window.clearTimeout(typingTimers.get(userId));
    typingTimers.set(userId, window.setTimeout(() => stopTyping(userId), TYPING_SHOWN_MS));
    drawTyping();
  }

  function stopTyping(userId) {
    if (!typingTimers.has(userId)) return;
    window.clearTimeout(typingTimers.get(userId));
    typingTimers.delete(userId);
    drawTyping();
  }

  // --- reading ---------------------------------------------------------------------------------------

  function topSeq() {
    let top = 0;
    for (const seq of items.keys()) if (seq > top) top = seq;
    return top;
  }

  /** Tell the others how far this person has read (only while the page is in view). */
  function markRead() {
    if (gone) return;
    const top = topSeq();
    if (top <= readSent) return;
    if (document.visibilityState !== "visible") {
      chat.delivered(cid, top);
      return;
    }
    readSent = top;
    chat.read(cid, top).catch(() => {
      readSent = 0; // try again with the next message or when the page is shown
    });
  }
  const onVisible = () => markRead();
  document.addEventListener("visibilitychange", onVisible);

  // --- the conversation's details -----------------------------------------------------------------

  function drawDetail() {
    const d = detail;
    title.textContent = d.subject;
    const parts = [labels[d.category] || d.category];
    if (me.role !== "patient") parts.push(`Patient: ${d.patient.name}`);
    parts.push(d.provider ? `Provider: ${d.provider.name}` : "Provider: not yet assigned");
    replaceChildren(meta, parts.join(" · "), " ",
      h("span", { class: `badge ${d.status === "open" ? "badge--success" : ""}`, text: d.status === "open" ? "Open" : "Closed" }),
      d.archived ? [" ", h("span", { class: "badge", text: "Archived" })] : null);
    replaceChildren(actionsSlot, options.actions ? options.actions(d, view) : null);
    replaceChildren(refillSlot, d.refill ? refillCard(d.refill, me) : null);
    if (d.refill) {
      if (refillStatus && refillStatus !== d.refill.status) {
        say(`The refill request is now: ${(REFILL_STATUS[d.refill.status] || { label: d.refill.status }).label}.`);
      }
      refillStatus = d.refill.status;
    }
    if (gone) return;
    if (d.status === "open") {
      if (!composerSlot.contains(form)) {
        replaceChildren(composerSlot, options.beforeComposer ? options.beforeComposer(d) : null, form);
      }
    } else {
      replaceChildren(composerSlot, options.whenClosed ? options.whenClosed(d)
        : notice("info", h("p", { text: "This conversation is closed." })));
    }
  }

  async function refresh() {
    const d = await get(`/conversations/${cid}`);
    detail = d;
    for (const m of d.members) {
      names.set(m.user_id, m.name);
      if (m.user_id !== me.id) {
        receipts.read = Math.max(receipts.read, m.last_read_seq);
        receipts.delivered = Math.max(receipts.delivered, m.last_delivered_seq, m.last_read_seq);
      } else if (m.last_read_seq > readSent) {
        readSent = m.last_read_seq;
      }
    }
    drawDetail();
    refreshStates();
    if (options.onChange) options.onChange(d);
    return d;
  }

  function lostAccess(text) {
    gone = true;
    chat.leave(cid);
    replaceChildren(statusSlot, notice("warning", h("p", { text })));
    replaceChildren(composerSlot);
    if (options.onGone) options.onGone(detail);
  }

  // --- older messages, polling ---------------------------------------------------------------------

  function showEarlierButton(more) {
    if (!more) {
      replaceChildren(earlier);
      return;
    }
    const button = h("button", { type: "button", class: "button button--secondary button--small", text: "Show earlier messages" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const page = await get(`/conversations/${cid}/messages`, { query: { before: firstSeq, limit: PAGE } });
        for (const m of page.messages) addMessage(m);
        showEarlierButton(page.more);
        focusElement(log.firstElementChild);
      } catch (error) {
        button.disabled = false;
        replaceChildren(statusSlot, notice("error", h("p", { text: `Could not load earlier messages. ${error.message}` })));
      }
    });
    replaceChildren(earlier, button);
  }

  async function poll() {
    try {
      const page = await get(`/conversations/${cid}/messages`, { query: { after: chat.resumePoint(cid), limit: 200 } });
      let news = false;
      for (const m of page.messages) {
        if (chat.markSeen(cid, m.seq)) {
          addMessage(m, { fresh: true });
          news = true;
        }
      }
      // Each read is audited as an opening: the details (receipts, status) only when
      // something happened.
      if (news) await refresh();
      markRead();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) lostAccess("You no longer have access to this conversation.");
    }
  }

  function startPolling() {
    connection.hidden = false;
    if (!pollTimer) pollTimer = window.setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    connection.hidden = true;
    window.clearInterval(pollTimer);
    pollTimer = null;
  }

  // --- live ------------------------------------------------------------------------------------------

  const mineHere = (frame) => frame.conversation_id === cid;
  off.push(
    chat.on("message", (m) => {
      if (!mineHere(m)) return;
      addMessage(m, { fresh: true });
      markRead();
    }),
    chat.on("typing", (f) => mineHere(f) && startTyping(f.user_id)),
    chat.on("read", (f) => mineHere(f) && noteReceipt("read", f.user_id, f.seq)),
    chat.on("delivered", (f) => mineHere(f) && noteReceipt("delivered", f.user_id, f.seq)),
    chat.on("conversation", (f) => mineHere(f) && refresh().catch(() => {})),
    onLiveEvent([...REFILL_EVENTS], (event) => {
      if (REFILL_EVENTS.has(event.kind) && detail && detail.refill && event.id === detail.refill.id) {
        refresh().catch(() => {});
      }
    }),
    chat.on("unfollowed", (f) => mineHere(f) && lostAccess(
      "This conversation was routed to another provider. You can no longer see new messages in it.")),
    chat.on("error", (f) => {
      if (f.ref === `resume-${cid}` && (f.code === "not_found" || f.code === "forbidden")) {
        lostAccess("You no longer have access to this conversation.");
      }
    }),
    chat.on("ready", () => {
      stopPolling();
      if (!gone) refresh().then(markRead).catch(() => {});
    }),
    chat.on("down", () => startPolling()),
  );

  const view = {
    refresh,
    detail: () => detail,
    destroy() {
      gone = true;
      for (const stop of off) stop();
      stopPolling();
      document.removeEventListener("visibilitychange", onVisible);
      for (const timer of typingTimers.values()) window.clearTimeout(timer);
      window.clearTimeout(announceTimer);
      chat.leave(cid);
    },
  };

  // --- first draw ----------------------------------------------------------------------------------

  const [, page] = await Promise.all([
    refresh(),
    get(`/conversations/${cid}/messages`, { query: { limit: PAGE } }),
  ]);
  replaceChildren(container, section);
  for (const m of page.messages) addMessage(m);
  showEarlierButton(page.more);
  const seqs = page.messages.map((m) => m.seq);
  const since = seqs.length ? Math.max(...seqs) : 0;
  chat.follow(cid, since);
  // No socket yet (it may be opening): after a moment, fall back to asking over HTTP.
  window.setTimeout(() => {
    if (!gone && !chat.listening) startPolling();
  }, 3000);
  markRead();
  return view;
}

/** Archive or bring back a conversation for this person; resolves to its new details. */
export function setArchived(conversationId, archived) {
  return post(`/conversations/${conversationId}/${archived ? "archive" : "unarchive"}`);
}

/** `(kind, text)` that shows one status notice in `box` (none for a null text). */
export function pageStatus(box) {
  return (kind, text) => replaceChildren(box, text ? notice(kind, h("p", { text })) : null);
}

/** Links marked `data-view-link` switch views in place (`go`), Back/Forward re-`show`;
 * a plain click only: new-tab and modified clicks keep the browser's behaviour. */
export function followViewLinks({ go, show, clear }) {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-view-link]");
    if (!link || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    clear();
    go(link.getAttribute("href"));
  });
  window.addEventListener("popstate", () => show().catch(() => {}));
}
