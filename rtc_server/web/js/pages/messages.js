// /app/messages.html (Messaging tab). The portal layout checks the session; the tab's own
// features attach to #main-content.

import { initPortal } from "../portal.js";

await initPortal({ roles: ["patient"] });
