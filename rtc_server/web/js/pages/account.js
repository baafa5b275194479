// /app/account.html (Account Settings): summary cards. Contact information and the
// username open an edit form in place; Security and Notifications have their own pages.

import { patch, post, put } from "../api.js";
import { $, h, replaceChildren, focusElement, notice } from "../dom.js";
import { clearErrors, handleSubmit } from "../forms.js";
import { clearSaved, confirmSaved, loadAccountPage, showSections } from "../settings.js";
import { clinicInfo } from "../shell.js";
import { deviceZone, knownZones, useZone, zoneLabel } from "../zone.js";

const NOTIFICATION_LABELS = {
  appointment_reminders: "Appointment reminders",
  new_messages: "New messages",
  lab_results: "New test results",
  refill_updates: "Prescription refill updates",
};

/** Old links to the one long page (…/account.html#mfa) go to where the section is now. */
const MOVED = {
  "#password-section": "/app/security.html#password-section",
  "#question-section": "/app/security.html#question-section",
  "#mfa": "/app/security.html#mfa",
  "#sessions": "/app/security.html#sessions",
  "#notifications": "/app/notifications.html",
};

let account = null;

/* ---------- Edit in place ---------- */

/** Wire an Edit button to the form it opens; returns close(). */
function editable(button, form, { onOpen }) {
  const summary = form.parentElement.querySelector(".summary");
  const setOpen = (open) => {
    form.hidden = !open;
    if (summary) summary.hidden = open;
    button.hidden = open;
    button.setAttribute("aria-expanded", String(open));
  };
  button.addEventListener("click", () => {
    clearSaved();
    onOpen();
    clearErrors(form);
    setOpen(true);
    const first = Array.from(form.elements).find((el) => !el.disabled && el.type !== "hidden");
    focusElement(first);
  });
  form.querySelector("[data-cancel-edit]").addEventListener("click", () => {
    setOpen(false);
    focusElement(button);
  });
  return () => setOpen(false);
}

/* ---------- Contact information ---------- */

function sameAddress(a, b) {
  return String(a || "").trim().toLowerCase() === String(b || "").trim().toLowerCase();
}

/** True when the email field holds an address that needs the password (a new one). */
function emailChanging() {
  const value = $("#contact-email").value.trim();
  return Boolean(value) && !sameAddress(value, account.email) && !sameAddress(value, account.pending_email);
}

/** Show the "Current password" field only while the email is being changed. */
function syncContactPassword() {
  const input = $("#contact-password");
  const show = emailChanging();
  $("#contact-password-field").hidden = !show;
  input.disabled = !show;
  if (!show) input.value = "";
}

async function cancelEmailChange(button) {
  button.disabled = true;
  try {
    account = await patch("/account/contact", { email: account.email });
  } catch (error) {
    button.disabled = false;
    const box = notice("error", h("p", { text: `Could not cancel the change. ${error.message}` }));
    box.setAttribute("role", "alert");
    $("#pending-email").append(box);
    return;
  }
  renderContact();
  confirmSaved("The email change was cancelled; its confirmation link no longer works.", { focus: true });
}

function addressText(address) {
  const a = address || {};
  const cityLine = [a.city, [a.state, a.zip].filter(Boolean).join(" ")].filter(Boolean).join(", ");
  return [a.line, cityLine].filter(Boolean).join(", ");
}

function orNotSet(value) {
  return value ? value : h("span", { class: "muted", text: "Not set" });
}

function fillContactForm() {
  const form = $("#contact-form");
  form.elements.namedItem("email").value = account.email || "";
  form.elements.namedItem("phone").value = account.phone || "";
  const address = account.address || {};
  for (const key of ["line", "city", "state", "zip"]) {
    form.elements.namedItem(`address.${key}`).value = address[key] || "";
  }
  syncContactPassword();
}

function renderContact() {
  replaceChildren($("#summary-email"), orNotSet(account.email));
  replaceChildren($("#summary-phone"), orNotSet(account.phone));
  replaceChildren($("#summary-address"), orNotSet(addressText(account.address)));
  const pending = $("#pending-email");
  if (account.pending_email) {
    const cancel = h("button", {
      type: "button",
      class: "button button--secondary button--small",
      text: "Cancel email change",
    });
    cancel.addEventListener("click", () => cancelEmailChange(cancel));
    replaceChildren(
      pending,
      notice(
        "info",
        h(
          "p",
          {},
          "We sent a confirmation link to ",
          h("strong", { text: account.pending_email }),
          ". Your email address changes to it when you follow that link. Until then we keep using ",
          h("strong", { text: account.email || "your current address" }),
          ".",
        ),
        h("p", {}, cancel),
      ),
    );
  } else {
    pending.replaceChildren();
  }
  fillContactForm();
}

