// The visit's chat (docs/visits.md, "Chat"): lines are posted over HTTP with the page's
// own client id (a resend after a lost answer is stored once), announced on the visit's
// room as `visit.chat {seq}` (no text), and read with GET /visits/{id}/messages?after=.
// Text is inserted as text, never as HTML.

import { get, post, ApiError } from "../api.js";
import { h } from "../dom.js";

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });

function clientId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function messageItem(m) {
  return h("li", { dataset: { seq: String(m.seq), clientId: m.client_id } },
    h("strong", { text: m.mine ? "You" : m.sender }), " ",
    h("span", { class: "muted small", text: timeFormat.format(new Date(m.sent_at)) }), ": ",
    h("span", { class: "chat-text", text: m.body }));
}

/** Every message of a visit, for its record once it has ended (empty if none or not allowed). */
export async function transcript(visitId) {
  try {
    return (await get(`/visits/${visitId}/messages`, { query: { after: 0 } })).messages;
  } catch {
    return [];
  }
}

export class VisitChat {
  constructor({ visitId, log, form, input, error }) {
    this.visitId = visitId;
    this.log = log;
    this.input = input;
    this.error = error;
    this.lastSeq = 0;
    this.reading = null;
    this.again = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = input.value.trim();
      if (!body) return;
      input.value = "";
      this.send(body);
    });
  }

  scrollDown() {
    const box = this.log.parentElement;
    box.scrollTop = box.scrollHeight;
  }

  /** Read what is new; calls made while a read runs fold into one more read after it. */
  fetch() {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this._read().finally(() => {
      this.reading = null;
      if (this.again) {
        this.again = false;
        this.fetch();
      }
    });
    return this.reading;
  }

  async _read() {
    let data;
    try {
      data = await get(`/visits/${this.visitId}/messages`, { query: { after: this.lastSeq } });
    } catch {
      return; // not admitted yet, or the network: the next announcement reads again
    }
    for (const m of data.messages) {
      if (m.seq <= this.lastSeq) continue;
      this.lastSeq = m.seq;
      const pending = m.mine && this.log.querySelector(`li[data-pending][data-client-id="${m.client_id}"]`);
      if (pending) pending.remove();
      this.log.append(messageItem(m));
    }
    if (data.messages.length) this.scrollDown();
    if (data.messages.length >= 200) this.fetch();
  }

  async send(body) {
    const id = clientId();
    this.error.textContent = "";
    const item = h("li", { dataset: { pending: "", clientId: id } },
      h("strong", { text: "You" }), " ", h("span", { class: "muted small", text: "sending…" }), ": ",
      h("span", { class: "chat-text", text: body }));
    this.log.append(item);
    this.scrollDown();
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        await post(`/visits/${this.visitId}/messages`, { body, client_id: id });
        await this.fetch();
        return;
      } catch (error) {
        // Same client id on every try: if the first one was stored, it is not stored twice.
        if (error instanceof ApiError && error.status && error.status < 500 && error.status !== 429) {
          item.remove();
          this.error.textContent = error.message;
          return;
        }
        await new Promise((resolve) => window.setTimeout(resolve, 1000 * (attempt + 1)));
      }
    }
    item.remove();
    this.input.value = body;
    this.error.textContent = "The message could not be sent. Check your connection and send it again.";
  }
}
