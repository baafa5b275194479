// /app/records-print.html: the whole record (released results included, with every value)
// as plain tables for printing or saving as PDF. Navigation is hidden when printed.

import { initPortal, withLoading } from "../portal.js";
import { get } from "../api.js";
import { h, replaceChildren } from "../dom.js";
import { formatValue } from "../chart.js";
import { clinicInfo } from "../shell.js";

const $ = (id) => document.getElementById(id);
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

function day(iso) {
  return iso ? dateFormat.format(new Date(iso)) : "—";
}

function table(caption, headings, rows, emptyText) {
  const section = h("section", {}, h("h2", { text: caption }));
  if (!rows.length) {
    section.append(h("p", { text: emptyText }));
    return section;
  }
  // Focusable and named, so a table wider than a phone can be scrolled with the keyboard.
  section.append(h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption }, h("table", {},
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => (i === 0 ? h("th", { scope: "row", text: c }) : h("td", { text: c })))))),
  )));
  return section;
}

function value(r) {
  if (typeof r.value === "number") return r.unit ? `${formatValue(r.value)} ${r.unit}` : formatValue(r.value);
  return r.value_text || "—";
}

function render(rec, labs, clinic) {
  const p = rec.patient;
  const labRows = [];
  for (const test of labs.tests) {
    for (const point of [...test.history].reverse()) {
      labRows.push([test.display, day(point.effective_at),
        typeof point.value === "number" ? (test.unit ? `${formatValue(point.value)} ${test.unit}` : formatValue(point.value)) : value(test.latest),
        test.latest.reference_range || "—", point.flag ? "Outside the reference range" : ""]);
    }
  }
  replaceChildren($("print-body"),
    h("dl", { class: "summary" },
      h("dt", { text: "Name" }), h("dd", { text: p.name }),
      h("dt", { text: "Date of birth" }), h("dd", { text: dateFormat.format(new Date(`${p.birth_date}T12:00:00`)) }),
      p.mrn ? [h("dt", { text: "Medical record number" }), h("dd", { text: p.mrn })] : null,
      h("dt", { text: "Clinic" }), h("dd", { text: clinic ? clinic.name : "Your clinic" }),
      h("dt", { text: "Printed" }), h("dd", { text: new Intl.DateTimeFormat(undefined, { dateStyle: "long", timeStyle: "short" }).format(new Date()) }),
    ),
    table("Active diagnoses", ["Diagnosis", "Since"], rec.conditions.active.map((c) => [c.display, day(c.onset_at)]), "None on file."),
    table("Resolved diagnoses", ["Diagnosis", "Since", "Resolved"], rec.conditions.resolved.map((c) => [c.display, day(c.onset_at), day(c.resolved_at)]), "None on file."),
    table("Active medications", ["Medication", "How to take it", "Prescribed"], rec.medications.active.map((m) => [m.display, m.dosage || "—", day(m.authored_at)]), "None on file."),
    table("Past medications", ["Medication", "How it was taken", "Status"], rec.medications.past.map((m) => [m.display, m.dosage || "—", m.status || "—"]), "None on file."),
    table("Allergies", ["Allergy", "Reaction", "Risk"], rec.allergies.map((a) => [a.display, a.reactions.join(", ") || "—", a.criticality || "—"]), "None on file."),
    table("Immunizations", ["Vaccine", "Date"], rec.immunizations.map((i) => [i.display, day(i.occurred_at)]), "None on file."),
    table("Treatment plans", ["Plan", "Activities", "Status"], rec.care_plans.map((c) => [c.title, c.activities.map((a) => a.display).join("; ") || "—", c.status || "—"]), "None on file."),
    table("Test results", ["Test", "Date", "Result", "Reference range", "Flag"], labRows, "No results on file."),
    table("Past visits", ["Date", "Visit", "With", "Reason"], rec.visits.map((v) => [day(v.start), v.type || "Visit", v.practitioner || "—", v.reason || "—"]), "None on file."),
  );
}

const session = await initPortal({ roles: ["patient"] });
if (session) {
  $("print").addEventListener("click", () => window.print());
  const [rec, labs, clinic] = await withLoading($("print-load"), "your record", () =>
    Promise.all([get("/records"), get("/labs"), clinicInfo()]));
  render(rec, labs, clinic);
}
