// /app/security.html (Account Settings › Security): password, security question,
// two-factor authentication and the sessions signed in to the account.

import { get, post, del, ApiError } from "../api.js";
import { $, h, replaceChildren, focusElement, notice, timeElement, announce } from "../dom.js";
import { handleSubmit, passwordsMatch } from "../forms.js";
import { runMfaEnrolment } from "../mfa.js";
import { showPasswordPolicy } from "../password.js";
import { withLoading } from "../portal.js";
import { wireSecurityQuestion } from "../security-question.js";
import { confirmSaved, loadAccountPage, showSections } from "../settings.js";

let account = null;

/* ---------- Password ---------- */

function wirePassword() {
  const form = $("#password-form");
  showPasswordPolicy($("#password-rules"), [$("#password-new"), $("#password-confirm")]);
  handleSubmit(
    form,
    async (data) => {
      await post("/account/password", data);
      form.reset();
      confirmSaved("Password changed. Any other sessions on your account were signed out.");
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
      confirmSaved("Security question saved.");
    },
    { aliases: { security_question_custom: "security_question" } },
  );
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
  replaceChildren(
    box,
    list.length ? h("ul", { class: "session-list" }, list.map(sessionItem)) : h("p", { text: "No active sessions." }),
  );
}

/* ---------- Two-factor ---------- */

function renderMfa({ focus = false } = {}) {
  const body = $("#mfa-body");
  const heading = $("#mfa-heading");
  if (account.mfa_enabled) {
    const parts = [
      h(
        "p",
        {},
        h("span", { class: "badge badge--success", text: "On" }),
        " You enter a code from your authenticator app when you log in.",
      ),
    ];
    if (account.mfa_required || account.role !== "patient") {
      parts.push(
        h("p", { class: "muted", text: "Two-factor authentication is required for your role and can't be turned off." }),
      );
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
          renderMfa();
          confirmSaved("Two-factor authentication is on.", { focus: true });
        },
      });
    });
    replaceChildren(
      body,
      h(
        "p",
        {},
        h("span", { class: "badge", text: "Off" }),
        " Add a second step to logging in: a code from an app on your phone. It keeps your record safe even if someone learns your password.",
      ),
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
      h("input", {
        id: "mfa-disable-password",
        name: "current_password",
        type: "password",
        autocomplete: "current-password",
        required: true,
      }),
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
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "submit", class: "button button--danger", text: "Turn off two-factor authentication" }),
    ),
  );
  handleSubmit(
    form,
    async (data) => {
      await post("/account/mfa/disable", {
        current_password: data.current_password,
        code: data.code.replace(/\s+/g, ""),
      });
      account.mfa_enabled = false;
      renderMfa();
      confirmSaved("Two-factor authentication is off.", { focus: true });
    },
    { fieldForCode: { invalid_code: "code" } },
  );
  return form;
}

/* ---------- Page ---------- */

async function main() {
  account = await loadAccountPage();
  if (!account) return;
  $("#current-question").textContent = account.security_question || "Not set";
  renderMfa();
  wirePassword();
  wireQuestion();
  $("#sessions-refresh").addEventListener("click", loadSessions);
  showSections();
  loadSessions();
  if (window.location.hash) {
    const target = document.getElementById(window.location.hash.slice(1));
    if (target) target.scrollIntoView();
  }
}

main();
