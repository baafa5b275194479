// /reset-password.html?token=…: POST /auth/password/reset/start shows the security
// question; answer + new password -> POST /auth/password/reset.

import { post, ApiError } from "../api.js";
import { $, h, param, forgetParams, replaceChildren, focusElement, notice } from "../dom.js";
import { handleSubmit, passwordsMatch } from "../forms.js";
import { showPasswordPolicy } from "../password.js";

const status = $("#reset-status");
const form = $("#reset-form");
const token = param("token");
forgetParams("token");

const LINK_MESSAGES = {
  token_expired: "This password reset link has expired.",
  token_used: "This password reset link has already been used.",
  token_invalid: "This password reset link is not valid.",
};

function linkProblem(error) {
  form.hidden = true;
  const text = (error && LINK_MESSAGES[error.code]) || (error ? error.message : "This page needs the link from your password reset email.");
  const box = notice(
    "error",
    h("p", { text }),
    h("p", {}, h("a", { href: "/forgot-password.html", text: "Request a new reset link" })),
  );
  box.setAttribute("role", "alert");
  replaceChildren(status, box);
  focusElement(box);
}

async function start() {
  if (!token) {
    linkProblem(null);
    return;
  }
  let reply;
  try {
    reply = await post("/auth/password/reset/start", { token });
  } catch (error) {
    linkProblem(error);
    return;
  }
  $("#security-question-text").textContent = (reply && reply.security_question) || "";
  status.replaceChildren();
  form.hidden = false;
  showPasswordPolicy($("#password-rules"), [$("#new_password"), $("#password_confirm")]);
  focusElement($("#security_answer"));
}

handleSubmit(
  form,
  async (data) => {
    try {
      await post("/auth/password/reset", {
        token,
        security_answer: data.security_answer,
        new_password: data.new_password,
      });
    } catch (error) {
      if (error instanceof ApiError && (error.status === 410 || error.status === 404)) {
        linkProblem(error);
        return;
      }
      throw error;
    }
    form.remove();
    const box = notice(
      "success",
      h("p", { text: "Your password has been changed." }),
      h("p", {}, h("a", { class: "button", href: "/login.html?reset=1", text: "Log in" })),
    );
    box.setAttribute("role", "status");
    replaceChildren(status, box);
    focusElement(box);
  },
  {
    validate: (f) => passwordsMatch(f, "new_password", "password_confirm"),
    aliases: { password: "new_password" },
    fieldForCode: { wrong_answer: "security_answer" },
  },
);

start();
