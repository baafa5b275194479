// /visit.html?appointment=<id> or ?visit=<id>: the video visit, start to end.
//
// Patient: camera and microphone check (preview, level meter, speaker test,
// connection test) → check-in (reason, pharmacy, consent) → the waiting room
// (place in line and estimated wait, live; notes from the provider) → the call
// once admitted → ended. Provider: devices → join the visit room → admit people
// waiting → invite a guest (a single-use link) → end the visit for everyone.
// Guest (?guest=1, after /join.html redeemed their link; no portal session): devices →
// the waiting room → the call once admitted. A guest sees only the provider's name and
// the patient's first name, nothing of the record.
//
// Live updates come from /ws/v1/visit (docs/visits.md); what they announce is
// read from the API. While the page is in the waiting room or the call it calls
// the API every minute, so the session does not time out during a long visit.

import { initPortal, withLoading } from "../portal.js";
import { get, post, ApiError } from "../api.js";
import { h, replaceChildren, focusElement, announce, notice, param } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { VisitSocket } from "./socket.js";
import { LocalMedia, playChime } from "./media.js";
import { CallSession } from "./call.js";
import { Tiles } from "./tiles.js";
import { runConnectionTest } from "./devicecheck.js";
import { VisitChat, messageItem, transcript } from "./chat.js";

const $ = (id) => document.getElementById(id);
const SECTIONS = ["precheck", "checkin", "waiting", "call", "ended", "start-call"];
const KEEPALIVE_MS = 60_000;

const state = {
  session: null,
  role: null, // patient | provider | guest
  visitId: null,
  appointmentId: null,
  visit: null,
  media: new LocalMedia(),
  socket: null,
  call: null,
  tiles: null,
  relayOnly: false,
  relayed: false,
  watching: false,
  devices: null, // resolves once the camera and microphone are started (or known missing)
  chat: null,
  starting: false,
  over: false, // the visit ended, or this guest was removed: nothing reopens the call
};

function show(...ids) {
  for (const id of SECTIONS) $(id).hidden = !ids.includes(id);
}

function status(kind, text) {
  replaceChildren($("visit-status"), text ? notice(kind, h("p", { text })) : null);
}

// --- devices --------------------------------------------------------------------------

async function startDevices() {
  try {
    await state.media.start();
    $("camera-note").textContent = state.media.track("video") ? "" : "No camera is in use: the others will hear you but not see you.";
  } catch (error) {
    $("camera-note").textContent = error.message;
    status("warning", error.message);
  }
  $("self-preview").srcObject = state.media.stream;
  $("self-video").srcObject = state.media.stream;
  await fillDeviceLists();
  meter();
}

async function fillDeviceLists() {
  let devices;
  try {
    devices = await state.media.devices();
  } catch {
    return;
  }
  const fill = (select, list, current) => {
    replaceChildren(select, list.map((d) => h("option", { value: d.deviceId, text: d.label })));
    if (current) select.value = current;
    select.disabled = list.length < 2;
  };
  for (const id of ["camera-select", "call-camera-select"]) fill($(id), devices.videoinput, state.media.videoDeviceId);
  for (const id of ["mic-select", "call-mic-select"]) fill($(id), devices.audioinput, state.media.audioDeviceId);
  fill($("speaker-select"), devices.audiooutput, null);
  $("speaker-field").hidden = devices.audiooutput.length === 0;
}

function meter() {
  const el = $("mic-level");
  const tick = () => {
    el.value = state.media.muted ? 0 : state.media.level();
    window.requestAnimationFrame(tick);
  };
  window.requestAnimationFrame(tick);
}

