// What /register.html and /activate.html share: the sign-up rules (GET /auth/sign-up-rules)
// checked in the browser before sending, so one round is enough; an error summary at the top
// of the form that lists each problem and links to its field; a live password checklist; and
// a show-password toggle. The server checks everything again and its 422 is the authority:
// its field messages land in the same summary and beside the same fields.

import { get, ApiError } from "../api.js";
import { h, append, focusElement } from "../dom.js";
import { clearErrors, showFieldError } from "../forms.js";

/** Used until (or if) the server's rules cannot be loaded; the server checks anyway. */
const FALLBACK_RULES = {
  name_max: 100,
  birth_date_min: "1900-01-01",
  zip_pattern: "^\\d{5}(-?\\d{4})?$",
  username_min: 6,
  username_max: 64,
  username_pattern: "^[\\p{L}\\p{N}_.@+\\-]+$",
  username_rule: "6 to 64 characters: letters, numbers and . _ - @ + only. Not case-sensitive.",
  password_min: 8,
  password_max: 128,
  question_min: 5,
  question_max: 200,
  answer_min: 3,
  answer_max: 200,
  review_business_days: 2,
};

export function defaultRules() {
  return { ...FALLBACK_RULES };
}

export async function loadRules() {
  try {
    const rules = await get("/auth/sign-up-rules");
    if (rules && typeof rules === "object") return { ...FALLBACK_RULES, ...rules };
  } catch {
    // The fallback keeps the page usable; the server's answer decides.
  }
  return { ...FALLBACK_RULES };
}

export function businessDays(n) {
  return n === 1 ? "1 business day" : `${n} business days`;
}

const codePoints = (s) => [...s].length;

// --- the rules, with the server's messages ----------------------------------

export function nameProblem(value, label, rules) {
  if (!value.trim()) return `Enter your ${label} as it appears in your record.`;
  if (codePoints(value.trim()) > rules.name_max) return `Use at most ${rules.name_max} characters.`;
  return null;
}

export function birthDateProblem(value, rules) {
  if (!value) return "Enter your date of birth.";
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return "Enter your date of birth as YYYY-MM-DD.";
  const today = new Date().toISOString().slice(0, 10);
  if (value >= today) return "Your date of birth must be in the past.";
  if (value < rules.birth_date_min) return "Check the year of your date of birth.";
  return null;
}

export function zipProblem(value, rules) {
  return new RegExp(rules.zip_pattern).test(value.trim())
    ? null
    : "Enter a 5-digit ZIP code, or ZIP+4 such as 12345-6789.";
}

export function emailProblem(value) {
  const v = value.trim();
  if (!v) return "Enter your email address.";
  if (v.length > 254 || !/^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/.test(v)) {
    return "Enter a valid email address, such as name@example.com.";
  }
  return null;
}

export function usernameProblems(value, rules) {
  const u = value.trim();
  if (!u) return ["Choose a username."];
  const problems = [];
  if (codePoints(u) < rules.username_min) problems.push(`Use at least ${rules.username_min} characters.`);
  if (codePoints(u) > rules.username_max) problems.push(`Use at most ${rules.username_max} characters.`);
  if (!new RegExp(rules.username_pattern, "u").test(u)) problems.push("Use letters, numbers and . _ - @ + only.");
  return problems;
}

/** The password rules the browser can check, each with its checklist text and server message. */
export function passwordChecks(rules) {
  return [
    {
      id: "length",
      text: `${rules.password_min} to ${rules.password_max} characters`,
      test: (pw) => codePoints(pw) >= rules.password_min && codePoints(pw) <= rules.password_max,
      message: (pw) =>
        codePoints(pw) < rules.password_min
          ? `Use at least ${rules.password_min} characters.`
          : `Use at most ${rules.password_max} characters.`,
    },
    { id: "upper", text: "An uppercase letter", test: (pw) => /\p{Lu}/u.test(pw), message: () => "Include at least one uppercase letter." },
    { id: "lower", text: "A lowercase letter", test: (pw) => /\p{Ll}/u.test(pw), message: () => "Include at least one lowercase letter." },
    { id: "digit", text: "A number", test: (pw) => /\p{Nd}/u.test(pw), message: () => "Include at least one number." },
    {
      id: "username",
      text: "Does not contain your username",
      test: (pw, username) => !username || !pw.toLowerCase().includes(username.trim().toLowerCase()),
      message: () => "Must not be or contain your username.",
    },
  ];
}

export function passwordProblems(password, username, rules) {
  if (!password) return ["Choose a password."];
  const pw = password.normalize("NFC");
  return passwordChecks(rules)
    .filter((c) => !c.test(pw, username))
    .map((c) => c.message(pw));
}

export const normalizeAnswer = (s) => s.toLowerCase().split(/\s+/).filter(Boolean).join(" ");

// --- the password checklist and the show-password toggle -----------------------

