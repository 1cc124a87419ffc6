/* Where each node of the picture goes: a deterministic force-directed layout, label
   sides, and the box that fits it all. Pure: no DOM. */

import { contactKey } from "./model.js";
import { formatTime, shortDate, truncate } from "./words.js";

/** Above this many contacts the picture hides contact labels until a node is focused,
    hovered or selected (the labels stay in each node's aria-label). */
export const LARGE_CUSTOMER = 60;

/** Size of label text in a picture shown at its natural size, in picture units. */
export const FONT_SIZE = 11;

/** Rough width of one label character, in ems, to fit the view box around the labels. */
export const CHAR_EMS = 0.58;

/**
 * Gives every node of the model an x and y. Contacts start on a circle in model order
 * (primary first, then by id), each hub at the middle of its holders; then a force-directed
 * layout runs. Parts of the picture not joined to the primary by any edge get an invisible
 * spring to it, so they stay in view.
 */
export function placeNodes(model) {
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
export function isCompact(model) {
  return model.contacts.length > LARGE_CUSTOMER;
}

/**
 * Sets `labelLeft` on each contact: its labels go on the side away from its hubs, so edges
 * do not cross them. In a compact picture, where one contact's labels show at a time over
 * the others, they face the middle instead, so that they are not cut off at an edge.
 */
export function placeLabels(model) {
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

export function startingPoints(model, spacing) {
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

export function mean(numbers) {
  return numbers.reduce((sum, n) => sum + n, 0) / numbers.length;
}

/** Links that join every connected part of the graph to node 0 (the primary). */
export function tiesToFirst(count, links) {
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
export function forceLayout(points, links, k) {
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

export function contactRadius(node, compact) {
  const primary = node.contact.linkPrecedence === "primary";
  if (compact) return primary ? 11 : 7;
  return primary ? 20 : 14;
}

/** The lines of text beside a contact: email, phone, creation date. */
export function contactLines(contact) {
  return [contact.email, contact.phoneNumber, formatTime(contact.createdAt, shortDate)]
    .filter(Boolean)
    .map((line) => truncate(line));
}

/**
 * The box [x, y, width, height] around every node and its labels (at `fontSize`), never
 * smaller than 600 by 320 (a small customer is not blown up).
 */
export function boxOf(nodes, compact, fontSize) {
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
 * is scaled down to the panel's width `panel` (up to three times FONT_SIZE), and the view
 * box that fits the labels at that size.
 */
export function fitPicture(nodes, compact, panel) {
  const natural = boxOf(nodes, compact, FONT_SIZE);
  const fontSize = FONT_SIZE * Math.min(3, Math.max(1, natural[2] / panel));
  return { fontSize: round(fontSize), viewBox: boxOf(nodes, compact, fontSize).map(round).join(" ") };
}

export function round(number) {
  return Math.round(number * 10) / 10;
}
