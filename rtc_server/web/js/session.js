// Where people land after logging in, and which `next` targets are safe to follow.

/** The start page for a role: patients get their dashboard, the clinic its console. */
export function homeFor(user) {
  return user && user.role === "patient" ? "/app/dashboard.html" : "/console/index.html";
}

/**
 * `value` if it is a same-origin path ("/app/…", not "//host" or "/\\host"), else null.
 * Pages that would bounce back to the login flow are refused too.
 */
export function safeNext(value) {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//")) return null;
  if (value.includes("\\")) return null;
  let url;
  try {
    url = new URL(value, window.location.origin);
  } catch {
    return null;
  }
  if (url.origin !== window.location.origin) return null;
  if (url.pathname === "/login.html") return null;
  return url.pathname + url.search + url.hash;
}

/** The page to open after a full login. */
export function afterLogin(user, next) {
  return safeNext(next) || homeFor(user);
}
