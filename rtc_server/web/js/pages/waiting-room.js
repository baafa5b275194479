// /console/waiting-room.html: a provider's virtual waiting room, live. Each waiting patient
// shows how long they have waited, their place, their device check, and buttons to admit
// them (the provider then joins the visit room) or send a short note ("running 10 minutes
// late"). An arrival plays a sound and is announced. Staff pick a provider and watch
// (admitting is the provider's). Updates come from /ws/v1/visit (`watch_queue`).
// A provider may also start a video visit at once with one of their own patients
// (found with the console's patient search; POST /visits) and go straight into its room.

import { initPortal, withLoading } from "../portal.js";
import { get, post } from "../api.js";
import { h, replaceChildren, announce, notice } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { VisitSocket } from "../visit/socket.js";
import { playChime } from "../visit/media.js";

const $ = (id) => document.getElementById(id);
const CHECK_LABELS = { good: "Devices ready", fair: "Connection fair", poor: "Connection poor", failed: "Device check failed" };
const CHECK_BADGES = { good: "badge--success", fair: "badge--warning", poor: "badge--danger", failed: "badge--danger" };
const state = { role: null, practitionerId: null, seen: null, data: null, socket: null };

function waited(iso) {
  const minutes = Math.max(0, Math.floor((Date.now() - new Date(iso).getTime()) / 60000));
  return minutes < 1 ? "just arrived" : `waiting ${minutes} min`;
}

function status(kind, text) {
  replaceChildren($("room-status"), text ? notice(kind, h("p", { text })) : null);
}

function noteForm(w) {
  const id = `note-${w.participant_id}`;
  const input = h("input", { id, type: "text", maxlength: "200", placeholder: "Running 10 minutes late" });
  const form = h("form", { class: "field-row" },
    h("div", { class: "field" }, h("label", { for: id }, "Note to ", h("span", { text: w.patient_name })), input),
    h("button", { type: "submit", class: "button button--secondary button--small", text: "Send note" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    try {
      await post(`/visits/${w.visit_id}/note`, { participant_id: w.participant_id, text });
      input.value = "";
      announce("Note sent.");
    } catch (error) {
      status("warning", error.message);
    }
  });
  return form;
}

function waitingItem(w, isNew) {
  const check = w.device_check
    ? h("span", { class: `badge ${CHECK_BADGES[w.device_check] || ""}`, text: CHECK_LABELS[w.device_check] || w.device_check })
    : h("span", { class: "badge", text: "No device check" });
  const actions = [];
  if (state.role === "provider") {
    const admit = h("button", { type: "button", class: "button" }, "Admit ", h("span", { text: w.patient_name }));
    admit.addEventListener("click", async () => {
      admit.disabled = true;
      try {
        await post(`/visits/${w.visit_id}/admit`, { participant_id: w.participant_id });
        window.location.assign(`/visit.html?visit=${w.visit_id}&join=1`);
      } catch (error) {
        admit.disabled = false;
        status("warning", error.message);
        refresh();
      }
    });
    actions.push(admit);
  }
  return h("li", { class: isNew ? "arrival" : null, dataset: { participant: String(w.participant_id) } },
    h("div", {},
      h("p", {}, h("strong", { text: `${w.position}. ${w.patient_name}` }), " ",
        h("span", { class: "muted", dataset: { since: w.checked_in_at }, text: `(${waited(w.checked_in_at)})` })),
      w.reason ? h("p", { class: "small", text: `Reason: ${w.reason}` }) : null,
      h("p", { class: "small" }, check, w.ticket ? ` Ticket ${w.ticket}` : ""),
      w.note ? h("p", { class: "small muted", text: `Your note: ${w.note}` }) : null,
      state.role === "provider" ? noteForm(w) : null),
    h("div", { class: "button-row" }, actions));
}

function render(data) {
  state.data = data;
  $("room-of").textContent = `Waiting room of ${data.practitioner.name}`;
  $("waiting").hidden = false;
  $("in-visit").hidden = data.in_visit.length === 0;
  const ids = new Set(data.waiting.map((w) => w.participant_id));
  const arrived = state.seen ? data.waiting.filter((w) => !state.seen.has(w.participant_id)) : [];
  replaceChildren($("waiting-list"), data.waiting.map((w) => waitingItem(w, arrived.includes(w))));
  $("waiting-empty").hidden = data.waiting.length > 0;
  replaceChildren($("in-visit-list"), data.in_visit.map((v) =>
    h("li", {}, h("span", { text: v.patient_name }),
      state.role === "provider" ? h("a", { class: "button button--secondary button--small", href: `/visit.html?visit=${v.visit_id}&join=1` }, "Rejoin") : null)));
  if (arrived.length) {
    const names = arrived.map((w) => w.patient_name).join(", ");
    replaceChildren($("arrivals"), notice("warning", h("p", { text: `${names} joined the waiting room.` })));
    playChime();
  }
  state.seen = ids;
}

async function refresh() {
  const query = state.practitionerId ? { practitioner_id: state.practitionerId } : undefined;
  render(await get("/visits/waiting-room", { query }));
}

function watch() {
  if (state.socket) state.socket.close();
  const socket = new VisitSocket();
  state.socket = socket;
  let timer = null;
  const soon = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => refresh().catch(() => {}), 100);
  };
  socket.on("event", soon);
  socket.on("resync", soon);
  socket.onState((s) => status(s === "reconnecting" ? "warning" : null, s === "reconnecting" ? "Reconnecting… the list may be out of date." : ""));
  socket.onOpen(async () => {
    try {
      await socket.request({ type: "watch_queue", practitioner_id: state.practitionerId || undefined });
    } catch (error) {
      status("error", error.message);
    }
    soon();
  });
  socket.connect();
}

