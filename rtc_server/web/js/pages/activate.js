// /activate.html?token=…: POST /auth/activate; expired or unknown links offer
// POST /auth/activate/resend.

import { post, ApiError } from "../api.js";
import { $, h, param, forgetParams, replaceChildren, focusElement, notice } from "../dom.js";
import { handleSubmit } from "../forms.js";

const status = $("#activate-status");
const resend = $("#resend");
const token = param("token");
forgetParams("token");

const MESSAGES = {
  token_expired: "This activation link has expired. Links are valid for a limited time.",
  token_used: "This activation link has already been used. If you activated your account, you can log in.",
  token_invalid: "This activation link is not valid. It may have been copied incompletely.",
};

function show(kind, text, ...extra) {
  const box = notice(kind, h("p", { text }), ...extra);
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  replaceChildren(status, box);
  focusElement(box);
}

function offerResend() {
  resend.hidden = false;
}

async function activate() {
  if (!token) {
    show("error", "This page needs the link from your activation email. Open the link from the email, or request a new one below.");
    offerResend();
    return;
  }
  try {
    await post("/auth/activate", { token });
  } catch (error) {
    const used = error instanceof ApiError && error.code === "token_used";
    const text = (error instanceof ApiError && MESSAGES[error.code]) || error.message;
    show(
      "error",
      text,
      used ? h("p", {}, h("a", { href: "/login.html", text: "Log in" })) : null,
    );
    if (!used) offerResend();
    return;
  }
  show(
    "success",
    "Your account is active. You can now log in.",
    h("p", {}, h("a", { class: "button", href: "/login.html?activated=1", text: "Log in" })),
  );
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

activate();
