// /display.html: a waiting-room screen (a lobby TV, a kiosk). Paired once with a code from
// the console, it keeps a device token (no user session) and shows the queue by ticket
// number only: nobody's name, nothing about why they came. It asks the server every few
// seconds, so it recovers by itself after a network loss or a server restart; when staff
// unpair it, it goes back to the pairing form. A new "now being seen" number plays a chime.

import { post } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { handleSubmit } from "./forms.js";
import { playChime } from "./visit/media.js";

const $ = (id) => document.getElementById(id);
const KEY = "rtc:display-token";
const EVERY_MS = 4000;
const state = { token: null, shown: null, failures: 0, timer: null };

function readToken() {
  try {
    return window.localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

function keepToken(token) {
  try {
    if (token) window.localStorage.setItem(KEY, token);
    else window.localStorage.removeItem(KEY);
  } catch {
    // Private mode: the token lives as long as the page.
  }
  state.token = token;
}

function showPairing(message = "") {
  window.clearTimeout(state.timer);
  $("board").hidden = true;
  $("pairing").hidden = false;
  $("display-status").textContent = message;
  $("code").focus();
}

function list(el, empty, numbers) {
  replaceChildren(el, numbers.map((n) => h("li", { text: `Ticket ${n}` })));
  empty.hidden = numbers.length > 0;
}

function render(board) {
  $("pairing").hidden = true;
  $("board").hidden = false;
  $("display-title").textContent = board.name;
  list($("now-seeing"), $("now-empty"), board.now_seeing);
  list($("waiting"), $("waiting-empty"), board.waiting);
  const called = state.shown ? board.now_seeing.filter((n) => !state.shown.includes(n)) : [];
  if (called.length) playChime();
  state.shown = board.now_seeing;
  $("display-status").textContent = "";
}

async function poll() {
  let delay = EVERY_MS;
  try {
    const response = await fetch("/api/v1/displays/board", {
      headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
      cache: "no-store",
    });
    if (response.status === 401) {
      keepToken(null);
      showPairing("This screen was unpaired. Enter a new display code from the clinic's console.");
      return;
    }
    if (!response.ok) throw new Error(String(response.status));
    render(await response.json());
    state.failures = 0;
  } catch {
    state.failures += 1;
    delay = Math.min(30_000, EVERY_MS * 2 ** Math.min(state.failures, 3));
    $("display-status").textContent = "Reconnecting…";
  }
  state.timer = window.setTimeout(poll, delay);
}

function main() {
  handleSubmit($("pair-form"), async () => {
    const paired = await post("/displays/pair", { code: $("code").value.trim() });
    keepToken(paired.token);
    $("code").value = "";
    state.shown = null;
    poll();
  });
  state.token = readToken();
  if (state.token) poll();
  else showPairing();
}

main();
