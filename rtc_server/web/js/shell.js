// Every page: the clinic's name in the header, the page title and the footer, and
// its phone number and hours wherever a page offers them (GET /clinic, public).
// The static text ("Patient Portal", "the clinic") stays when the server has no
// answer, so a page never shows a blank.

import { get } from "./api.js";
import { h, replaceChildren } from "./dom.js";

const KEY = "rtc:clinic";
const GENERIC = "Patient Portal";  // what the static pages say until the server answers

function remembered() {
  try {
    const value = JSON.parse(window.sessionStorage.getItem(KEY) || "null");
    return value && typeof value.name === "string" ? value : null;
  } catch {
    return null;
  }
}

function remember(clinic) {
  try {
    window.sessionStorage.setItem(KEY, JSON.stringify(clinic));
  } catch {
    // Storage may be off; the page still shows the answer it got.
  }
}

/** "617-555-0100" -> "tel:+16175550100" (US numbers), else the digits as given. */
function telHref(phone) {
  const digits = String(phone).replace(/[^\d+]/g, "");
  if (/^\d{10}$/.test(digits)) return `tel:+1${digits}`;
  return `tel:${digits}`;
}

/** A link that calls the clinic, e.g. inside "call <phone>". */
export function phoneLink(clinic) {
  return h("a", { href: telHref(clinic.phone), class: "nowrap", text: clinic.phone });
}

let pending = null;

/**
 * The clinic's {name, phone, hours} (phone and hours null when not configured), or
 * null when the server did not say: the page then keeps its static text.
 */
export function clinicInfo() {
  if (!pending) {
    pending = get("/clinic")
      .then((clinic) => {
        if (!clinic || typeof clinic.name !== "string" || !clinic.name) return remembered();
        const value = {
          name: clinic.name, phone: clinic.phone || null, hours: clinic.hours || null, timezone: clinic.timezone || null,
        };
        remember(value);
        return value;
      })
      .catch(() => remembered());
  }
  return pending;
}

function footerLine(clinic) {
  const parts = [`${clinic.name}.`];
  if (clinic.phone) {
    parts.push(" Call ", phoneLink(clinic));
    if (clinic.hours) parts.push(` (${clinic.hours})`);
    parts.push(".");
  }
  parts.push(" In an emergency, call 911.");
  return parts;
}

/** Put the clinic's name, phone and hours into the page. */
export function applyClinic(clinic) {
  // Generic selectors too, so a page written before this module still gets the name.
  for (const name of document.querySelectorAll(".brand__name, .site-header .brand > span")) {
    name.textContent = clinic.name;
  }
  if (document.title.endsWith(GENERIC) && clinic.name !== GENERIC) {
    document.title = document.title.slice(0, -GENERIC.length) + clinic.name;
  }
  for (const line of document.querySelectorAll("[data-clinic-footer], .site-footer__inner > p:first-child")) {
    replaceChildren(line, footerLine(clinic));
  }
  for (const slot of document.querySelectorAll("[data-clinic-name]")) slot.textContent = clinic.name;
  if (clinic.phone) {
    for (const slot of document.querySelectorAll("[data-clinic-phone]")) {
      replaceChildren(slot, phoneLink(clinic));
    }
  }
  if (clinic.hours) {
    for (const slot of document.querySelectorAll("[data-clinic-hours]")) {
      replaceChildren(slot, ` (${clinic.hours})`);
    }
  }
}

const early = remembered();
if (early) applyClinic(early);
clinicInfo().then((clinic) => clinic && applyClinic(clinic));
