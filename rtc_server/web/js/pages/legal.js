// /terms.html and /privacy.html: show the current version from GET /legal
// (the static text in the page is the fallback).

import { get } from "../api.js";
import { $ } from "../dom.js";

const line = $("#legal-version");

async function showVersion() {
  let legal;
  try {
    legal = await get("/legal");
  } catch {
    return;
  }
  const version = legal && legal[`${line.dataset.legal}_version`];
  if (version) line.textContent = `Version ${version}`;
}

showVersion();
