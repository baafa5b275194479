// Secure messaging on the page's one live socket (/ws/v1/events, frames in docs/protocol.md
// and docs/messaging.md), with plain HTTP whenever the socket is not listening, so a phone
// on a bad network still gets through.
//
//   const chat = getChat();
//   chat.on("message", (m) => show(m));          // each message once, in order
//   chat.follow(conversationId, lastSeqShown);
//   const sent = await chat.send(conversationId, text, newClientId());   // {id, seq, sent_at}
//
// What it guarantees the page:
// - A followed conversation gets every message after the one it last saw, once and in
//   order, across reconnects: on each `ready` it sends `resume` from the sequence up to
//   which it has seen every message (its own acked ones included), and drops any sequence
//   it has already passed on (a replayed row, its own message echoed after a resend).
// - A send carries the page's client id. If the socket drops before the `ack`, or no ack
//   comes, the same message goes over HTTP with the same client id: the server stores it
//   once and answers with the same id and sequence. A failure rejects with a ChatError
//   (`retry` true when trying again may work: the page offers Retry with the same id).
// - Typing and delivery receipts go only over the socket (they are worth nothing late);
//   read receipts fall back to HTTP.
//
// The socket: live-events.js's, when it carries chat frames (it exports onFrame and
// sendFrame); otherwise this module opens the page's socket itself, with the same rules
// (reconnect with a growing delay, stop for good on 4401/4403, <html data-live>).

import { get, post, ApiError, lastApiCallAt } from "./api.js";
import * as liveEvents from "./live-events.js";

/** Events on the user's channel that change what messaging pages show (ids only). */
export const CHAT_EVENT_KINDS = ["chat.unread", "chat.read", "chat.conversation"];
/** An ack later than this sends the message again over HTTP (same client id: stored once). */
const ACK_TIMEOUT_MS = 8000;
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
const KEEP_SIGNED_IN_MS = 60000;

/** A send or a read that did not go through. `retry`: trying again may work. */
export class ChatError extends Error {
  constructor(code, message, { retry = false, fields = [] } = {}) {
    super(message);
    this.name = "ChatError";
    this.code = code;
    this.retry = retry;
    this.fields = fields;
  }
}

/** A fresh client message id (letters and digits; the server's idempotency key). */
export function newClientId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return window.crypto.randomUUID().replaceAll("-", "");
  }
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A message's length as the server counts it (code points, not UTF-16 units). */
export function messageLength(text) {
  return Array.from(text).length;
}

// --- the socket ---------------------------------------------------------------------------

/** live-events.js's socket, when it carries chat frames. */
function sharedSocket(on) {
  liveEvents.onLiveEvent(CHAT_EVENT_KINDS, (event) => (event.kind === "ready" ? on.ready() : on.event(event)));
  liveEvents.onFrame((frame) => (frame.type === "closed" ? on.closed() : on.frame(frame)));
  return { send: (frame) => liveEvents.sendFrame(frame) };
}

