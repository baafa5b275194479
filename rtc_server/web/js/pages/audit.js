// /admin/audit.html: filter form, results table, and Newer / Older paging by before_id.

import { $, h, timeElement } from "../dom.js";
import { pagedList, resultsTable } from "../paging.js";
import { initPortal } from "../portal.js";

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

function readFilters(data) {
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
  pagedList({
    elements: {
      form: $("#audit-filter"),
      results: $("#audit-results"),
      pager: $("#audit-pager"),
      older: $("#audit-older"),
      newer: $("#audit-newer"),
      pageStatus: $("#audit-page-status"),
    },
    path: "/admin/audit",
    readFilters,
    what: "audit entries",
    render: (entries) =>
      resultsTable({
        caption: "Audit log entries, newest first",
        columns: ["Time", "Actor", "Patient", "Action", "Resource", "Outcome", "Request ID", "IP address"],
        items: entries,
        row,
      }),
    empty: "No entries match these filters.",
    status: (count) => `${count} entries.`,
  });
}
