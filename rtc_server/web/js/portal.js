// Portal layout for /app/*, /staff/*, /admin/*: session check, nav tabs, log out,
// the compact phone header (Menu in the header bar; name and Log out inside the menu)
// and the idle-timeout warning.

import { get, post, ApiError, lastApiCallAt, onUnauthenticated, rememberCsrfToken } from "./api.js";
import { useZone } from "./zone.js";
import { h, replaceChildren, focusElement, notice } from "./dom.js";
import { homeFor } from "./session.js";
import "./shell.js";

export const PATIENT_TABS = [
  { href: "/app/dashboard.html", label: "Dashboard" },
  { href: "/app/appointments.html", label: "Appointments" },
  { href: "/app/records.html", label: "Medical Records" },
  { href: "/app/messages.html", label: "Messaging" },
  { href: "/app/visits.html", label: "Virtual Visits" },
  { href: "/app/account.html", label: "Account Settings" },
  { href: "/app/help.html", label: "Help Desk" },
];
/** Clinic tools, each with the roles that may use it (the server checks too). */
export const CLINIC_TABS = [
  { href: "/console/index.html", label: "Clinic console", roles: ["provider", "staff", "admin"] },
  { href: "/staff/verifications.html", label: "Verification queue", roles: ["staff", "admin"] },
  { href: "/admin/users.html", label: "Users", roles: ["admin"] },
  { href: "/admin/audit.html", label: "Audit log", roles: ["admin"] },
];
const ACCOUNT_TAB = { href: "/app/account.html", label: "Account Settings" };
/** Pages that belong to a tab without being one (Account Settings' sub-pages). */
const TAB_OF = {
  "/app/security.html": "/app/account.html",
  "/app/notifications.html": "/app/account.html",
  "/app/refills.html": "/app/messages.html",
  "/app/records-print.html": "/app/records.html",
};

/** How a role is named to people ("Provider", not "provider"). */
export const ROLE_LABELS = { patient: "Patient", provider: "Provider", staff: "Front-desk staff", admin: "Administrator" };

/**
 * The tabs a role sees, in order. Patients get the portal's tabs; the clinic's people
 * get only their tools and their own Account Settings, never the patient tabs.
 */
export function tabsFor(role) {
  if (role === "patient") return PATIENT_TABS;
  return [...CLINIC_TABS.filter((t) => t.roles.includes(role)), ACCOUNT_TAB];
}

function currentPath() {
  return window.location.pathname + window.location.search;
}

function goToLogin(query) {
  window.location.replace(`/login.html?${query}`);
}

function statusArea() {
  let area = document.getElementById("portal-status");
  if (!area) {
    area = h("div", { id: "portal-status" });
    const main = document.getElementById("main");
    const h1 = main && main.querySelector("h1");
    if (h1) h1.after(area);
    else if (main) main.prepend(area);
  }
  return area;
}

/** Show a page-level error under the heading (role="alert"). */
export function showPageError(message, ...extra) {
  const box = h("div", { class: "alert alert--error", role: "alert" }, h("p", { text: message }), ...extra);
  replaceChildren(statusArea(), box);
  return box;
}

function renderNav(user) {
  const nav = document.getElementById("portal-nav");
  if (!nav) return;
  const here = TAB_OF[window.location.pathname] || window.location.pathname;
  const listId = "portal-nav-list";
  const list = h(
    "ul",
    { id: listId, class: "is-collapsed" },
    tabsFor(user.role).map((tab) =>
      h(
        "li",
        {},
        h("a", { href: tab.href, "aria-current": tab.href === here ? "page" : null, text: tab.label }),
      ),
    ),
    // On a phone the header bar holds only the clinic and Menu; the person's name and
    // Log out live at the end of the menu (CSS shows this item only there).
    h("li", { class: "portal-nav__account" }, userArea(user)),
  );
  const toggle = h("button", {
    type: "button",
    class: "button button--secondary button--small portal-nav__toggle",
    "aria-expanded": "false",
    "aria-controls": listId,
    text: "Menu",
  });
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    list.classList.toggle("is-collapsed", !open);
  });
  if (!nav.getAttribute("aria-label")) nav.setAttribute("aria-label", "Portal sections");
  replaceChildren(nav, h("div", { class: "portal-nav__inner" }, list));
  const bar = document.querySelector(".site-header__inner");
  if (bar) bar.append(toggle);
}

async function logOut(button) {
  button.disabled = true;
  try {
    await post("/auth/logout");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      button.disabled = false;
      showPageError(`Could not log out: ${error.message}`);
      return;
    }
  }
  window.location.assign("/login.html");
}

function userArea(user) {
  const button = h("button", {
    type: "button",
    class: "button button--secondary button--small",
    text: "Log out",
  });
  button.addEventListener("click", () => logOut(button));
  return [
    h(
      "span",
      { class: "portal-user__name" },
      h("span", { class: "visually-hidden", text: "Signed in as " }),
      user.display_name || user.username || "",
    ),
    button,
  ];
}

function renderUser(user) {
  const area = document.getElementById("portal-user");
  if (area) replaceChildren(area, userArea(user));
  const brand = document.querySelector(".site-header .brand");
  if (brand) brand.setAttribute("href", homeFor(user));
}

/**
 * Watches the idle timer. The server's clock restarts on every API call, so the deadline is
 * the last call (in any tab; api.js shares it via localStorage) plus idle_timeout_seconds.
 */
class IdleWatch {
  constructor(idleSeconds) {
    const seconds = Number(idleSeconds);
    this.idleMs = (seconds > 0 ? seconds : 900) * 1000;
    // One minute's warning; very short timeouts (tests, strict deployments) get less.
    this.warnMs = Math.min(60_000, Math.max(this.idleMs - 5_000, this.idleMs / 2));
    this.dialog = null;
    this.timer = null;
    this.expired = false;
  }

