// /app/appointments.html (Appointments tab): upcoming and past appointments, booking with a
// provider (care team first), a visit type, a reason and an open time shown in the viewer's
// own time zone, rescheduling and cancelling (until the clinic's cut-off; after it, the page
// says to call and shows the clinic's number). Lists update live from /ws/v1/events.
// Everything people or records wrote is inserted as text.

import { initPortal, withLoading } from "../portal.js";
import { api, get, ApiError } from "../api.js";
import { h, replaceChildren, focusElement, announce, notice } from "../dom.js";
import { handleSubmit, setFormAlert, clearErrors } from "../forms.js";
import { clinicInfo, phoneLink } from "../shell.js";
import { zoneLabel, zoned } from "../zone.js";

const DAYS_PER_PAGE = 14;
const KIND_LABELS = { in_person: "In person", video: "Video visit (virtual)" };
const STATUS_LABELS = {
  booked: "Booked",
  pending: "Requested",
  proposed: "Proposed",
  arrived: "Checked in",
  "checked-in": "Checked in",
  fulfilled: "Completed",
  cancelled: "Cancelled",
  noshow: "Missed",
  "entered-in-error": "Removed",
  waitlist: "Waiting list",
};

const dayKeyFormat = zoned("en-CA", { year: "numeric", month: "2-digit", day: "2-digit" });
const dayFormat = zoned(undefined, { weekday: "short", month: "short", day: "numeric" });
const longDayFormat = zoned(undefined, { weekday: "long", month: "long", day: "numeric" });
const timeFormat = zoned(undefined, { hour: "numeric", minute: "2-digit" });
const whenFormat = zoned(undefined, {
  weekday: "long", month: "long", day: "numeric", year: "numeric",
  hour: "numeric", minute: "2-digit", timeZoneName: "short",
});

const $ = (id) => document.getElementById(id);
const state = {
  data: null, // GET /appointments
  providers: [],
  phone: null, // the clinic's number, from the server
  rescheduling: null, // the appointment being moved, or null when booking
  windowStart: null, // Date: first day of the open-times page
  times: [],
  day: null, // "YYYY-MM-DD" in the viewer's zone
  loadSeq: 0,
};

function when(iso) {
  return whenFormat.format(new Date(iso));
}

function dayKey(date) {
  return dayKeyFormat.format(date);
}

/** "call the clinic at 617-555-0100" (a tel: link), or "call the clinic" when no number is configured. */
function callTheClinic() {
  if (!state.phone) return ["call the clinic"];
  return ["call the clinic at ", phoneLink({ phone: state.phone })];
}

function setPageStatus(kind, ...children) {
  const area = $("page-status");
  replaceChildren(area, children.length ? notice(kind, ...children) : null);
  if (children.length) focusElement(area);
}

function randomKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * POST with an Idempotency-Key: a request that failed on the way (network error) is sent
 * again with the same key, so the server books at most once and answers the retry with
 * the first result.
 */
async function postOnce(path, body) {
  const key = randomKey();
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await api(path, { method: "POST", body, headers: { "Idempotency-Key": key } });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 0) || attempt >= 2) throw error;
    }
  }
}

// --- lists ------------------------------------------------------------------------

function detailList(appt) {
  return h(
    "dl",
    { class: "summary" },
    h("dt", { text: "Provider" }),
    h("dd", { text: appt.practitioner.name }),
    h("dt", { text: "Type" }),
    h("dd", { text: KIND_LABELS[appt.kind] || appt.kind }),
    h("dt", { text: "Reason" }),
    h("dd", { text: appt.reason || "—" }),
  );
}

function cancelConfirm(appt, actions, headingId) {
  const yes = h("button", { type: "button", class: "button button--danger button--small", text: "Yes, cancel it" });
  const no = h("button", { type: "button", class: "button button--secondary button--small", text: "Keep it" });
  const question = h(
    "div",
    { class: "confirm", role: "group", "aria-labelledby": `${headingId}-confirm` },
    h("p", { id: `${headingId}-confirm`, text: `Cancel your appointment on ${when(appt.start)}?` }),
    h("div", { class: "button-row" }, yes, no),
  );
  const restore = () => {
    question.replaceWith(actions);
    focusElement(actions.querySelector("button"));
  };
  no.addEventListener("click", restore);
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    no.disabled = true;
    try {
      await api(`/appointments/${appt.id}/cancel`, { method: "POST" });
      setPageStatus("success", h("p", { text: `Your appointment on ${when(appt.start)} is cancelled.` }));
      announce("Appointment cancelled.");
      await refresh();
    } catch (error) {
      restore();
      const extra = error instanceof ApiError && error.code === "inside_cutoff" ? callLine() : null;
      setPageStatus("error", h("p", { text: error.message }), extra);
    }
  });
  actions.replaceWith(question);
  focusElement(yes);
}

