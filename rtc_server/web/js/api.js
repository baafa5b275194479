// Fetch wrapper for /api/v1: JSON in and out, same-origin cookies, CSRF header on
// state-changing requests, and one error type (ApiError) for every failure.

export const API_BASE = "/api/v1";

const CSRF_COOKIES = ["__Host-rtc_csrf", "rtc_csrf"];
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const LAST_CALL_KEY = "rtc:last-api-call";

/** An error answered by the API (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(status, code, message, fields = [], requestId = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields;
    this.requestId = requestId;
  }
}

let csrfFromBody = null;
let lastCallAt = Date.now();
const callListeners = new Set();
const unauthorizedListeners = new Set();

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      return decodeURIComponent(part.slice(eq + 1).trim());
    }
  }
  return null;
}

function csrfFromCookie() {
  for (const name of CSRF_COOKIES) {
    const value = readCookie(name);
    if (value) return value;
  }
  return null;
}

/** Remember a CSRF token the server handed us in a body (e.g. GET /auth/session). */
export function rememberCsrfToken(token) {
  if (typeof token === "string" && token) csrfFromBody = token;
}

async function csrfToken({ refresh = false } = {}) {
  if (!refresh) {
    const token = csrfFromCookie() || csrfFromBody;
    if (token) return token;
  }
  const body = await request("GET", "/auth/csrf");
  rememberCsrfToken(body && body.csrf_token);
  return csrfFromCookie() || csrfFromBody;
}

/** Milliseconds since the epoch of the last call that reached the server (any tab). */
export function lastApiCallAt() {
  let shared = 0;
  try {
    shared = Number(window.localStorage.getItem(LAST_CALL_KEY)) || 0;
  } catch {
    shared = 0;
  }
  return Math.max(lastCallAt, shared);
}

/** Listen for calls that reached the server; returns an unsubscribe function. */
export function onApiCall(listener) {
  callListeners.add(listener);
  return () => callListeners.delete(listener);
}

/** Listen for 401 `unauthenticated` answers (session ended); returns an unsubscribe function. */
export function onUnauthenticated(listener) {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

function noteCall() {
  lastCallAt = Date.now();
  try {
    window.localStorage.setItem(LAST_CALL_KEY, String(lastCallAt));
  } catch {
    // Storage may be disabled; the in-memory time still works for this tab.
  }
  for (const listener of callListeners) listener(lastCallAt);
}

function buildUrl(path, query) {
  const url = new URL(API_BASE + path, window.location.origin);
  if (query) {
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") {
        url.searchParams.set(key, String(value));
      }
    }
  }
  return url.pathname + url.search;
}

const GENERIC_MESSAGES = {
  400: "The request could not be understood. Please check what you entered.",
  401: "Your session has ended. Please log in again.",
  403: "You do not have permission to do that.",
  404: "This service is not available right now.",
  405: "This service is not available right now.",
  409: "That conflicts with the current state. Refresh the page and try again.",
  410: "This link is no longer valid.",
  413: "That is too large to send.",
  422: "Please check the highlighted fields.",
  429: "Too many attempts. Please wait a few minutes and try again.",
};

async function toApiError(response) {
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  const err = payload && typeof payload === "object" ? payload.error : null;
  if (err && typeof err === "object") {
    return new ApiError(
      response.status,
      String(err.code || `http_${response.status}`),
      String(err.message || GENERIC_MESSAGES[response.status] || "Something went wrong."),
      Array.isArray(err.fields) ? err.fields : [],
      err.request_id || null,
    );
  }
  const message =
    GENERIC_MESSAGES[response.status] ||
    (response.status >= 500
      ? "The server had a problem. Please try again in a moment."
      : "Something went wrong. Please try again.");
  return new ApiError(response.status, `http_${response.status}`, message);
}

async function request(method, path, { body, query, headers: extra, signal } = {}) {
  const headers = { Accept: "application/json", ...extra };
  const init = { method, headers, credentials: "same-origin", signal, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(buildUrl(path, query), init);
  } catch (exc) {
    if (exc && exc.name === "AbortError") throw exc;
    throw new ApiError(
      0,
      "network_error",
      "Could not reach the server. Check your connection and try again.",
    );
  }
  noteCall();
  if (!response.ok) {
    const error = await toApiError(response);
    if (error.status === 401 && error.code === "unauthenticated") {
      for (const listener of unauthorizedListeners) listener(error);
    }
    throw error;
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  if (!type.includes("json")) return null;
  try {
    return await response.json();
  } catch {
    throw new ApiError(response.status, "bad_response", "The server sent an unreadable reply.");
  }
}

/**
 * Call the API. `path` is relative to /api/v1 ("/auth/login").
 * Resolves to the parsed JSON (null for 204); rejects with ApiError.
 */
export async function api(path, { method = "GET", body, query, signal, headers: extra = {} } = {}) {
  const verb = method.toUpperCase();
  if (!UNSAFE.has(verb)) return request(verb, path, { query, signal, headers: extra });
  const token = await csrfToken();
  try {
    return await request(verb, path, {
      body,
      query,
      signal,
      headers: token ? { ...extra, "X-CSRF-Token": token } : extra,
    });
  } catch (error) {
    // A stale CSRF cookie (e.g. rotated at login) gets one fresh try.
    if (error instanceof ApiError && error.status === 403 && /csrf/i.test(error.code)) {
      const fresh = await csrfToken({ refresh: true });
      return request(verb, path, {
        body,
        query,
        signal,
        headers: fresh ? { ...extra, "X-CSRF-Token": fresh } : extra,
      });
    }
    throw error;
  }
}

export const get = (path, options = {}) => api(path, { ...options, method: "GET" });
export const post = (path, body, options = {}) => api(path, { ...options, method: "POST", body });
export const put = (path, body, options = {}) => api(path, { ...options, method: "PUT", body });
export const patch = (path, body, options = {}) => api(path, { ...options, method: "PATCH", body });
export const del = (path, options = {}) => api(path, { ...options, method: "DELETE" });
