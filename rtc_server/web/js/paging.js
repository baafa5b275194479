// A filtered list read a page at a time, newest first, with Newer / Older buttons: the admin
// pages' shape. The endpoint answers {rows, next_before_id}; each page shown is remembered by
// the before_id that fetched it, so Newer goes back without the server keeping any state.

import { get } from "./api.js";
import { $, h, replaceChildren, focusElement } from "./dom.js";
import { handleSubmit, serializeForm } from "./forms.js";
import { withLoading } from "./portal.js";

/** A scrollable results table labelled by #results-heading: one header row, one row per item. */
export function resultsTable({ caption, columns, items, row }) {
  return h(
    "div",
    { class: "table-wrap table-wrap--wide", role: "region", "aria-labelledby": "results-heading", tabindex: "0" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden", text: caption }),
      h("thead", {}, h("tr", {}, columns.map((label) => h("th", { scope: "col", text: label })))),
      h("tbody", {}, items.map(row)),
    ),
  );
}

/**
 * Wire a filter form, a results area and its pager to a list endpoint, and show the first page.
 *
 * - `elements`: { form, results, pager, older, newer, pageStatus }
 * - `path`: the API path; `readFilters(formData)` gives its query (without before_id)
 * - `what`: what is loading, for the busy message ("audit entries")
 * - `render(items)`: the results for a non-empty page; `empty`: the text for no results
 * - `status(count)`: the page status text after "Page N, "
 * - `onSubmit()`: optional, runs when the form is submitted, before the first page loads
 */
export function pagedList({ elements, path, readFilters, what, render, empty, status, onSubmit }) {
  const { form, results, pager, older, newer, pageStatus } = elements;
  let filters = {};
  // before_id of each page shown so far; [null] is the newest page.
  let pages = [null];
  let nextBeforeId = null;

  function restart() {
    filters = readFilters(serializeForm(form));
    pages = [null];
  }

  async function load({ focusResults = false } = {}) {
    const beforeId = pages[pages.length - 1];
    let reply;
    try {
      reply = await withLoading(results, what, () =>
        get(path, { query: { ...filters, before_id: beforeId ?? undefined } }),
      );
    } catch {
      pager.hidden = true;
      return;
    }
    const items = Array.isArray(reply && reply.rows) ? reply.rows : [];
    nextBeforeId = reply ? reply.next_before_id ?? null : null;
    replaceChildren(results, items.length ? render(items) : h("p", { text: empty }));
    pager.hidden = !items.length && pages.length === 1;
    older.disabled = nextBeforeId === null;
    newer.disabled = pages.length === 1;
    pageStatus.textContent = items.length ? `Page ${pages.length}, ${status(items.length)}` : "";
    if (focusResults) focusElement($("#results-heading"));
  }

  handleSubmit(form, async () => {
    restart();
    if (onSubmit) onSubmit();
    await load({ focusResults: true });
  });
  form.addEventListener("reset", () => {
    window.setTimeout(() => {
      restart();
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
  restart();
  load();
}
