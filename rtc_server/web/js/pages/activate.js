// /activate.html?token=…: step two of signing up. POST /auth/activate/start says what the
// link needs; a new sign-up chooses its username (checked live with POST /auth/activate/check,
// which only a live link may ask), password and security question, then POST /auth/activate.
// Older sign-ups that already have a username activate with the link alone. Expired or
// unknown links offer POST /auth/activate/resend.

import { post, ApiError } from "../api.js";
import { $, h, param, forgetParams, replaceChildren, focusElement, notice } from "../dom.js";
import { handleSubmit, serializeForm } from "../forms.js";
import { wireSecurityQuestion } from "../security-question.js";
import {
  defaultRules,
  loadRules,
  usernameProblems,
  passwordProblems,
  normalizeAnswer,
  wireChecklist,
  wireShowPassword,
  onSubmit,
} from "./signup-checks.js";

const status = $("#activate-status");
const resend = $("#resend");
const form = $("#credentials-form");
const usernameInput = $("#username");
const passwordInput = $("#password");
const confirmInput = $("#password_confirm");
const usernameStatus = $("#username-status");
const token = param("token");
forgetParams("token");

let rules = defaultRules();
let timer = 0;
let sequence = 0;

const MESSAGES = {
  token_expired: "This activation link has expired. Links are valid for 48 hours.",
  token_used: "This activation link has already been used. If you activated your account, you can log in.",
  token_invalid: "This activation link is not valid. It may have been copied incompletely.",
};

function show(kind, text, ...extra) {
  const box = notice(kind, h("p", { text }), ...extra);
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  replaceChildren(status, box);
  focusElement(box);
}

function linkFailed(error) {
  const used = error instanceof ApiError && error.code === "token_used";
  const text = (error instanceof ApiError && MESSAGES[error.code]) || error.message;
  form.hidden = true;
  show("error", text, used ? h("p", {}, h("a", { href: "/login.html", text: "Log in" })) : null);
  if (!used) resend.hidden = false;
}

let finished = false;

function activated(username) {
  // A live check may still be on its way; once the link is used its answer means nothing.
  finished = true;
  window.clearTimeout(timer);
  form.remove();
  show(
    "success",
    "Your account is active. You can now log in.",
    username ? h("p", {}, "Your username is ", h("strong", { text: username }), ".") : null,
    h("p", {}, h("a", { class: "button", href: "/login.html?activated=1", text: "Log in" })),
  );
}

const isLinkError = (error) =>
  error instanceof ApiError && (error.status === 404 || error.status === 410);

// --- choosing the username, password and question ---------------------------------

const withQuestion = wireSecurityQuestion(form);
wireShowPassword($("#show-password"), [passwordInput, confirmInput]);
let checklist = null;
const lastCheck = { username: null, available: null, commonPassword: null, password: null };

function setUsernameStatus(kind, text) {
  usernameStatus.textContent = text;
  usernameStatus.dataset.state = kind;
}

/** Ask the server (debounced) whether the username is free and the password not common. */
function scheduleCheck() {
  window.clearTimeout(timer);
  timer = window.setTimeout(runCheck, 400);
}

async function runCheck() {
  if (finished) return;
  const username = usernameInput.value.trim();
  const password = passwordInput.value;
  const localUsername = username ? usernameProblems(username, rules) : ["empty"];
  const body = { token };
  if (!localUsername.length) body.username = username;
  if (password && !passwordProblems(password, username, rules).length) body.password = password;
  if (!body.username && !body.password) {
    if (username && localUsername.length) setUsernameStatus("problem", localUsername[0]);
    else setUsernameStatus("", "");
    return;
  }
  const mine = ++sequence;
  let reply;
  try {
    reply = await post("/auth/activate/check", body);
  } catch (error) {
    if (isLinkError(error) && !finished) linkFailed(error);
    return; // 429 or a network problem: the form's own submit still checks everything
  }
  if (mine !== sequence || finished) return;
  const fields = Array.isArray(reply.fields) ? reply.fields : [];
  if (body.username) {
    lastCheck.username = body.username;
    lastCheck.available = reply.username_available;
    const problem = fields.find((f) => f.field === "username");
    if (reply.username_available) setUsernameStatus("available", `✓ ${body.username} is available.`);
    else if (problem) setUsernameStatus("taken", problem.message);
  }
  if (body.password) {
    lastCheck.password = body.password;
    lastCheck.commonPassword = fields.some((f) => f.field === "password" && /common/i.test(f.message));
    if (checklist) checklist.setServerRule("common", !lastCheck.commonPassword);
  }
}