function wireDevices() {
  const switchTo = (kind) => async (event) => {
    try {
      if (kind === "video") await state.media.useCamera(event.target.value);
      else await state.media.useMicrophone(event.target.value);
      $("self-preview").srcObject = state.media.stream;
      await fillDeviceLists();
    } catch (error) {
      status("warning", "That device could not be started. Choose another.");
    }
  };
  for (const id of ["camera-select", "call-camera-select"]) $(id).addEventListener("change", switchTo("video"));
  for (const id of ["mic-select", "call-mic-select"]) $(id).addEventListener("change", switchTo("audio"));
  $("speaker-test").addEventListener("click", () => playChime($("speaker-select").value || null));
  $("connection-test").addEventListener("click", connectionTest);
}

async function connectionTest() {
  const button = $("connection-test");
  const out = $("connection-result");
  button.disabled = true;
  $("echo-video").hidden = false;
  try {
    const result = await runConnectionTest(state.media, $("echo-video"), (text) => replaceChildren(out, h("p", { text })));
    const details = result.rttMs === null ? "" : ` Round trip ${result.rttMs} ms, ${result.lossPercent.toFixed(1)} % of packets lost${result.kbps ? `, ${result.kbps} kbit/s` : ""}.`;
    replaceChildren(out, notice(result.outcome === "good" ? "success" : result.outcome === "failed" ? "error" : "warning",
      h("p", { text: result.text + details })));
  } catch (error) {
    const text = error instanceof ApiError && error.status === 429
      ? "Many people are testing their connection right now. Please try again in a minute."
      : `The connection test did not finish. ${error.message || ""}`;
    replaceChildren(out, notice("warning", h("p", { text })));
  } finally {
    $("echo-video").hidden = true;
    button.disabled = false;
  }
}

// --- the socket -----------------------------------------------------------------------

function openSocket() {
  if (state.socket) return state.socket;
  const socket = new VisitSocket();
  state.socket = socket;
  socket.onState((s) => {
    if (s === "reconnecting") status("warning", "Reconnecting to the clinic…");
    else if (s === "open") status(null, "");
    else if (s === "closed") {
      status("error", state.role === "guest"
        ? "Your access to this visit has ended."
        : "You were signed out. Please log in again to rejoin the visit.");
      // A guest's session ends with the visit, or when they are removed: show it plainly.
      if (state.role === "guest" && $("ended").hidden) endedView("removed");
    }
  });
  socket.on("event", (frame) => onRoomEvent(frame.event || {}));
  socket.on("resync", () => refresh());
  socket.onOpen(async () => {
    if (!state.visitId) return;
    try {
      await socket.request({ type: "watch", visit: state.visitId });
    } catch (error) {
      status("error", error.message);
    }
    refresh();
    if (state.chat) state.chat.fetch(); // lines sent while the socket was away
  });
  socket.connect();
  return socket;
}

let refreshTimer = null;
function onRoomEvent(event) {
  if (event.kind === "visit.ended") {
    endedView("ended");
    return;
  }
  if (event.kind === "visit.chat") {
    if (state.chat) state.chat.fetch();
    return;
  }
  // Several events often arrive together: read once.
  window.clearTimeout(refreshTimer);
  refreshTimer = window.setTimeout(refresh, 100);
}

async function refresh() {
  if (!state.visitId) return;
  try {
    if (state.role === "provider") await refreshHost();
    else await refreshPlace();  // patients and guests
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) status("error", "This visit could not be found.");
  }
}

// --- patient: check-in and the waiting room ----------------------------------------------

async function loadPatient() {
  const listing = await get("/visits");
  $("consent-text").textContent = listing.consent.text;
  $("checkin-form").dataset.consentVersion = listing.consent.version;
  const item = listing.upcoming.find((u) =>
    (state.appointmentId && u.appointment_id === state.appointmentId) || (state.visitId && u.visit_id === state.visitId));
  if (!item) {
    if (state.visitId && listing.past.some((p) => p.visit_id === state.visitId)) {
      endedView("ended"); // a past visit: its record, with the chat
      return true;
    }
    status("error", "This video visit is not in your upcoming visits. It may have ended or been cancelled.");
    return false;
  }
  state.visitId = item.visit_id;
  $("visit-with").textContent = `With ${item.practitioner.name}`;
  $("reason").value = item.reason || "";
  if (!item.joinable) {
    const opens = new Date(item.joinable_from);
    status("info", `You can check in from ${opens.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" })} (${listing.join_early_minutes} minutes before your visit). Meanwhile, check your camera and microphone below.`);
  }
  await loadPharmacies();
  if (item.state === "waiting" || item.state === "admitted") {
    openSocket();
    show("precheck", "waiting");
    return true;
  }
  show("precheck", "checkin");
  return true;
}

