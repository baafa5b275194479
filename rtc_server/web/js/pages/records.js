// /app/records.html (Medical Records tab): test results (value, unit, reference range, a
// flag when out of range; a repeated test opens with its history chart and table), then
// diagnoses, medications, allergies, immunizations, treatment plans and past visits; the
// FHIR download and the printable page. Results released while the page is open appear
// live (/ws/v1/events). ?result=<id> opens that result. Everything from the record is
// inserted as text.

import { initPortal, withLoading } from "../portal.js";
import { get, ApiError } from "../api.js";
import { h, replaceChildren, announce, focusElement, param } from "../dom.js";
import { historyChart, formatValue } from "../chart.js";

const $ = (id) => document.getElementById(id);
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const openResults = new Set(); // ids of tests whose detail is open (by test code)

function day(iso) {
  if (!iso) return h("span", { class: "muted", text: "date not recorded" });
  const date = new Date(iso);
  return h("time", { datetime: date.toISOString(), text: dateFormat.format(date) });
}

function empty(text) {
  return h("p", { class: "muted", text });
}

function valueText(result) {
  if (typeof result.value === "number") return result.unit ? `${formatValue(result.value)} ${result.unit}` : formatValue(result.value);
  return result.value_text || "—";
}

function flagBadge(result) {
  if (!result.flag) return null;
  return h("span", { class: "badge badge--danger", text: `${result.flag_label || "Abnormal"}: outside the reference range` });
}

function newBadge(result) {
  return result.new ? h("span", { class: "badge badge--success", dataset: { newBadge: "" }, text: "New" }) : null;
}

// --- test results ----------------------------------------------------------------

function resultSummary(result) {
  return h("dl", { class: "summary lab__summary" },
    h("dt", { text: "Result" }), h("dd", {}, h("strong", { text: valueText(result) }), " ", flagBadge(result)),
    h("dt", { text: "Reference range" }), h("dd", { text: result.reference_range || "Not given" }),
    h("dt", { text: "Date" }), h("dd", {}, day(result.effective_at)),
  );
}

function noteBox(result) {
  if (!result.note) return null;
  return h("div", { class: "alert alert--info lab__note" },
    h("p", {}, h("strong", { text: "Note from your clinician: " }), result.note));
}