function callLine() {
  return h("p", {}, "To cancel or reschedule, ", ...callTheClinic(), ".");
}

function upcomingItem(appt) {
  const headingId = `appt-${appt.id}`;
  const item = h(
    "li",
    { class: "appt", "aria-labelledby": headingId },
    h("h3", { id: headingId, text: when(appt.start) }),
    detailList(appt),
  );
  if (appt.can_change) {
    const reschedule = h("button", { type: "button", class: "button button--secondary button--small" },
      "Reschedule", h("span", { class: "visually-hidden", text: ` the appointment on ${when(appt.start)}` }));
    const cancel = h("button", { type: "button", class: "button button--secondary button--small" },
      "Cancel appointment", h("span", { class: "visually-hidden", text: ` on ${when(appt.start)}` }));
    const actions = h("div", { class: "button-row" }, reschedule, cancel);
    reschedule.addEventListener("click", () => startReschedule(appt));
    cancel.addEventListener("click", () => cancelConfirm(appt, actions, headingId));
    const until = appt.changeable_until
      ? h("p", { class: "hint", text: `You can change or cancel it online until ${when(appt.changeable_until)}.` })
      : null;
    item.append(until || "", actions);
  } else {
    const hours = state.data ? state.data.clinic.cancel_cutoff_hours : 24;
    item.append(
      notice(
        "info",
        h("p", {}, `This appointment is less than ${hours} hours away, so it can't be changed online. To cancel or reschedule it, `,
          ...callTheClinic(), "."),
      ),
    );
  }
  return item;
}

function pastItem(appt) {
  let label = STATUS_LABELS[appt.status] || appt.status;
  if (appt.status === "cancelled" && appt.replaced_by_id) label = "Rescheduled";
  else if (appt.status === "booked") label = "Past";
  const headingId = `appt-${appt.id}`;
  return h(
    "li",
    { class: "appt", "aria-labelledby": headingId },
    h("h3", { id: headingId }, when(appt.start), " ", h("span", { class: "badge", text: label })),
    detailList(appt),
  );
}

function renderLists() {
  const { upcoming, past } = state.data;
  const upcomingList = $("upcoming-list");
  if (upcoming.length) {
    replaceChildren(upcomingList, h("ul", { class: "appt-list" }, upcoming.map(upcomingItem)));
  } else {
    replaceChildren(
      upcomingList,
      h("p", { class: "empty-state" }, "No upcoming appointments. ", h("a", { href: "#book", text: "Book one" }), "."),
    );
  }
  const pastList = $("past-list");
  if (past.length) replaceChildren(pastList, h("ul", { class: "appt-list" }, past.map(pastItem)));
  else replaceChildren(pastList, h("p", { class: "empty-state", text: "No past appointments yet." }));
  $("upcoming").hidden = false;
  $("past").hidden = false;
}

// --- booking form ---------------------------------------------------------------------

function renderProviders() {
  const select = $("book-provider");
  const team = state.providers.filter((p) => p.care_team);
  const others = state.providers.filter((p) => !p.care_team);
  const option = (p) => h("option", { value: String(p.id) },
    p.name + (p.specialty ? ` (${p.specialty})` : "") + (p.primary ? " — your primary provider" : ""));
  replaceChildren(
    select,
    h("option", { value: "", text: "Choose a provider" }),
    team.length ? h("optgroup", { label: "Your care team" }, team.map(option)) : null,
    others.length ? h("optgroup", { label: team.length ? "Other providers" : "Providers" }, others.map(option)) : null,
  );
  if (team.length) select.value = String(team[0].id);
}

function chosenProvider() {
  const id = Number($("book-provider").value);
  return state.providers.find((p) => p.id === id) || null;
}

function chosenKind() {
  const checked = document.querySelector('input[name="kind"]:checked');
  return checked ? checked.value : "in_person";
}

/** Disable the visit types a provider does not offer (and pick one they do). */
function syncKinds() {
  const provider = chosenProvider();
  const offered = provider ? provider.kinds : ["in_person", "video"];
  for (const input of document.querySelectorAll('input[name="kind"]')) {
    input.disabled = !offered.includes(input.value);
  }
  const current = document.querySelector('input[name="kind"]:checked');
  if (!current || current.disabled) {
    const first = document.querySelector('input[name="kind"]:not(:disabled)');
    if (first) first.checked = true;
  }
}

