// /register.html: step one of signing up. The person says who they are; POST /auth/register
// answers the same 202 whatever was found (no username here: it is chosen on the activation
// page, see portal/registration/service.py). The browser checks the same rules as the server
// before sending; problems are listed in the summary at the top and beside each field.

import { post } from "../api.js";
import { $, h, replaceChildren, focusElement, notice } from "../dom.js";
import { serializeForm } from "../forms.js";
import { clinicInfo, phoneLink } from "../shell.js";
import {
  defaultRules,
  loadRules,
  businessDays,
  nameProblem,
  birthDateProblem,
  zipProblem,
  emailProblem,
  onSubmit,
} from "./signup-checks.js";

const form = $("#register-form");
const result = $("#register-result");
const birthDate = $("#birth_date");

let rules = defaultRules();
birthDate.max = new Date().toISOString().slice(0, 10);

function check() {
  const v = serializeForm(form);
  const problems = [];
  const add = (field, message) => message && problems.push({ field, message });
  add("first_name", nameProblem(v.first_name, "first name", rules));
  add("last_name", nameProblem(v.last_name, "last name", rules));
  add("birth_date", birthDateProblem(v.birth_date, rules));
  add("zip", zipProblem(v.zip, rules));
  add("email", emailProblem(v.email));
  if (!v.accept_terms) add("accept_terms", "You must accept the Terms and Conditions of Use to register.");
  if (!v.accept_privacy) add("accept_privacy", "You must accept the Privacy Policy to register.");
  return problems;
}

function showSent(reply, email) {
  const days = businessDays((reply && reply.review_business_days) || rules.review_business_days);
  const heading = h("h2", { id: "result-heading", text: "Check your email" });
  replaceChildren(
    result,
    h(
      "section",
      { class: "card", "aria-labelledby": "result-heading" },
      heading,
      notice("success", h("p", { text: (reply && reply.message) || "We've sent an email to the address you gave." })),
      h("p", {}, "We wrote to ", h("strong", { text: email }), "."),
      h("p", {
        text:
          "No email within a few minutes? Check your spam folder. If it is not there, the address may be mistyped: " +
          "register again with the right one.",
      }),
      h(
        "p",
        {},
        `If you have not heard from us within ${days}, your details may not match what the clinic has on file. Please call the clinic`,
        h("span", { "data-call-clinic": true }),
        ".",
      ),
      h("p", {}, h("a", { href: "/login.html", text: "Go to log in" })),
    ),
  );
  form.remove();
  focusElement(heading);
  clinicInfo().then((clinic) => {
    const slot = result.querySelector("[data-call-clinic]");
    if (clinic && clinic.phone && slot) replaceChildren(slot, " at ", phoneLink(clinic));
  });
}

onSubmit(form, {
  check,
  send: async () => {
    const data = serializeForm(form);
    const reply = await post("/auth/register", data);
    showSent(reply, data.email);
  },
});

// The form works at once with the usual rules; the server's replace them when they arrive.
loadRules().then((r) => {
  rules = r;
  birthDate.min = rules.birth_date_min;
  $("#review-days").textContent = businessDays(rules.review_business_days);
});