  start() {
    this.timer = window.setInterval(() => this.tick(), 1000);
    this.tick();
  }

  remaining() {
    return lastApiCallAt() + this.idleMs - Date.now();
  }

  tick() {
    const left = this.remaining();
    if (left <= 0) {
      this.expire();
    } else if (left <= this.warnMs) {
      this.warn(left);
    } else if (this.dialog && this.dialog.open) {
      // Activity in another tab (or "Stay signed in") pushed the deadline back.
      this.dialog.close();
    }
  }

  buildDialog() {
    const stay = h("button", { type: "button", class: "button", text: "Stay signed in" });
    const leave = h("button", { type: "button", class: "button button--secondary", text: "Log out now" });
    this.countdown = h("span", {});
    const dialog = h(
      "dialog",
      {
        role: "alertdialog",
        "aria-modal": "true",
        "aria-labelledby": "idle-title",
        "aria-describedby": "idle-desc",
        class: "idle-dialog",
      },
      // The heading names no number: the countdown under it is the one clock on screen.
      h("h2", { id: "idle-title", text: "You are about to be signed out" }),
      h(
        "p",
        { id: "idle-desc" },
        "For your privacy we sign you out after a period without activity. Choose “Stay signed in” to keep working.",
      ),
      h("p", { class: "idle-dialog__time" }, "Time left: ", this.countdown),
      h("div", { class: "button-row" }, stay, leave),
    );
    stay.addEventListener("click", () => this.stay(stay));
    leave.addEventListener("click", () => logOut(leave));
    // Escape means the person is here; treat it like "Stay signed in".
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.stay(stay);
    });
    document.body.append(dialog);
    this.stayButton = stay;
    return dialog;
  }

  warn(left) {
    if (!this.dialog) this.dialog = this.buildDialog();
    const seconds = Math.max(0, Math.ceil(left / 1000));
    this.countdown.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    if (!this.dialog.open) {
      this.returnFocus = document.activeElement;
      this.dialog.showModal();
      this.stayButton.focus();
    }
  }

  async stay(button) {
    button.disabled = true;
    try {
      const session = await get("/auth/session");
      rememberCsrfToken(session && session.csrf_token);
      if (this.dialog.open) this.dialog.close();
      if (this.returnFocus && document.contains(this.returnFocus)) this.returnFocus.focus();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.expire();
    } finally {
      button.disabled = false;
    }
  }

  async expire() {
    if (this.expired) return;
    this.expired = true;
    window.clearInterval(this.timer);
    // The server has ended the session by now; logging out also clears the cookie.
    try {
      await Promise.race([post("/auth/logout"), new Promise((r) => window.setTimeout(r, 2000))]);
    } catch {
      // Already gone.
    }
    window.location.assign(expiredLogin());
  }
}

/** The log-in page after a session ended, bringing the person back here afterwards. */
function expiredLogin() {
  return `/login.html?expired=1&next=${encodeURIComponent(currentPath())}`;
}

/**
 * Check the session and draw the portal chrome. Resolves to the session
 * ({user, stage, idle_timeout_seconds, …}) or null when the page must not continue
 * (redirecting to log in, wrong role, or the API is unreachable — a message is shown).
 * `roles`: the roles allowed on this page (all roles when omitted).
 */
export async function initPortal({ roles = null } = {}) {
  let session;
  try {
    session = await get("/auth/session");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      goToLogin(`next=${encodeURIComponent(currentPath())}`);
      return null;
    }
    const retry = h("button", {
      type: "button",
      class: "button button--small",
      text: "Try again",
      onClick: () => window.location.reload(),
    });
    showPageError(`We could not check your sign-in. ${error.message}`, h("p", {}, retry));
    return null;
  }
  if (!session || !session.user) {
    showPageError("We could not check your sign-in. Please reload the page.");
    return null;
  }
  if (session.stage === "mfa_pending" || session.stage === "mfa_enroll") {
    goToLogin(`resume=1&next=${encodeURIComponent(currentPath())}`);
    return null;
  }
  rememberCsrfToken(session.csrf_token);
  useZone(session.user.time_zone);
  renderNav(session.user);
  renderUser(session.user);
  if (session.user.role === "patient") {
    // The Messaging tab's unread count, live on every patient page (on the page's one socket).
    import("./chat-client.js").then((m) => m.badgeMessagingTab()).catch(() => {});
  }
  onUnauthenticated(() => window.location.assign(expiredLogin()));
  new IdleWatch(session.idle_timeout_seconds).start();

  if (roles && !roles.includes(session.user.role)) {
    const box = showPageError("You do not have access to this page.");
    const main = document.getElementById("main");
    for (const child of Array.from(main ? main.children : [])) {
      if (child.tagName !== "H1" && child.id !== "portal-status") child.hidden = true;
    }
    box.append(h("p", {}, h("a", { href: homeFor(session.user), text: "Go to your start page" })));
    focusElement(box);
    return null;
  }
  return session;
}

/** A "Loading…" line, then `load()`; on failure the error replaces it. Returns load()'s value. */
export async function withLoading(container, label, load) {
  const line = h("p", { class: "loading", role: "status", text: `Loading ${label}…` });
  replaceChildren(container, line);
  try {
    const value = await load();
    line.remove();
    return value;
  } catch (error) {
    replaceChildren(container, notice("error", h("p", { text: `Could not load ${label}. ${error.message}` })));
    container.firstChild.setAttribute("role", "alert");
    throw error;
  }
}
