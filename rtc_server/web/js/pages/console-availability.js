// /console/availability.html: a provider publishes their weekly hours (visit length, blocks
// per day offering in-person and/or video visits, breaks, days off); staff choose a provider
// and do the same. Below, the provider's upcoming bookings, updated live from /ws/v1/events.

import { initPortal, withLoading } from "../portal.js";
import { get, put } from "../api.js";
import { h, replaceChildren, focusElement, notice, uniqueId } from "../dom.js";
import { handleSubmit } from "../forms.js";

const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const KINDS = [
  ["in_person", "In person"],
  ["video", "Video"],
];
const KIND_LABELS = { in_person: "In person", video: "Video" };
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const whenFormat = new Intl.DateTimeFormat(undefined, {
  timeZone: zone, weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
  timeZoneName: "short",
});
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeZone: "UTC" });

const $ = (id) => document.getElementById(id);
const state = { role: null, practitionerId: null, daysOff: [] };

function setPageStatus(kind, text) {
  const area = $("page-status");
  replaceChildren(area, text ? notice(kind, h("p", { text })) : null);
  if (text) focusElement(area);
}

function daySelect(id, value, { everyDay = false } = {}) {
  const select = h("select", { id });
  if (everyDay) select.append(h("option", { value: "", text: "Every day" }));
  DAYS.forEach((name, index) => select.append(h("option", { value: String(index), text: name })));
  select.value = value === null || value === undefined ? "" : String(value);
  return select;
}

function timeField(label, value, field) {
  const id = uniqueId("time");
  const input = h("input", { id, type: "time", value: value || "", required: true, "data-field": field });
  input.dataset.requiredMessage = `Enter the ${label.toLowerCase()} time.`;
  return h("div", { class: "field" }, h("label", { for: id, text: label }), input);
}

function removeButton(row, what) {
  const button = h("button", { type: "button", class: "button button--secondary button--small" },
    "Remove", h("span", { class: "visually-hidden", text: ` ${what}` }));
  button.addEventListener("click", () => {
    const list = row.parentElement;
    row.remove();
    renumber(list);
    focusElement(list.nextElementSibling);
  });
  return button;
}

/** Keep each row's data-field names in step with its position (errors name "weekly.2.start"). */
function renumber(list) {
  const prefix = list.id === "blocks" ? "weekly" : "breaks";
  const what = list.id === "blocks" ? "Working hours" : "Break";
  Array.from(list.children).forEach((row, index) => {
    row.setAttribute("aria-label", `${what} ${index + 1}`);
    row.querySelector("select").dataset.field = `${prefix}.${index}`;
    const [from, to] = row.querySelectorAll('input[type="time"]');
    from.dataset.field = `${prefix}.${index}.start`;
    to.dataset.field = `${prefix}.${index}.end`;
    const kinds = row.querySelector("fieldset");
    if (kinds) kinds.dataset.field = `${prefix}.${index}.kinds`;
  });
}

function blockRow(block = { weekday: 0, start: "09:00", end: "17:00", kinds: ["in_person", "video"] }) {
  const dayId = uniqueId("day");
  const row = h("div", { class: "hours-row", role: "group" });
  const kinds = h("fieldset", { class: "field" }, h("legend", { text: "Visit types" }),
    KINDS.map(([value, label]) => {
      const id = uniqueId("kind");
      const box = h("input", { type: "checkbox", id, value });
      box.checked = block.kinds.includes(value);
      return h("div", { class: "check" }, box, h("label", { for: id, text: label }));
    }));
  row.append(
    h("div", { class: "field" }, h("label", { for: dayId, text: "Day" }), daySelect(dayId, block.weekday)),
    timeField("From", block.start),
    timeField("To", block.end === "24:00" ? "23:59" : block.end),
    kinds,
    h("div", { class: "field" }, removeButton(row, "these working hours")),
  );
  return row;
}

function breakRow(item = { weekday: null, start: "12:00", end: "13:00" }) {
  const dayId = uniqueId("break-day");
  const row = h("div", { class: "hours-row", role: "group" });
  row.append(
    h("div", { class: "field" }, h("label", { for: dayId, text: "Day" }), daySelect(dayId, item.weekday, { everyDay: true })),
    timeField("From", item.start),
    timeField("To", item.end),
    h("div", { class: "field" }, removeButton(row, "this break")),
  );
  return row;
}

function renderDaysOff() {
  const list = $("days-off");
  if (!state.daysOff.length) {
    replaceChildren(list, h("p", { class: "hint", text: "No days off." }));
    return;
  }
  replaceChildren(list, h("ul", { class: "link-list" }, state.daysOff.map((day) => {
    const label = dateFormat.format(new Date(`${day}T00:00:00Z`));
    const remove = h("button", { type: "button", class: "link-button" }, "Remove",
      h("span", { class: "visually-hidden", text: ` day off ${label}` }));
    remove.addEventListener("click", () => {
      state.daysOff = state.daysOff.filter((d) => d !== day);
      renderDaysOff();
      focusElement($("day-off"));
    });
    return h("li", {}, `${label} `, remove);
  })));
}

function fillForm(rules) {
  const r = rules || { visit_minutes: 30, weekly: [], breaks: [], days_off: [], published: true };
  $("visit-minutes").value = String(r.visit_minutes);
  if ($("visit-minutes").value !== String(r.visit_minutes)) {
    $("visit-minutes").append(h("option", { value: String(r.visit_minutes), text: String(r.visit_minutes) }));
    $("visit-minutes").value = String(r.visit_minutes);
  }
  replaceChildren($("blocks"), r.weekly.map((b) => blockRow(b)));
  replaceChildren($("breaks"), r.breaks.map((b) => breakRow(b)));
  renumber($("blocks"));
  renumber($("breaks"));
  state.daysOff = [...r.days_off];
  renderDaysOff();
  $("published").checked = r.published !== false;
}