async function pickProvider() {
  let list = [];
  try {
    list = await get("/console/practitioners");
  } catch {
    list = [];
  }
  $("provider-pick").hidden = false;
  replaceChildren($("practitioner"), list.map((p) => h("option", { value: String(p.id), text: p.name })));
  $("practitioner").addEventListener("change", () => {
    state.practitionerId = Number($("practitioner").value);
    state.seen = null;
    refresh().catch((error) => status("error", error.message));
    watch();
  });
  state.practitionerId = list.length ? list[0].id : null;
}

// --- start a visit now (providers) ---------------------------------------------------------

function patientChoice(p, index) {
  const id = `start-patient-${p.id}`;
  const born = new Date(`${p.birth_date}T00:00:00`).toLocaleDateString();
  return h("div", { class: "check" },
    h("input", { type: "radio", id, name: "patient_id", value: String(p.id), checked: index === 0 ? true : null }),
    h("label", { for: id }, h("span", { text: p.name }), ` (born ${born}${p.mrn ? `, MRN ${p.mrn}` : ""})`));
}

function wireStart() {
  $("start-visit").hidden = false;
  const result = $("find-result");
  $("find-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = $("find-patient").value.trim();
    $("start-form").hidden = true;
    if (q.length < 2) {
      replaceChildren(result, notice("warning", h("p", { text: "Type at least two letters of a name, or an MRN." })));
      return;
    }
    let hits;
    try {
      hits = await get("/console/patients", { query: { q } });
    } catch (error) {
      replaceChildren(result, notice("warning", h("p", { text: error.message })));
      return;
    }
    // Only your own patients: a visit cannot be started with anyone else's.
    const mine = hits.filter((p) => p.access === "care_team");
    if (!mine.length) {
      replaceChildren(result, notice("info", h("p", { text: "None of your patients matches. Check the spelling, or search by MRN." })));
      return;
    }
    replaceChildren(result, h("p", { text: `${mine.length} of your patients match${mine.length === 1 ? "es" : ""}.` }));
    replaceChildren($("start-patients"), mine.map(patientChoice));
    $("start-form").hidden = false;
  });
  handleSubmit($("start-form"), async (values) => {
    const body = { patient_id: Number(values.patient_id) };
    if (values.reason) body.reason = values.reason;
    const visit = await post("/visits", body);
    window.location.assign(`/visit.html?visit=${visit.id}&join=1`);
  });
}

// --- waiting-room displays ----------------------------------------------------------------

function displayItem(d) {
  const when = d.paired_at ? `paired ${new Date(d.paired_at).toLocaleString()}` : "not paired yet";
  const revoke = h("button", { type: "button", class: "button button--secondary button--small" }, "Unpair ", h("span", { text: d.name }));
  revoke.addEventListener("click", async () => {
    revoke.disabled = true;
    try {
      await post(`/displays/${d.id}/revoke`);
      announce(`${d.name} was unpaired.`);
    } catch (error) {
      status("warning", error.message);
    }
    loadDisplays();
  });
  return h("li", {}, h("span", {}, h("strong", { text: d.name }), ` (${d.revoked_at ? "unpaired" : when})`),
    d.revoked_at ? null : revoke);
}

async function loadDisplays() {
  try {
    const list = await get("/displays");
    replaceChildren($("display-list"), list.map(displayItem));
  } catch {
    // Listing is a convenience; the form still works.
  }
}

function wireDisplays() {
  $("displays").hidden = false;
  handleSubmit($("display-form"), async () => {
    const body = { name: $("display-name").value.trim() };
    if (state.role === "staff" && state.practitionerId) body.practitioner_id = state.practitionerId;
    const added = await post("/displays", body);
    $("display-name").value = "";
    replaceChildren($("display-code"), notice("success",
      h("p", {}, "Display code for ", h("strong", { text: added.name }), ": ",
        h("strong", { class: "mono", text: added.code })),
      h("p", { class: "small", text: "Type it on the screen at /display.html within 15 minutes. It works once." })));
    loadDisplays();
  });
  loadDisplays();
}

async function main() {
  const session = await initPortal({ roles: ["provider", "staff"] });
  if (!session) return;
  state.role = session.user.role;
  if (state.role === "staff") await pickProvider();
  try {
    await withLoading($("room-load"), "the waiting room", refresh);
  } catch {
    return;
  }
  watch();
  if (state.role === "provider") wireStart();
  wireDisplays();
  // Wait times tick on screen without asking the server.
  window.setInterval(() => {
    for (const el of document.querySelectorAll("[data-since]")) el.textContent = `(${waited(el.dataset.since)})`;
  }, 15_000);
}

main();
