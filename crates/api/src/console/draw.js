/* Drawing the model as SVG, and keeping what selection and highlighting need
   (state.view). */

import { byId, svg } from "./dom.js";
import { contactLines, contactRadius, fitPicture, isCompact, placeNodes, round } from "./layout.js";
import { contactKey, holdKey } from "./model.js";
import { state } from "./state.js";
import { formatTime, idList, kindWord, plural, shortDate, truncate } from "./words.js";

export function contactLabel(contact) {
  return [
    `Contact ${contact.id}`,
    contact.linkPrecedence,
    contact.email ?? "no email",
    contact.phoneNumber ?? "no phone",
    `created ${formatTime(contact.createdAt, shortDate)}`,
  ].join(", ");
}

export function valueLabel(hub) {
  const requests = hub.requests.length
    ? `, named by ${plural(hub.requests.length, "request")} that joined customers`
    : "";
  return `${hub.kind === "email" ? "Email" : "Phone"} ${hub.value}, held by ` +
    `${plural(hub.holders.length, "contact")}${requests}`;
}

/**
 * Draws the model into #graph and keeps what later code needs in `state.view`: the nodes
 * (with x, y and their `element`), nodes by key, and the edges by key (holdKey or
 * evidenceKey), each as { elements, hubKey, contactId } (no contactId for evidence).
 */
export function drawGraph(model) {
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
  const { fontSize, viewBox } = fitPicture(nodes, compact, byId("graph").clientWidth || 800);
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

export function drawHoldEdge(hub, contactNode) {
  return svg("line", {
    class: "edge",
    "data-hub": hub.key,
    "data-contact": contactNode.contact.id,
    x1: round(hub.x), y1: round(hub.y), x2: round(contactNode.x), y2: round(contactNode.y),
  }, svg("title", {}, `Contact ${contactNode.contact.id} holds ${kindWord(hub.kind)} ${hub.value}`));
}

/** A dashed line between the hubs of a joining request's email and phone, and its label. */
export function drawEvidenceEdge(link) {
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
export function drawManualEdge(link, a, b) {
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

export function drawContact(node, compact) {
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

export function drawHub(hub) {
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