async function loadPharmacies() {
  try {
    const preferred = await get("/pharmacies/preferred");
    const pharmacy = preferred && (preferred.pharmacy || preferred);
    if (pharmacy && pharmacy.id) {
      replaceChildren($("pharmacy"),
        h("option", { value: String(pharmacy.id), text: pharmacy.name }),
        h("option", { value: "", text: "I'll tell the provider during the visit" }));
      $("pharmacy-field").hidden = false;
    }
  } catch {
    // No pharmacy on file (or the directory is not available): the provider asks during the visit.
  }
}

function wireCheckIn() {
  handleSubmit($("checkin-form"), async (values) => {
    const body = {
      reason: $("reason").value.trim(),
      consent_version: $("checkin-form").dataset.consentVersion,
    };
    if (state.visitId) body.visit_id = state.visitId;
    else body.appointment_id = state.appointmentId;
    if (!$("pharmacy-field").hidden && $("pharmacy").value) body.pharmacy_id = Number($("pharmacy").value);
    const place = await post("/visits/check-in", body);
    state.visitId = place.visit_id;
    renderPlace(place);
    show("precheck", "waiting");
    openSocket();
    focusElement($("waiting-heading"));
    announce("You are checked in and in the waiting room.");
  });
  $("leave-waiting").addEventListener("click", async () => {
    await post(`/visits/${state.visitId}/leave`).catch(() => {});
    if (state.role === "guest") endedView("left");
    else window.location.assign("/app/visits.html");
  });
}

async function refreshPlace() {
  renderPlace(await get(`/visits/${state.visitId}/place`));
}

function renderPlace(place) {
  if (place.status === "ended") {
    endedView("ended");
    return;
  }
  if (place.state === "admitted") {
    startCall();
    return;
  }
  if (place.state !== "waiting") return;
  $("waiting-place").textContent = place.position === 1 ? "You are next in line." : `You are number ${place.position} in line.`;
  $("waiting-estimate").textContent = place.estimated_wait_minutes
    ? `Estimated wait: about ${place.estimated_wait_minutes} minute${place.estimated_wait_minutes === 1 ? "" : "s"}.`
    : "Your provider should be with you shortly.";
  $("waiting-ticket").textContent = place.ticket ? String(place.ticket) : "—";
  const note = $("waiting-note");
  const seen = note.dataset.at;
  replaceChildren(note, place.note ? notice("info", h("p", {}, h("strong", { text: "Message from your provider: " }), place.note)) : null);
  if (place.note && place.note_at !== seen) {
    note.dataset.at = place.note_at;
    if (seen !== undefined) playChime();
  }
}

// --- guest: invited by link ---------------------------------------------------------------

async function loadGuest() {
  const visit = await get(`/visits/${state.visitId}`);
  state.visit = visit;
  $("visit-with").textContent = `With ${visit.practitioner.name}`;
  // The connection test and the portal's tabs are for people with an account.
  $("connection-test").hidden = true;
  $("chat-hint").textContent = "Everyone in the call reads it. You see the messages sent after you were let in.";
  if (visit.status === "ended") {
    endedView("ended");
    return true;
  }
  openSocket();
  show("precheck", "waiting");
  $("waiting-heading").textContent = "You are waiting to be let in";
  if (visit.my_state === "admitted") startCall();
  return true;
}

// --- provider: host -----------------------------------------------------------------------

