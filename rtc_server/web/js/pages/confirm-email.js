// /confirm-email.html?token=…: POST /account/email/confirm {token}.
//
// The token leaves the address bar (and history) at once. If the person must
// log in first, it waits in this tab's sessionStorage, not in the log-in
// link's `next`, and is removed once the server has answered.

import { post, ApiError } from "../api.js";
import { $, h, param, forgetParams, replaceChildren, focusElement, notice } from "../dom.js";

const KEY = "rtc.confirm-email.token";
const status = $("#confirm-status");

function takeToken() {
  const fromLink = param("token");
  forgetParams("token");
  try {
    if (fromLink) sessionStorage.setItem(KEY, fromLink);
    return fromLink || sessionStorage.getItem(KEY);
  } catch {
    return fromLink; // storage blocked: this visit only
  }
}

function forgetToken() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // storage blocked: nothing was kept
  }
}

const token = takeToken();

const MESSAGES = {
  token_expired: "This confirmation link has expired. Change your email address again in Account Settings to get a new one.",
  token_used: "This confirmation link has already been used.",
  token_invalid: "This confirmation link is not valid.",
};

function show(kind, text, ...extra) {
  const box = notice(kind, h("p", { text }), ...extra);
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  replaceChildren(status, box);
  focusElement(box);
}

async function confirm() {
  if (!token) {
    show("error", "This page needs the link from your confirmation email.");
    return;
  }
  try {
    await post("/account/email/confirm", { token });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      // The link only works for the account owner: log in, then come back here
      // (the token stays in this tab's sessionStorage).
      show(
        "info",
        "Log in to confirm your new email address.",
        h("p", {}, h("a", { class: "button", href: `/login.html?next=${encodeURIComponent("/confirm-email.html")}`, text: "Log in" })),
      );
      return;
    }
    if (error instanceof ApiError) forgetToken(); // answered; a network failure may retry
    show("error", (error instanceof ApiError && MESSAGES[error.code]) || error.message);
    return;
  }
  forgetToken();
  show(
    "success",
    "Your email address has been confirmed and updated.",
    h("p", {}, h("a", { href: "/app/account.html", text: "Go to Account Settings" })),
  );
}

confirm();