function startOfToday() {
  const now = new Date();
  return new Date(now.getFullYear(), now.getMonth(), now.getDate());
}

async function loadTimes({ keepDay = false } = {}) {
  const provider = chosenProvider();
  const status = $("slot-status");
  const seq = ++state.loadSeq;
  replaceChildren($("slot-days"));
  replaceChildren($("slot-times"));
  if (!provider) {
    replaceChildren(status, h("p", { class: "hint", text: "Choose a provider to see their open times." }));
    return;
  }
  replaceChildren(status, h("p", { class: "loading", text: "Loading open times…" }));
  let answer;
  try {
    answer = await get("/appointments/open-times", {
      query: { practitioner_id: provider.id, kind: chosenKind(), start: state.windowStart.toISOString(), days: DAYS_PER_PAGE },
    });
  } catch (error) {
    if (seq !== state.loadSeq) return;
    replaceChildren(status, notice("error", h("p", { text: `Could not load open times. ${error.message}` })));
    return;
  }
  if (seq !== state.loadSeq) return; // a newer request (another provider or page) won
  state.times = answer.times;
  const from = longDayFormat.format(new Date(answer.start));
  const to = longDayFormat.format(new Date(new Date(answer.end).getTime() - 1));
  if (!state.times.length) {
    replaceChildren(status, h("p", { class: "empty-state" },
      `${provider.name} has no open ${KIND_LABELS[chosenKind()].toLowerCase()} times from ${from} to ${to}. `,
      "Try later dates, the other type of visit or another provider, or ", ...callTheClinic(), "."));
    return;
  }
  const count = state.times.length;
  replaceChildren(status, h("p", { class: "hint", text: `${count} open ${count === 1 ? "time" : "times"} from ${from} to ${to}.` }));
  const days = new Map();
  for (const t of state.times) {
    const key = dayKey(new Date(t.start));
    if (!days.has(key)) days.set(key, []);
    days.get(key).push(t);
  }
  if (!keepDay || !days.has(state.day)) state.day = days.keys().next().value;
  renderDays(days);
}

function renderDays(days) {
  const group = h("fieldset", { class: "slot-group" }, h("legend", { text: "Day" }));
  const list = h("div", { class: "slot-grid" });
  for (const [key, times] of days) {
    const id = `day-${key}`;
    const input = h("input", { type: "radio", name: "day", id, value: key, "data-no-submit": true });
    input.checked = key === state.day;
    input.addEventListener("change", () => {
      state.day = key;
      renderTimes(days.get(key));
    });
    const label = dayFormat.format(new Date(times[0].start));
    list.append(h("div", { class: "slot" }, input, h("label", { for: id },
      label, h("span", { class: "slot__count", text: ` ${times.length} open` }))));
  }
  group.append(list);
  replaceChildren($("slot-days"), group);
  renderTimes(days.get(state.day));
}

function renderTimes(times) {
  const dayName = longDayFormat.format(new Date(times[0].start));
  const group = h("fieldset", { class: "slot-group" }, h("legend", { text: `Time on ${dayName}` }));
  const list = h("div", { class: "slot-grid" });
  times.forEach((t, index) => {
    const id = `time-${index}`;
    const input = h("input", { type: "radio", name: "start", id, value: t.start });
    list.append(h("div", { class: "slot" }, input, h("label", { for: id, text: timeFormat.format(new Date(t.start)) })));
  });
  group.append(list);
  replaceChildren($("slot-times"), group);
}

function pageDates(direction) {
  const start = new Date(state.windowStart);
  start.setDate(start.getDate() + direction * DAYS_PER_PAGE);
  const today = startOfToday();
  state.windowStart = start < today ? today : start;
  $("slots-earlier").disabled = state.windowStart <= today;
  loadTimes();
}

function startReschedule(appt) {
  state.rescheduling = appt;
  clearErrors($("book-form"));
  $("book-heading").textContent = "Reschedule your appointment";
  const note = $("reschedule-note");
  note.textContent = `Now: ${when(appt.start)} with ${appt.practitioner.name}. Choose a new time below; your current time stays booked until the new one is confirmed.`;
  note.hidden = false;
  $("book-submit").textContent = "Move my appointment";
  $("reschedule-cancel").hidden = false;
  const select = $("book-provider");
  if (state.providers.some((p) => p.id === appt.practitioner.id)) select.value = String(appt.practitioner.id);
  const kind = document.querySelector(`input[name="kind"][value="${appt.kind}"]`);
  if (kind) kind.checked = true;
  syncKinds();
  $("book-reason").value = appt.reason || "";
  state.windowStart = startOfToday();
  $("slots-earlier").disabled = true;
  loadTimes();
  focusElement($("book"));
}

