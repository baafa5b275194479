// The /ws/v1/visit socket (frames: docs/visits.md): connects, reconnects with
// backoff after a drop, and hands every frame to its listeners. `request` sends a
// frame with a `ref` and resolves with the reply that echoes it (or rejects with
// the error frame). After each (re)connect `onOpen` listeners run, so the page
// follows its waiting room again and resumes its seat in the call.

const CLOSE_SESSION_ENDED = 4401;
const CLOSE_FORBIDDEN = 4403;

export class SocketError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "SocketError";
    this.code = code;
  }
}

export class VisitSocket {
  constructor(path = "/ws/v1/visit") {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    this.url = `${scheme}//${window.location.host}${path}`;
    this.ws = null;
    this.listeners = new Map(); // type -> Set(fn)
    this.openListeners = new Set();
    this.stateListeners = new Set();
    this.pending = new Map(); // ref -> {resolve, reject, timer}
    this.nextRef = 1;
    this.attempt = 0;
    this.closedForGood = false;
    this.state = "connecting";
  }

  /** Listen for frames of `type` ("*" for every frame); returns an unsubscribe function. */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  /** Run `fn` after every (re)connect, once the server said ready. */
  onOpen(fn) {
    this.openListeners.add(fn);
    if (this.state === "open") fn();
    return () => this.openListeners.delete(fn);
  }

  /** `fn(state)` for "connecting" | "open" | "reconnecting" | "closed". */
  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    for (const fn of this.stateListeners) fn(state);
  }

  connect() {
    if (this.closedForGood) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", (event) => this.dropped(ws, event));
    ws.addEventListener("error", () => {
      // A close event always follows; reconnecting happens there.
    });
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== "string") return;
    if (frame.type === "ready") {
      this.attempt = 0;
      this.setState("open");
      for (const fn of this.openListeners) fn();
      return;
    }
    if (frame.ref && this.pending.has(frame.ref)) {
      const waiting = this.pending.get(frame.ref);
      this.pending.delete(frame.ref);
      window.clearTimeout(waiting.timer);
      if (frame.type === "error") waiting.reject(new SocketError(frame.code, frame.message));
      else waiting.resolve(frame);
    }
    for (const type of [frame.type, "*"]) {
      const fns = this.listeners.get(type);
      if (fns) for (const fn of [...fns]) fn(frame);
    }
  }

  dropped(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    for (const [ref, waiting] of this.pending) {
      window.clearTimeout(waiting.timer);
      waiting.reject(new SocketError("disconnected", "The connection to the clinic dropped."));
      this.pending.delete(ref);
    }
    if (event.code === CLOSE_SESSION_ENDED || event.code === CLOSE_FORBIDDEN) {
      this.closedForGood = true;
      this.setState("closed");
      const fns = this.listeners.get("closed");
      if (fns) for (const fn of [...fns]) fn({ type: "closed", code: event.code });
      return;
    }
    if (this.closedForGood) {
      this.setState("closed");
      return;
    }
    this.setState("reconnecting");
    // 0.5 s, 1 s, 2 s … up to 10 s, with jitter so a clinic's pages don't all return at once.
    const delay = Math.min(10_000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    window.setTimeout(() => this.connect(), delay);
  }

  /** Send a frame now; false when the socket is not open (the frame is dropped). */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Send `frame` with a fresh ref; resolves with the reply, rejects with SocketError. */
  request(frame, timeoutMs = 10_000) {
    const ref = `r${this.nextRef++}`;
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(ref);
        reject(new SocketError("timeout", "The clinic did not answer in time."));
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
      if (!this.send({ ...frame, ref })) {
        window.clearTimeout(timer);
        this.pending.delete(ref);
        reject(new SocketError("disconnected", "Not connected to the clinic right now."));
      }
    });
  }

  close() {
    this.closedForGood = true;
    if (this.ws) this.ws.close(1000);
    this.setState("closed");
  }
}