/**
 * Fill `list` with the password rules and tick them as the person types in `input`.
 * `username()` gives the username to compare with; `extra` is a list of server-only
 * rules ({id, text}) whose state is set with the returned `setServerRule(id, ok)`.
 */
export function wireChecklist(list, input, rules, { username = () => "", extra = [] } = {}) {
  const checks = passwordChecks(rules);
  const items = new Map();
  const make = (id, text) => {
    const mark = h("span", { class: "checklist__mark", "aria-hidden": "true", text: "○" });
    const state = h("span", { class: "visually-hidden", text: " (not yet)" });
    const li = h("li", { dataset: { rule: id, met: "false" } }, mark, " ", text, state);
    items.set(id, { li, mark, state });
    return li;
  };
  list.replaceChildren(...checks.map((c) => make(c.id, c.text)), ...extra.map((e) => make(e.id, e.text)));
  // The marks are the bullets (set through the CSSOM, which the CSP allows).
  list.style.listStyle = "none";
  list.style.paddingLeft = "0";
  const set = (id, ok) => {
    const item = items.get(id);
    if (!item) return;
    item.li.dataset.met = ok === null ? "unknown" : String(ok);
    item.mark.textContent = ok ? "✓" : ok === null ? "○" : "✗";
    item.state.textContent = ok ? " (done)" : ok === null ? " (checked when you type)" : " (not yet)";
  };
  const update = () => {
    const pw = input.value.normalize("NFC");
    for (const c of checks) set(c.id, pw ? c.test(pw, username()) : false);
  };
  input.addEventListener("input", update);
  update();
  return { update, setServerRule: set };
}

/** A "Show password" checkbox that switches every input in `inputs` between hidden and shown. */
export function wireShowPassword(checkbox, inputs) {
  checkbox.addEventListener("change", () => {
    for (const input of inputs) input.type = checkbox.checked ? "text" : "password";
  });
}

// --- the error summary -----------------------------------------------------------

function labelFor(form, control) {
  // A checkbox's message says it all ("You must accept the Privacy Policy ...").
  if (control && control.type === "checkbox") return "";
  const label = control && control.labels && control.labels[0];
  if (label) return label.textContent.replace(/\s+/g, " ").trim();
  const legend = control && control.closest("fieldset") && control.closest("fieldset").querySelector("legend");
  return legend ? legend.textContent.trim() : "";
}

/**
 * Show `problems` ([{field, message}]): each beside its field, and all of them in the
 * summary at the top of the form (its [data-form-alert] region), each a link that moves
 * focus to the field. The summary gets focus, as people expect after pressing the button.
 */
export function showSummary(form, problems, { aliases = {}, heading = "There is a problem" } = {}) {
  const region = form.querySelector("[data-form-alert]");
  region.replaceChildren();
  const list = h("ul", { class: "error-summary__list" });
  for (const { field, message } of problems) {
    const name = aliases[field] || field;
    const control = showFieldError(form, name, message);
    if (control) {
      const label = labelFor(form, control);
      const linkEl = h("a", { href: `#${control.id}`, text: label ? `${label}: ${message}` : message });
      linkEl.addEventListener("click", (event) => {
        event.preventDefault();
        control.focus();
        const wrapper = control.closest(".field, .check") || control;
        wrapper.scrollIntoView({ block: "center" });
      });
      append(list, h("li", {}, linkEl));
    } else {
      append(list, h("li", { text: message }));
    }
  }
  append(region, [h("h2", { class: "error-summary__title", text: heading }), list]);
  region.setAttribute("tabindex", "-1");
  focusElement(region);
}

/** The summary for a failed request: field errors as above, anything else as one line. */
export function showRequestError(form, error, options = {}) {
  if (error instanceof ApiError && error.fields && error.fields.length) {
    showSummary(form, error.fields, options);
    return;
  }
  const region = form.querySelector("[data-form-alert]");
  region.replaceChildren(h("p", { text: error && error.message ? error.message : "Something went wrong." }));
  region.setAttribute("tabindex", "-1");
  focusElement(region);
}

/**
 * Wire `form`: on submit, clear old errors, run `check()` ([{field, message}]) and show the
 * summary if anything is wrong; otherwise `await send()` with the button disabled, showing
 * the server's errors the same way.
 */
export function onSubmit(form, { check, send, aliases = {} }) {
  form.noValidate = true;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    clearErrors(form);
    const problems = check();
    if (problems.length) {
      showSummary(form, problems, { aliases });
      return;
    }
    const buttons = Array.from(form.querySelectorAll("button[type=submit]"));
    form.setAttribute("aria-busy", "true");
    for (const b of buttons) b.disabled = true;
    try {
      await send();
    } catch (error) {
      if (error instanceof ApiError) showRequestError(form, error, { aliases });
      else {
        console.warn(error);
        showRequestError(form, { message: "Something went wrong in this page. Please reload and try again." });
      }
    } finally {
      form.removeAttribute("aria-busy");
      for (const b of buttons) b.disabled = false;
    }
  });
}
