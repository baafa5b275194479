// /staff/index.html: where providers, staff and admins land after signing in. It
// greets the person by name and role and lists the clinic tools this role may use
// (the same list as the menu).

import { initPortal, tabsFor, ROLE_LABELS } from "../portal.js";
import { h, replaceChildren } from "../dom.js";

/** What each tool is for, shown under its link. */
const PURPOSE = {
  "/staff/verifications.html": "Check the details of people who registered but did not match a record on file.",
  "/admin/users.html": "Find accounts, change roles and unlock accounts.",
  "/admin/audit.html": "See who opened or changed what, and when.",
  "/app/account.html": "Your contact details, password, two-factor sign-in and notifications.",
};

const session = await initPortal({ roles: ["provider", "staff", "admin"] });
if (session) {
  const { user } = session;
  const name = user.display_name || user.username;
  replaceChildren(
    document.getElementById("welcome"),
    `Welcome, ${name}. `,
    h("span", { class: "muted", text: `Signed in as ${ROLE_LABELS[user.role] || user.role}.` }),
  );
  const tools = tabsFor(user.role).filter((t) => t.href !== "/staff/index.html");
  replaceChildren(
    document.getElementById("console-tools"),
    tools.map((t) => h("li", {}, h("a", { href: t.href, text: t.label }), PURPOSE[t.href] ? h("span", { text: PURPOSE[t.href] }) : null)),
  );
}
