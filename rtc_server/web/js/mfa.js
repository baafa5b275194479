// Two-factor enrolment, shared by the login page (forced enrolment) and Account Settings:
// [current password, Account Settings only] -> POST /account/mfa/setup -> QR + secret -> code
// -> POST /account/mfa/confirm -> recovery codes.

import { post } from "./api.js";
import { h, replaceChildren, focusElement, uniqueId, notice } from "./dom.js";
import { handleSubmit } from "./forms.js";

/** SVG markup -> data: URL, so it is shown as an image and never parsed into the page. */
export function svgDataUrl(svg) {
  const bytes = new TextEncoder().encode(String(svg));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `data:image/svg+xml;base64,${window.btoa(binary)}`;
}

/** Group a base32 secret in fours so it is easier to type. */
function groupSecret(secret) {
  return String(secret).replace(/\s+/g, "").replace(/(.{4})(?=.)/g, "$1 ");
}

function codeForm(onCode, { submitLabel, onCancel = null }) {
  const inputId = uniqueId("mfa-code");
  const hintId = `${inputId}-hint`;
  const form = h(
    "form",
    { class: "mfa-code-form" },
    h(
      "div",
      { class: "field" },
      h("label", { for: inputId, text: "6-digit code from your app" }),
      h("input", {
        id: inputId,
        name: "code",
        type: "text",
        inputmode: "numeric",
        autocomplete: "one-time-code",
        required: true,
        maxlength: "10",
        "aria-describedby": hintId,
        "data-required-message": "Enter the 6-digit code shown in your authenticator app.",
      }),
      h("p", {
        class: "hint",
        id: hintId,
        text: "The code changes every 30 seconds. Enter the one shown now.",
      }),
    ),
    h(
      "div",
      { class: "form-actions" },
      h("button", { class: "button", type: "submit", text: submitLabel }),
      cancelButton(onCancel),
    ),
  );
  handleSubmit(form, async (data) => onCode(data.code.replace(/\s+/g, "")), {
    fieldForCode: { invalid_code: "code" },
  });
  return form;
}

/** Show recovery codes once, with a copy button and an "I saved these" button. */
export function renderRecoveryCodes(container, codes, { onDone, headingLevel = "h2" }) {
  const heading = h(headingLevel, { text: "Save your recovery codes" });
  const copyStatus = h("span", { role: "status", class: "muted small" });
  const copyButton = h("button", {
    type: "button",
    class: "button button--secondary",
    text: "Copy codes",
    onClick: async () => {
      try {
        await navigator.clipboard.writeText(codes.join("\n"));
        copyStatus.textContent = "Copied.";
      } catch {
        copyStatus.textContent = "Copying is not available here; write the codes down instead.";
      }
    },
  });
  const doneButton = h("button", {
    type: "button",
    class: "button",
    text: "I saved these",
    onClick: () => onDone(),
  });
  replaceChildren(
    container,
    heading,
    notice(
      "warning",
      h("p", {
        text:
          "Each code can be used once to log in if you lose your phone. " +
          "Keep them somewhere safe, such as a password manager. They will not be shown again.",
      }),
    ),
    h("ol", { class: "codes", "aria-label": "Recovery codes" }, codes.map((c) => h("li", { text: c }))),
    h("div", { class: "button-row" }, copyButton, doneButton, copyStatus),
  );
  focusElement(heading);
}

/** Asks for the current password before set-up starts (Account Settings, not the login enrolment). */
function passwordForm(onPassword, onCancel) {
  const inputId = uniqueId("mfa-password");
  const hintId = `${inputId}-hint`;
  const form = h(
    "form",
    { class: "mfa-password-form" },
    h(
      "div",
      { class: "field" },
      h("label", { for: inputId, text: "Current password" }),
      h("input", {
        id: inputId,
        name: "current_password",
        type: "password",
        autocomplete: "current-password",
        required: true,
        "aria-describedby": hintId,
        "data-required-message": "Enter your current password to set up two-factor authentication.",
      }),
      h("p", {
        class: "hint",
        id: hintId,
        text: "For your security, enter your password before setting up two-factor authentication.",
      }),
    ),
    h(
      "div",
      { class: "form-actions" },
      h("button", { class: "button", type: "submit", text: "Continue" }),
      cancelButton(onCancel),
    ),
  );
  handleSubmit(form, async (data) => onPassword(data.current_password));
  return form;
}

/** Show the QR code and key of a fresh set-up, then the code form. */
function showSetup(container, body, setup, { onDone, headingLevel, onCancel }) {
  const qrImage = h("img", {
    class: "mfa-qr",
    src: svgDataUrl(setup.qr_svg || ""),
    alt: "QR code to add this account to your authenticator app",
    width: "192",
    height: "192",
  });
  const secret = h("code", { class: "secret", text: groupSecret(setup.secret || "") });
  const form = codeForm(
    async (code) => {
      const result = await post("/account/mfa/confirm", { code });
      const codes = Array.isArray(result && result.recovery_codes) ? result.recovery_codes : [];
      renderRecoveryCodes(container, codes, { onDone, headingLevel });
    },
    { submitLabel: "Turn on two-factor authentication", onCancel },
  );

  replaceChildren(
    body,
    h(
      "ol",
      {},
      h("li", {
        text: "Open an authenticator app on your phone (for example Google Authenticator, Microsoft Authenticator, 1Password or Aegis).",
      }),
      h("li", {}, "Scan this QR code with the app:", qrImage),
      h("li", {}, "If you can't scan it, add the account by typing this key: ", secret),
      h("li", { text: "Enter the 6-digit code the app shows." }),
    ),
    form,
  );
}

/**
 * Run enrolment inside `container`. Calls `onDone()` when the person confirms they saved the
 * recovery codes. `askPassword`: ask for the current password first (required by the server
 * when set-up starts from a full session, i.e. Account Settings; the login enrolment needs none).
 */
export async function runMfaEnrolment(
  container,
  { onDone, headingLevel = "h2", onCancel = null, askPassword = false },
) {
  const options = { onDone, headingLevel, onCancel };
  const heading = h(headingLevel, { text: "Set up two-factor authentication" });
  const body = h("div", {});
  replaceChildren(container, heading, body);

  if (askPassword) {
    const form = passwordForm(async (password) => {
      const setup = await post("/account/mfa/setup", { current_password: password });
      showSetup(container, body, setup, options);
      focusElement(heading);
    }, onCancel);
    replaceChildren(body, form);
    focusElement(form.elements.namedItem("current_password"));
    return;
  }

  replaceChildren(body, h("p", { class: "loading", text: "Preparing your setup key…" }));
  focusElement(heading);
  let setup;
  try {
    setup = await post("/account/mfa/setup");
  } catch (error) {
    const retry = h("button", {
      type: "button",
      class: "button",
      text: "Try again",
      onClick: () => runMfaEnrolment(container, options),
    });
    replaceChildren(
      body,
      h("div", { class: "alert alert--error", role: "alert" }, h("p", { text: error.message })),
      h("div", { class: "button-row" }, retry, cancelButton(onCancel)),
    );
    return;
  }
  showSetup(container, body, setup, options);
}

function cancelButton(onCancel) {
  if (!onCancel) return null;
  return h("button", {
    type: "button",
    class: "button button--secondary",
    text: "Cancel",
    onClick: () => onCancel(),
  });
}
