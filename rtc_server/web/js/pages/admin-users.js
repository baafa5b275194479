// /admin/users.html: find accounts, change a role (Save per row), lift a sign-in lock (Unlock),
// with Newer / Older paging by before_id. Admins only; the server checks and audits each call.
// A change to or from admin asks for the admin's own password first (#reauth-dialog).

import { post, ApiError } from "../api.js";
import { $, h, replaceChildren, focusElement, timeElement, announce } from "../dom.js";
import { clearErrors, handleSubmit } from "../forms.js";
import { pagedList, resultsTable } from "../paging.js";
import { initPortal } from "../portal.js";

const ROLES = [
  { value: "patient", label: "Patient" },
  { value: "provider", label: "Provider" },
  { value: "staff", label: "Staff" },
  { value: "admin", label: "Admin" },
];

const results = $("#users-results");
const message = $("#users-message");
const reauth = $("#reauth-dialog");
const reauthForm = $("#reauth-form");

let me = null;
/** The role change waiting for the password: {user, select, button}. */
let pending = null;

function roleLabel(value) {
  const found = ROLES.find((r) => r.value === value);
  return found ? found.label : String(value || "—");
}

function isLocked(user) {
  if (!user.locked_until) return false;
  const until = new Date(user.locked_until);
  return !Number.isNaN(until.getTime()) && until.getTime() > Date.now();
}

function showMessage(kind, text, details = []) {
  const box = h(
    "div",
    { class: `alert alert--${kind}`, role: kind === "error" ? "alert" : "status" },
    h("p", { text }),
    details.length ? h("ul", {}, details.map((d) => h("li", { text: d }))) : null,
  );
  replaceChildren(message, box);
}

function errorDetails(error) {
  return error instanceof ApiError ? (error.fields || []).map((f) => f.message) : [];
}

function roleCell(user) {
  if (me && user.id === me.id) {
    return h("td", {}, roleLabel(user.role), h("span", { class: "muted small", text: " (you)" }));
  }
  const selectId = `role-${user.id}`;
  const select = h(
    "select",
    { id: selectId, name: "role" },
    ROLES.map((r) => h("option", { value: r.value, text: r.label, selected: r.value === user.role })),
  );
  const save = h("button", {
    type: "button",
    class: "button button--small",
    text: "Save",
    "aria-label": `Save role for ${user.username}`,
    disabled: true,
  });
  select.addEventListener("change", () => {
    save.disabled = select.value === user.role;
  });
  save.addEventListener("click", () => saveRole(user, select, save));
  return h(
    "td",
    { class: "nowrap" },
    h("label", { for: selectId, class: "visually-hidden", text: `Role for ${user.username}` }),
    select,
    " ",
    save,
  );
}

function lockCell(user) {
  if (!isLocked(user)) return h("td", { class: "muted", text: "—" });
  const unlock = h("button", {
    type: "button",
    class: "button button--secondary button--small",
    text: "Unlock",
    "aria-label": `Unlock ${user.username}`,
  });
  unlock.addEventListener("click", () => unlockUser(user, unlock));
  return h("td", {}, h("p", { class: "small" }, "Locked until ", timeElement(user.locked_until)), unlock);
}

function row(user) {
  return h(
    "tr",
    { "data-user-id": String(user.id) },
    h("td", { class: "mono", text: user.username || "" }),
    h("td", { text: user.display_name || "—" }),
    roleCell(user),
    h("td", {}, h("span", { class: `badge ${user.status === "active" ? "badge--success" : ""}`, text: user.status || "—" })),
    h("td", { text: user.mfa_enabled ? "On" : "Off" }),
    h("td", { class: "nowrap" }, timeElement(user.created_at)),
    lockCell(user),
  );
}

function replaceRow(user) {
  const old = results.querySelector(`tr[data-user-id="${CSS.escape(String(user.id))}"]`);
  const fresh = row(user);
  if (old) old.replaceWith(fresh);
  return fresh;
}

