// /help.html: help for people who are not signed in (they may be unable to): the common
// questions, the clinic's phone number, and a message to the help desk that is answered
// by email. The server limits how many messages one address sends an hour.

import { post } from "../api.js";
import { h, replaceChildren, focusElement, notice } from "../dom.js";
import { handleSubmit } from "../forms.js";
import { renderFaq } from "../faq.js";

const form = document.getElementById("public-ticket-form");

renderFaq(document.getElementById("faq"));
handleSubmit(form, async (data) => {
  const sent = await post("/help/requests", data);
  const box = notice("success",
    h("p", {}, h("strong", { text: `We received your message (reference ${sent.reference}).` })),
    h("p", { text: `A person at the clinic will reply to ${sent.reply_to}. If it is urgent, please call.` }));
  box.setAttribute("tabindex", "-1");
  replaceChildren(document.getElementById("sent"), box);
  form.reset();
  form.hidden = true;
  focusElement(box);
});
