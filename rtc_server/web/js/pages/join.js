// /join.html#<token>: a guest's invitation to a video visit (docs/visits.md, "Guests").
// The token rides in the fragment, so it never reaches a server log or a Referer
// header. Nothing is redeemed until the person clicks Join (a mail scanner that opens
// links does not use up the single-use link); the server then sets the guest's
// session cookie, limited to that visit, and the visit page takes over.

import { post } from "../api.js";
import { focusElement } from "../dom.js";

const $ = (id) => document.getElementById(id);

function refuse(text, next = null) {
  $("join-ready").hidden = true;
  $("refused-text").textContent = text;
  if (next) $("refused-next").textContent = next;
  $("join-refused").hidden = false;
  focusElement($("refused-heading"));
}

function main() {
  const token = window.location.hash.slice(1);
  if (!token) {
    refuse("This page needs the whole link from your invitation. Open it again from the message you received.");
    return;
  }
  $("join-ready").hidden = false;
  const button = $("join-button");
  button.addEventListener("click", async () => {
    button.disabled = true;
    $("join-status").textContent = "Joining…";
    // Out of the address bar and the history once used: the link works once anyway.
    window.history.replaceState(null, "", window.location.pathname);
    try {
      const joined = await post("/visit-invites/redeem", { token });
      window.location.replace(`/visit.html?visit=${joined.visit_id}&guest=1`);
    } catch (error) {
      $("join-status").textContent = "";
      if (error.code === "signed_in" || error.status === 429) {
        // The link was not used: keep it, so this page can be opened again.
        window.history.replaceState(null, "", `${window.location.pathname}#${token}`);
        $("refused-heading").textContent = "You cannot join from here yet";
        refuse(error.message, error.code === "signed_in"
          ? "Your invitation link still works. After signing out (or in a private window), open it again."
          : "Your invitation link still works. Wait a few minutes, then open it again.");
        return;
      }
      refuse(error.message);
    }
  });
}

main();