function wireInvite() {
  const panel = $("invite-panel");
  if (!panel.hidden) return;
  panel.hidden = false;
  handleSubmit($("invite-form"), async (values) => {
    const body = { label: values.label };
    if (values.email) body.email = values.email;
    const made = await post(`/visits/${state.visitId}/invites`, body);
    $("invite-label").value = "";
    $("invite-email").value = "";
    const until = new Date(made.expires_at).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
    const link = h("input", { id: "invite-link", type: "text", readonly: true, value: made.url, class: "mono" });
    const copy = h("button", { type: "button", class: "button button--small", text: "Copy link" });
    copy.addEventListener("click", async () => {
      link.select();
      try {
        await navigator.clipboard.writeText(made.url);
        announce("Link copied.");
      } catch {
        announce("Select the link and copy it.");
      }
    });
    replaceChildren($("invite-result"), notice("success",
      h("p", {}, "Invitation for ", h("strong", { text: made.label }), `: it works once, until ${until}.`,
        made.emailed ? " It was also sent by email." : ""),
      h("div", { class: "field" }, h("label", { for: "invite-link", text: "Invitation link (shown only now)" }), link),
      h("div", { class: "button-row" }, copy)));
    refreshGuests();
  });
}

// The provider's list of invitations not yet used (Revoke) and of guests who came
// (Remove from visit). Names are labels the provider typed: inserted as text.
async function refreshGuests() {
  if (state.role !== "provider" || !state.visit) return;
  let invites;
  try {
    invites = (await get(`/visits/${state.visitId}/invites`)).invites;
  } catch {
    return;
  }
  const pending = invites.filter((i) => i.state === "pending");
  const guests = state.visit.participants.filter((p) => p.role === "guest" && p.state !== "left");
  const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  const act = (label, text, run) => {
    const button = h("button", { type: "button", class: "button button--small button--secondary" },
      label, h("span", { class: "visually-hidden", text: ` ${text}` }));
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        if (await run() === false) {
          button.disabled = false;
          return;
        }
      } catch (error) {
        status("warning", error.message);
        button.disabled = false;
        return;
      }
      await refreshHost();
      focusElement($("guests-heading"));
    });
    return button;
  };
  const items = [
    ...pending.map((i) => h("li", { "data-invite": String(i.id) },
      h("span", { text: `${i.label}: invitation not used yet (works until ${time(i.expires_at)}). ` }),
      act("Revoke", `the invitation for ${i.label}`, async () => {
        await post(`/visit-invites/${i.id}/revoke`);
        announce(`The invitation for ${i.label} was revoked.`);
      }))),
    ...guests.map((p) => h("li", { "data-participant": String(p.id) },
      h("span", { text: `${p.name}: ${p.state === "admitted" ? "in the visit" : "waiting"}. ` }),
      act("Remove from visit", `(${p.name})`, async () => {
        if (!window.confirm(`Remove ${p.name} from the visit? Their link will stop working.`)) return false;
        await post(`/visits/${state.visitId}/remove`, { participant_id: p.id });
        announce(`${p.name} was removed from the visit.`);
      }))),
  ];
  $("guests-panel").hidden = items.length === 0;
  replaceChildren($("guests-list"), items);
}


async function loadHost() {
  const visit = await get(`/visits/${state.visitId}`);
  state.visit = visit;
  $("visit-with").textContent = `With ${visit.patient_name}`;
  $("end-visit").hidden = false;
  if (visit.status === "ended") {
    endedView("ended");
    return true;
  }
  openSocket();
  show("precheck", "start-call");
  $("join-call").addEventListener("click", () => startCall());
  $("end-visit").addEventListener("click", endVisit);
  if (param("join") === "1") startCall(); // from the console's Admit button
  return true;
}

