// /app/account.html (Account Settings): contact info, username, password, security
// question, notification preferences, active sessions and two-factor authentication.

import { get, post, patch, put, del, ApiError } from "../api.js";
import { $, $$, h, replaceChildren, focusElement, notice, timeElement, announce } from "../dom.js";
import { handleSubmit, passwordsMatch, setFormStatus } from "../forms.js";
import { runMfaEnrolment } from "../mfa.js";
import { showPasswordPolicy } from "../password.js";
import { initPortal, withLoading } from "../portal.js";
import { wireSecurityQuestion } from "../security-question.js";

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
  const form = $("#contact-form");
  try {
    account = await patch("/account/contact", { email: account.email });
  } catch (error) {
    button.disabled = false;
    setFormStatus(form, "");
    const box = notice("error", h("p", { text: `Could not cancel the change. ${error.message}` }));
    box.setAttribute("role", "alert");
    $("#pending-email").append(box);
    return;
  }
  renderContact();
  setFormStatus(form, "The email change was cancelled; its confirmation link no longer works.");
  focusElement($("#contact-heading"));
}

function renderContact() {
  const form = $("#contact-form");
  form.elements.namedItem("email").value = account.email || "";
  form.elements.namedItem("phone").value = account.phone || "";
  const address = account.address || {};
  for (const key of ["line", "city", "state", "zip"]) {
    form.elements.namedItem(`address.${key}`).value = address[key] || "";
  }
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
  $("#sms-hint").hidden = Boolean(account.phone);
  syncContactPassword();
}

function wireContact() {
  const form = $("#contact-form");
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
    setFormStatus(
      form,
      emailChanged
        ? `Contact information saved. Check ${data.email} for a link to confirm the new address.`
        : cancelling
          ? "Contact information saved. The email change was cancelled."
          : "Contact information saved.",
    );
  });
}

/* ---------- Username ---------- */

function wireUsername() {
  const form = $("#username-form");
  handleSubmit(form, async (data) => {
    account = await post("/account/username", data);
    $("#current-username").textContent = account.username || data.username;
    form.reset();
    setFormStatus(form, "Username changed. Use your new username the next time you log in.");
  });
}

/* ---------- Password ---------- */

function wirePassword() {
  const form = $("#password-form");
  showPasswordPolicy($("#password-rules"), [$("#password-new"), $("#password-confirm")]);
  handleSubmit(
    form,
    async (data) => {
      await post("/account/password", data);
      form.reset();
      setFormStatus(form, "Password changed. Any other sessions on your account were signed out.");
      loadSessions();
    },
    {
      validate: (f) => passwordsMatch(f, "new_password", "password_confirm"),
      aliases: { password: "new_password" },
    },
  );
}

/* ---------- Security question ---------- */

function wireQuestion() {
  const form = $("#question-form");
  const withQuestion = wireSecurityQuestion(form);
  handleSubmit(
    form,
    async (data) => {
      const body = withQuestion(data);
      await post("/account/security-question", body);
      account.security_question = body.security_question;
      $("#current-question").textContent = body.security_question;
      form.reset();
      form.elements.namedItem("security_question").dispatchEvent(new Event("change"));
      setFormStatus(form, "Security question saved.");
    },
    { aliases: { security_question_custom: "security_question" } },
  );
}

/* ---------- Notifications ---------- */

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
}

function wireNotifications() {
  const form = $("#notifications-form");
  handleSubmit(form, async (data) => {
    account = await put("/account/notifications", data);
    renderNotifications();
    setFormStatus(form, "Notification preferences saved.");
  });
}

/* ---------- Sessions ---------- */

