// /app/dashboard.html. The portal layout checks the session; the dashboard's own
// panels attach to #main-content.

import { initPortal } from "../portal.js";
import { $ } from "../dom.js";

const session = await initPortal();
if (session) {
  const name = session.user.display_name || session.user.username;
  $("#welcome").textContent = name ? `Welcome, ${name}.` : "Welcome.";
}