function needsPassword(from, to) {
  return from === "admin" || to === "admin";
}

function roleChanged(user, updated) {
  const fresh = replaceRow(updated);
  const text = `${user.username}: role changed from ${roleLabel(user.role)} to ${roleLabel(updated.role)}.`;
  showMessage("success", text);
  announce(text);
  focusElement(fresh.querySelector("select") || fresh.querySelector("td"));
}

function roleFailed(user, select, button, error) {
  select.disabled = false;
  button.disabled = select.value === user.role;
  showMessage("error", `Could not change the role of ${user.username}: ${error.message}`, errorDetails(error));
  focusElement(message.firstElementChild);
}

function askPassword(user, select, button) {
  pending = { user, select, button };
  reauthForm.reset();
  clearErrors(reauthForm);
  $("#reauth-what").textContent =
    `Change the role of ${user.username} from ${roleLabel(user.role)} to ${roleLabel(select.value)}. ` +
    "Changes to or from Admin need your password.";
  reauth.showModal();
  $("#reauth-password").focus();
}

function cancelPassword() {
  if (reauth.open) reauth.close();
  if (!pending) return;
  const { user, select, button } = pending;
  pending = null;
  select.disabled = false;
  button.disabled = select.value === user.role;
  focusElement(select);
}

async function saveRole(user, select, button) {
  button.disabled = true;
  select.disabled = true;
  if (needsPassword(user.role, select.value)) {
    askPassword(user, select, button);
    return;
  }
  try {
    roleChanged(user, await post(`/admin/users/${encodeURIComponent(user.id)}/role`, { role: select.value }));
  } catch (error) {
    roleFailed(user, select, button, error);
  }
}

handleSubmit(reauthForm, async (data) => {
  if (!pending) return;
  const { user, select, button } = pending;
  const body = { role: select.value, current_password: data.current_password };
  try {
    const updated = await post(`/admin/users/${encodeURIComponent(user.id)}/role`, body);
    pending = null;
    reauth.close();
    roleChanged(user, updated);
  } catch (error) {
    // A missing or wrong password is shown in the dialog; anything else on the page.
    if (error instanceof ApiError && (error.fields || []).some((f) => f.field === "current_password")) {
      throw error;
    }
    pending = null;
    reauth.close();
    roleFailed(user, select, button, error);
  } finally {
    reauthForm.elements.namedItem("current_password").value = "";
  }
});
$("#reauth-cancel").addEventListener("click", cancelPassword);
reauth.addEventListener("cancel", (event) => {
  event.preventDefault();
  cancelPassword();
});

async function unlockUser(user, button) {
  button.disabled = true;
  try {
    const updated = await post(`/admin/users/${encodeURIComponent(user.id)}/unlock`);
    const fresh = replaceRow(updated);
    const text = `${user.username} can log in again.`;
    showMessage("success", text);
    announce(text);
    focusElement(fresh.querySelector("td"));
  } catch (error) {
    button.disabled = false;
    showMessage("error", `Could not unlock ${user.username}: ${error.message}`, errorDetails(error));
    focusElement(message.firstElementChild);
  }
}

function readFilters(data) {
  return { q: data.q || undefined, role: data.role || undefined, limit: data.limit || undefined };
}

const session = await initPortal({ roles: ["admin"] });
if (session) {
  me = session.user;
  pagedList({
    elements: {
      form: $("#users-filter"),
      results,
      pager: $("#users-pager"),
      older: $("#users-older"),
      newer: $("#users-newer"),
      pageStatus: $("#users-page-status"),
    },
    path: "/admin/users",
    readFilters,
    what: "user accounts",
    render: (users) =>
      resultsTable({
        caption: "User accounts, newest first",
        columns: ["Username", "Name", "Role", "Status", "Two-factor", "Created", "Sign-in lock"],
        items: users,
        row,
      }),
    empty: "No accounts match these filters.",
    status: (count) => `${count} accounts.`,
    onSubmit: () => message.replaceChildren(),
  });
}
