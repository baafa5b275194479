// /forgot-username.html: POST /auth/username/forgot {email}.

import { post } from "../api.js";
import { $, h, replaceChildren, focusElement, notice } from "../dom.js";
import { handleSubmit } from "../forms.js";

const form = $("#forgot-form");

handleSubmit(form, async ({ email }) => {
  await post("/auth/username/forgot", { email });
  const box = notice(
    "success",
    h("p", {
      text: "If an account uses that email address, we have emailed its username to it. Check your spam folder if it doesn't arrive.",
    }),
  );
  box.setAttribute("role", "status");
  replaceChildren($("#forgot-result"), box);
  form.remove();
  focusElement(box);
});
