/* Unlinking a value: the preview and confirmation dialog, what follows, and the table of
   unlink rules. */

import { api, valueBody } from "./api.js";
import { closeCustomer, openCustomer, showResults } from "./customer.js";
import { byId, guarded, html, report, setStatus, timeElement } from "./dom.js";
import { state } from "./state.js";
import { consequence, customerLine, kindWord, plural, ruleValue } from "./words.js";

export async function previewUnlink(hub) {
  setStatus(`Working out what unlinking ${hub.value} would do…`);
  const preview = await api("POST", "/blocked-identifiers/preview", valueBody(hub.kind, hub.value));
  openUnlinkDialog(hub, preview);
  setStatus("");
}

export function openUnlinkDialog(hub, preview) {
  const customers = preview.customers ?? [];
  const erased = (preview.erasedContactIds ?? []).length;
  if (state.unlinking?.key !== hub.key) {
    byId("unlink-reason").value = "";
    checkReason();
  }
  state.unlinking = hub;
  byId("unlink-title").textContent = `Unlink ${kindWord(hub.kind)} ${hub.value}`;
  byId("unlink-count").textContent = consequence(hub.value, customers.length, erased);
  byId("unlink-customers").replaceChildren(
    ...customers.map((customer) => html("li", {}, customerLine(customer))));
  byId("unlink-dialog").showModal();
  byId("unlink-reason").focus();
}

/** A reason of spaces only is no reason. */
export function checkReason() {
  const input = byId("unlink-reason");
  input.setCustomValidity(input.value && !input.value.trim() ? "Say why, in a sentence." : "");
}

export async function confirmUnlink(event) {
  event.preventDefault();
  const hub = state.unlinking;
  const dialog = byId("unlink-dialog");
  const confirmButton = byId("unlink-confirm");
  const reason = byId("unlink-reason").value.trim();
  confirmButton.disabled = true;
  let answer;
  try {
    answer = await api("POST", "/blocked-identifiers",
      { ...valueBody(hub.kind, hub.value), reason });
  } finally {
    confirmButton.disabled = false;
    dialog.close();
  }
  await afterUnlink(hub, answer);
}

/**
 * Shows the customers an unlink left, then reopens the customer of the contact that was
 * selected (else of the primary), or the first resulting customer if that contact is gone.
 */
export async function afterUnlink(hub, answer) {
  const customers = answer.customers ?? [];
  const erased = new Set(answer.erasedContactIds ?? []);
  const value = answer.rule?.email ?? answer.rule?.phoneNumber ?? hub.value;
  const selected = state.lastContactId;
  const previous = selected ?? state.graph.primaryContactId;
  state.unlinking = null;
  showResults(`Customers after unlinking ${value}`, customers);
  setStatus(`Unlinked ${value}: ${plural(customers.length, "customer")}`);
  byId(customers.length ? "results" : "status").focus();
  if (byId("rules").open) {
    loadRules().catch(report);
  }
  const reopen = erased.has(previous) ? customers[0]?.primaryContactId : previous;
  if (reopen === undefined) {
    closeCustomer();
  } else {
    await openCustomer(reopen, { announce: false, select: erased.has(previous) ? null : selected });
  }
}

export async function loadRules() {
  const answer = await api("GET", "/blocked-identifiers");
  renderRules(answer.rules ?? []);
}

export function renderRules(rules) {
  const body = byId("rules-list");
  if (rules.length === 0) {
    body.replaceChildren(html("tr", {}, html("td", { colspan: 5, class: "hint" }, "No rules.")));
    return;
  }
  body.replaceChildren(...rules.map((rule) => {
    const value = ruleValue(rule);
    const remove = html("button", {
      type: "button",
      class: "danger",
      "data-rule-id": rule.id,
      "aria-label": `Delete rule ${rule.id} for ${value}`,
    }, "Delete rule");
    remove.addEventListener("click", guarded(() => deleteRule(rule)));
    return html("tr", { "data-rule-id": rule.id },
      html("td", {}, html("span", { class: "kind" }, rule.email ? "email" : "phone"), " ", value),
      html("td", {}, rule.reason ?? ""),
      html("td", {}, rule.createdBy ?? ""),
      html("td", {}, timeElement(rule.createdAt)),
      html("td", {}, remove));
  }));
}

export async function deleteRule(rule) {
  const value = ruleValue(rule);
  if (!window.confirm(`Delete rule ${rule.id}, which blocks ${value}?`)) return;
  await api("DELETE", `/blocked-identifiers/${rule.id}`);
  setStatus(`Deleted rule ${rule.id} (${value}).`);
  byId("status").focus();
  await loadRules();
}
