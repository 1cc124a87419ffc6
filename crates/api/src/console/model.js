/* What the picture shows, from a customer's graph as the API answers it: contacts, the
   values they share, the requests and the links made by hand that join them, and the keys
   that name each. Pure: no DOM. */

export function contactKey(id) {
  return `contact:${id}`;
}

export function valueKey(kind, value) {
  return `${kind}:${value}`;
}

export function holdKey(hubKey, contactId) {
  return `holds:${hubKey}\n${contactId}`;
}

export function evidenceKey(email, phone) {
  return `request:${email}\n${phone}`;
}

export function manualKey(linkId) {
  return `link:${linkId}`;
}

/**
 * What the picture shows: one node per contact (primary first, then by id), one hub per
 * value that at least two contacts hold or that a stored request named, one evidence link
 * per distinct (email, phone) pair of those requests, and the links support made by hand
 * between two contacts (`manual`).
 */
export function buildModel(graph) {
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

export function compareText(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * What to highlight for a why-chain: the keys of its contacts and values (`nodes`) and of
 * the edges between them (`edges`: a contact's hold on a value, a request's evidence
 * edge, a link made by hand).
 */
export function chainKeys(chain) {
  const nodes = [];
  const edges = [];
  chain.forEach((step, i) => {
    if (step.kind === "contact") {
      nodes.push(contactKey(step.contactId));
      return;
    }
    const neighbours = [chain[i - 1], chain[i + 1]]
      .filter((near) => near?.kind === "contact")
      .map((near) => near.contactId);
    for (const hubKey of hubsOfStep(step)) {
      nodes.push(hubKey);
      neighbours.forEach((id) => edges.push(holdKey(hubKey, id)));
    }
    if (step.kind === "manual") edges.push(manualKey(step.linkId));
    if (step.kind === "request") edges.push(evidenceKey(step.email, step.phoneNumber));
  });
  return { nodes, edges };
}

/** The value keys a link step goes through. */
export function hubsOfStep(step) {
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
