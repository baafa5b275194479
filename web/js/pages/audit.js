// /admin/audit.html: filter form, results table, and Newer / Older paging by before_id.

import { get } from "../api.js";
import { $, h, replaceChildren, focusElement, timeElement } from "../dom.js";
import { handleSubmit, serializeForm } from "../forms.js";
import { initPortal, withLoading } from "../portal.js";

const form = $("#audit-filter");
const results = $("#audit-results");
const pager = $("#audit-pager");
const older = $("#audit-older");
const newer = $("#audit-newer");
const pageStatus = $("#audit-page-status");

let filters = {};
// before_id of each page shown so far; [null] is the newest page.
let pages = [null];
let nextBeforeId = null;

/** datetime-local (viewer's zone) -> ISO 8601 UTC. */
function toIso(local) {
  if (!local) return undefined;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function outcomeBadge(outcome) {
  const kind = { success: "badge--success", failure: "badge--danger", denied: "badge--warning" }[outcome] || "";
  return h("span", { class: `badge ${kind}`, text: outcome || "—" });
}

function row(entry) {
  const actor = entry.actor_username
    ? [entry.actor_username, entry.actor_id ? h("span", { class: "muted small", text: ` (${entry.actor_id})` }) : null]
    : entry.actor_id || "—";
  return h(
    "tr",
    {},
    h("td", { class: "nowrap" }, timeElement(entry.at)),
    h("td", {}, actor),
    h("td", { class: "mono", text: entry.patient_id ?? "—" }),
    h("td", { class: "mono", text: entry.action || "" }),
    h("td", { class: "mono", text: entry.resource || "—" }),
    h("td", {}, outcomeBadge(entry.outcome)),
    h("td", { class: "mono small", text: entry.request_id || "—" }),
    h("td", { class: "mono small", text: entry.ip || "—" }),
  );
}

function table(rows) {
  return h(
    "div",
    { class: "table-wrap table-wrap--wide", role: "region", "aria-labelledby": "results-heading", tabindex: "0" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden", text: "Audit log entries, newest first" }),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Time", "Actor", "Patient", "Action", "Resource", "Outcome", "Request ID", "IP address"].map((label) =>
            h("th", { scope: "col", text: label }),
          ),
        ),
      ),
      h("tbody", {}, rows.map(row)),
    ),
  );
}

async function load({ focusResults = false } = {}) {
  const beforeId = pages[pages.length - 1];
  let reply;
  try {
    reply = await withLoading(results, "audit entries", () =>
      get("/admin/audit", { query: { ...filters, before_id: beforeId ?? undefined } }),
    );
  } catch {
    pager.hidden = true;
    return;
  }
  const rows = Array.isArray(reply && reply.rows) ? reply.rows : [];
  nextBeforeId = reply ? reply.next_before_id ?? null : null;
  replaceChildren(results, rows.length ? table(rows) : h("p", { text: "No entries match these filters." }));
  pager.hidden = !rows.length && pages.length === 1;
  older.disabled = nextBeforeId === null;
  newer.disabled = pages.length === 1;
  pageStatus.textContent = rows.length ? `Page ${pages.length}, ${rows.length} entries.` : "";
  if (focusResults) focusElement($("#results-heading"));
}

function readFilters() {
  const data = serializeForm(form);
  return {
    actor: data.actor || undefined,
    patient_id: data.patient_id || undefined,
    action: data.action || undefined,
    outcome: data.outcome || undefined,
    since: toIso(data.since),
    until: toIso(data.until),
    limit: data.limit || undefined,
  };
}

const session = await initPortal({ roles: ["admin"] });
if (session) {
  handleSubmit(form, async () => {
    filters = readFilters();
    pages = [null];
    await load({ focusResults: true });
  });
  form.addEventListener("reset", () => {
    window.setTimeout(() => {
      filters = readFilters();
      pages = [null];
      load();
    }, 0);
  });
  older.addEventListener("click", () => {
    if (nextBeforeId === null) return;
    pages.push(nextBeforeId);
    load({ focusResults: true });
  });
  newer.addEventListener("click", () => {
    if (pages.length > 1) pages.pop();
    load({ focusResults: true });
  });
  filters = readFilters();
  load();
}