function wireContact() {
  const form = $("#contact-form");
  const close = editable($("#contact-edit"), form, { onOpen: fillContactForm });
  $("#contact-email").addEventListener("input", syncContactPassword);
  handleSubmit(form, async (data) => {
    const body = { phone: data.phone || null, address: data.address };
    const emailChanged = emailChanging();
    // The current address again while a change is pending cancels that change.
    const cancelling = Boolean(account.pending_email) && sameAddress(data.email, account.email);
    if (emailChanged) {
      body.email = data.email;
      body.current_password = data.current_password;
    } else if (cancelling) {
      body.email = account.email;
    }
    account = await patch("/account/contact", body);
    renderContact();
    close();
    confirmSaved(
      emailChanged
        ? `Contact information saved. Check ${data.email} for a link to confirm the new address.`
        : cancelling
          ? "Contact information saved. The email change was cancelled."
          : "Contact information saved.",
      { focus: true },
    );
  });
}

/* ---------- Username ---------- */

function wireUsername() {
  const form = $("#username-form");
  const close = editable($("#username-edit"), form, { onOpen: () => form.reset() });
  handleSubmit(form, async (data) => {
    account = await post("/account/username", data);
    $("#current-username").textContent = account.username || data.username;
    form.reset();
    close();
    confirmSaved("Username changed. Use your new username the next time you log in.", { focus: true });
  });
}

/* ---------- Time zone ---------- */

function renderZone() {
  const select = $("#time-zone");
  const options = [h("option", { value: "", text: `This device's time zone: ${zoneLabel(deviceZone())}` })];
  const zones = knownZones();
  if (account.time_zone && !zones.includes(account.time_zone)) zones.push(account.time_zone);
  for (const name of zones) options.push(h("option", { value: name, text: name.replace(/_/g, " ") }));
  replaceChildren(select, ...options);
  select.value = account.time_zone || "";
  $("#zone-current").textContent = account.time_zone
    ? `Times are shown in ${zoneLabel(account.time_zone)}.`
    : `Times are shown in this device's time zone, ${zoneLabel(deviceZone())}.`;
}

function wireZone() {
  clinicInfo().then((clinic) => {
    if (clinic && clinic.timezone) $("#clinic-zone").textContent = zoneLabel(clinic.timezone);
  }).catch(() => {});
  handleSubmit($("#zone-form"), async (data) => {
    account = await put("/account/time-zone", { time_zone: data.time_zone || null });
    useZone(account.time_zone);
    renderZone();
    confirmSaved(account.time_zone
      ? `Time zone saved: times are shown in ${zoneLabel(account.time_zone)}.`
      : "Time zone saved: times follow this device's time zone.");
  });
}

/* ---------- Summaries of the other pages ---------- */

function renderSummaries() {
  replaceChildren($("#summary-question"), account.security_question ? "Set" : orNotSet(null));
  replaceChildren(
    $("#summary-mfa"),
    account.mfa_enabled
      ? h("span", { class: "badge badge--success", text: "On" })
      : h("span", { class: "badge", text: "Off" }),
  );
  const prefs = account.notifications || {};
  for (const channel of ["email", "sms"]) {
    const on = Object.keys(prefs)
      .filter((kind) => prefs[kind] && prefs[kind][channel])
      .map((kind) => NOTIFICATION_LABELS[kind] || kind.replace(/_/g, " "));
    replaceChildren(
      $(`#summary-notify-${channel}`),
      on.length ? on.join(", ") : h("span", { class: "muted", text: "None" }),
    );
  }
}

/* ---------- Page ---------- */

async function main() {
  const moved = MOVED[window.location.hash];
  if (moved) {
    window.location.replace(moved);
    return;
  }
  account = await loadAccountPage();
  if (!account) return;
  $("#current-username").textContent = account.username || "";
  renderContact();
  renderSummaries();
  renderZone();
  wireContact();
  wireUsername();
  wireZone();
  showSections();
}

main();