async function refreshHost() {
  const visit = await get(`/visits/${state.visitId}`);
  state.visit = visit;
  if (visit.status === "ended") {
    endedView("ended");
    return;
  }
  const waiting = visit.participants.filter((p) => p.state === "waiting");
  $("host-panel").hidden = waiting.length === 0;
  replaceChildren($("host-waiting"), waiting.map((p) => {
    const button = h("button", { type: "button", class: "button button--small" }, "Admit ", h("span", { text: p.name }));
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await post(`/visits/${state.visitId}/admit`, { participant_id: p.id });
        announce(`${p.name} was admitted.`);
      } catch (error) {
        status("warning", error.message);
      }
      refreshHost();
    });
    return h("li", {}, h("span", { text: `${p.name} is waiting. ` }), button);
  }));
  await refreshGuests();
}

async function endVisit() {
  if (!window.confirm("End the visit for everyone?")) return;
  try {
    await post(`/visits/${state.visitId}/end`);
  } catch (error) {
    status("error", error.message);
    return;
  }
  endedView("ended");
}

// --- the call -----------------------------------------------------------------------------

function encryptionText() {
  const base = "Video and sound are encrypted between the browsers in this visit (DTLS-SRTP). The clinic's server only passes on the messages that set up the call; it cannot see or hear it, and nothing is recorded.";
  if (state.relayed || state.relayOnly) {
    return `${base} Your connection goes through the clinic's relay server (TURN)${state.relayOnly ? ", so the others never learn your IP address" : " to get past a firewall"}. It is still encrypted end to end: the relay forwards packets it cannot read.`;
  }
  return base;
}

async function startCall() {
  if (state.call || state.starting || state.over) return;
  state.starting = true;
  show("call");
  // Join with the camera and microphone already on, so the first offer carries them.
  await state.devices;
  state.starting = false;
  if (state.over) return; // ended (or the guest was removed) meanwhile
  const socket = openSocket();
  state.tiles = new Tiles($("stage"), $("stage-empty"), (video) => soundBlocked(video));
  const call = new CallSession({
    socket,
    visitId: state.visitId,
    media: state.media,
    view: {
      joined(reply) {
        state.relayOnly = reply.ice_transport_policy === "relay";
        $("call-encryption").textContent = encryptionText();
        announce("You are in the visit.");
      },
      peerAdded(link) {
        state.tiles.ensure(link);
      },
      peerRemoved(link) {
        state.tiles.remove(link);
        announce(`${link.name || "A participant"} left the call.`);
      },
      remoteStream(link, stream) {
        state.tiles.stream(link, stream);
      },
      linkState(link, s) {
        state.tiles.state(link, s);
        if (s === "connected") $("call-connection").textContent = "Connected.";
        if (s === "disconnected" || s === "failed") $("call-connection").textContent = "The connection dropped. Reconnecting…";
      },
      quality(link, summary) {
        const graded = state.tiles.quality(link, summary);
        if (summary.relayed !== state.relayed) {
          state.relayed = summary.relayed;
          $("call-encryption").textContent = encryptionText();
        }
        if (graded) $("call-connection").textContent = graded.text;
      },
      ended(reason) {
        endedView(reason);
      },
      problem(error) {
        if (error.code === "not_admitted") {
          show("precheck", "waiting");
          state.call = null;
        } else {
          status("warning", error.message);
        }
      },
    },
  });
  state.call = call;
  call.start();
  openChat();
  if (state.role === "provider") {
    refreshHost();
    wireInvite();
  }
}

function openChat() {
  $("chat").hidden = false;
  if (!state.chat) {
    state.chat = new VisitChat({
      visitId: state.visitId, log: $("chat-log"), form: $("chat-form"), input: $("chat-text"), error: $("chat-error"),
    });
  }
  state.chat.fetch();
}

async function showTranscript() {
  if (state.role === "guest") return;
  const lines = await transcript(state.visitId);
  replaceChildren($("ended-chat-log"), lines.map(messageItem));
  $("ended-chat").hidden = lines.length === 0;
}

function soundBlocked(video) {
  if (document.getElementById("sound-on")) return;
  const button = h("button", { type: "button", id: "sound-on", class: "button button--small", text: "Turn on sound" });
  button.addEventListener("click", () => {
    for (const v of document.querySelectorAll("video.video--remote")) {
      v.muted = false;
      v.play().catch(() => {});
    }
    button.remove();
  });
  $("call-connection").after(button);
}

