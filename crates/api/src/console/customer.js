/* Finding and opening customers: search, results, the open customer (picture, details,
   history), deep links (#contact=<id>). */

import { api, valueBody } from "./api.js";
import { byId, html, report, setStatus, show, timeElement } from "./dom.js";
import { drawGraph } from "./draw.js";
import { buildModel, contactKey } from "./model.js";
import { renderDetails, selectContact } from "./selection.js";
import { state } from "./state.js";
import { renderWhyIdle } from "./why.js";
import { causeWords, customerLine, eventWords, plural } from "./words.js";

export async function search(event) {
  event.preventDefault();
  const kind = byId("search-kind").value;
  const value = byId("search-value").value.trim();
  if (kind === "id") {
    if (!/^[1-9]\d*$/.test(value)) {
      setStatus("A contact id is a positive whole number.", true);
      return;
    }
    setStatus(`Looking up contact ${value}…`);
    const answer = await api("GET", `/contacts/${value}`);
    await showFound([answer.contact], Number(value));
  } else {
    setStatus(`Looking for ${value}…`);
    const answer = await api("POST", "/customers/search", valueBody(kind, value));
    await showFound(answer.customers ?? [], null);
  }
}

/** Opens the one customer found, or lists several; `contactId` is the contact searched for. */
export async function showFound(customers, contactId) {
  if (customers.length === 0) {
    showResults(null);
    setStatus("No customer holds this value");
  } else if (customers.length === 1) {
    showResults(null);
    await openCustomer(contactId ?? customers[0].primaryContactId, { select: contactId });
  } else {
    showResults(`${plural(customers.length, "customer")} hold this value`, customers);
    setStatus(`${plural(customers.length, "customer")} hold this value; pick one.`);
    byId("results").focus();
  }
}

/** Lists customers as buttons under `title`; no title hides the list. */
export function showResults(title, customers = []) {
  const list = byId("results-list");
  list.replaceChildren(...customers.map((customer) => html("li", {},
    html("button", { type: "button", "data-customer-id": customer.primaryContactId },
      customerLine(customer)))));
  byId("results-title").textContent = title ?? "";
  show(byId("results"), Boolean(title));
  markOpenResult();
}

/** Marks the result button of the open customer with aria-current. */
export function markOpenResult() {
  const primary = state.graph?.primaryContactId;
  for (const button of byId("results-list").querySelectorAll("button[data-customer-id]")) {
    const open = Number(button.dataset.customerId) === primary;
    button.classList.toggle("current", open);
    if (open) {
      button.setAttribute("aria-current", "true");
    } else {
      button.removeAttribute("aria-current");
    }
  }
}

export function onResultClick(event) {
  const button = event.target.closest("button[data-customer-id]");
  if (button) {
    openCustomer(Number(button.dataset.customerId)).catch(report);
  }
}

/**
 * Loads and shows the customer of `contactId`, unless a newer request for a customer
 * overtakes this one. `select` is a contact to select once drawn; `announce: false`
 * leaves the status line to the caller.
 */
export async function openCustomer(contactId, { select = null, announce = true } = {}) {
  const ticket = ++state.openTicket;
  if (announce) {
    setStatus(`Opening the customer of contact ${contactId}…`);
  }
  let graph;
  let timeline;
  try {
    [graph, timeline] = await Promise.all([
      api("GET", `/contacts/${contactId}/graph`),
      api("GET", `/contacts/${contactId}/history`),
    ]);
  } catch (error) {
    if (ticket === state.openTicket) throw error;
    return;
  }
  if (ticket !== state.openTicket) return;
  showCustomer(graph, timeline.events ?? []);
  rememberInAddress(contactId);
  if (select !== null && state.view.byKey.has(contactKey(select))) {
    selectContact(select);
  }
  if (announce) {
    setStatus(`Customer ${graph.primaryContactId}: ${plural(graph.contacts.length, "contact")}.`);
  }
}

export function showCustomer(graph, events) {
  state.graph = graph;
  state.selection = { contacts: [], value: null };
  state.lastContactId = null;
  state.whyTicket += 1;
  const model = buildModel(graph);
  byId("customer-title").textContent = `Customer ${graph.primaryContactId}`;
  byId("summary").textContent = summaryOf(graph, model, events);
  show(byId("customer"), true); // first, so that drawGraph can measure the panel
  drawGraph(model);
  renderDetails();
  renderWhyIdle();
  renderHistory(events);
  markOpenResult();
}

export function closeCustomer() {
  state.openTicket += 1;
  state.whyTicket += 1;
  state.graph = null;
  state.view = null;
  state.selection = { contacts: [], value: null };
  state.lastContactId = null;
  for (const id of ["graph", "details", "why", "history", "summary"]) {
    byId(id).replaceChildren();
  }
  show(byId("customer"), false);
}

export function summaryOf(graph, model, events) {
  const emails = new Set(graph.contacts.map((c) => c.email).filter(Boolean)).size;
  const phones = new Set(graph.contacts.map((c) => c.phoneNumber).filter(Boolean)).size;
  const requests = (graph.evidence ?? []).length;
  return [
    `Primary contact ${graph.primaryContactId}`,
    plural(graph.contacts.length, "contact"),
    plural(emails, "email"),
    plural(phones, "phone number"),
    plural(model.hubs.length, "shared value"),
    plural(requests, "joining request"),
    plural((graph.links ?? []).length, "link by hand", "links by hand"),
    plural(events.length, "event"),
  ].join(" · ");
}

export function contactIdInAddress() {
  const match = /^#contact=([1-9]\d*)$/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

export function rememberInAddress(contactId) {
  const hash = `#contact=${contactId}`;
  if (location.hash !== hash) {
    history.pushState(null, "", hash);
  }
}

/** Opens the customer the address names, unless it is the one already open. */
export function openFromAddress() {
  const id = contactIdInAddress();
  if (id === null || state.key === null) {
    return;
  }
  const open = state.graph?.contacts.some((contact) => contact.id === id);
  if (!open) {
    openCustomer(id, { select: id }).catch(report);
  }
}

/**
 * One item per event. Consecutive events with the same cause are one step (a merge writes
 * several): they share a band colour, and the first of each step is marked `step-start`.
 */
export function renderHistory(events) {
  let step = -1;
  let previousCause;
  const items = events.map((event, i) => {
    const starts = i === 0 || event.cause !== previousCause;
    if (starts) step += 1;
    previousCause = event.cause;
    return html("li", {
      class: `event ${step % 2 ? "step-odd" : "step-even"} ${starts ? "step-start" : "step-continued"}`,
      "data-event-type": event.type,
      "data-cause": event.cause,
    },
    timeElement(event.occurredAt),
    html("span", { class: "event-what" }, `Contact ${event.contactId} ${eventWords(event)}`),
    html("span", { class: "event-cause" }, starts ? causeWords(event.cause) : `same ${causeWords(event.cause)}`));
  });
  byId("history").replaceChildren(...items);
}
