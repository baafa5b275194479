// /app/visits.html (Virtual Visits tab): the patient's upcoming video visits (appointments of
// kind "video" and visits their provider started) with a Join button from 15 minutes before
// the start, and past visits. The list refreshes when a visit starts or changes
// (/ws/v1/events) and when the next visit opens for check-in, so the Join button appears on
// time without a reload (and without polling, which would keep an idle session alive).

import { initPortal, withLoading } from "../portal.js";
import { get } from "../api.js";
import { h, replaceChildren } from "../dom.js";
import { zoned } from "../zone.js";

const $ = (id) => document.getElementById(id);
const whenFormat = zoned(undefined, {
  weekday: "long", month: "long", day: "numeric", hour: "numeric", minute: "2-digit",
  timeZoneName: "short",
});
const timeFormat = zoned(undefined, { hour: "numeric", minute: "2-digit" });
const STATE_TEXT = { waiting: "You are checked in and waiting.", admitted: "Your provider has let you in." };

function when(iso) {
  return iso ? whenFormat.format(new Date(iso)) : "";
}

function joinLink(item) {
  const href = item.visit_id ? `/visit.html?visit=${item.visit_id}` : `/visit.html?appointment=${item.appointment_id}`;
  if (item.joinable) {
    const label = item.state === "waiting" || item.state === "admitted" ? "Return to the visit" : "Join video visit";
    return h("a", { class: "button", href }, label);
  }
  return h("span", {},
    h("span", { class: "muted", text: `You can join from ${timeFormat.format(new Date(item.joinable_from))}. ` }),
    h("a", { class: "button button--secondary button--small", href }, "Test camera and microphone"));
}

function upcomingItem(item) {
  const title = item.appointment_id ? when(item.start) : "Your provider started a video visit";
  return h("li", {},
    h("div", {},
      h("p", {}, h("strong", { text: title })),
      h("p", { class: "muted", text: `With ${item.practitioner.name}${item.reason ? ` · ${item.reason}` : ""}` }),
      item.state && STATE_TEXT[item.state] ? h("p", { text: STATE_TEXT[item.state] }) : null),
    h("div", {}, joinLink(item)));
}

function pastItem(item) {
  return h("li", {},
    h("div", {},
      h("p", {}, h("strong", { text: when(item.started_at || item.scheduled_start || item.ended_at) })),
      h("p", { class: "muted", text: `With ${item.practitioner.name}` }),
      item.participants.length ? h("p", { class: "small", text: `Took part: ${item.participants.join(", ")}` }) : null,
      item.message_count
        ? h("p", { class: "small" }, h("a", {
          href: `/visit.html?visit=${encodeURIComponent(item.visit_id)}`,
          text: `Read the visit's chat (${item.message_count} message${item.message_count === 1 ? "" : "s"})`,
        }))
        : null));
}

const state = { data: { upcoming: [], past: [] } };

function render(data) {
  state.data = data;
  $("upcoming").hidden = false;
  $("past").hidden = false;
  replaceChildren($("upcoming-list"), data.upcoming.map(upcomingItem));
  $("upcoming-empty").hidden = data.upcoming.length > 0;
  replaceChildren($("past-list"), data.past.map(pastItem));
  $("past-empty").hidden = data.past.length > 0;
}

function listen(reload) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  let attempt = 0;
  const connect = () => {
    const ws = new WebSocket(`${scheme}//${window.location.host}/ws/v1/events`);
    ws.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "ready") attempt = 0;
      const kind = frame.event && frame.event.kind;
      if (frame.type === "resync" || (kind && (kind.startsWith("visit.") || kind === "appointment"))) reload();
    });
    ws.addEventListener("close", (event) => {
      if (event.code === 4401 || event.code === 4403) return;
      attempt += 1;
      window.setTimeout(connect, Math.min(15_000, 1000 * 2 ** attempt));
    });
  };
  connect();
}

async function main() {
  const session = await initPortal({ roles: ["patient"] });
  if (!session) return;
  const load = async () => render(await get("/visits"));
  try {
    await withLoading($("visits-load"), "your video visits", load);
  } catch {
    return;
  }
  let timer = null;
  const scheduleOpening = () => {
    window.clearTimeout(timer);
    const next = state.data.upcoming
      .filter((u) => !u.joinable && u.joinable_from)
      .map((u) => new Date(u.joinable_from).getTime())
      .sort((a, b) => a - b)[0];
    if (next) timer = window.setTimeout(() => load().then(scheduleOpening).catch(() => {}), Math.max(1000, next - Date.now() + 1000));
  };
  listen(() => load().then(scheduleOpening).catch(() => {}));
  scheduleOpening();
}

main();
