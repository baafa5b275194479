// Shared by the Account Settings pages (account, security, notifications): loading the
// account once, and the confirmation line at the top of the page.

import { get } from "./api.js";
import { $, $$, h, replaceChildren, focusElement, notice } from "./dom.js";
import { initPortal, withLoading } from "./portal.js";

/**
 * Check the session, load GET /account and show the page's sections.
 * Resolves to the account, or null when the page must stop (a message is shown).
 */
export async function loadAccountPage() {
  const session = await initPortal();
  if (!session) return null;
  try {
    return await withLoading($("#account-load"), "your account settings", () => get("/account"));
  } catch {
    return null;
  }
}

export function showSections() {
  for (const section of $$("#main-content > section")) section.hidden = false;
}

/**
 * A confirmation at the top of the page, under the heading, where it is seen (the
 * region is a live region, so it is also announced). `focus` moves focus there, for
 * when the control that was used has just gone away (an edit form closing).
 */
export function confirmSaved(message, { focus = false } = {}) {
  const region = $("#page-status");
  replaceChildren(region, notice("success", h("p", { text: message })));
  if (focus) focusElement(region);
  region.scrollIntoView({ block: "nearest" });
}

/** Clear the confirmation (a new edit starts). */
export function clearSaved() {
  const region = $("#page-status");
  if (region) region.replaceChildren();
}
