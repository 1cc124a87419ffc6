/* Identity console: the page's start. Keeps the key for the tab, wires every control to
   its module, and answers the events other modules raise (a refused key, an unlink or an
   undo asked for in the picture). */

import { closeCustomer, onResultClick, openFromAddress, search, showResults } from "./customer.js";
import { byId, guarded, report, setStatus, show } from "./dom.js";
import { confirmLink, findForLink, openLinkDialog, undoLink } from "./links.js";
import { onCustomerKey, onGraphClick, onGraphKey } from "./selection.js";
import { state } from "./state.js";
import { checkReason, confirmUnlink, loadRules, previewUnlink } from "./unlink.js";

const KEY_STORAGE = "identity-console-key";

function loadKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null; // storage disabled: the key lives in memory only
  }
}

function saveKey(key) {
  state.key = key;
  try {
    sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // Storage disabled: the key still works until the page is reloaded.
  }
}

function showKeyForm() {
  show(byId("key-form"), true);
  const input = byId("key");
  input.value = "";
  input.focus();
}

/** Reveals what needs a key and opens the customer named in the address, if any. */
function startSession() {
  show(byId("key-form"), false);
  show(byId("search-form"), true);
  show(byId("forget-key"), true);
  show(byId("rules"), true);
  openFromAddress();
}

async function submitKey(event) {
  event.preventDefault();
  const input = byId("key");
  const key = input.value.trim();
  // A header value must be visible ASCII; anything else makes fetch throw a TypeError.
  if (!/^[\x21-\x7e]*$/.test(key)) {
    input.setCustomValidity("A key has no spaces and only plain ASCII characters");
    input.reportValidity();
    return;
  }
  saveKey(key);
  input.value = "";
  startSession();
  setStatus(key ? "Key kept for this browser tab." : "No key: requests go without one.");
  byId("search-value").focus();
}

function forgetKey() {
  state.key = null;
  try {
    sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Nothing stored.
  }
  closeCustomer();
  showResults(null);
  byId("rules").open = false;
  byId("rules-list").replaceChildren();
  show(byId("search-form"), false);
  show(byId("forget-key"), false);
  show(byId("rules"), false);
  showKeyForm();
  setStatus("Key forgotten.");
}

function wire() {
  byId("key-form").addEventListener("submit", guarded(submitKey));
  byId("key").addEventListener("input", (event) => event.target.setCustomValidity(""));
  byId("forget-key").addEventListener("click", forgetKey);
  byId("search-form").addEventListener("submit", guarded(search));
  byId("results-list").addEventListener("click", onResultClick);
  byId("graph").addEventListener("click", onGraphClick);
  byId("graph").addEventListener("keydown", onGraphKey);
  // A big customer has hundreds of nodes to tab through; this jumps to what they select.
  byId("skip-picture").addEventListener("click", () => byId("details").focus());
  byId("customer").addEventListener("keydown", onCustomerKey);
  byId("unlink-form").addEventListener("submit", guarded(confirmUnlink));
  byId("unlink-reason").addEventListener("input", checkReason);
  byId("unlink-cancel").addEventListener("click", () => byId("unlink-dialog").close());
  byId("rules").addEventListener("toggle", () => {
    if (byId("rules").open) loadRules().catch(report);
  });
  byId("rules-refresh").addEventListener("click", guarded(loadRules));
  byId("link-open").addEventListener("click", openLinkDialog);
  byId("link-search").addEventListener("submit", guarded(findForLink));
  byId("link-form").addEventListener("submit", guarded(confirmLink));
  byId("link-cancel").addEventListener("click", () => byId("link-dialog").close());
  window.addEventListener("hashchange", openFromAddress);
  // What other modules ask for (see dom.js and selection.js).
  document.addEventListener("key-refused", showKeyForm);
  byId("details").addEventListener("unlink-value", guarded((event) => previewUnlink(event.detail)));
  byId("graph").addEventListener("undo-link", guarded((event) => undoLink(event.detail)));
}

function start() {
  wire();
  state.key = loadKey();
  if (state.key === null) {
    showKeyForm();
  } else {
    startSession();
  }
}

document.addEventListener("DOMContentLoaded", start);
