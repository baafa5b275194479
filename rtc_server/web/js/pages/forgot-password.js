// /forgot-password.html: POST /auth/password/forgot with {username} or {email}.

import { post } from "../api.js";
import { $, h, replaceChildren, focusElement, notice } from "../dom.js";
import { handleSubmit } from "../forms.js";

const form = $("#forgot-form");

handleSubmit(
  form,
  async ({ identifier }) => {
    const body = identifier.includes("@") ? { email: identifier } : { username: identifier };
    await post("/auth/password/forgot", body);
    const box = notice(
      "success",
      h("p", {
        text:
          "If an account matches what you entered, we have emailed a link to choose a new password. " +
          "The link works for a limited time. Check your spam folder if it doesn't arrive.",
      }),
    );
    box.setAttribute("role", "status");
    replaceChildren($("#forgot-result"), box);
    form.remove();
    focusElement(box);
  },
  { aliases: { username: "identifier", email: "identifier" } },
);