function stopReschedule() {
  state.rescheduling = null;
  $("book-heading").textContent = "Book an appointment";
  $("reschedule-note").hidden = true;
  $("book-submit").textContent = "Book appointment";
  $("reschedule-cancel").hidden = true;
}

async function submitBooking(data, form) {
  const provider = chosenProvider();
  const body = {
    practitioner_id: provider ? provider.id : null,
    kind: data.kind,
    reason: data.reason,
    start: data.start,
  };
  const moving = state.rescheduling;
  let appt;
  try {
    appt = moving
      ? await postOnce(`/appointments/${moving.id}/reschedule`, body)
      : await postOnce("/appointments", body);
  } catch (error) {
    if (error instanceof ApiError && ["slot_taken", "time_unavailable"].includes(error.code)) {
      setFormAlert(form, error.message);
      focusElement(form.querySelector("[data-form-alert]"));
      await loadTimes({ keepDay: true });
      return;
    }
    if (error instanceof ApiError && error.code === "inside_cutoff") {
      setFormAlert(form, error.message);
      focusElement(form.querySelector("[data-form-alert]"));
      return;
    }
    throw error;
  }
  const what = `${KIND_LABELS[appt.kind]} with ${appt.practitioner.name} on ${when(appt.start)}`;
  stopReschedule();
  $("book-reason").value = "";
  await refresh();
  setPageStatus("success", h("p", { text: moving ? `Rescheduled: ${what}.` : `Booked: ${what}.` }));
}

// --- live updates ----------------------------------------------------------------------

let refreshing = null;
async function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        state.data = await get("/appointments");
        if (state.data.clinic.phone) state.phone = state.data.clinic.phone;
        renderLists();
        await loadTimes({ keepDay: true });
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

/** Follow /ws/v1/events: an appointment event (ids only) means "fetch again". */
function followEvents() {
  let delay = 1000;
  const connect = () => {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}/ws/v1/events`);
    socket.addEventListener("open", () => {
      if (delay > 1000) refresh().catch(() => {}); // catch up on what happened while away
      delay = 1000;
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      const event = frame && (frame.event || frame);
      if (event && event.kind === "appointment") refresh().catch(() => {});
    });
    socket.addEventListener("close", (closing) => {
      if (closing.code === 4401 || closing.code === 4403) return; // signed out: the page handles it
      delay = Math.min(delay * 2, 30000);
      window.setTimeout(connect, delay);
    });
  };
  connect();
}

// --- start -------------------------------------------------------------------------------

const session = await initPortal({ roles: ["patient"] });
if (session) {
  try {
    const [data, providers] = await withLoading($("appointments-load"), "your appointments", () =>
      Promise.all([get("/appointments"), get("/appointments/providers")]),
    );
    state.data = data;
    state.providers = providers;
    state.phone = data.clinic.phone;
    if (!state.phone) {
      const clinic = await clinicInfo();
      if (clinic && clinic.phone) state.phone = clinic.phone;
    }
    renderLists();
    $("zone-note").textContent = `Times are shown in your time zone, ${zoneLabel()} (change it in Account Settings). The clinic is in ${data.clinic.time_zone}.`;
    const book = $("book");
    if (!providers.length) {
      replaceChildren(book, h("h2", { id: "book-heading", text: "Book an appointment" }),
        h("p", { class: "empty-state" }, "No provider has open times online right now. To book, ", ...callTheClinic(), "."));
      book.hidden = false;
    } else {
      renderProviders();
      syncKinds();
      state.windowStart = startOfToday();
      $("slots-earlier").disabled = true;
      $("book-provider").addEventListener("change", () => {
        syncKinds();
        loadTimes();
      });
      for (const input of document.querySelectorAll('input[name="kind"]')) {
        input.addEventListener("change", () => loadTimes());
      }
      $("slots-earlier").addEventListener("click", () => pageDates(-1));
      $("slots-later").addEventListener("click", () => pageDates(1));
      $("reschedule-cancel").addEventListener("click", () => {
        stopReschedule();
        focusElement($("upcoming-heading"));
      });
      handleSubmit($("book-form"), submitBooking, {
        validate: (form) => (form.querySelector('input[name="start"]:checked') ? [] : [{ field: "start", message: "Choose a day and time." }]),
      });
      book.hidden = false;
      loadTimes();
    }
    followEvents();
  } catch {
    // withLoading has shown the error in place.
  }
}
