// The Help Desk's common questions, shared by the signed-in Help Desk tab
// (/app/help.html) and the public help page (/help.html). Answers are built with h(),
// so everything is inserted as text; links are real links.

import { h } from "./dom.js";

const link = (href, text) => h("a", { href, text });

/** [{id, question, answer: (signedIn) => [nodes]}], in the order shown. */
export const FAQ = [
  {
    id: "secure",
    question: "Is the patient portal secure?",
    answer: () => [
      h("p", { text: "Yes. Check that the address in your browser starts with “https” and that the page shows the clinic's name: what you send and see then travels encrypted." }),
      h("p", { text: "Your password is never stored as you typed it, you are signed out after a period without activity, and you can add two-factor sign-in (a code from an app on your phone) in Account Settings › Security. Clinic staff must use it." }),
      h("p", { text: "Every time someone at the clinic opens your record, it is logged. Emails and texts from the portal never contain health information: they only tell you that something new is waiting here." }),
    ],
  },
  {
    id: "mobile",
    question: "Can I use the portal on my phone or tablet?",
    answer: () => [
      h("p", { text: "Yes. The portal works in the web browser of a phone or tablet (recent Safari, Chrome, Firefox or Edge); there is no app to install. On a small screen the sections are under the Menu button at the top." }),
      h("p", { text: "Add the log-in page to your home screen to find it quickly. For video visits, allow the browser to use the camera and microphone when it asks." }),
    ],
  },
  {
    id: "sharing",
    question: "Why can't I share my account with a family member?",
    answer: () => [
      h("p", { text: "An account opens one person's medical record, and everything done with it is recorded under that person's name. Someone using your password would see all of your health information and could act as you, for example cancel your appointments or answer your care team." }),
      h("p", { text: "Everyone who wants to use the portal needs their own account. To help a child or a person you care for, ask the clinic about access to their record; don't share passwords." }),
    ],
  },
  {
    id: "labs",
    question: "How long do lab results take?",
    answer: (signedIn) => [
      h("p", { text: "Most results reach the portal two to four days after the test, as soon as the laboratory sends them. A few kinds of test are released after your provider has reviewed them; the Medical Records page says which ones." }),
      h("p", {}, "You are told by email or text (as you choose in ",
        signedIn ? link("/app/notifications.html", "Account Settings › Notifications") : "Account Settings › Notifications",
        ") when a new result arrives. The message never says what the result is."),
    ],
  },
  {
    id: "refill",
    question: "How do I request a prescription refill?",
    answer: (signedIn) => [
      h("p", {}, "Open Messaging and choose ",
        signedIn ? link("/app/refills.html", "Prescription refill request") : "Prescription refill request",
        ". Pick the medication from your active list, choose your pharmacy (the one you used last time is offered first), add a note if you like, and send."),
      h("p", { text: "Your provider usually answers within 2 business days. The refills page shows each step with its time: requested, approved or denied, and sent to the pharmacy; we also tell you by email or text when something changes." }),
      h("p", { text: "Controlled substances (for example some pain, sleep or attention medications) can't be refilled online: please call the clinic." }),
    ],
  },
  {
    id: "virtual",
    question: "How do I schedule a virtual (video) visit?",
    answer: (signedIn) => [
      h("p", {}, "Open ", signedIn ? link("/app/appointments.html", "Appointments") : "Appointments",
        ", choose your provider, and choose Video as the kind of visit: the open times that offer video visits are shown in your own time zone. Your appointment is then marked as a video visit."),
      h("p", {}, "How to join it is explained on the ", signedIn ? link("/app/visits.html", "Virtual Visits") : "Virtual Visits",
        " tab. You need a device with a camera, a microphone and a recent browser."),
    ],
  },
  {
    id: "technical",
    question: "Something in the portal doesn't work. What can I try?",
    answer: (signedIn) => [
      h("ul", {},
        h("li", { text: "Reload the page, or sign out and sign in again." }),
        h("li", { text: "Make sure your browser is up to date, or try another browser." }),
        h("li", { text: "For a video visit, check that the browser may use the camera and microphone (the icon next to the address)." }),
        h("li", { text: "If you were signed out, that happens after a period without activity, for your privacy; you return to the page you were on when you sign in again." })),
      h("p", {}, signedIn ? "If it still doesn't work, send us a message below: " : "If it still doesn't work, use the form below: ",
        "say what you did and what you saw (the exact message helps). A person at the clinic answers."),
    ],
  },
  {
    id: "password",
    question: "I forgot my password or username, or I am locked out",
    answer: () => [
      h("p", {}, "Use ", link("/forgot-password.html", "Forgot your password?"), " or ",
        link("/forgot-username.html", "Forgot your username?"), " on the log-in page. After too many wrong passwords the account is locked for a while; resetting your password unlocks it."),
      h("p", { text: "Lost the phone with your authenticator app? Sign in with one of your recovery codes in place of the 6-digit code, then set up two-factor sign-in again. Without recovery codes, contact the help desk." }),
    ],
  },
];

/** The questions as disclosure widgets (<details>), each with an id to link to. */
export function renderFaq(container, { signedIn = false } = {}) {
  container.replaceChildren(...FAQ.map((item) =>
    h("details", { id: `faq-${item.id}` }, h("summary", { text: item.question }), item.answer(signedIn))));
  const wanted = window.location.hash.replace(/^#/, "");
  const open = wanted && document.getElementById(wanted);
  if (open && open.tagName === "DETAILS") open.open = true;
}
