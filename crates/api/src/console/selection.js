/* Selecting in the picture (mouse and keyboard) and the details panel of what is
   selected. Asks for an unlink or an undo by events the main module answers. */

import { byId, html, report, setStatus, timeElement } from "./dom.js";
import { contactKey, valueKey } from "./model.js";
import { ARROWS, nextSelection, state } from "./state.js";
import { clearWhy, explainWhy } from "./why.js";
import { idList, plural } from "./words.js";

export function nodeOf(target) {
  const group = target instanceof Element ? target.closest("g.contact, g.value") : null;
  if (!group || !state.view) return null;
  const key = group.classList.contains("contact")
    ? contactKey(group.dataset.contactId)
    : valueKey(group.dataset.valueKind, group.dataset.value);
  return state.view.byKey.get(key) ?? null;
}

export function choose(node) {
  if (node.type === "contact") {
    selectContact(node.contact.id);
  } else {
    selectValue(node.key);
  }
}

/**
 * Selects a contact. With one contact already selected, the new one becomes the second and
 * the "why" chain between the two is fetched; with two selected, the new one replaces the
 * second. Selecting the first one again starts over from it.
 */
export function selectContact(id) {
  const first = state.selection.contacts[0];
  state.selection = nextSelection(state.selection, id);
  state.lastContactId = id;
  paintSelection();
  renderDetails();
  if (state.selection.contacts.length === 2) {
    explainWhy(first, id).catch(report);
  } else {
    clearWhy();
  }
}

export function selectValue(key) {
  state.selection = { contacts: [], value: key };
  paintSelection();
  renderDetails();
  clearWhy();
}

export function clearSelection() {
  state.selection = { contacts: [], value: null };
  paintSelection();
  renderDetails();
  clearWhy();
  setStatus("Selection cleared.");
}

export function isSelected(node) {
  const { contacts, value } = state.selection;
  return node.type === "contact" ? contacts.includes(node.contact.id) : node.key === value;
}

/** Classes for the selection: `selected` on chosen nodes, `adjacent` on their edges. */
export function paintSelection() {
  for (const node of state.view.nodes) {
    const selected = isSelected(node);
    node.element.classList.toggle("selected", selected);
    node.element.setAttribute("aria-pressed", String(selected));
  }
  const { contacts, value } = state.selection;
  for (const edge of state.view.edges.values()) {
    const adjacent = edge.contactId !== null &&
      (edge.hubKey === value || contacts.includes(edge.contactId));
    edge.elements.forEach((element) => element.classList.toggle("adjacent", adjacent));
  }
}

/** The node nearest to `from` in an arrow's direction, preferring those within 45° of it. */
export function nearestInDirection(from, [ux, uy]) {
  let best = null;
  let bestScore = Infinity;
  for (const node of state.view.nodes) {
    const dx = node.x - from.x;
    const dy = node.y - from.y;
    const along = dx * ux + dy * uy;
    if (node === from || along <= 0) continue;
    const across = Math.abs(dx * uy - dy * ux);
    const score = along + 2 * across + (across > along ? 1e6 : 0);
    if (score < bestScore) {
      best = node;
      bestScore = score;
    }
  }
  return best;
}

/** Asks the main module to offer undoing `link` (links.js). */
function askToUndo(link) {
  byId("graph").dispatchEvent(new CustomEvent("undo-link", { detail: link }));
}

/** The manual link whose edge `target` is part of, if any. */
export function manualLinkOf(target) {
  const group = target instanceof Element ? target.closest("g.manual-link") : null;
  const id = Number(group?.dataset.linkId);
  return (state.graph?.links ?? []).find((link) => link.id === id) ?? null;
}

export function onGraphKey(event) {
  const link = manualLinkOf(event.target);
  if (link && (event.key === "Enter" || event.key === " ")) {
    event.preventDefault();
    askToUndo(link);
    return;
  }
  const node = nodeOf(event.target);
  if (!node) return;
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    choose(node);
  } else if (ARROWS.has(event.key)) {
    event.preventDefault();
    nearestInDirection(node, ARROWS.get(event.key))?.element.focus();
  }
}

export function onGraphClick(event) {
  const link = manualLinkOf(event.target);
  if (link) {
    askToUndo(link);
    return;
  }
  const node = nodeOf(event.target);
  if (node) choose(node);
}

export function onCustomerKey(event) {
  const { contacts, value } = state.selection;
  if (event.key === "Escape" && (contacts.length || value)) {
    event.preventDefault();
    clearSelection();
  }
}

export function renderDetails() {
  const { contacts, value } = state.selection;
  const panel = byId("details");
  if (value) {
    panel.replaceChildren(...valueDetails(state.view.byKey.get(value)));
  } else if (contacts.length) {
    const node = state.view.byKey.get(contactKey(contacts[contacts.length - 1]));
    panel.replaceChildren(...contactDetails(node.contact));
  } else {
    panel.replaceChildren(html("p", { class: "hint" },
      "Select a contact or a shared value in the picture."));
  }
}

export function facts(pairs) {
  return html("dl", { class: "facts" },
    ...pairs.flatMap(([term, detail]) => [html("dt", {}, term), html("dd", {}, detail)]));
}

export function contactDetails(contact) {
  const [first, second] = state.selection.contacts;
  const hint = second === undefined
    ? `Why? Select a second contact to see why it and contact ${first} are one customer.`
    : `Showing why contacts ${first} and ${second} are one customer. Select another contact ` +
      `to compare it with contact ${first}; Escape starts over.`;
  return [
    facts([
      ["Contact", String(contact.id)],
      ["Precedence", contact.linkPrecedence],
      ["Linked to", contact.linkedId ? `contact ${contact.linkedId}` : "nothing (primary)"],
      ["Email", contact.email ?? "none"],
      ["Phone", contact.phoneNumber ?? "none"],
      ["Created", timeElement(contact.createdAt)],
    ]),
    html("p", { class: "hint" }, hint),
  ];
}

export function valueDetails(hub) {
  const rows = [
    [hub.kind === "email" ? "Email" : "Phone", hub.value],
    ["Held by", hub.holders.length
      ? `${plural(hub.holders.length, "contact")}: ${idList(hub.holders)}`
      : "no contact of this customer"],
  ];
  if (hub.requests.length) {
    rows.push(["Joining requests", `${plural(hub.requests.length, "request")} brought it ` +
      "with a value of another customer"]);
  }
  const button = html("button", { id: "unlink-button", type: "button", class: "danger" },
    "Unlink this value…");
  // The main module answers (unlink.js): selection does not depend on what unlinking does.
  button.addEventListener("click", () => {
    button.dispatchEvent(new CustomEvent("unlink-value", { bubbles: true, detail: hub }));
  });
  return [
    facts(rows),
    html("p", { class: "hint" }, "Unlinking stops this value from joining contacts; " +
      "you see what it would do before anything changes."),
    button,
  ];
}
