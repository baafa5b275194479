// Password rule hints from GET /auth/password-policy. The server's 422 messages stay
// authoritative; these hints only tell people the rules before they type.

import { get } from "./api.js";
import { h, replaceChildren } from "./dom.js";

/**
 * Fill `list` (a <ul class="hint">) with the policy's rules and set maxlength on `inputs`.
 * Quietly leaves the static fallback hint in place if the policy can't be loaded.
 */
export async function showPasswordPolicy(list, inputs = []) {
  let policy;
  try {
    policy = await get("/auth/password-policy");
  } catch {
    return null;
  }
  if (!policy || typeof policy !== "object") return null;
  const rules = Array.isArray(policy.rules) ? policy.rules.map(String) : [];
  const items = [];
  if (policy.min_length) {
    const max = policy.max_length ? ` and at most ${policy.max_length}` : "";
    items.push(`At least ${policy.min_length}${max} characters.`);
  }
  items.push(...rules);
  if (items.length) replaceChildren(list, items.map((text) => h("li", { text })));
  if (policy.max_length) {
    for (const input of inputs) input.setAttribute("maxlength", String(policy.max_length));
  }
  return policy;
}
