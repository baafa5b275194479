// /register.html: POST /auth/register; the server's 422 field messages are shown beside
// each field; a 202 replaces the form with the server's message.

import { post } from "../api.js";
import { $, h, replaceChildren, focusElement, notice } from "../dom.js";
import { handleSubmit, passwordsMatch } from "../forms.js";
import { showPasswordPolicy } from "../password.js";
import { wireSecurityQuestion } from "../security-question.js";

const form = $("#register-form");
const result = $("#register-result");

$("#birth_date").max = new Date().toISOString().slice(0, 10);
const withQuestion = wireSecurityQuestion(form);
showPasswordPolicy($("#password-rules"), [$("#password"), $("#password_confirm")]);

handleSubmit(
  form,
  async (data) => {
    const body = withQuestion(data);
    const reply = await post("/auth/register", body);
    const heading = h("h2", { text: "Check your email" });
    replaceChildren(
      result,
      h(
        "section",
        { class: "card", "aria-labelledby": "result-heading" },
        heading,
        notice(
          "success",
          h("p", {
            text:
              (reply && reply.message) ||
              "If your details match our records, we have sent you an email with the next step.",
          }),
        ),
        h("p", {}, "Didn't get an email? Check your spam folder. ", h("a", { href: "/login.html", text: "Go to log in" })),
      ),
    );
    heading.id = "result-heading";
    form.remove();
    focusElement(heading);
  },
  {
    validate: (f) => passwordsMatch(f, "password", "password_confirm"),
    aliases: { security_question_custom: "security_question" },
  },
);