function readForm() {
  const weekly = Array.from($("blocks").children).map((row) => {
    const [from, to] = row.querySelectorAll('input[type="time"]');
    return {
      weekday: Number(row.querySelector("select").value),
      start: from.value,
      end: to.value === "23:59" ? "24:00" : to.value,
      kinds: Array.from(row.querySelectorAll('input[type="checkbox"]:checked')).map((b) => b.value),
    };
  });
  const breaks = Array.from($("breaks").children).map((row) => {
    const [from, to] = row.querySelectorAll('input[type="time"]');
    const day = row.querySelector("select").value;
    return { weekday: day === "" ? null : Number(day), start: from.value, end: to.value };
  });
  const body = {
    visit_minutes: Number($("visit-minutes").value),
    weekly,
    breaks,
    days_off: state.daysOff,
    published: $("published").checked,
  };
  if (state.role === "staff") body.practitioner_id = state.practitionerId;
  return body;
}

async function loadHours() {
  const query = state.role === "staff" ? { practitioner_id: state.practitionerId } : {};
  const shown = await get("/console/availability", { query });
  state.practitionerId = shown.practitioner.id;
  $("hours-zone").textContent = `Hours are in ${shown.rules ? shown.rules.time_zone : shown.clinic_time_zone} (the clinic's time zone). `
    + (shown.rules ? `${shown.open_next_two_weeks} open times in the next two weeks.` : "No hours published yet.");
  if (state.role === "provider") {
    $("provider-name").textContent = shown.practitioner.name;
    $("provider-name").hidden = false;
  }
  fillForm(shown.rules);
  await loadBookings();
}

async function loadBookings() {
  const rows = await get("/console/appointments", { query: { practitioner_id: state.practitionerId } });
  const list = $("bookings-list");
  if (!rows.length) {
    replaceChildren(list, h("p", { class: "empty-state", text: "No upcoming bookings." }));
    return;
  }
  const table = h("table", {},
    h("caption", { class: "visually-hidden", text: "Upcoming bookings" }),
    h("thead", {}, h("tr", {}, ["When", "Patient", "Type", "Reason", "Status"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows.map((b) => h("tr", {},
      h("td", { class: "nowrap", text: whenFormat.format(new Date(b.start)) }),
      h("td", { text: b.patient_name }),
      h("td", { text: KIND_LABELS[b.kind] || b.kind }),
      h("td", { text: b.reason || "—" }),
      h("td", {}, h("span", { class: `badge${b.status === "cancelled" ? " badge--danger" : ""}`,
        text: b.status === "cancelled" ? "Cancelled" : "Booked" })),
    ))));
  replaceChildren(list, h("div", { class: "table-wrap" }, table));
}

function followEvents() {
  let delay = 1000;
  const connect = () => {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}/ws/v1/events`);
    socket.addEventListener("open", () => {
      if (delay > 1000) loadBookings().catch(() => {});
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
      if (event && event.kind === "appointment") loadBookings().catch(() => {});
    });
    socket.addEventListener("close", (closing) => {
      if (closing.code === 4401 || closing.code === 4403) return;
      delay = Math.min(delay * 2, 30000);
      window.setTimeout(connect, delay);
    });
  };
  connect();
}

const session = await initPortal({ roles: ["provider", "staff"] });
if (session) {
  state.role = session.user.role;
  try {
    await withLoading($("availability-load"), "the hours", async () => {
      if (state.role === "staff") {
        const providers = await get("/console/practitioners");
        const select = $("provider");
        replaceChildren(select, providers.map((p) => h("option", { value: String(p.id) },
          p.name + (p.specialty ? ` (${p.specialty})` : "") + (p.has_hours ? "" : " — no hours yet"))));
        $("provider-field").hidden = false;
        if (!providers.length) throw new Error("There are no providers on file yet.");
        state.practitionerId = providers[0].id;
        select.addEventListener("change", async () => {
          state.practitionerId = Number(select.value);
          setPageStatus(null, "");
          await loadHours();
        });
      }
      await loadHours();
    });
    for (const id of ["who", "hours", "bookings"]) $(id).hidden = false;
    $("add-block").addEventListener("click", () => {
      const row = blockRow();
      $("blocks").append(row);
      renumber($("blocks"));
      focusElement(row.querySelector("select"));
    });
    $("add-break").addEventListener("click", () => {
      const row = breakRow();
      $("breaks").append(row);
      renumber($("breaks"));
      focusElement(row.querySelector("select"));
    });
    $("add-day-off").addEventListener("click", () => {
      const value = $("day-off").value;
      if (value && !state.daysOff.includes(value)) {
        state.daysOff = [...state.daysOff, value].sort();
        renderDaysOff();
      }
      $("day-off").value = "";
    });
    handleSubmit($("hours-form"), async () => {
      const shown = await put("/console/availability", readForm());
      fillForm(shown.rules);
      $("hours-zone").textContent = `Hours are in ${shown.rules.time_zone} (the clinic's time zone). ${shown.open_next_two_weeks} open times in the next two weeks.`;
      setPageStatus("success", shown.rules.published
        ? `Hours published. Patients see ${shown.open_next_two_weeks} open times in the next two weeks.`
        : "Hours saved. Online booking is paused for this provider.");
    });
    followEvents();
  } catch {
    // withLoading has shown the error in place.
  }
}
