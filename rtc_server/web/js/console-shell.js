// The clinician workspace's frame, for every page under /console/: its own navigation
// (never the patient tabs), the person's name and credentials as the clinic writes them
// ("Dr. Elena Marsh, MD"), and how much waits in their queues, kept current live.
//
// A console page has, instead of the portal's nav:
//   <nav class="portal-nav" id="console-nav" aria-label="Console sections"></nav>
// and starts with:
//   import { initConsole } from "../console-shell.js";
//   const session = await initConsole({ roles: ["provider"] });  // null: stop (a message is shown)
// `session` is what initPortal resolves to, plus `session.console` (GET /console/me).

import { get, post } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { initPortal } from "./portal.js";
import { onLiveEvent } from "./live-events.js";

const CLINIC = ["provider", "staff", "admin"];

/** The console's sections, each with the roles that use it (the server checks too). */
export const CONSOLE_NAV = [
  { href: "/console/index.html", label: "Today", roles: CLINIC },
  { href: "/console/messages.html", label: "Inbox", roles: ["provider", "staff"], count: "messages" },
  { href: "/console/patients.html", label: "Patients", roles: ["provider"] },
  { href: "/console/refills.html", label: "Refills", roles: ["provider"], count: "refills" },
  { href: "/console/results.html", label: "Results", roles: ["provider"] },
  { href: "/console/waiting-room.html", label: "Waiting room", roles: ["provider", "staff"] },
  { href: "/console/tickets.html", label: "Help desk", roles: ["staff", "admin"], count: "tickets" },
  { href: "/staff/verifications.html", label: "Verifications", roles: ["staff", "admin"] },
  { href: "/console/availability.html", label: "Availability", roles: ["provider", "staff"] },
  { href: "/console/pharmacies.html", label: "Pharmacies", roles: ["admin"] },
  { href: "/admin/users.html", label: "Users", roles: ["admin"] },
  { href: "/admin/audit.html", label: "Audit log", roles: ["admin"] },
  { href: "/app/account.html", label: "My account", roles: CLINIC },
];

/** The sections a role sees, in order. */
export function consoleNavFor(role) {
  return CONSOLE_NAV.filter((item) => item.roles.includes(role));
}

const countSlots = new Map();

function countBadge(item, counts) {
  const value = counts && item.count ? counts[item.count] : null;
  const slot = h("span", { class: "nav-count", hidden: !value });
  countSlots.set(item.count, slot);
  fillCount(slot, value);
  return slot;
}

function fillCount(slot, value) {
  slot.hidden = !value;
  replaceChildren(slot, value ? [String(value), h("span", { class: "visually-hidden", text: " waiting" })] : []);
}

async function logOut(button) {
  button.disabled = true;
  try {
    await post("/auth/logout");
  } catch {
    // Already signed out.
  }
  window.location.assign("/login.html");
}

function identity(user, me) {
  const name = me ? me.name : user.display_name || user.username;
  const role = me ? me.role_label : user.role;
  return h("span", { class: "portal-user__name" },
    h("span", { class: "visually-hidden", text: "Signed in as " }), name,
    h("span", { class: "console-role", text: ` · ${role}` }));
}

function renderNav(user, me) {
  const nav = document.getElementById("console-nav");
  if (!nav) return;
  const here = window.location.pathname;
  const listId = "console-nav-list";
  const logout = h("button", { type: "button", class: "button button--secondary button--small", text: "Log out" });
  logout.addEventListener("click", () => logOut(logout));
  const list = h("ul", { id: listId, class: "is-collapsed" },
    consoleNavFor(user.role).map((item) => h("li", {},
      h("a", { href: item.href, "aria-current": item.href === here ? "page" : null },
        item.label, item.count ? countBadge(item, me && me.counts) : null))),
    h("li", { class: "portal-nav__account" }, identity(user, me), logout));
  const toggle = h("button", {
    type: "button", class: "button button--secondary button--small portal-nav__toggle",
    "aria-expanded": "false", "aria-controls": listId, text: "Menu",
  });
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    list.classList.toggle("is-collapsed", !open);
  });
  if (!nav.getAttribute("aria-label")) nav.setAttribute("aria-label", "Console sections");
  replaceChildren(nav, h("div", { class: "portal-nav__inner" }, list));
  const bar = document.querySelector(".site-header__inner");
  if (bar && !bar.querySelector(".portal-nav__toggle")) bar.append(toggle);
}

function renderUser(user, me) {
  const name = document.querySelector("#portal-user .portal-user__name");
  if (name) name.replaceWith(identity(user, me));
  const brand = document.querySelector(".site-header .brand");
  if (brand) brand.setAttribute("href", "/console/index.html");
}

async function refreshCounts() {
  try {
    const me = await get("/console/me");
    for (const [kind, slot] of countSlots) fillCount(slot, me.counts[kind]);
  } catch {
    // The counts stay as they were; the next event tries again.
  }
}

/**
 * Check the session (initPortal: redirect to log in, idle time-out, wrong role message),
 * then draw the console's navigation and the person's name. Resolves to the session with
 * `console` (GET /console/me) added, or null when the page must stop.
 */
export async function initConsole({ roles = CLINIC } = {}) {
  const session = await initPortal({ roles });
  if (!session) return null;
  let me = null;
  try {
    me = await get("/console/me");
  } catch {
    me = null; // the navigation still works; names and counts are missing
  }
  renderNav(session.user, me);
  renderUser(session.user, me);
  if (me && (me.counts.refills !== null || me.counts.tickets !== null)) {
    onLiveEvent(["refill_queue", "help_ticket_queue"], refreshCounts);
  }
  return { ...session, console: me };
}
