// /confirm-email.html?token=…: POST /account/email/confirm {token}.

import { post, ApiError } from "../api.js";
import { $, h, param, replaceChildren, focusElement, notice } from "../dom.js";

const status = $("#confirm-status");
const token = param("token");

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
      // The link only works for the account owner; keep the token through the login.
      const next = `/confirm-email.html?token=${encodeURIComponent(token)}`;
      show(
        "info",
        "Log in to confirm your new email address.",
        h("p", {}, h("a", { class: "button", href: `/login.html?next=${encodeURIComponent(next)}`, text: "Log in" })),
      );
      return;
    }
    show("error", (error instanceof ApiError && MESSAGES[error.code]) || error.message);
    return;
  }
  window.history.replaceState(null, "", "/confirm-email.html");
  show(
    "success",
    "Your email address has been confirmed and updated.",
    h("p", {}, h("a", { href: "/app/account.html", text: "Go to Account Settings" })),
  );
}

confirm();
