// /login.html: username + password, then (as the server asks) a second-factor code or a
// forced two-factor enrolment, then on to `next` or the role's start page.

import { get, post, ApiError } from "../api.js";
import { $, h, param, replaceChildren, focusElement, notice } from "../dom.js";
import { handleSubmit, setFormAlert } from "../forms.js";
import { runMfaEnrolment } from "../mfa.js";
import { afterLogin, safeNext } from "../session.js";
import "../shell.js";

const loginStep = $("#login-step");
const mfaStep = $("#mfa-step");
const enrolStep = $("#enrol-step");
const loginForm = $("#login-form");
const mfaForm = $("#mfa-form");
const next = param("next");

const heading = $("#main h1");
const registerLink = $("#header-register");

function showNotices() {
  const box = $("#login-notices");
  const items = [];
  const returning = Boolean(safeNext(next));
  if (param("expired") === "1") {
    const text = returning
      ? "Your session expired. Log in again to go back to the page you were on."
      : "Your session expired. Please log in again.";
    items.push(notice("info", h("p", { text })));
  } else if (returning && param("resume") !== "1") {
    items.push(notice("info", h("p", { text: "Please log in to continue to that page." })));
  }
  if (param("activated") === "1") {
    items.push(notice("success", h("p", { text: "Your account is active. Log in to continue." })));
  }
  if (param("reset") === "1") {
    items.push(notice("success", h("p", { text: "Your password has been changed. Log in with your new password." })));
  }
  if (items.length) {
    items[0].setAttribute("role", "status");
    replaceChildren(box, items);
  }
}

/** Show one step. Past the password the person has an account: no Register button,
 *  and two-factor set-up gets its own title instead of "Log in". */
function show(step) {
  for (const section of [loginStep, mfaStep, enrolStep]) section.hidden = section !== step;
  if (registerLink) registerLink.hidden = step !== loginStep;
  const title = step === enrolStep ? "Secure your account" : "Log in";
  heading.textContent = title;
  document.title = document.title.replace(/^[^·]*·/, `${title} ·`);
}

function finish(user) {
  window.location.assign(afterLogin(user, next));
}

async function finishFromSession() {
  try {
    const session = await get("/auth/session");
    finish(session.user);
  } catch {
    finish(null);
  }
}

function showMfa() {
  show(mfaStep);
  mfaForm.reset();
  focusElement($("#mfa-code"));
}

function showEnrolment() {
  show(enrolStep);
  const intro = notice(
    "info",
    h("p", {
      text: "Your account needs two-factor authentication. Set it up now to finish logging in.",
    }),
  );
  const holder = h("div");
  replaceChildren(enrolStep, intro, holder);
  runMfaEnrolment(holder, { onDone: finishFromSession, headingLevel: "h2", onCancel: startOver });
}

async function startOver() {
  try {
    await post("/auth/logout");
  } catch {
    // A partial session that is already gone is fine.
  }
  loginForm.reset();
  show(loginStep);
  focusElement($("#username"));
}

function route(reply) {
  const status = reply && reply.status;
  if (status === "ok") finish(reply.user);
  else if (status === "mfa_required") showMfa();
  else if (status === "mfa_enroll_required") showEnrolment();
  else throw new ApiError(500, "bad_response", "The server sent an unexpected reply. Please try again.");
}

handleSubmit(loginForm, async (data) => {
  try {
    route(await post("/auth/login", data));
  } catch (error) {
    loginForm.elements.namedItem("password").value = "";
    throw error;
  }
});

handleSubmit(
  mfaForm,
  async (data) => {
    const reply = await post("/auth/login/mfa", { code: data.code.replace(/\s+/g, "") });
    finish(reply && reply.user);
  },
  { fieldForCode: { invalid_code: "code" } },
);

mfaForm.querySelector("[data-start-over]").addEventListener("click", startOver);

/** Coming back from the portal with a half-finished login (stage mfa_pending / mfa_enroll). */
async function resume() {
  let session;
  try {
    session = await get("/auth/session");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      setFormAlert(loginForm, error.message);
    }
    return;
  }
  if (session.stage === "mfa_pending") showMfa();
  else if (session.stage === "mfa_enroll") showEnrolment();
  else if (session.stage === "full") finish(session.user);
}

showNotices();
if (param("resume") === "1") resume();
