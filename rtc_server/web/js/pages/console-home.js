// /console/index.html: where providers, staff and admins start. The person by name and
// credentials, what waits in their queues (live), today's schedule in the viewer's time
// zone, and (providers) a patient search.

import { initConsole } from "../console-shell.js";
import { get, ApiError } from "../api.js";
import { h, replaceChildren } from "../dom.js";
import { onLiveEvent } from "../live-events.js";

const $ = (id) => document.getElementById(id);
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", timeZone: zone });
const zoneName = new Intl.DateTimeFormat(undefined, { timeZone: zone, timeZoneName: "long" })
  .formatToParts(new Date()).find((p) => p.type === "timeZoneName");
const dayKey = (date) => new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(date);

function tile(count, label, href, linkText) {
  return h("li", {}, h("strong", { text: String(count) }), label, " ",
    h("a", { href }, linkText, h("span", { class: "visually-hidden", text: ` (${label})` })));
}

async function renderWaiting(role) {
  const me = await get("/console/me");
  const tiles = [];
  if (me.counts.refills !== null) {
    tiles.push(tile(me.counts.refills, me.counts.refills === 1 ? "refill request" : "refill requests",
      "/console/refills.html", "Open the refill queue"));
  }
  if (role === "provider") {
    tiles.push(h("li", {}, h("strong", { text: "Results" }), "Held lab results to review and release. ",
      h("a", { href: "/console/results.html", text: "Open results to review" })));
  }
  if (me.counts.tickets !== null) {
    tiles.push(tile(me.counts.tickets, me.counts.tickets === 1 ? "help-desk ticket" : "help-desk tickets",
      "/console/tickets.html", "Open the help desk"));
  }
  if (role !== "provider") {
    tiles.push(h("li", {}, h("strong", { text: "Registrations" }), "People waiting for identity checks. ",
      h("a", { href: "/staff/verifications.html", text: "Open the verification queue" })));
  }
  replaceChildren($("waiting-list"), tiles);
  $("waiting").hidden = false;
}

function scheduleRow(b) {
  const cancelled = b.status === "cancelled";
  return h("tr", {},
    h("td", {}, h("time", { datetime: b.start, text: timeFormat.format(new Date(b.start)) })),
    h("td", { text: b.patient_name }),
    h("td", { text: b.kind === "video" ? "Video" : "In person" }),
    h("td", { text: b.reason || "—" }),
    h("td", {}, h("span", { class: `badge${cancelled ? " badge--danger" : ""}`, text: cancelled ? "Cancelled" : "Booked" })));
}

async function renderSchedule(role) {
  $("schedule").hidden = false;
  $("schedule-hint").textContent = `Times in ${zoneName ? zoneName.value : zone}.`
    + (role === "staff" ? " All providers." : "");
  let bookings;
  try {
    bookings = await get("/console/appointments", { query: { days: 2 } });
  } catch (error) {
    const text = error instanceof ApiError && error.status === 404
      ? "Your account is not linked to a provider on file yet, so there is no schedule to show. An administrator can link it."
      : `Could not load the schedule. ${error.message}`;
    replaceChildren($("schedule-list"), h("p", { text }));
    return;
  }
  const today = dayKey(new Date());
  const rows = bookings.filter((b) => dayKey(new Date(b.start)) === today);
  if (!rows.length) {
    replaceChildren($("schedule-list"), h("p", { class: "empty-state" }, "No appointments today. ",
      h("a", { href: "/console/availability.html", text: "See upcoming bookings and hours" })));
    return;
  }
  replaceChildren($("schedule-list"), h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "visually-hidden", text: "Today's appointments" }),
    h("thead", {}, h("tr", {}, ["Time", "Patient", "Visit", "Reason", "Status"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows.map(scheduleRow)))));
}

const session = await initConsole();
if (session) {
  const { user } = session;
  const me = session.console;
  replaceChildren($("welcome"), `Welcome, ${me ? me.name : user.display_name || user.username}.`,
    me && me.specialty ? h("span", { class: "muted", text: ` ${me.specialty}.` }) : null);
  const role = user.role;
  const jobs = [renderWaiting(role).catch(() => {})];
  if (role === "provider" || role === "staff") jobs.push(renderSchedule(role));
  if (role === "provider") $("find").hidden = false;
  await Promise.all(jobs);
  onLiveEvent(["refill_queue", "help_ticket_queue", "appointment"], (event) => {
    if (event.kind === "appointment" && (role === "provider" || role === "staff")) renderSchedule(role);
    else renderWaiting(role).catch(() => {});
  });
}