/** The page's socket, opened here (live-events.js does not carry chat frames yet). */
function ownSocket(on) {
  let socket = null;
  let listening = false;
  let delay = FIRST_DELAY_MS;
  let stopped = false;
  let retry = null;
  const html = document.documentElement;

  const connect = () => {
    if (socket || stopped) return;
    window.clearTimeout(retry);
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${window.location.host}/ws/v1/events`);
    socket = ws;
    ws.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!frame || typeof frame !== "object" || typeof frame.type !== "string") return;
      if (frame.type === "ready") {
        listening = true;
        delay = FIRST_DELAY_MS;
        html.dataset.live = "ready";
        on.ready();
      } else if (frame.type === "event") {
        if (frame.event && typeof frame.event.kind === "string") on.event(frame.event);
      } else if (frame.type !== "session_ended" && frame.type !== "pong") {
        on.frame(frame);
      }
    });
    ws.addEventListener("close", (closing) => {
      if (socket !== ws) return;
      socket = null;
      listening = false;
      html.dataset.live = "closed";
      on.closed(); // after a refused attempt too: whatever waits goes over HTTP
      if (closing.code === 4401 || closing.code === 4403) {
        stopped = true;
        return;
      }
      // A little jitter, so a restarted server is not hit by every page at once.
      retry = window.setTimeout(connect, delay * (0.8 + Math.random() * 0.4));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    });
  };
  // Back on the network: try now rather than at the end of the delay.
  window.addEventListener("online", () => {
    delay = FIRST_DELAY_MS;
    connect();
  });
  connect();
  return {
    send(frame) {
      if (!listening || !socket || socket.readyState !== WebSocket.OPEN) return false;
      try {
        socket.send(JSON.stringify(frame));
        return true;
      } catch {
        return false;
      }
    },
  };
}

// --- the chat client ------------------------------------------------------------------------

class Chat {
  constructor() {
    this.listeners = new Map();
    /** conversation id -> {seq: resume point, seqs: sequences seen beyond it} */
    this.follows = new Map();
    /** client id -> a send waiting for its ack */
    this.pending = new Map();
    this.listening = false;
    /** The socket closed (or never opened) and has not listened since: "down" was emitted. */
    this.down = false;
    const on = {
      ready: () => this.onReady(),
      closed: () => this.onClosed(),
      event: (event) => this.emit("event", event),
      frame: (frame) => this.onFrame(frame),
    };
    const shared = typeof liveEvents.onFrame === "function" && typeof liveEvents.sendFrame === "function";
    this.socket = shared ? sharedSocket(on) : ownSocket(on);
  }

  /** Listen: "message", "typing", "read", "delivered", "conversation", "unfollowed", "live",
   * "error" (a refused frame that was not a send), "event" (user-channel events), "ready"
   * (listening; refetch what the page shows), "down" (not listening). Returns an unsubscribe. */
  on(type, handler) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(handler);
    return () => this.listeners.get(type).delete(handler);
  }

  emit(type, data) {
    for (const handler of this.listeners.get(type) || []) {
      try {
        handler(data);
      } catch (error) {
        console.warn(error);
      }
    }
  }

  /** Follow a conversation live: the page shows every message up to `since` (and the
   * sequences in `seen`); it gets each later one once, in order. */
  follow(conversationId, since = 0, seen = []) {
    const follow = { seq: since, seqs: new Set() };
    this.follows.set(conversationId, follow);
    for (const seq of seen) this.markSeen(conversationId, seq);
    this.resume(conversationId, follow);
  }

  leave(conversationId) {
    if (this.follows.delete(conversationId)) {
      this.socket.send({ type: "leave", conversation_id: conversationId });
    }
  }

  resume(conversationId, follow) {
    this.socket.send({ type: "resume", conversation_id: conversationId, since: follow.seq, ref: `resume-${conversationId}` });
  }

  /**
   * True the first time a sequence is seen (pass it on), false after. The resume point
   * (`follow.seq`) only moves over an unbroken run: a message this page sent over HTTP
   * (seq 6) while the socket was away must not hide one it has not seen yet (seq 5).
   */
  markSeen(conversationId, seq) {
    const follow = this.follows.get(conversationId);
    if (!follow) return true;
    if (seq <= follow.seq || follow.seqs.has(seq)) return false;
    follow.seqs.add(seq);
    while (follow.seqs.has(follow.seq + 1)) {
      follow.seq += 1;
      follow.seqs.delete(follow.seq);
    }
    return true;
  }

  /** The sequence a resume starts after (every message up to it has been passed on). */
  resumePoint(conversationId) {
    const follow = this.follows.get(conversationId);
    return follow ? follow.seq : 0;
  }

  onReady() {
    this.listening = true;
    this.down = false;
    for (const [conversationId, follow] of this.follows) this.resume(conversationId, follow);
    this.emit("ready", {});
  }

  onClosed() {
    this.listening = false;
    // Whatever waits for an ack goes over HTTP now (same client id: stored once).
    for (const p of this.pending.values()) this.viaHttp(p);
    if (!this.down) {
      this.down = true;
      this.emit("down", {});
    }
  }

  onFrame(frame) {
    const cid = frame.conversation_id;
    switch (frame.type) {
      case "ack": {
        const p = this.pending.get(frame.client_id);
        this.markSeen(cid, frame.seq);
        if (p) this.settle(p, frame);
        break;
      }
      case "message": {
        const mine = this.pending.get(frame.client_id);
        const fresh = this.markSeen(cid, frame.seq);
        if (mine && mine.conversationId === cid) {
          // Our own message, replayed after a reconnect before its ack came.
          this.settle(mine, frame);
        } else if (fresh) {
          this.emit("message", frame);
        }
        break;
      }
      case "error": {
        const p = frame.ref ? this.pending.get(frame.ref) : null;
        if (p) {
          this.fail(p, new ChatError(frame.code, frame.message, { retry: frame.code === "rate_limited" }));
        } else {
          this.emit("error", frame);
        }
        break;
      }
      case "resync":
        // Events on a channel may have been lost (the server's broker reconnected):
        // refetch what the page shows, as after a reconnect. Followed conversations
        // catch up by themselves (the server re-reads them).
        this.emit("ready", {});
        break;
      case "typing":
      case "read":
      case "delivered":
      case "conversation":
      case "unfollowed":
      case "live":
        this.emit(frame.type, frame);
        break;
      default:
        break;
    }
  }

  /** Send a message; resolves to {id, seq, sent_at, client_id} once it is stored. */
  send(conversationId, body, clientId, attachments = []) {
    keepSignedIn();
    const earlier = this.pending.get(clientId);
    if (earlier) return earlier.promise;
    const p = { conversationId, body, clientId, attachments, timer: null, http: false };
    p.promise = new Promise((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
    });
    this.pending.set(clientId, p);
    const frame = { type: "send", conversation_id: conversationId, client_id: clientId, body, ref: clientId };
    // Files travel with their message over HTTP (socket frames carry text only).
    if (!attachments.length && this.socket.send(frame)) {
      p.timer = window.setTimeout(() => this.viaHttp(p), ACK_TIMEOUT_MS);
    } else {
      this.viaHttp(p);
    }
    return p.promise;
  }

  async viaHttp(p) {
    if (p.http || this.pending.get(p.clientId) !== p) return;
    p.http = true;
    window.clearTimeout(p.timer);
    try {
      const message = { body: p.body, client_id: p.clientId };
      if (p.attachments && p.attachments.length) message.attachments = p.attachments;
      const out = await post(`/conversations/${p.conversationId}/messages`, message);
      this.markSeen(p.conversationId, out.seq);
      this.settle(p, out);
    } catch (error) {
      if (error instanceof ApiError) {
        const retry = error.status === 0 || error.status === 429 || error.status >= 500;
        const field = error.fields.find((f) => ["body", "attachments"].includes(f.field) || f.field.endsWith(".body"));
        this.fail(p, new ChatError(error.code, field ? field.message : error.message, { retry, fields: error.fields }));
      } else {
        this.fail(p, new ChatError("failed", "The message could not be sent.", { retry: true }));
      }
    }
  }

  settle(p, stored) {
    if (this.pending.get(p.clientId) !== p) return;
    this.pending.delete(p.clientId);
    window.clearTimeout(p.timer);
    p.resolve({ id: stored.id, seq: stored.seq, sent_at: stored.sent_at, client_id: p.clientId,
      conversation_id: p.conversationId });
  }

  fail(p, error) {
    if (this.pending.get(p.clientId) !== p) return;
    this.pending.delete(p.clientId);
    window.clearTimeout(p.timer);
    p.reject(error);
  }

  /** "I am typing" (socket only; the server passes at most one a second on). */
  typing(conversationId) {
    this.socket.send({ type: "typing", conversation_id: conversationId });
  }

  /** Everything up to `seq` has been read (over HTTP when the socket is not listening). */
  read(conversationId, seq) {
    if (this.socket.send({ type: "read", conversation_id: conversationId, seq })) return Promise.resolve();
    return post(`/conversations/${conversationId}/read`, { seq }).then(() => undefined);
  }

  /** Everything up to `seq` has reached this device (socket only). */
  delivered(conversationId, seq) {
    this.socket.send({ type: "delivered", conversation_id: conversationId, seq });
  }
}

let chat = null;
let lastKeptAt = 0;

/**
 * Writing over the socket is activity, but only API calls restart the session's idle
 * clock (and the page's idle warning): call this when the person types or sends; it asks
 * GET /auth/session at most once a minute, and only when no other call did.
 */
export function keepSignedIn() {
  const now = Date.now();
  if (now - lastKeptAt < KEEP_SIGNED_IN_MS || now - lastApiCallAt() < KEEP_SIGNED_IN_MS) return;
  lastKeptAt = now;
  get("/auth/session").catch(() => {});
}

// --- attachments ----------------------------------------------------------------------------------

function csrfCookie() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "__Host-rtc_csrf" || name === "rtc_csrf") return decodeURIComponent(rest.join("="));
  }
  return null;
}

/**
 * Upload `file` (a File) to attach to a message: its bytes are the request body, its name
 * goes in the query (the server judges the type by the bytes). Resolves to
 * {id, name, content_type, size}; rejects with an ApiError whose message says what is wrong.
 */
export async function uploadAttachment(file) {
  let token = csrfCookie();
  if (!token) {
    const answer = await get("/auth/csrf");
    token = csrfCookie() || (answer && answer.csrf_token);
  }
  let response;
  try {
    response = await fetch(`/api/v1/conversations/attachments?name=${encodeURIComponent(file.name || "file")}`, {
      method: "POST", body: file, credentials: "same-origin", cache: "no-store",
      headers: { Accept: "application/json", "Content-Type": "application/octet-stream", "X-CSRF-Token": token || "" },
    });
  } catch {
    throw new ApiError(0, "network_error", "Could not reach the server. Check your connection and try again.");
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (response.ok && payload) return payload;
  const err = payload && payload.error ? payload.error : {};
  const field = Array.isArray(err.fields) && err.fields.length ? err.fields[0].message : null;
  throw new ApiError(response.status, String(err.code || `http_${response.status}`),
    field || err.message || "The file could not be uploaded.", err.fields || []);
}

/** "1.2 MB", "830 KB": a size people read. */
export function fileSize(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} bytes`;
}

/** The page's chat client (one per page, on the page's one socket). */
export function getChat() {
  if (!chat) chat = new Chat();
  return chat;
}

// --- unread counts ------------------------------------------------------------------------------

/**
 * Call `onCounts({total, conversations})` now and whenever the person's unread messages may
 * have changed (a new message, a read on another page, a reconnect). Returns a function
 * that fetches again at once.
 */
export function watchUnread(onCounts) {
  const client = getChat();
  let timer = null;
  let running = null;
  let again = false;
  const fetchNow = async () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          onCounts(await get("/conversations/unread"));
        } while (again);
      } catch {
        // The count stays as it was; the next event or reconnect tries again.
      } finally {
        running = null;
      }
    })();
    return running;
  };
  const soon = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(fetchNow, 100);
  };
  // Without the socket, ask now and then instead. Started once: each failed
  // reconnection says "down" again, and restarting the period then would put the
  // next ask off for as long as reconnections keep failing.
  let poll = null;
  client.on("ready", () => {
    window.clearInterval(poll);
    poll = null;
    soon();
  });
  client.on("down", () => {
    if (poll === null) poll = window.setInterval(fetchNow, 30000);
  });
  client.on("event", (event) => {
    if (CHAT_EVENT_KINDS.includes(event.kind)) soon();
  });
  fetchNow();
  return fetchNow;
}

/** Show `total` unread messages on a navigation link (a badge with a spoken word). */
export function showUnreadOnLink(link, total) {
  if (!link) return;
  let badge = link.querySelector(".nav-count");
  if (!badge) {
    badge = document.createElement("span");
    badge.className = "nav-count";
    link.append(badge);
  }
  badge.hidden = !total;
  badge.dataset.unread = String(total || 0);
  badge.replaceChildren();
  if (total) {
    const spoken = document.createElement("span");
    spoken.className = "visually-hidden";
    spoken.textContent = " unread";
    badge.append(String(total), spoken);
  }
}

/** The Messaging tab's badge on a portal page, kept current live. */
export function badgeMessagingTab(href = "/app/messages.html") {
  const find = () => document.querySelector(`#portal-nav a[href="${href}"], #console-nav a[href="${href}"]`);
  return watchUnread((counts) => showUnreadOnLink(find(), counts.total));
}
