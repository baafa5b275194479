// /console/patients.html: find a patient of the clinic (name, MRN, date of birth) and
// open their chart. A chart outside the provider's care opens after they type a
// cross-cover reason. The server records every search and every chart opened.

import { initConsole } from "../console-shell.js";
import { get, post, ApiError } from "../api.js";
import { h, replaceChildren, focusElement, notice, timeElement, formatDate, param } from "../dom.js";
import { handleSubmit } from "../forms.js";

const $ = (id) => document.getElementById(id);
const ACCESS = {
  care_team: { label: "Your patient", badge: "badge--success" },
  cross_cover: { label: "Cross-cover open", badge: "badge--warning" },
  none: { label: "Not in your care", badge: "" },
};

function resultRow(p) {
  const access = ACCESS[p.access];
  const open = h("button", { type: "button", class: "button button--secondary button--small" },
    "Open chart", h("span", { class: "visually-hidden", text: ` of ${p.name}` }));
  open.addEventListener("click", () => openChart(p));
  return h("tr", {},
    h("th", { scope: "row", text: p.name }),
    h("td", { text: formatDate(p.birth_date) }),
    h("td", { text: p.mrn || "—" }),
    h("td", { text: p.city || "—" }),
    h("td", {}, h("span", { class: `badge ${access.badge}`, text: access.label })),
    h("td", {}, open));
}

async function search(data) {
  const query = { q: data.q || "", birth_date: data.birth_date || undefined };
  const found = await get("/console/patients", { query });
  if (!found.length) {
    replaceChildren($("results"), h("p", { class: "empty-state", text: "No patient of the clinic matches." }));
    return;
  }
  replaceChildren($("results"), h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { text: `${found.length} ${found.length === 1 ? "patient" : "patients"} found` }),
    h("thead", {}, h("tr", {}, ["Name", "Born", "MRN", "Town", "Access", ""].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, found.map(resultRow)))));
}

function section(title, items, empty) {
  return h("div", { class: "chart-section" }, h("h3", { text: title }),
    items.length ? h("ul", { class: "plain-list" }, items) : h("p", { class: "muted", text: empty }));
}

function renderChart(chart) {
  const rec = chart.record;
  const p = rec.patient;
  const labs = chart.labs.slice(0, 12).map((t) => {
    const r = t.latest;
    const value = r.value !== null && r.value !== undefined ? `${r.value}${t.unit ? ` ${t.unit}` : ""}` : r.value_text || "—";
    return h("li", {}, `${t.display}: ${value}`, r.flag_label ? h("span", { class: "badge badge--warning", text: r.flag_label }) : null,
      r.effective_at ? [" · ", timeElement(r.effective_at)] : null,
      chart.held_ids.includes(r.id) ? h("span", { class: "badge", text: "Held for review" }) : null);
  });
  $("chart-heading").textContent = `Chart: ${p.name}`;
  replaceChildren($("chart-body"),
    h("p", { class: "lead" }, `Born ${formatDate(p.birth_date)}`, p.gender ? ` · ${p.gender}` : "", p.mrn ? ` · MRN ${p.mrn}` : ""),
    chart.access === "cross_cover" ? notice("warning", h("p", { text: "Opened under your cross-cover reason. This access is recorded and expires." })) : null,
    section("Active problems", rec.conditions.active.map((c) => h("li", { text: c.display })), "None on file."),
    section("Active medications", rec.medications.active.map((m) => h("li", {}, m.display,
      m.dosage ? h("span", { class: "muted", text: ` — ${m.dosage}` }) : null)), "None on file."),
    section("Allergies", rec.allergies.map((a) => h("li", {}, a.display, a.criticality === "high" ? h("span", { class: "badge badge--danger", text: "High risk" }) : null)), "No known allergies on file."),
    section("Latest lab results", labs, "No lab results on file."),
    section("Recent visits", rec.visits.slice(0, 5).map((v) => h("li", {}, v.start ? timeElement(v.start) : "Date unknown",
      ` · ${v.type || "Visit"}${v.practitioner ? ` with ${v.practitioner}` : ""}${v.reason ? ` (${v.reason})` : ""}`)), "No visits on file."));
}

function crossCoverForm(patient) {
  const form = h("form", { novalidate: true, id: "cross-cover-form" },
    h("div", { class: "alert alert--error", role: "alert", "data-form-alert": true }),
    notice("info", h("p", { text: `${patient.name} is not in your care. To open the chart, say why you need it, for example that you are covering for a colleague. Your reason is recorded with every look at this chart.` })),
    h("div", { class: "field" },
      h("label", { for: "reason", text: "Cross-cover reason" }),
      h("textarea", { id: "reason", name: "reason", rows: "2", maxlength: "500", required: true,
        "data-required-message": "Give the reason you need this chart." })),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button", text: "Open chart" })));
  handleSubmit(form, async (data) => {
    await post(`/console/patients/${patient.id}/cross-cover`, { reason: data.reason });
    await openChart(patient);
  });
  return form;
}

async function openChart(patient) {
  $("chart").hidden = false;
  $("chart-heading").textContent = `Chart: ${patient.name}`;
  replaceChildren($("chart-body"), h("p", { class: "loading", role: "status", text: "Loading the chart…" }));
  try {
    renderChart(await get(`/console/patients/${patient.id}/chart`));
  } catch (error) {
    if (error instanceof ApiError && error.code === "cross_cover_required") {
      replaceChildren($("chart-body"), crossCoverForm(patient));
    } else {
      replaceChildren($("chart-body"), notice("error", h("p", { text: `Could not open the chart. ${error.message}` })));
    }
  }
  focusElement($("chart"));
}

const session = await initConsole({ roles: ["provider"] });
if (session) {
  const form = $("search-form");
  handleSubmit(form, search, {
    validate: (f) => {
      const q = f.elements.namedItem("q").value.trim();
      const born = f.elements.namedItem("birth_date").value;
      return q.length >= 2 || born ? [] : [{ field: "q", message: "Enter at least two letters of a name, an MRN or a date of birth." }];
    },
  });
  const q = param("q");
  if (q) {
    $("q").value = q;
    form.requestSubmit();
  }
}
