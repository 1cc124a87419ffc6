/* Identity console: the behaviour of /console. Talks to the service's JSON API with a key
   kept in sessionStorage, draws a customer's contacts and the values that join them as an
   SVG graph (a computed force-directed layout), explains why two contacts are one
   customer, shows the customer's history, and creates and deletes unlink rules.
   Personal data reaches the page only through textContent and setAttribute, never as
   markup. */
"use strict";

const KEY_STORAGE = "identity-console-key";
const SVG_NS = "http://www.w3.org/2000/svg";
/** Above this many contacts the picture hides contact labels until a node is focused,
    hovered or selected (the labels stay in each node's aria-label). */
const LARGE_CUSTOMER = 60;
/** Longest value label drawn in the picture; the details panel shows the whole value. */
const LABEL_MAX = 28;
/** Size of label text in a picture shown at its natural size, in picture units. */
const FONT_SIZE = 11;
/** Rough width of one label character, in ems, to fit the view box around the labels. */
const CHAR_EMS = 0.58;
/** Arrow keys and the directions they move the focus in the picture (y grows downwards). */
const ARROWS = new Map([
  ["ArrowRight", [1, 0]], ["ArrowLeft", [-1, 0]], ["ArrowDown", [0, 1]], ["ArrowUp", [0, -1]],
]);

const state = {
  key: null, // the API key; null until given, "" when the service needs none
  graph: null, // the open customer's graph, as the API answered it
  view: null, // the drawn picture: { nodes: [node], byKey: Map, edges: Map }, see drawGraph
  selection: { contacts: [], value: null }, // up to two contact ids, or one value key
  lastContactId: null, // the contact last selected in the open customer
  openTicket: 0, // raised by every request for a customer, so only the newest one shows
  whyTicket: 0, // the same for "why" requests
  unlinking: null, // the value node the unlink dialog is about
};

// ---------------------------------------------------------------------------------------
// DOM helpers

function byId(id) {
  return document.getElementById(id);
}

function setAttributes(element, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) {
      element.setAttribute(name, String(value));
    }
  }
}

