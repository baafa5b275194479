// /app/notifications.html (Account Settings › Notifications): which news reaches the
// person by email and by text message.

import { put } from "../api.js";
import { $, h, replaceChildren } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { confirmSaved, loadAccountPage, showSections } from "../settings.js";

const NOTIFICATION_LABELS = {
  appointment_reminders: "Appointment reminders",
  new_messages: "New messages",
  lab_results: "New test results",
  refill_updates: "Prescription refill updates",
};

let account = null;

function humanize(key) {
  const text = String(key).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function renderNotifications() {
  const prefs = account.notifications || {};
  const known = Object.keys(NOTIFICATION_LABELS).filter((k) => k in prefs);
  const extra = Object.keys(prefs).filter((k) => !(k in NOTIFICATION_LABELS));
  const rows = [...known, ...extra].map((kind) => {
    const label = NOTIFICATION_LABELS[kind] || humanize(kind);
    const cell = (channel, channelLabel) => {
      const id = `notify-${kind}-${channel}`;
      return h(
        "td",
        { class: "center" },
        h("input", {
          type: "checkbox",
          id,
          name: `${kind}.${channel}`,
          checked: Boolean(prefs[kind] && prefs[kind][channel]),
        }),
        h("label", { for: id, class: "visually-hidden", text: `${label} by ${channelLabel}` }),
      );
    };
    return h("tr", {}, h("th", { scope: "row", text: label }), cell("email", "email"), cell("sms", "text message"));
  });
  replaceChildren($("#notifications-body"), rows);
  $("#sms-hint").hidden = Boolean(account.phone);
}

async function main() {
  account = await loadAccountPage();
  if (!account) return;
  renderNotifications();
  handleSubmit($("#notifications-form"), async (data) => {
    account = await put("/account/notifications", data);
    renderNotifications();
    confirmSaved("Notification preferences saved.");
  });
  showSections();
}

main();
