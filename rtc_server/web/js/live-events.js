// One /ws/v1/events socket per page, shared by the page's modules.
//
//   onLiveEvent(["refill"], (event) => reload());
//
// A handler gets each event whose kind it asked for ({kind, id}: ids only, never health
// data) and {kind: "ready"} each time the socket is listening (the first time and after a
// reconnect): events may have been missed while it was away, so a page refetches what it
// shows then. The socket reconnects with a growing delay, and stops for good when the
// session has ended (4401) or is refused (4403). Once listening, <html data-live="ready">.

const listeners = new Set();
/** Modules that speak other frames on this socket (chat): every frame but pong/session_ended. */
const frameListeners = new Set();
let socket = null;
let listening = false;
let delay = 1000;
let stopped = false;

function dispatch(event) {
  for (const { kinds, handler } of listeners) {
    if (event.kind === "ready" || kinds.has(event.kind)) {
      try {
        handler(event);
      } catch (error) {
        console.warn(error);
      }
    }
  }
}

function connect() {
  if (socket || stopped) return;
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const lastSeq = new Map();
  socket = new WebSocket(`${scheme}//${window.location.host}/ws/v1/events`);
  socket.addEventListener("message", (message) => {
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "ready") {
      delay = 1000;
      listening = true;
      lastSeq.clear();
      document.documentElement.dataset.live = "ready";
      dispatch({ kind: "ready" });
    } else if (frame.type === "resync") {
      // The server may have missed events (its broker reconnected): refetch, as after "ready".
      dispatch({ kind: "ready" });
    } else if (frame.type === "event" && frame.event && typeof frame.event.kind === "string") {
      // Each channel's events are numbered without gaps: a jump means one was lost.
      const before = lastSeq.get(frame.channel);
      if (typeof frame.seq === "number") lastSeq.set(frame.channel, frame.seq);
      if (typeof before === "number" && typeof frame.seq === "number" && frame.seq !== before + 1) {
        dispatch({ kind: "ready" });
      }
      dispatch(frame.event);
    } else if (frame.type !== "pong" && frame.type !== "session_ended") {
      for (const handler of frameListeners) handler(frame);
    }
  });
  socket.addEventListener("close", (closing) => {
    socket = null;
    listening = false;
    for (const handler of frameListeners) handler({ type: "closed" });
    document.documentElement.dataset.live = "closed";
    if (closing.code === 4401 || closing.code === 4403) {
      stopped = true;
      return;
    }
    window.setTimeout(connect, delay);
    delay = Math.min(delay * 2, 30000);
  });
}

/** Call `handler(event)` for events of `kinds` (and {kind: "ready"}); returns an unsubscribe function. */
export function onLiveEvent(kinds, handler) {
  const entry = { kinds: new Set(kinds), handler };
  listeners.add(entry);
  connect();
  if (listening) {
    // The socket was already listening (another module opened it): this handler missed
    // that "ready", and anything before it, so it gets its own.
    queueMicrotask(() => {
      if (listeners.has(entry)) handler({ kind: "ready" });
    });
  }
  return () => listeners.delete(entry);
}

/** Call `handler(frame)` for every frame other than events (chat acks, errors...), and
 * `{type: "closed"}` when the socket drops; returns an unsubscribe function. */
export function onFrame(handler) {
  frameListeners.add(handler);
  connect();
  return () => frameListeners.delete(handler);
}

/** Send `frame` on the page's socket; false when it is not listening (use HTTP then). */
export function sendFrame(frame) {
  if (!socket || !listening || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(frame));
  return true;
}