function describeAgent(ua) {
  if (!ua) return "Unknown browser";
  const browser =
    (/Edg\//.test(ua) && "Edge") ||
    (/OPR\//.test(ua) && "Opera") ||
    (/Firefox\//.test(ua) && "Firefox") ||
    (/Chrome\//.test(ua) && "Chrome") ||
    (/Safari\//.test(ua) && "Safari") ||
    null;
  const os =
    (/iPhone|iPad|iPod/.test(ua) && "iOS") ||
    (/Android/.test(ua) && "Android") ||
    (/Windows/.test(ua) && "Windows") ||
    (/Mac OS X|Macintosh/.test(ua) && "macOS") ||
    (/CrOS/.test(ua) && "ChromeOS") ||
    (/Linux/.test(ua) && "Linux") ||
    null;
  if (browser && os) return `${browser} on ${os}`;
  return browser || os || ua.slice(0, 60);
}

function sessionItem(item) {
  const device = describeAgent(item.user_agent);
  const details = h(
    "div",
    {},
    h(
      "p",
      {},
      h("strong", { text: device }),
      item.current ? [" ", h("span", { class: "badge badge--success", text: "This device" })] : null,
    ),
    h(
      "p",
      { class: "muted small" },
      item.ip ? `IP address ${item.ip} · ` : "",
      "Signed in ",
      timeElement(item.created_at),
      " · Last active ",
      timeElement(item.last_seen_at),
    ),
  );
  const li = h("li", { "data-session-id": item.id }, details);
  if (item.current) {
    li.append(h("p", { class: "muted small", text: "To end this session, log out." }));
  } else {
    const button = h("button", {
      type: "button",
      class: "button button--secondary button--small",
      text: "End session",
      "aria-label": `End session: ${device}`,
    });
    button.addEventListener("click", () => endSession(item, li, button));
    li.append(button);
  }
  return li;
}

async function endSession(item, li, button) {
  button.disabled = true;
  try {
    await del(`/account/sessions/${encodeURIComponent(item.id)}`);
  } catch (error) {
    button.disabled = false;
    if (!(error instanceof ApiError && error.status === 404)) {
      const box = notice("error", h("p", { text: `Could not end the session. ${error.message}` }));
      box.setAttribute("role", "alert");
      li.append(box);
      return;
    }
  }
  const sibling = li.nextElementSibling || li.previousElementSibling;
  li.remove();
  announce(`Session on ${describeAgent(item.user_agent)} ended.`);
  const target = sibling && sibling.querySelector("button");
  focusElement(target || $("#sessions-heading"));
}

async function loadSessions() {
  const box = $("#sessions-list");
  let items;
  try {
    items = await withLoading(box, "sessions", () => get("/account/sessions"));
  } catch {
    return;
  }
  const list = Array.isArray(items) ? items : [];
  list.sort((a, b) => Number(b.current) - Number(a.current));
  replaceChildren(box, list.length ? h("ul", { class: "session-list" }, list.map(sessionItem)) : h("p", { text: "No active sessions." }));
}

/* ---------- Two-factor ---------- */

function renderMfa({ focus = false } = {}) {
  const body = $("#mfa-body");
  const heading = $("#mfa-heading");
  if (account.mfa_enabled) {
    const parts = [
      h("p", {}, h("span", { class: "badge badge--success", text: "On" }), " You enter a code from your authenticator app when you log in."),
    ];
    if (account.mfa_required || account.role !== "patient") {
      parts.push(h("p", { class: "muted", text: "Two-factor authentication is required for your role and can't be turned off." }));
    } else {
      parts.push(disableForm());
    }
    replaceChildren(body, parts);
  } else {
    const button = h("button", { type: "button", class: "button", text: "Turn on two-factor authentication" });
    button.addEventListener("click", () => {
      const holder = h("div");
      replaceChildren(body, holder);
      runMfaEnrolment(holder, {
        headingLevel: "h3",
        askPassword: true,
        onCancel: () => renderMfa({ focus: true }),
        onDone: () => {
          account.mfa_enabled = true;
          renderMfa({ focus: true });
          announce("Two-factor authentication is on.");
        },
      });
    });
    replaceChildren(
      body,
      h("p", {}, h("span", { class: "badge", text: "Off" }), " Add a second step to logging in: a code from an app on your phone. It keeps your record safe even if someone learns your password."),
      button,
    );
  }
  if (focus) focusElement(heading);
}

function disableForm() {
  const form = h(
    "form",
    { id: "mfa-disable-form" },
    h("h3", { text: "Turn off two-factor authentication" }),
    h(
      "div",
      { class: "field" },
      h("label", { for: "mfa-disable-password", text: "Current password" }),
      h("input", { id: "mfa-disable-password", name: "current_password", type: "password", autocomplete: "current-password", required: true }),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "mfa-disable-code", text: "Code from your authenticator app" }),
      h("input", {
        id: "mfa-disable-code",
        name: "code",
        type: "text",
        inputmode: "numeric",
        autocomplete: "one-time-code",
        required: true,
        maxlength: "32",
      }),
    ),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "button button--danger", text: "Turn off two-factor authentication" })),
  );
  handleSubmit(
    form,
    async (data) => {
      await post("/account/mfa/disable", { current_password: data.current_password, code: data.code.replace(/\s+/g, "") });
      account.mfa_enabled = false;
      renderMfa({ focus: true });
      announce("Two-factor authentication is off.");
    },
    { fieldForCode: { invalid_code: "code" } },
  );
  return form;
}

/* ---------- Page ---------- */

async function main() {
  const session = await initPortal();
  if (!session) return;
  try {
    account = await withLoading($("#account-load"), "your account settings", () => get("/account"));
  } catch {
    return;
  }
  $("#current-username").textContent = account.username || "";
  $("#current-question").textContent = account.security_question || "Not set";
  renderContact();
  renderNotifications();
  renderMfa();
  wireContact();
  wireUsername();
  wirePassword();
  wireQuestion();
  wireNotifications();
  $("#sessions-refresh").addEventListener("click", loadSessions);
  for (const section of $$("#main-content > section")) section.hidden = false;
  loadSessions();
  if (window.location.hash) {
    const target = document.getElementById(window.location.hash.slice(1));
    if (target) target.scrollIntoView();
  }
}

main();
