// /staff/index.html: where providers, staff and admins land after signing in.
// It lists the clinic tools this role may use (the same list as the menu).

import { initPortal, tabsFor, CLINIC_TABS } from "../portal.js";
import { h, replaceChildren } from "../dom.js";

const session = await initPortal({ roles: ["provider", "staff", "admin"] });
if (session) {
  const hrefs = new Set(CLINIC_TABS.map((t) => t.href));
  const tools = tabsFor(session.user.role).filter((t) => hrefs.has(t.href) && t.href !== "/staff/index.html");
  tools.push({ href: "/app/account.html", label: "Account Settings" });
  replaceChildren(
    document.getElementById("console-tools"),
    tools.map((t) => h("li", {}, h("a", { href: t.href, text: t.label }))),
  );
}
