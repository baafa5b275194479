// Form helpers: serialize, show field errors next to their fields, a form-level alert,
// and a submit handler that ties them to the API's error shape.

import { ApiError } from "./api.js";
import { h, append, focusElement, uniqueId } from "./dom.js";
// Every page with a form also gets the clinic's name, phone and hours in its header,
// title and footer, even one whose HTML does not load shell.js itself.
import "./shell.js";

const SKIP_TYPES = new Set(["submit", "button", "reset", "file", "image"]);

function setPath(target, path, value) {
  const keys = path.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key];
  }
  node[keys[keys.length - 1]] = value;
}

/**
 * Form controls -> plain object. Dotted names nest ("address.zip"), checkboxes become
 * booleans, text is trimmed (passwords are not). Controls marked data-no-submit and
 * disabled controls are left out.
 */
export function serializeForm(form) {
  const data = {};
  for (const el of Array.from(form.elements)) {
    if (!el.name || el.disabled || SKIP_TYPES.has(el.type) || "noSubmit" in el.dataset) continue;
    if (el.type === "checkbox") setPath(data, el.name, el.checked);
    else if (el.type === "radio") {
      if (el.checked) setPath(data, el.name, el.value);
    } else if (el.type === "password") setPath(data, el.name, el.value);
    else setPath(data, el.name, el.value.trim());
  }
  return data;
}

/** The element that shows errors for `field`: [data-field=…] first, then the named control. */
function controlFor(form, field) {
  const explicit = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
  if (explicit) return explicit;
  const named = form.elements.namedItem(field);
  if (!named) return null;
  if (named instanceof RadioNodeList) return named[0] || null;
  if (named.type === "hidden") return null;
  return named;
}

function alertRegion(form) {
  let region = form.querySelector("[data-form-alert]");
  if (!region) {
    region = h("div", { class: "alert alert--error", role: "alert", "data-form-alert": true });
    form.prepend(region);
  }
  return region;
}

function statusRegion(form) {
  let region = form.querySelector("[data-form-status]");
  if (!region) {
    region = h("div", { class: "alert alert--success", role: "status", "data-form-status": true });
    const actions = form.querySelector(".form-actions");
    if (actions) actions.after(region);
    else form.append(region);
  }
  return region;
}