/** An HTML element; string children become text nodes. */
function html(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

/** An SVG element; string children become text nodes. */
function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  setAttributes(element, attributes);
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

function show(element, visible) {
  element.hidden = !visible;
}

/** Wraps an async event handler so that any failure lands in the status line. */
function guarded(handler) {
  return (event) => {
    handler(event).catch(report);
  };
}

// ---------------------------------------------------------------------------------------
// Status line and errors

function setStatus(text, isError = false) {
  const status = byId("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

/** A failed request, from an application/problem+json answer or from the network. */
class ProblemError extends Error {
  constructor(status, title, detail) {
    super(`${title}: ${detail}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

function report(error) {
  if (!(error instanceof ProblemError)) {
    console.error(error);
    setStatus(`Console error: ${error.message}`, true);
    return;
  }
  setStatus(`${error.title}: ${error.detail}`, true);
  if (error.status === 401 || error.status === 403) {
    showKeyForm();
  }
}

// ---------------------------------------------------------------------------------------
// The API

/** Calls the API; answers the parsed JSON body (null for 204), throws ProblemError else. */
async function api(method, path, body) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (state.key) {
    headers.Authorization = `Bearer ${state.key}`;
  }
  const init = { method, headers, cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ProblemError(0, "No answer", "the service could not be reached; try again");
  }
  if (!response.ok) {
    throw await problemOf(response);
  }
  if (response.status === 204) {
    return null;
  }
  try {
    return await response.json();
  } catch {
    throw new ProblemError(response.status, "Unreadable answer", "the answer is not JSON");
  }
}

async function problemOf(response) {
  // Not a problem document (a proxy's error page, say): the status line has to do.
  const problem = (await response.json().catch(() => null)) ?? {};
  const title = typeof problem.title === "string" && problem.title
    ? problem.title
    : `HTTP ${response.status}`;
  const detail = typeof problem.detail === "string" && problem.detail
    ? problem.detail
    : response.statusText || "the request failed";
  return new ProblemError(response.status, title, detail);
}

/** The request body naming one value: {"email": …} or {"phoneNumber": …}. */
function valueBody(kind, value) {
  return kind === "email" ? { email: value } : { phoneNumber: value };
}

// ---------------------------------------------------------------------------------------
// Words and dates

const shortDate = new Intl.DateTimeFormat("en-GB", {
  day: "numeric", month: "short", year: "numeric", timeZone: "UTC",
});
const fullDate = new Intl.DateTimeFormat("en-GB", {
  day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
  second: "2-digit", timeZone: "UTC", timeZoneName: "short",
});

/** Formats an RFC 3339 time; the service sends microseconds, which not every engine parses. */
function formatTime(iso, format = fullDate) {
  const time = Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(time) ? String(iso ?? "") : format.format(time);
}

function timeElement(iso, format = fullDate) {
  return html("time", { datetime: iso }, formatTime(iso, format));
}

function plural(count, word, many = `${word}s`) {
  return `${count} ${count === 1 ? word : many}`;
}

function kindWord(kind) {
  return kind === "email" ? "email" : "phone";
}

/** "1, 2, 3" or, for long lists, "1, 2, … and 480 more". */
function idList(ids, limit = 12) {
  if (ids.length <= limit) {
    return ids.join(", ");
  }
  return `${ids.slice(0, limit).join(", ")} … and ${ids.length - limit} more`;
}

function truncate(text, max = LABEL_MAX) {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** One line about a customer in the API's shape, for result buttons and the dialog. */
function customerLine(customer) {
  const contacts = 1 + (customer.secondaryContactIds ?? []).length;
  const values = [...(customer.emails ?? []), ...(customer.phoneNumbers ?? [])];
  return `Customer ${customer.primaryContactId}: ${plural(contacts, "contact")}` +
    (values.length ? ` — ${values.join(", ")}` : "");
}

// ---------------------------------------------------------------------------------------
// Key handling

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

// ---------------------------------------------------------------------------------------
// Finding customers

async function search(event) {
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
async function showFound(customers, contactId) {
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
function showResults(title, customers = []) {
  const list = byId("results-list");
  list.replaceChildren(...customers.map((customer) => html("li", {},
    html("button", { type: "button", "data-customer-id": customer.primaryContactId },
      customerLine(customer)))));
  byId("results-title").textContent = title ?? "";
  show(byId("results"), Boolean(title));
  markOpenResult();
}

/** Marks the result button of the open customer with aria-current. */
function markOpenResult() {
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

function onResultClick(event) {
  const button = event.target.closest("button[data-customer-id]");
  if (button) {
    openCustomer(Number(button.dataset.customerId)).catch(report);
  }
}

// ---------------------------------------------------------------------------------------
// The open customer

/**
 * Loads and shows the customer of `contactId`, unless a newer request for a customer
 * overtakes this one. `select` is a contact to select once drawn; `announce: false`
 * leaves the status line to the caller.
 */
async function openCustomer(contactId, { select = null, announce = true } = {}) {
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

function showCustomer(graph, events) {
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

function closeCustomer() {
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

function summaryOf(graph, model, events) {
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

// ---------------------------------------------------------------------------------------
// Deep links: #contact=<id>

function contactIdInAddress() {
  const match = /^#contact=([1-9]\d*)$/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

function rememberInAddress(contactId) {
  const hash = `#contact=${contactId}`;
  if (location.hash !== hash) {
    history.pushState(null, "", hash);
  }
}

/** Opens the customer the address names, unless it is the one already open. */
function openFromAddress() {
  const id = contactIdInAddress();
  if (id === null || state.key === null) {
    return;
  }
  const open = state.graph?.contacts.some((contact) => contact.id === id);
  if (!open) {
    openCustomer(id, { select: id }).catch(report);
  }
}

// ---------------------------------------------------------------------------------------
// The picture: model

function contactKey(id) {
  return `contact:${id}`;
}

function valueKey(kind, value) {
  return `${kind}:${value}`;
}

function holdKey(hubKey, contactId) {
  return `holds:${hubKey}\n${contactId}`;
}

function evidenceKey(email, phone) {
  return `request:${email}\n${phone}`;
}

function manualKey(linkId) {
  return `link:${linkId}`;
}

/**
 * What the picture shows: one node per contact (primary first, then by id), one hub per
 * value that at least two contacts hold or that a stored request named, one evidence link
 * per distinct (email, phone) pair of those requests, and the links support made by hand
 * between two contacts (`manual`).
 */
function buildModel(graph) {
  const primary = graph.primaryContactId;
  const contacts = [...graph.contacts].sort((a, b) =>
    (a.id === primary ? -1 : 0) - (b.id === primary ? -1 : 0) || a.id - b.id);
  const values = new Map();
  const valueFor = (kind, value) => {
    const key = valueKey(kind, value);
    if (!values.has(key)) {
      values.set(key, { key, type: "value", kind, value, holders: [], requests: [] });
    }
    return values.get(key);
  };
  for (const contact of contacts) {
    if (contact.email) valueFor("email", contact.email).holders.push(contact.id);
    if (contact.phoneNumber) valueFor("phone", contact.phoneNumber).holders.push(contact.id);
  }
  const evidence = new Map();
  for (const row of graph.evidence ?? []) {
    if (!row.email || !row.phoneNumber) continue; // a joining request brings both
    const key = evidenceKey(row.email, row.phoneNumber);
    if (!evidence.has(key)) {
      const email = valueFor("email", row.email);
      const phone = valueFor("phone", row.phoneNumber);
      evidence.set(key, { key, email, phone, requestIds: [], times: [] });
    }
    const link = evidence.get(key);
    link.requestIds.push(row.id);
    if (row.createdAt) link.times.push(row.createdAt);
    link.email.requests.push(row.id);
    link.phone.requests.push(row.id);
  }
  const hubs = [...values.values()]
    .filter((hub) => hub.holders.length >= 2 || hub.requests.length > 0)
    .sort((a, b) => (a.kind === b.kind ? compareText(a.value, b.value) : a.kind === "email" ? -1 : 1));
  const present = new Set(contacts.map((contact) => contact.id));
  const manual = (graph.links ?? [])
    .filter((link) => link.contactIds?.length === 2 && link.contactIds.every((id) => present.has(id)))
    .map((link) => ({ ...link, key: manualKey(link.id) }));
  return {
    contacts: contacts.map((contact) => ({ key: contactKey(contact.id), type: "contact", contact })),
    hubs,
    evidence: [...evidence.values()],
    manual,
  };
}

function compareText(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------
// The picture: layout

/**
 * Gives every node of the model an x and y. Contacts start on a circle in model order
 * (primary first, then by id), each hub at the middle of its holders; then a force-directed
 * layout runs. Parts of the picture not joined to the primary by any edge get an invisible
 * spring to it, so they stay in view.
 */
function placeNodes(model) {
  const nodes = [...model.contacts, ...model.hubs];
  const index = new Map(nodes.map((node, i) => [node.key, i]));
  const links = [];
  for (const hub of model.hubs) {
    for (const id of hub.holders) links.push([index.get(hub.key), index.get(contactKey(id))]);
  }
  for (const link of model.evidence) links.push([index.get(link.email.key), index.get(link.phone.key)]);
  const spacing = isCompact(model) ? 34 : 100;
  const points = startingPoints(model, spacing);
  // A link made by hand is a spring through a point of its own (where its label goes), as
  // long as a path through a shared value, so that its two contacts do not overlap.
  for (const link of model.manual) {
    const [a, b] = link.contactIds.map((id) => index.get(contactKey(id)));
    links.push([a, points.length], [points.length, b]);
    points.push({ x: (points[a].x + points[b].x) / 2 + 1, y: (points[a].y + points[b].y) / 2 + 1 });
  }
  forceLayout(points, [...links, ...tiesToFirst(points.length, links)], spacing);
  nodes.forEach((node, i) => Object.assign(node, points[i]));
  model.manual.forEach((link, i) => Object.assign(link, points[nodes.length + i]));
  placeLabels(model);
  return nodes;
}

/** Large customers get a tighter picture whose contact labels show on demand. */
function isCompact(model) {
  return model.contacts.length > LARGE_CUSTOMER;
}

/**
 * Sets `labelLeft` on each contact: its labels go on the side away from its hubs, so edges
 * do not cross them. In a compact picture, where one contact's labels show at a time over
 * the others, they face the middle instead, so that they are not cut off at an edge.
 */
function placeLabels(model) {
  if (isCompact(model)) {
    const middle = mean(model.contacts.map((node) => node.x));
    model.contacts.forEach((node) => {
      node.labelLeft = node.x > middle;
    });
    return;
  }
  const hubsOf = new Map(model.contacts.map((node) => [node.contact.id, []]));
  for (const hub of model.hubs) {
    for (const id of hub.holders) hubsOf.get(id).push(hub);
  }
  for (const node of model.contacts) {
    const hubs = hubsOf.get(node.contact.id);
    node.labelLeft = hubs.length > 0 && mean(hubs.map((hub) => hub.x)) > node.x;
  }
}

function startingPoints(model, spacing) {
  const count = model.contacts.length;
  const radius = spacing * (1 + Math.sqrt(count / Math.PI));
  const points = model.contacts.map((_, i) => ({
    x: radius * Math.cos((2 * Math.PI * i) / count),
    y: radius * Math.sin((2 * Math.PI * i) / count),
  }));
  const pointOf = new Map(model.contacts.map((node, i) => [node.contact.id, points[i]]));
  model.hubs.forEach((hub, i) => {
    const holders = hub.holders.map((id) => pointOf.get(id));
    const middle = holders.length
      ? { x: mean(holders.map((p) => p.x)), y: mean(holders.map((p) => p.y)) }
      : { x: 0, y: 0 };
    // Hubs with the same holders would start on one spot: spread them on a small spiral.
    const angle = i * 2.39996; // the golden angle, in radians
    const offset = spacing * 0.3 * Math.sqrt(i + 1);
    points.push({ x: middle.x + offset * Math.cos(angle), y: middle.y + offset * Math.sin(angle) });
  });
  return points;
}

function mean(numbers) {
  return numbers.reduce((sum, n) => sum + n, 0) / numbers.length;
}

/** Links that join every connected part of the graph to node 0 (the primary). */
function tiesToFirst(count, links) {
  const parent = Array.from({ length: count }, (_, i) => i);
  const root = (i) => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  for (const [a, b] of links) parent[root(a)] = root(b);
  const ties = [];
  const tied = new Set([root(0)]);
  for (let i = 1; i < count; i++) {
    if (!tied.has(root(i))) {
      tied.add(root(i));
      ties.push([0, i]);
    }
  }
  return ties;
}

/**
 * Fruchterman–Reingold: every pair of nodes repels (k²/d), every link pulls its ends
 * together (d²/k), a weak gravity pulls towards the origin, and each step's move is capped
 * by a temperature that falls to zero. Deterministic (no randomness); O(n²) per iteration,
 * with fewer iterations for big graphs.
 */
function forceLayout(points, links, k) {
  const n = points.length;
  const iterations = n <= 100 ? 200 : n <= 300 ? 120 : 100;
  const startTemperature = k * Math.max(2, Math.sqrt(n) / 2);
  const gravity = 0.01;
  const fx = new Float64Array(n);
  const fy = new Float64Array(n);
  for (let step = 0; step < iterations; step++) {
    fx.fill(0);
    fy.fill(0);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        let dx = points[i].x - points[j].x;
        let dy = points[i].y - points[j].y;
        let d2 = dx * dx + dy * dy;
        if (d2 < 0.01) {
          // Two nodes on one spot: part them in a direction fixed by their indices.
          dx = Math.cos(i + 2 * j);
          dy = Math.sin(i + 2 * j);
          d2 = 1;
        }
        const push = (k * k) / d2;
        fx[i] += dx * push;
        fy[i] += dy * push;
        fx[j] -= dx * push;
        fy[j] -= dy * push;
      }
    }
    for (const [a, b] of links) {
      const dx = points[a].x - points[b].x;
      const dy = points[a].y - points[b].y;
      const pull = Math.hypot(dx, dy) / k;
      fx[a] -= dx * pull;
      fy[a] -= dy * pull;
      fx[b] += dx * pull;
      fy[b] += dy * pull;
    }
    const temperature = startTemperature * (1 - step / iterations);
    for (let i = 0; i < n; i++) {
      const netX = fx[i] - gravity * k * points[i].x;
      const netY = fy[i] - gravity * k * points[i].y;
      const length = Math.hypot(netX, netY);
      if (length > 0) {
        const move = Math.min(length, temperature) / length;
        points[i].x += netX * move;
        points[i].y += netY * move;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// The picture: drawing

function contactRadius(node, compact) {
  const primary = node.contact.linkPrecedence === "primary";
  if (compact) return primary ? 11 : 7;
  return primary ? 20 : 14;
}

/** The lines of text beside a contact: email, phone, creation date. */
function contactLines(contact) {
  return [contact.email, contact.phoneNumber, formatTime(contact.createdAt, shortDate)]
    .filter(Boolean)
    .map((line) => truncate(line));
}

function contactLabel(contact) {
  return [
    `Contact ${contact.id}`,
    contact.linkPrecedence,
    contact.email ?? "no email",
    contact.phoneNumber ?? "no phone",
    `created ${formatTime(contact.createdAt, shortDate)}`,
  ].join(", ");
}

function valueLabel(hub) {
  const requests = hub.requests.length
    ? `, named by ${plural(hub.requests.length, "request")} that joined customers`
    : "";
  return `${hub.kind === "email" ? "Email" : "Phone"} ${hub.value}, held by ` +
    `${plural(hub.holders.length, "contact")}${requests}`;
}

/**
 * The box [x, y, width, height] around every node and its labels (at `fontSize`), never
 * smaller than 600 by 320 (a small customer is not blown up).
 */
function boxOf(nodes, compact, fontSize) {
  const textWidth = (text) => CHAR_EMS * fontSize * text.length;
  let [left, top, right, bottom] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const node of nodes) {
    let extent;
    if (node.type === "contact") {
      const r = contactRadius(node, compact);
      const text = compact
        ? 0
        : fontSize / 2 + Math.max(...contactLines(node.contact).map(textWidth));
      const [before, after] = node.labelLeft ? [r + text, r] : [r, r + text];
      extent = [node.x - before, node.y - r - 1.5 * fontSize, node.x + after, node.y + r + 1.5 * fontSize];
    } else {
      const half = Math.max(10, textWidth(truncate(node.value)) / 2);
      extent = [node.x - half, node.y - 12, node.x + half, node.y + 12 + 1.5 * fontSize];
    }
    left = Math.min(left, extent[0]);
    top = Math.min(top, extent[1]);
    right = Math.max(right, extent[2]);
    bottom = Math.max(bottom, extent[3]);
  }
  const pad = 16;
  const width = Math.max(600, right - left + 2 * pad);
  const height = Math.max(320, bottom - top + 2 * pad);
  return [(left + right - width) / 2, (top + bottom - height) / 2, width, height];
}

/**
 * The label size, in picture units, that shows as about FONT_SIZE pixels once the picture
 * is scaled down to the panel's width (up to three times FONT_SIZE), and the view box
 * that fits the labels at that size.
 */
function fitPicture(nodes, compact) {
  const panel = byId("graph").clientWidth || 800;
  const natural = boxOf(nodes, compact, FONT_SIZE);
  const fontSize = FONT_SIZE * Math.min(3, Math.max(1, natural[2] / panel));
  return { fontSize: round(fontSize), viewBox: boxOf(nodes, compact, fontSize).map(round).join(" ") };
}

function round(number) {
  return Math.round(number * 10) / 10;
}

/**
 * Draws the model into #graph and keeps what later code needs in `state.view`: the nodes
 * (with x, y and their `element`), nodes by key, and the edges by key (holdKey or
 * evidenceKey), each as { elements, hubKey, contactId } (no contactId for evidence).
 */
function drawGraph(model) {
  const nodes = placeNodes(model);
  const compact = isCompact(model);
  const byKey = new Map(nodes.map((node) => [node.key, node]));
  const edges = new Map();
  const edgeLayer = svg("g", { class: "edges", "aria-hidden": "true" });
  for (const hub of model.hubs) {
    for (const id of hub.holders) {
      const line = drawHoldEdge(hub, byKey.get(contactKey(id)));
      edges.set(holdKey(hub.key, id), { elements: [line], hubKey: hub.key, contactId: id });
      edgeLayer.append(line);
    }
  }
  for (const link of model.evidence) {
    const [line, label] = drawEvidenceEdge(link);
    edges.set(link.key, { elements: [line, label], hubKey: null, contactId: null });
    edgeLayer.append(line, label);
  }
  const manualLayer = svg("g", { class: "manual-links" });
  for (const link of model.manual) {
    const [a, b] = link.contactIds.map((id) => byKey.get(contactKey(id)));
    const group = drawManualEdge(link, a, b);
    edges.set(link.key, { elements: [group], hubKey: null, contactId: null });
    manualLayer.append(group);
  }
  const { fontSize, viewBox } = fitPicture(nodes, compact);
  const picture = svg("svg", {
    class: compact ? "picture compact" : "picture",
    viewBox,
    "font-size": fontSize,
    role: "group",
    "aria-labelledby": "graph-title",
    "aria-describedby": "graph-help",
  },
  edgeLayer,
  manualLayer,
  svg("g", { class: "contacts" }, ...model.contacts.map((node) => drawContact(node, compact))),
  svg("g", { class: "values" }, ...model.hubs.map(drawHub)));
  byId("graph").replaceChildren(picture);
  state.view = { nodes, byKey, edges };
}

function drawHoldEdge(hub, contactNode) {
  return svg("line", {
    class: "edge",
    "data-hub": hub.key,
    "data-contact": contactNode.contact.id,
    x1: round(hub.x), y1: round(hub.y), x2: round(contactNode.x), y2: round(contactNode.y),
  }, svg("title", {}, `Contact ${contactNode.contact.id} holds ${kindWord(hub.kind)} ${hub.value}`));
}

/** A dashed line between the hubs of a joining request's email and phone, and its label. */
function drawEvidenceEdge(link) {
  const { email, phone } = link;
  const count = link.requestIds.length;
  const when = link.times.length ? `, ${link.times.map((t) => formatTime(t)).join("; ")}` : "";
  const title = `${count === 1 ? "A request" : `${count} requests`} brought ${email.value} ` +
    `and ${phone.value} and joined two customers (request ${idList(link.requestIds)}${when})`;
  return [
    svg("line", {
      class: "edge evidence",
      "data-email": email.value,
      "data-phone": phone.value,
      x1: round(email.x), y1: round(email.y), x2: round(phone.x), y2: round(phone.y),
    }, svg("title", {}, title)),
    svg("text", {
      class: "edge-label",
      x: round((email.x + phone.x) / 2),
      y: round((email.y + phone.y) / 2 - 4),
      "text-anchor": "middle",
    }, "request"),
  ];
}

/**
 * A link made by hand: a thick line from one contact through the link's own point to the
 * other, labelled "by hand" there. It is a button (click, Enter or Space) that offers to
 * undo the link.
 */
function drawManualEdge(link, a, b) {
  const words = `Linked by hand by ${link.createdBy}: ${link.reason} (link ${link.id}, ` +
    `${formatTime(link.createdAt)}). Select to undo.`;
  const points = [a, link, b].map((p) => `${round(p.x)},${round(p.y)}`).join(" ");
  return svg("g", {
    class: "manual-link",
    "data-link-id": link.id,
    tabindex: 0,
    role: "button",
    "aria-label": words,
  },
  svg("title", {}, words),
  svg("polyline", { class: "edge manual", points, fill: "none" }),
  svg("text", {
    class: "edge-label",
    x: round(link.x),
    y: round(link.y - 8),
    "text-anchor": "middle",
  }, "by hand"));
}

function drawContact(node, compact) {
  const { contact } = node;
  const primary = contact.linkPrecedence === "primary";
  const r = contactRadius(node, compact);
  const lines = contactLines(contact);
  const group = svg("g", {
    class: `contact ${primary ? "primary" : "secondary"}`,
    "data-contact-id": contact.id,
    tabindex: 0,
    role: "button",
    "aria-pressed": "false",
    "aria-label": contactLabel(contact),
    transform: `translate(${round(node.x)} ${round(node.y)})`,
  },
  svg("circle", { class: "focus-ring", r: r + 5 }),
  svg("circle", { class: "shape", r }),
  svg("text", { class: "node-id label", "text-anchor": "middle", dy: "0.35em" }, String(contact.id)),
  primary ? svg("text", { class: "role-label", "text-anchor": "middle", y: -r, dy: "-0.4em" }, "primary") : null,
  ...lines.map((line, i) => svg("text", {
    class: "label",
    "text-anchor": node.labelLeft ? "end" : "start",
    x: node.labelLeft ? -r : r,
    dx: node.labelLeft ? "-0.5em" : "0.5em",
    y: `${round((i - (lines.length - 1) / 2) * 1.2)}em`,
    dy: "0.35em",
  }, line)));
  node.element = group;
  return group;
}

function drawHub(hub) {
  const shape = hub.kind === "email"
    ? svg("polygon", { class: "shape", points: "0,-10 10,0 0,10 -10,0" })
    : svg("rect", { class: "shape", x: -8, y: -8, width: 16, height: 16, rx: 3 });
  // A value that joins three contacts or more, or that a request brought, is what support
  // looks for: its label stays on in a compact picture (see console.css).
  const prominent = hub.holders.length >= 3 || hub.requests.length > 0;
  const group = svg("g", {
    class: `value ${hub.kind}${prominent ? " prominent" : ""}`,
    "data-value-kind": hub.kind,
    "data-value": hub.value,
    tabindex: 0,
    role: "button",
    "aria-pressed": "false",
    "aria-label": valueLabel(hub),
    transform: `translate(${round(hub.x)} ${round(hub.y)})`,
  },
  svg("circle", { class: "focus-ring", r: 16 }),
  shape,
  svg("text", { class: "value-label", "text-anchor": "middle", y: 10, dy: "1.1em" }, truncate(hub.value)));
  hub.element = group;
  return group;
}

// ---------------------------------------------------------------------------------------
// Selection

function nodeOf(target) {
  const group = target instanceof Element ? target.closest("g.contact, g.value") : null;
  if (!group || !state.view) return null;
  const key = group.classList.contains("contact")
    ? contactKey(group.dataset.contactId)
    : valueKey(group.dataset.valueKind, group.dataset.value);
  return state.view.byKey.get(key) ?? null;
}

function choose(node) {
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
function selectContact(id) {
  const chosen = state.selection.contacts;
  const first = chosen[0];
  state.selection = {
    contacts: first === undefined || first === id ? [id] : [first, id],
    value: null,
  };
  state.lastContactId = id;
  paintSelection();
  renderDetails();
  if (state.selection.contacts.length === 2) {
    explainWhy(first, id).catch(report);
  } else {
    clearWhy();
  }
}

function selectValue(key) {
  state.selection = { contacts: [], value: key };
  paintSelection();
  renderDetails();
  clearWhy();
}

function clearSelection() {
  state.selection = { contacts: [], value: null };
  paintSelection();
  renderDetails();
  clearWhy();
  setStatus("Selection cleared.");
}

function isSelected(node) {
  const { contacts, value } = state.selection;
  return node.type === "contact" ? contacts.includes(node.contact.id) : node.key === value;
}

/** Classes for the selection: `selected` on chosen nodes, `adjacent` on their edges. */
function paintSelection() {
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
function nearestInDirection(from, [ux, uy]) {
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

/** The manual link whose edge `target` is part of, if any. */
function manualLinkOf(target) {
  const group = target instanceof Element ? target.closest("g.manual-link") : null;
  const id = Number(group?.dataset.linkId);
  return (state.graph?.links ?? []).find((link) => link.id === id) ?? null;
}

function onGraphKey(event) {
  const link = manualLinkOf(event.target);
  if (link && (event.key === "Enter" || event.key === " ")) {
    event.preventDefault();
    undoLink(link).catch(report);
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

function onGraphClick(event) {
  const link = manualLinkOf(event.target);
  if (link) {
    undoLink(link).catch(report);
    return;
  }
  const node = nodeOf(event.target);
  if (node) choose(node);
}

function onCustomerKey(event) {
  const { contacts, value } = state.selection;
  if (event.key === "Escape" && (contacts.length || value)) {
    event.preventDefault();
    clearSelection();
  }
}

// ---------------------------------------------------------------------------------------
// Details panel

function renderDetails() {
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

function facts(pairs) {
  return html("dl", { class: "facts" },
    ...pairs.flatMap(([term, detail]) => [html("dt", {}, term), html("dd", {}, detail)]));
}

function contactDetails(contact) {
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

function valueDetails(hub) {
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
  button.addEventListener("click", guarded(() => previewUnlink(hub)));
  return [
    facts(rows),
    html("p", { class: "hint" }, "Unlinking stops this value from joining contacts; " +
      "you see what it would do before anything changes."),
    button,
  ];
}

// ---------------------------------------------------------------------------------------
// Why two contacts are one customer

function renderWhyIdle() {
  byId("why").replaceChildren(html("p", { class: "hint" },
    "Select two contacts to see the chain of shared values and requests that joins them."));
}

function clearWhy() {
  state.whyTicket += 1;
  for (const element of byId("graph").querySelectorAll(".why")) {
    element.classList.remove("why");
  }
  renderWhyIdle();
}

async function explainWhy(from, to) {
  clearWhy();
  const ticket = state.whyTicket;
  byId("why").replaceChildren(html("p", { class: "hint" },
    `Looking for what joins contacts ${from} and ${to}…`));
  let answer;
  try {
    answer = await api("GET", `/contacts/${from}/why/${to}`);
  } catch (error) {
    if (ticket !== state.whyTicket) return;
    renderWhyIdle();
    throw error;
  }
  if (ticket !== state.whyTicket) return;
  const chain = answer.chain ?? [];
  highlightChain(chain);
  byId("why").replaceChildren(
    html("p", {}, `Contacts ${from} and ${to} are one customer because:`),
    html("p", { class: "chain" }, ...chain.map(chainPart)));
  const links = chain.filter((step) => step.kind !== "contact").length;
  setStatus(`Contacts ${from} and ${to} are joined in ${plural(links, "step")}; see "Why one customer?".`);
}

/** One step of a chain in words: a contact, or what joins its neighbours. */
function chainPart(step) {
  switch (step.kind) {
    case "contact":
      return html("strong", {}, `Contact ${step.contactId}`);
    case "sharedEmail":
      return ` —shares email ${step.email}→ `;
    case "sharedPhone":
      return ` —shares phone ${step.phoneNumber}→ `;
    case "request":
      return ` —request brought ${step.email} and ${step.phoneNumber}→ `;
    case "manual":
      return ` —${step.text}→ `;
    default:
      return ` —${step.kind}→ `;
  }
}

/** The value keys a link step goes through. */
function hubsOfStep(step) {
  switch (step.kind) {
    case "sharedEmail":
      return [valueKey("email", step.email)];
    case "sharedPhone":
      return [valueKey("phone", step.phoneNumber)];
    case "request":
      return [valueKey("email", step.email), valueKey("phone", step.phoneNumber)];
    default:
      return [];
  }
}

/** Adds class `why` to the chain's contacts, hubs, the edges between them and evidence links. */
function highlightChain(chain) {
  const { byKey, edges } = state.view;
  const markNode = (key) => byKey.get(key)?.element.classList.add("why");
  const markEdge = (key) => edges.get(key)?.elements.forEach((e) => e.classList.add("why"));
  chain.forEach((step, i) => {
    if (step.kind === "contact") {
      markNode(contactKey(step.contactId));
      return;
    }
    const neighbours = [chain[i - 1], chain[i + 1]]
      .filter((near) => near?.kind === "contact")
      .map((near) => near.contactId);
    for (const hubKey of hubsOfStep(step)) {
      markNode(hubKey);
      neighbours.forEach((id) => markEdge(holdKey(hubKey, id)));
    }
    if (step.kind === "manual") {
      markEdge(manualKey(step.linkId));
    }
    if (step.kind === "request") {
      markEdge(evidenceKey(step.email, step.phoneNumber));
    }
  });
}

// ---------------------------------------------------------------------------------------
// History

/** Each event type in words; an unknown type shows as it is. */
const EVENT_WORDS = new Map([
  ["contact.created", (event) => (event.after?.linkedId
    ? `created, linked to ${event.after.linkedId}`
    : "created")],
  ["contact.linked", (event) => `linked to ${event.after?.linkedId ?? "?"}`],
  ["primary.demoted", (event) => `demoted: merged into ${event.after?.linkedId ?? "?"}`],
  ["primary.promoted", () => "promoted to primary"],
  ["contact.normalized", () => "normalized"],
  ["contact.unlinked", () => "unlinked value taken off"],
  ["contact.erased", () => "erased"],
]);

function eventWords(event) {
  return EVENT_WORDS.get(event.type)?.(event) ?? event.type;
}

/** A cause (`request:<id>`, `erasure:<id>`, `unlink:<rule id>`, `link:<link id>`, `import`, `normalize`) in words. */
function causeWords(cause) {
  const [kind, ...rest] = String(cause).split(":");
  const id = rest.join(":");
  switch (kind) {
    case "request": return `request ${id}`;
    case "erasure": return `erasure ${id}`;
    case "unlink": return `unlink rule ${id}`;
    case "link": return `link ${id}, made or undone by hand`;
    case "import": return "import";
    case "normalize": return "normalization";
    default: return String(cause);
  }
}

/**
 * One item per event. Consecutive events with the same cause are one step (a merge writes
 * several): they share a band colour, and the first of each step is marked `step-start`.
 */
function renderHistory(events) {
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

// ---------------------------------------------------------------------------------------
// Unlinking a value

async function previewUnlink(hub) {
  setStatus(`Working out what unlinking ${hub.value} would do…`);
  const preview = await api("POST", "/blocked-identifiers/preview", valueBody(hub.kind, hub.value));
  openUnlinkDialog(hub, preview);
  setStatus("");
}

function consequence(value, customers, erased) {
  const erasedWords = erased ? `${plural(erased, "contact")} erased` : "no contact erased";
  return `Unlinking ${value} will leave ${plural(customers, "customer")} (${erasedWords}).`;
}

function openUnlinkDialog(hub, preview) {
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
function checkReason() {
  const input = byId("unlink-reason");
  input.setCustomValidity(input.value && !input.value.trim() ? "Say why, in a sentence." : "");
}

async function confirmUnlink(event) {
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
async function afterUnlink(hub, answer) {
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

// ---------------------------------------------------------------------------------------
// Joining two customers by hand

function openLinkDialog() {
  state.linking = null;
  byId("link-query").value = "";
  byId("link-reason").value = "";
  byId("link-found").replaceChildren();
  byId("link-preview").textContent = "";
  byId("link-confirm").disabled = true;
  byId("link-title").textContent = `Link customer ${state.graph.primaryContactId} with another`;
  byId("link-dialog").showModal();
  byId("link-query").focus();
}

/** Finds the customers of an email, a phone or a contact id typed in the link dialog. */
async function findForLink(event) {
  event.preventDefault();
  const query = byId("link-query").value.trim();
  let customers;
  if (/^[1-9]\d*$/.test(query)) {
    customers = [(await api("GET", `/contacts/${query}`)).contact];
  } else {
    const kind = query.includes("@") ? "email" : "phoneNumber";
    customers = (await api("POST", "/customers/search", valueBody(kind, query))).customers ?? [];
  }
  const others = customers.filter((c) => c.primaryContactId !== state.graph.primaryContactId);
  byId("link-found").replaceChildren(...others.map((customer) => {
    const button = html("button", {
      type: "button",
      class: "quiet",
      "data-link-candidate": customer.primaryContactId,
    }, customerLine(customer));
    button.addEventListener("click", guarded(() => previewLink(customer)));
    return html("li", {}, button);
  }));
  if (others.length === 0) {
    byId("link-preview").textContent = customers.length
      ? "That is this customer already."
      : "No customer holds this value.";
  }
}

async function previewLink(other) {
  const contactIds = [state.graph.primaryContactId, other.primaryContactId];
  const preview = await api("POST", "/links/preview", { contactIds });
  state.linking = { contactIds };
  byId("link-preview").textContent =
    `Linking makes one customer: ${customerLine(preview.customer)}.`;
  byId("link-confirm").disabled = false;
  byId("link-reason").focus();
}

async function confirmLink(event) {
  event.preventDefault();
  const reason = byId("link-reason").value.trim();
  if (!state.linking || !reason) return;
  const answer = await api("POST", "/links", { ...state.linking, reason });
  byId("link-dialog").close();
  state.linking = null;
  setStatus(`Linked by hand (link ${answer.link.id}): ${customerLine(answer.customer)}`);
  await openCustomer(answer.customer.primaryContactId, { announce: false });
}

async function undoLink(link) {
  const question = `Undo link ${link.id} (${link.reason})? The two customers come apart ` +
    "unless something else joins them.";
  if (!window.confirm(question)) return;
  const answer = await api("DELETE", `/links/${link.id}`);
  const customers = answer.customers ?? [];
  showResults(`Customers after undoing link ${link.id}`, customers);
  setStatus(answer.stillOneCustomer
    ? `Undid link ${link.id}; something else still joins the contacts.`
    : `Undid link ${link.id}: ${plural(customers.length, "customer")}`);
  const reopen = customers.find((c) => c.primaryContactId === state.graph.primaryContactId)
    ?? customers[0];
  if (reopen) await openCustomer(reopen.primaryContactId, { announce: false });
}

// ---------------------------------------------------------------------------------------
// Unlink rules

async function loadRules() {
  const answer = await api("GET", "/blocked-identifiers");
  renderRules(answer.rules ?? []);
}

function ruleValue(rule) {
  return rule.email ?? rule.phoneNumber ?? "";
}

function renderRules(rules) {
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

async function deleteRule(rule) {
  const value = ruleValue(rule);
  if (!window.confirm(`Delete rule ${rule.id}, which blocks ${value}?`)) return;
  await api("DELETE", `/blocked-identifiers/${rule.id}`);
  setStatus(`Deleted rule ${rule.id} (${value}).`);
  byId("status").focus();
  await loadRules();
}

// ---------------------------------------------------------------------------------------
// Start-up

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