function check() {
  const v = withQuestion(serializeForm(form));
  const problems = [];
  for (const m of usernameProblems(v.username || "", rules)) problems.push({ field: "username", message: m });
  if (
    !problems.length &&
    lastCheck.available === false &&
    lastCheck.username &&
    lastCheck.username.toLowerCase() === (v.username || "").trim().toLowerCase()
  ) {
    problems.push({ field: "username", message: "That username is taken; choose another." });
    setUsernameStatus("", ""); // the field's error says it now
  }
  for (const m of passwordProblems(v.password || "", v.username || "", rules)) problems.push({ field: "password", message: m });
  if (lastCheck.commonPassword && lastCheck.password === v.password) {
    problems.push({ field: "password", message: "This password is too common; choose another." });
  }
  if (!confirmInput.value) {
    problems.push({ field: "password_confirm", message: "Enter your password again to confirm it." });
  } else if (confirmInput.value !== passwordInput.value) {
    problems.push({ field: "password_confirm", message: "The passwords do not match." });
  }
  const question = (v.security_question || "").trim();
  if (!question) {
    problems.push({ field: "security_question", message: "Choose or write a security question." });
  } else {
    const q = question.split(/\s+/).join(" ");
    if ([...q].length < rules.question_min || [...q].length > rules.question_max) {
      problems.push({
        field: "security_question",
        message: `Write a question of ${rules.question_min} to ${rules.question_max} characters.`,
      });
    }
  }
  const answer = normalizeAnswer(v.security_answer || "");
  if ([...answer].length < rules.answer_min || [...answer].length > rules.answer_max) {
    problems.push({
      field: "security_answer",
      message: `Write an answer of ${rules.answer_min} to ${rules.answer_max} characters.`,
    });
  } else if (v.password && answer === normalizeAnswer(v.password)) {
    problems.push({ field: "security_answer", message: "Your answer must not be your password." });
  }
  return problems;
}

function showCredentialsForm(firstName) {
  if (firstName) {
    $("#credentials-intro").textContent = `Welcome, ${firstName}. Your details are confirmed. Choose how you will log in.`;
  }
  status.replaceChildren();
  form.hidden = false;
  checklist = wireChecklist($("#password-rules"), passwordInput, rules, {
    username: () => usernameInput.value,
    extra: [{ id: "common", text: "Not a commonly used password" }],
  });
  checklist.setServerRule("common", null);
  usernameInput.addEventListener("input", () => {
    setUsernameStatus("", "");
    checklist.update();
    scheduleCheck();
  });
  passwordInput.addEventListener("input", () => {
    checklist.setServerRule("common", null);
    scheduleCheck();
  });
  usernameInput.focus();
}

onSubmit(form, {
  check,
  aliases: {},
  send: async () => {
    window.clearTimeout(timer);
    sequence += 1; // an answer still on its way is about what was typed before
    const v = withQuestion(serializeForm(form));
    try {
      const reply = await post("/auth/activate", {
        token,
        username: v.username,
        password: v.password,
        security_question: v.security_question,
        security_answer: v.security_answer,
      });
      activated(reply && reply.username);
    } catch (error) {
      if (isLinkError(error)) {
        linkFailed(error);
        return;
      }
      throw error;
    }
  },
});

// --- the link ----------------------------------------------------------------------

async function start() {
  if (!token) {
    show("error", "This page needs the link from your activation email. Open the link from the email, or request a new one below.");
    resend.hidden = false;
    return;
  }
  let reply;
  try {
    [reply, rules] = await Promise.all([post("/auth/activate/start", { token }), loadRules()]);
  } catch (error) {
    linkFailed(error);
    return;
  }
  if (reply.step === "choose_credentials") {
    showCredentialsForm(reply.first_name);
    return;
  }
  try {
    const done = await post("/auth/activate", { token });
    activated(done && done.username);
  } catch (error) {
    linkFailed(error);
  }
}

handleSubmit($("#resend-form"), async (data) => {
  await post("/auth/activate/resend", { email: data.email });
  const message = notice(
    "success",
    h("p", {
      text: "If an account at that address is waiting to be activated, we have emailed a new link. Check your inbox and spam folder.",
    }),
  );
  message.setAttribute("role", "status");
  replaceChildren($("#resend-result"), message);
  $("#resend-form").remove();
  focusElement(message);
});

start();