function describedBy(el) {
  return (el.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
}

/** Remove all field errors, the alert and the status message from `form`. */
export function clearErrors(form) {
  for (const error of Array.from(form.querySelectorAll(".field-error[data-error-for]"))) {
    error.remove();
  }
  for (const el of Array.from(form.querySelectorAll("[aria-invalid]"))) {
    el.removeAttribute("aria-invalid");
    const ids = describedBy(el).filter((id) => !id.endsWith("-error"));
    if (ids.length) el.setAttribute("aria-describedby", ids.join(" "));
    else el.removeAttribute("aria-describedby");
  }
  const region = form.querySelector("[data-form-alert]");
  if (region) region.replaceChildren();
  const status = form.querySelector("[data-form-status]");
  if (status) status.replaceChildren();
}

/** Show `message` next to the control for `field`. Returns the control, or null if none. */
export function showFieldError(form, field, message) {
  const control = controlFor(form, field);
  if (!control) return null;
  if (!control.id) control.id = uniqueId("field");
  const errorId = `${control.id}-error`;
  let error = form.querySelector(`#${CSS.escape(errorId)}`);
  if (error) {
    error.textContent = `${error.textContent} ${message}`;
  } else {
    error = h("p", { class: "field-error", id: errorId, "data-error-for": field, text: message });
    const check = control.closest(".check");
    const wrapper = control.closest(".field");
    if (check) check.after(error);
    else if (wrapper) wrapper.append(error);
    else control.after(error);
  }
  control.setAttribute("aria-invalid", "true");
  const ids = describedBy(control);
  if (!ids.includes(errorId)) control.setAttribute("aria-describedby", [...ids, errorId].join(" "));
  return control;
}

/** Put a message (and optional list of details) in the form's role="alert" region. */
export function setFormAlert(form, message, details = []) {
  const region = alertRegion(form);
  region.replaceChildren();
  if (!message) return region;
  append(region, h("p", { text: message }));
  if (details.length) append(region, h("ul", {}, details.map((d) => h("li", { text: d }))));
  return region;
}

/** Put a success message in the form's role="status" region. */
export function setFormStatus(form, message) {
  const region = statusRegion(form);
  region.replaceChildren();
  if (message) append(region, h("p", { text: message }));
  return region;
}

/**
 * Show an error on the form: field errors beside their controls (fields the form does not
 * have go into the alert), the message in the alert, and focus the first problem.
 * `aliases` maps API field names to control names ({email: "identifier"});
 * `fieldForCode` puts a field-less error beside a control ({invalid_code: "code"}).
 */
export function showErrors(form, error, { aliases = {}, fieldForCode = {} } = {}) {
  let fields = error instanceof ApiError ? error.fields : error.fields || [];
  if (!fields.length && error.code && fieldForCode[error.code]) {
    fields = [{ field: fieldForCode[error.code], message: error.message }];
  }
  const message = error && error.message ? error.message : "Something went wrong.";
  const unplaced = [];
  let first = null;
  for (const { field, message: text } of fields) {
    const name = aliases[field] || field;
    const control =
      showFieldError(form, name, text) ||
      (name.includes(".") ? showFieldError(form, name.split(".").pop(), text) : null);
    if (control) first = first || control;
    else unplaced.push(text);
  }
  const summary =
    fields.length && !unplaced.length
      ? "Please correct the highlighted fields."
      : message;
  const region = setFormAlert(form, summary, unplaced);
  focusElement(first || region);
}

function labelText(control) {
  const label = control.labels && control.labels[0];
  return label ? label.textContent.replace(/\s+/g, " ").replace(/\*$/, "").trim() : "";
}

/**
 * Client-side check of [required] controls (forms use novalidate so that messages are ours
 * and match the server's style). Returns [{field, message}].
 */
export function missingRequired(form) {
  const problems = [];
  for (const el of Array.from(form.elements)) {
    if (!el.required || el.disabled || el.closest("[hidden]")) continue;
    const empty = el.type === "checkbox" ? !el.checked : !String(el.value).trim();
    if (!empty) continue;
    const custom = el.dataset.requiredMessage;
    const label = labelText(el);
    const message =
      custom ||
      (el.type === "checkbox"
        ? "You must check this box to continue."
        : label
          ? `Enter ${label.charAt(0).toLowerCase()}${label.slice(1)}.`
          : "This field is required.");
    problems.push({ field: el.name || el.id, message });
  }
  return problems;
}

/**
 * Wire a form: on submit, clear old errors, run `validate(form)` (extra [{field, message}]),
 * then `await handler(serializeForm(form), form)`. ApiErrors are shown on the form;
 * the submit button is disabled while the request runs.
 */
export function handleSubmit(form, handler, { validate, aliases, fieldForCode } = {}) {
  form.noValidate = true;
  alertRegion(form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (form.getAttribute("aria-busy") === "true") return;
    clearErrors(form);
    const problems = [...missingRequired(form), ...(validate ? validate(form) : [])];
    if (problems.length) {
      showErrors(
        form,
        { fields: problems, status: 422, message: "Please correct the highlighted fields." },
        { aliases },
      );
      return;
    }
    const buttons = Array.from(form.querySelectorAll("button[type=submit], button:not([type])"));
    form.setAttribute("aria-busy", "true");
    for (const b of buttons) b.disabled = true;
    try {
      await handler(serializeForm(form), form);
    } catch (error) {
      if (error instanceof ApiError) showErrors(form, error, { aliases, fieldForCode });
      else {
        console.warn(error);
        setFormAlert(form, "Something went wrong in this page. Please reload and try again.");
      }
    } finally {
      form.removeAttribute("aria-busy");
      for (const b of buttons) b.disabled = false;
    }
  });
}

/** Standard check that two password fields match. */
export function passwordsMatch(form, password = "password", confirm = "password_confirm") {
  const a = form.elements.namedItem(password);
  const b = form.elements.namedItem(confirm);
  if (a && b && b.value && a.value !== b.value) {
    return [{ field: confirm, message: "The passwords do not match." }];
  }
  return [];
}