function wireCallControls() {
  $("mute").addEventListener("click", (event) => {
    const muted = !state.media.muted;
    state.media.setMuted(muted);
    event.currentTarget.setAttribute("aria-pressed", String(muted));
    event.currentTarget.textContent = muted ? "Unmute" : "Mute";
    announce(muted ? "Microphone muted." : "Microphone on.");
  });
  $("camera").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const off = !state.media.cameraOff;
    try {
      await state.media.setCameraOff(off);
    } catch (error) {
      status("warning", error.message);
      return;
    }
    $("self-video").srcObject = state.media.stream;
    button.setAttribute("aria-pressed", String(off));
    button.textContent = off ? "Turn camera on" : "Turn camera off";
    announce(off ? "Camera off." : "Camera on.");
  });
  $("share").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    if (!state.call) return;
    if (state.call.screen) {
      state.call.stopScreen();
    } else {
      try {
        const track = await state.call.shareScreen();
        track.addEventListener("ended", () => {
          button.setAttribute("aria-pressed", "false");
          button.textContent = "Share screen";
        });
      } catch {
        return; // the person cancelled the browser's picker
      }
    }
    const sharing = Boolean(state.call.screen);
    button.setAttribute("aria-pressed", String(sharing));
    button.textContent = sharing ? "Stop sharing" : "Share screen";
  });
  $("leave-call").addEventListener("click", async () => {
    if (state.call) state.call.leave();
    if (state.role !== "provider") await post(`/visits/${state.visitId}/leave`).catch(() => {});
    endedView("left");
  });
}

function endedView(reason) {
  if (state.call && reason !== "left") state.call.finish(reason);
  state.call = null;
  if (state.tiles) state.tiles.clear();
  const texts = {
    ended: "The visit has ended. Thank you.",
    left: "You left the visit. If you left by mistake, go back to Virtual Visits to check in again.",
    replaced: "You joined this visit from another window or device, so this one stopped.",
    removed: "You are no longer in this visit.",
  };
  $("ended-text").textContent = texts[reason] || texts.ended;
  $("ended-link").href = state.role === "provider" ? "/console/waiting-room.html" : "/app/visits.html";
  $("ended-link").textContent = state.role === "provider" ? "Back to the waiting room" : "Back to Virtual Visits";
  $("ended-link").parentElement.hidden = state.role === "guest";
  if (state.role === "guest" && reason === "left") $("ended-text").textContent = "You left the visit. You can close this page.";
  show("ended");
  if (reason === "ended") showTranscript();
  if (reason === "ended" || reason === "removed") {
    state.over = true; // an answer still on its way must not reopen the call
    state.media.stop();
    if (state.socket) state.socket.close();
  }
  focusElement($("ended-heading"));
}

// --- start --------------------------------------------------------------------------------

async function main() {
  if (param("guest") === "1") {
    // A guest has no portal session (their cookie reaches this visit only): no tabs, no account.
    state.role = "guest";
    $("portal-nav").hidden = true;
  } else {
    const session = await initPortal({ roles: ["patient", "provider"] });
    if (!session) return;
    state.session = session;
    state.role = session.user.role;
  }
  state.visitId = Number(param("visit")) || null;
  state.appointmentId = Number(param("appointment")) || null;
  if (!state.visitId && !state.appointmentId) {
    status("error", "No visit was chosen. Open it from Virtual Visits.");
    return;
  }
  wireDevices();
  wireCheckIn();
  wireCallControls();
  state.devices = startDevices();
  const ok = await withLoading($("visit-load"), "your visit", () =>
    state.role === "provider" ? loadHost() : state.role === "guest" ? loadGuest() : loadPatient()).catch(() => false);
  if (!ok) return;
  await state.devices;
  window.setInterval(() => {
    if (state.visitId && (state.call || !$("waiting").hidden)) refresh();
  }, KEEPALIVE_MS);
}

main();
