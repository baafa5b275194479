// Small DOM helpers. Text is always inserted as text nodes, never parsed as HTML.

/**
 * Create an element. `attrs` keys map to attributes, except:
 *   text -> textContent, class -> className, dataset -> data-*,
 *   on<Event> functions -> addEventListener, boolean true -> empty attribute, false/null -> skipped.
 * Children may be nodes, strings (as text), or arrays of those; null/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace all children of `parent`. */
export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** A query-string parameter of the current page, or null. */
export function param(name) {
  return new URLSearchParams(window.location.search).get(name);
}

/** Drop secrets (tokens) from the address bar so they don't linger in history. */
export function forgetParams(...names) {
  const url = new URL(window.location.href);
  let changed = false;
  for (const name of names) {
    if (url.searchParams.has(name)) {
      url.searchParams.delete(name);
      changed = true;
    }
  }
  if (changed) window.history.replaceState(null, "", url.pathname + url.search + url.hash);
}

let uid = 0;
/** A document-unique id with a readable prefix. */
export function uniqueId(prefix = "id") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** Move focus to an element that is not normally focusable (headings, message boxes). */
export function focusElement(node) {
  if (!node) return;
  if (!node.hasAttribute("tabindex") && !/^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(node.tagName)) {
    node.setAttribute("tabindex", "-1");
  }
  node.focus();
}

const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });

/** "Mar 3, 2026, 2:15 PM" in the viewer's time zone, inside a <time> element. */
export function timeElement(iso) {
  if (!iso) return h("span", { class: "muted", text: "—" });
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", { text: String(iso) });
  return h("time", { datetime: date.toISOString(), text: dateTimeFormat.format(date) });
}

/** A calendar date (YYYY-MM-DD) formatted without shifting it across time zones. */
export function formatDate(ymd) {
  if (!ymd) return "";
  const date = new Date(`${ymd}T00:00:00Z`);
  return Number.isNaN(date.getTime()) ? String(ymd) : dateFormat.format(date);
}

/** A polite live region for status announcements ("Saved."). */
export function announce(message) {
  let region = document.getElementById("sr-status");
  if (!region) {
    region = h("div", { id: "sr-status", class: "visually-hidden", role: "status" });
    document.body.append(region);
  }
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = message;
  }, 50);
}

/** A notice box. kind: info | success | error | warning. */
export function notice(kind, ...children) {
  return h("div", { class: `alert alert--${kind}` }, ...children);
}
