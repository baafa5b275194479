// /console/results.html: a provider's held results to review and release (with an optional
// note for the patient), and the clinic's list of tests held for review (providers and
// admins). The queue follows /ws/v1/events (lab_review). Text is inserted as text.

import { initPortal, withLoading } from "../portal.js";
import { get, post, put, del, ApiError } from "../api.js";
import { h, replaceChildren, focusElement, notice, uniqueId, announce } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { formatValue } from "../chart.js";

const $ = (id) => document.getElementById(id);
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const dobFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });

function setPageStatus(kind, text) {
  const area = $("page-status");
  replaceChildren(area, text ? notice(kind, h("p", { text })) : null);
  if (text) focusElement(area);
}

function valueText(item) {
  if (typeof item.value === "number") return item.unit ? `${formatValue(item.value)} ${item.unit}` : formatValue(item.value);
  return item.value_text || "—";
}

// --- the queue ----------------------------------------------------------------------

function reviewItem(item) {
  const noteId = uniqueId("note");
  const form = h("form", { novalidate: true },
    h("div", { class: "alert alert--error", role: "alert", "data-form-alert": true }),
    h("div", { class: "field" },
      h("label", { for: noteId, text: `Note for ${item.patient.name} (optional)` }),
      h("textarea", { id: noteId, name: "note", rows: "2", maxlength: "2000" })),
    h("div", { class: "form-actions" },
      h("button", { type: "submit", class: "button" }, "Release to patient",
        h("span", { class: "visually-hidden", text: `: ${item.display} for ${item.patient.name}` }))),
  );
  handleSubmit(form, async (data) => {
    await post(`/console/results/${item.id}/release`, { note: data.note || null });
    setPageStatus("success", `Released ${item.display} to ${item.patient.name}.`);
    await loadQueue();
  });
  return h("li", { class: "review-item", dataset: { resultId: String(item.id) } },
    h("h3", {}, `${item.patient.name}: ${item.display}`,
      item.access === "cross_cover" ? h("span", { class: "badge badge--warning", text: "Cross-cover" }) : null),
    h("dl", { class: "summary" },
      h("dt", { text: "Born" }), h("dd", { text: dobFormat.format(new Date(`${item.patient.birth_date}T00:00:00Z`)) }),
      h("dt", { text: "Result" }), h("dd", {}, h("strong", { text: valueText(item) }),
        item.flag ? [" ", h("span", { class: "badge badge--danger", text: item.flag_label || "Abnormal" })] : null),
      h("dt", { text: "Reference range" }), h("dd", { text: item.reference_range || "Not given" }),
      h("dt", { text: "Test date" }), h("dd", { text: item.effective_at ? dayFormat.format(new Date(item.effective_at)) : "—" }),
    ),
    form,
  );
}

let queueShown = null;
async function loadQueue() {
  const items = await get("/console/results");
  const list = $("queue-list");
  const ids = items.map((i) => i.id);
  if (queueShown !== null && ids.some((id) => !queueShown.includes(id))) announce("A result is waiting for your review.");
  queueShown = ids;
  replaceChildren(list, items.length
    ? h("ul", { class: "dash-list" }, items.map(reviewItem))
    : h("p", { class: "muted", text: "No results are waiting for your review." }));
}

function followEvents() {
  let delay = 1000;
  const connect = () => {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}/ws/v1/events`);
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame && frame.type === "ready") document.body.dataset.live = "on";
      const event = frame && frame.event;
      if (event && event.kind === "lab_review") loadQueue().catch(() => {});
    });
    socket.addEventListener("close", (closing) => {
      delete document.body.dataset.live;
      if (closing.code === 4401 || closing.code === 4403) return;
      delay = Math.min(delay * 2, 30000);
      window.setTimeout(connect, delay);
    });
    socket.addEventListener("open", () => {
      delay = 1000;
    });
  };
  connect();
}

// --- the hold list ----------------------------------------------------------------------

function renderHolds(data) {
  const list = $("holds-list");
  if (!data.holds.length) {
    replaceChildren(list, h("p", { class: "muted", text: "No tests are held: every result is released as soon as it arrives." }));
    return;
  }
  replaceChildren(list, h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "visually-hidden", text: "Tests held for review" }),
    h("thead", {}, h("tr", {}, ["Test", "LOINC code", "Reason shown to patients", "Action"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, data.holds.map((hold) => {
      const button = h("button", { type: "button", class: "button button--secondary button--small" },
        "Stop holding", h("span", { class: "visually-hidden", text: ` ${hold.display || hold.code}` }));
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await del(`/console/result-holds/${encodeURIComponent(hold.code)}`);
          setPageStatus("success", `Results of ${hold.display || hold.code} are released at once again.`);
          renderHolds(await get("/console/result-holds"));
        } catch (error) {
          button.disabled = false;
          setPageStatus("error", error instanceof ApiError ? error.message : "Something went wrong.");
        }
      });
      return h("tr", {}, h("th", { scope: "row", text: hold.display || hold.code }), h("td", { text: hold.code }),
        h("td", { text: hold.reason }), h("td", {}, button));
    })),
  )));
}

const session = await initPortal({ roles: ["provider", "admin"] });
if (session) {
  const isProvider = session.user.role === "provider";
  const [holds] = await withLoading($("results-load"), "lab results", () =>
    Promise.all([get("/console/result-holds"), isProvider ? loadQueue() : null]));
  renderHolds(holds);
  $("holds").hidden = false;
  if (isProvider) {
    $("queue").hidden = false;
    followEvents();
  }
  const form = $("hold-form");
  handleSubmit(form, async (data) => {
    const saved = await put("/console/result-holds", data);
    form.reset();
    setPageStatus("success", `Results of ${saved.display || saved.code} now wait for a clinician's review.`);
    renderHolds(await get("/console/result-holds"));
  });
}
