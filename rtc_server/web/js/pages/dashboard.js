// /app/dashboard.html: the first screen after log-in, built from one request
// (GET /dashboard): what needs attention, upcoming appointments, new test results
// (new until opened), unread messages, refill requests. It follows /ws/v1/events and
// fetches again on lab_result, appointment and message events, so a result a clinician
// releases while the page is open appears without a reload. Text is inserted as text.

import { initPortal, withLoading } from "../portal.js";
import { zoned } from "../zone.js";
import { get, ApiError } from "../api.js";
import { h, replaceChildren, announce } from "../dom.js";
import { clinicInfo, phoneLink } from "../shell.js";
import { onLiveEvent } from "../live-events.js";

const $ = (id) => document.getElementById(id);
const whenFormat = zoned(undefined, {
  weekday: "long", month: "long", day: "numeric", hour: "numeric", minute: "2-digit", timeZoneName: "short",
});
const dayFormat = zoned(undefined, { dateStyle: "medium" });
const KIND_LABELS = { in_person: "In person", video: "Video visit (virtual)" };
const REFILL_LABELS = { requested: "Waiting for your provider", approved: "Approved, being sent to your pharmacy" };
// Events (ids only) after which the dashboard is fetched again.
const LIVE_KINDS = new Set(["lab_result", "appointment", "refill", "chat.unread", "chat.read", "chat.conversation",
  "chat.message"]);

let clinic = null;
let shownResults = null; // ids shown last time, to announce what is new

function when(iso) {
  const date = new Date(iso);
  return h("time", { datetime: date.toISOString(), text: whenFormat.format(date) });
}

/** "617-555-0100." as a link, or "the clinic." when no number is configured. */
function clinicPhone() {
  return clinic && clinic.phone ? [phoneLink(clinic), "."] : ["the clinic."];
}

function renderAttention(data) {
  const body = $("attention-body");
  if (!data.actions.length) {
    replaceChildren(body, h("p", { class: "muted", text: "Nothing needs your attention right now." }));
    return;
  }
  replaceChildren(body, h("ul", { class: "link-list" }, data.actions.map((a) =>
    h("li", {}, h("a", { href: a.href, text: a.text }), a.at ? [" ", h("span", { class: "muted" }, "(", when(a.at), ")")] : null))));
}

function renderAppointments(data) {
  const body = $("appointments-body");
  if (!data.appointments.length) {
    replaceChildren(body, h("p", {}, "No upcoming appointments. ", h("a", { href: "/app/appointments.html", text: "Book one" }), "."));
    return;
  }
  const more = data.upcoming_count - data.appointments.length;
  replaceChildren(body,
    h("ul", { class: "dash-list" }, data.appointments.map((a) => h("li", {},
      h("h3", {}, when(a.start)),
      h("p", {}, `${KIND_LABELS[a.kind] || "Visit"} with ${a.practitioner}`)))),
    h("p", {}, h("a", { href: "/app/appointments.html", text: more > 0 ? `All appointments (${more} more)` : "All appointments" })));
}

function renderResults(data) {
  const body = $("results-body");
  const ids = data.new_results.map((r) => r.id);
  if (shownResults !== null && ids.some((id) => !shownResults.includes(id))) {
    announce("A new test result is available.");
  }
  shownResults = ids;
  if (!data.new_results.length) {
    replaceChildren(body,
      h("p", { class: "muted", text: "No new results. Results typically take two to four days after your test." }),
      h("p", {}, h("a", { href: "/app/records.html#labs", text: "See all your results" })));
    return;
  }
  replaceChildren(body,
    h("ul", { class: "dash-list", id: "new-results" }, data.new_results.map((r) => h("li", { dataset: { resultId: String(r.id) } },
      h("h3", {}, h("a", { href: `/app/records.html?result=${encodeURIComponent(r.id)}#labs`, text: r.display }),
        h("span", { class: "badge badge--success", text: "New" })),
      h("p", {},
        r.effective_at ? `Test date ${dayFormat.format(new Date(r.effective_at))}. ` : "",
        r.flag ? "Outside the reference range. " : "",
        r.note ? "Your clinician left a note." : "")))),
    h("p", {}, h("a", { href: "/app/records.html#labs", text: "See all your results" })));
}

function renderMessages(data) {
  const body = $("messages-body");
  const section = data.messages;
  if (!section.available) {
    replaceChildren(body, h("p", {}, "Secure messaging is not available in this portal yet. To reach your care team, call ", ...clinicPhone()));
    return;
  }
  if (!section.items.length) {
    replaceChildren(body, h("p", {}, "No unread messages. ", h("a", { href: "/app/messages.html", text: "Go to Messaging" }), "."));
    return;
  }
  replaceChildren(body,
    h("ul", { class: "dash-list" }, section.items.map((c) => h("li", {},
      h("h3", {}, h("a", { href: `/app/messages.html?c=${encodeURIComponent(c.id)}`, text: c.subject })),
      h("p", { text: `${c.unread} unread ${c.unread === 1 ? "message" : "messages"}` })))),
    h("p", {}, h("a", { href: "/app/messages.html", text: "Go to Messaging" })));
}

function renderRefills(data) {
  const body = $("refills-body");
  if (!data.refills.available) {
    replaceChildren(body, h("p", {}, "The portal does not track refill requests yet. To ask for a refill, call ", ...clinicPhone()));
    return;
  }
  if (!data.refills.items.length) {
    replaceChildren(body, h("p", {}, "No open refill requests. To ask for one, go to ",
      h("a", { href: "/app/messages.html", text: "Messaging" }), "."));
    return;
  }
  replaceChildren(body, h("ul", { class: "dash-list" }, data.refills.items.map((r) => h("li", {},
    h("h3", { text: r.medication }),
    h("p", {}, REFILL_LABELS[r.status] || r.status, " — requested ", when(r.requested_at))))));
}

function render(data) {
  renderAttention(data);
  renderAppointments(data);
  renderResults(data);
  renderMessages(data);
  renderRefills(data);
}

let refreshing = null;
let again = false;
async function refresh() {
  if (refreshing) {
    again = true; // an event arrived mid-fetch: fetch once more after this one
    return refreshing;
  }
  refreshing = (async () => {
    try {
      do {
        again = false;
        render(await get("/dashboard"));
      } while (again);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** Follow the page's one live socket: an event (ids only) means "fetch the dashboard again";
 * "ready" (listening, first time or after a reconnect or a gap) means catch up. */
function followEvents() {
  onLiveEvent([...LIVE_KINDS], (event) => {
    if (event.kind === "ready") document.body.dataset.live = "on";
    refresh().catch(() => {});
  });
}

const session = await initPortal({ roles: ["patient"] });
if (session) {
  const name = session.user.display_name || session.user.username;
  $("welcome").textContent = name ? `Welcome, ${name}.` : "Welcome.";
  try {
    const [data, info] = await withLoading($("dashboard-load"), "your dashboard", () => Promise.all([get("/dashboard"), clinicInfo()]));
    clinic = info;
    render(data);
    followEvents();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 403) {
      // A patient account not (yet) linked to a record on file: say so instead of an error.
      replaceChildren($("dashboard-load"), h("div", { class: "alert alert--info" },
        h("p", { text: "Your account is not linked to a record on file yet, so there is nothing to show here. Please call the clinic." })));
    }
  }
}