async function openDetail(test, item, button, panel, id = test.latest.id) {
  button.disabled = true;
  try {
    const detail = await get(`/labs/${id}`);
    const result = detail.result;
    const points = detail.history.map((p) => ({ date: p.effective_at ? new Date(p.effective_at) : null, value: p.value, flag: p.flag }));
    replaceChildren(panel,
      id !== test.latest.id ? [h("h4", { text: `Result of ${dateFormat.format(new Date(result.effective_at))}` }), resultSummary(result)] : null,
      noteBox(result),
      points.length > 1
        ? historyChart({ title: test.display, unit: result.unit, low: result.reference_low, high: result.reference_high, points })
        : h("p", { class: "muted", text: "This test has one result so far; a chart appears once it is repeated." }),
    );
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    openResults.add(test.code);
    if (id === test.latest.id) {
      const badge = item.querySelector("[data-new-badge]");
      if (badge) badge.remove();
      test.latest.new = false;
    }
  } catch (error) {
    replaceChildren(panel, h("div", { class: "alert alert--error", role: "alert" }, h("p", { text: `Could not open this result. ${error.message}` })));
    panel.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function labItem(test) {
  const panelId = `lab-panel-${test.latest.id}`;
  const panel = h("div", { id: panelId, class: "lab__detail", hidden: true });
  // A disclosure button: its name stays the same, aria-expanded says whether it is open.
  const button = h("button", {
    type: "button", class: "button button--secondary button--small", "aria-expanded": "false", "aria-controls": panelId,
  }, test.history.length > 1 ? "Details and history" : "Details", h("span", { class: "visually-hidden", text: ` of ${test.display}` }));
  const ids = ` ${test.history.map((p) => p.id).join(" ")} `;
  const item = h("li", { class: "lab", dataset: { resultId: String(test.latest.id), ids, code: test.code || "" } },
    h("h3", {}, test.display, " ", newBadge(test.latest)),
    resultSummary(test.latest),
    test.history.length > 1 ? h("p", { class: "hint", text: `${test.history.length} results on file.` }) : null,
    h("div", { class: "button-row" }, button),
    panel,
  );
  button.addEventListener("click", () => {
    if (button.getAttribute("aria-expanded") === "true") {
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
      openResults.delete(test.code);
      return;
    }
    openDetail(test, item, button, panel);
  });
  item.openResult = (id) => openDetail(test, item, button, panel, id);
  return item;
}

function renderHeld(labs) {
  const list = $("held-tests");
  const intro = $("held-explained");
  if (!labs.held_tests.length) {
    list.hidden = true;
    intro.hidden = true;
    return;
  }
  intro.textContent = labs.held_explained;
  replaceChildren(list, labs.held_tests.map((t) => h("li", {}, h("strong", { text: t.display }), `: ${t.reason}`)));
  intro.hidden = false;
  list.hidden = false;
}

function renderLabs(labs) {
  $("turnaround").textContent = labs.turnaround;
  renderHeld(labs);
  const body = $("labs-body");
  if (!labs.tests.length) {
    replaceChildren(body, empty("No test results yet. Results typically take two to four days after your test; they appear here when ready."));
    return;
  }
  const intro = labs.new_count
    ? h("p", { class: "lead", text: `${labs.new_count} new ${labs.new_count === 1 ? "result" : "results"} since you last looked.` })
    : null;
  replaceChildren(body, intro, h("ul", { class: "lab-list" }, labs.tests.map(labItem)));
}

async function openResult(id) {
  const wanted = Number(id);
  const item = Array.from(document.querySelectorAll(".lab")).find((li) => li.dataset.ids.includes(` ${wanted} `));
  if (!item) return false;
  await item.openResult(wanted);
  item.scrollIntoView({ block: "start" });
  focusElement(item.querySelector("h3"));
  return true;
}

// --- the rest of the record ------------------------------------------------------------

function list(items, render, emptyText) {
  return items.length ? h("ul", { class: "record-list" }, items.map((i) => h("li", {}, render(i)))) : empty(emptyText);
}

function conditionLine(c) {
  return [h("strong", { text: c.display }), c.onset_at ? [" — since ", day(c.onset_at)] : null,
    c.resolved_at ? [", resolved ", day(c.resolved_at)] : null];
}

function medicationLine(m) {
  return [h("strong", { text: m.display }), m.dosage ? h("span", { class: "record-list__more", text: m.dosage }) : null,
    m.prescriber ? h("span", { class: "record-list__more", text: `Prescribed by ${m.prescriber}` }) : null];
}

function renderRecord(rec) {
  replaceChildren($("conditions-body"),
    h("h3", { text: "Active" }), list(rec.conditions.active, conditionLine, "No active diagnoses on file."),
    h("h3", { text: "Resolved" }), list(rec.conditions.resolved, conditionLine, "No resolved diagnoses on file."));
  replaceChildren($("medications-body"),
    h("h3", { text: "Active" }), list(rec.medications.active, medicationLine, "No active medications on file."),
    h("h3", { text: "Past" }), list(rec.medications.past, medicationLine, "No past medications on file."));
  replaceChildren($("allergies-body"), list(rec.allergies, (a) => [
    h("strong", { text: a.display }),
    a.reactions.length ? h("span", { class: "record-list__more", text: `Reaction: ${a.reactions.join(", ")}` }) : null,
    a.criticality === "high" ? h("span", { class: "badge badge--danger", text: "High risk" }) : null,
  ], "No allergies on file."));
  replaceChildren($("immunizations-body"), list(rec.immunizations, (i) => [h("strong", { text: i.display }), " — ", day(i.occurred_at)],
    "No immunizations on file."));
  replaceChildren($("plans-body"), list(rec.care_plans, (p) => [
    h("strong", { text: p.title }), p.status ? ` (${p.status})` : null,
    p.addresses ? h("span", { class: "record-list__more", text: `For: ${p.addresses}` }) : null,
    p.activities.length ? h("ul", {}, p.activities.map((a) => h("li", { text: a.status ? `${a.display} (${a.status})` : a.display }))) : null,
  ], "No treatment plans on file."));
  replaceChildren($("visits-body"), list(rec.visits, (v) => [
    h("strong", {}, day(v.start)), " — ", v.type || "Visit", v.virtual ? " (video visit)" : null,
    v.practitioner ? h("span", { class: "record-list__more", text: `With ${v.practitioner}` }) : null,
    v.reason ? h("span", { class: "record-list__more", text: `Reason: ${v.reason}` }) : null,
  ], "No past visits on file."));
}

// --- live updates -----------------------------------------------------------------------

let refreshing = null;
async function refreshLabs() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        renderLabs(await get("/labs"));
        for (const code of Array.from(openResults)) {
          const item = document.querySelector(`.lab[data-code="${CSS.escape(code)}"]`);
          const button = item && item.querySelector("button[aria-controls]");
          openResults.delete(code);
          if (button) button.click();
        }
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

function followEvents() {
  let delay = 1000;
  const connect = () => {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}/ws/v1/events`);
    socket.addEventListener("open", () => {
      if (delay > 1000) refreshLabs().catch(() => {});
      delay = 1000;
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      const event = frame && frame.event;
      if (event && event.kind === "lab_result") {
        refreshLabs().then(() => announce("A new test result is available.")).catch(() => {});
      }
    });
    socket.addEventListener("close", (closing) => {
      if (closing.code === 4401 || closing.code === 4403) return;
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
    const [rec, labs] = await withLoading($("records-load"), "your record", () => Promise.all([get("/records"), get("/labs")]));
    renderLabs(labs);
    renderRecord(rec);
    followEvents();
    const wanted = param("result");
    if (wanted && !(await openResult(wanted))) {
      replaceChildren($("page-status"), h("div", { class: "alert alert--info" }, h("p", { text: "That result is not available to view." })));
    } else if (!wanted && window.location.hash === "#labs") {
      focusElement($("labs"));
    }
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 403) {
      // A patient account not (yet) linked to a record on file: say so instead of an error.
      replaceChildren($("records-load"), h("div", { class: "alert alert--info" },
        h("p", { text: "Your account is not linked to a record on file yet, so there is nothing to show here. Please call the clinic." })));
    }
  }
}
