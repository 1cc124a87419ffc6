// The picture's layout, without a browser: deterministic, finite, and readable.
import assert from "node:assert/strict";
import { test } from "node:test";

import { buildModel } from "../../src/console/model.js";
import { fitPicture, isCompact, placeNodes, tiesToFirst } from "../../src/console/layout.js";

function customer(size, links = []) {
  const contacts = Array.from({ length: size }, (_, i) => ({
    id: i + 1,
    email: `c${i + 1}@x.io`,
    phoneNumber: i === 0 ? null : "5550100",
    linkedId: i === 0 ? null : 1,
    linkPrecedence: i === 0 ? "primary" : "secondary",
    createdAt: "2026-12-01T10:00:00.000000Z",
  }));
  return { primaryContactId: 1, contacts, evidence: [], links };
}

const distance = (a, b) => Math.hypot(a.x - b.x, a.y - b.y);

test("the layout is the same every time and every point is finite", () => {
  const first = placeNodes(buildModel(customer(8)));
  const second = placeNodes(buildModel(customer(8)));
  assert.deepEqual(first.map((n) => [n.x, n.y]), second.map((n) => [n.x, n.y]));
  for (const node of first) {
    assert.ok(Number.isFinite(node.x) && Number.isFinite(node.y), node.key);
  }
});

test("no two contacts are drawn on top of each other, linked by hand or not", () => {
  const link = { id: 1, contactIds: [1, 2], reason: "r", createdBy: "s", createdAt: "2026-12-01T12:00:00Z" };
  const model = buildModel(customer(6, [link]));
  const nodes = placeNodes(model);
  const contacts = nodes.filter((node) => node.type === "contact");
  for (const [i, a] of contacts.entries()) {
    for (const b of contacts.slice(i + 1)) {
      assert.ok(distance(a, b) > 20, `${a.key} and ${b.key} overlap`);
    }
  }
  const [manual] = model.manual;
  assert.ok(Number.isFinite(manual.x) && Number.isFinite(manual.y), "the link has a point of its own");
});

test("parts of the picture joined by nothing are tied to the primary", () => {
  assert.deepEqual(tiesToFirst(4, [[0, 1], [2, 3]]), [[0, 2]]);
  assert.deepEqual(tiesToFirst(3, [[0, 1], [1, 2]]), []);
});

test("a large customer is compact, and the view box fits every node", () => {
  assert.equal(isCompact(buildModel(customer(5))), false);
  assert.equal(isCompact(buildModel(customer(80))), true);
  const nodes = placeNodes(buildModel(customer(5)));
  const { viewBox, fontSize } = fitPicture(nodes, false, 800);
  const [left, top, width, height] = viewBox.split(" ").map(Number);
  assert.ok(fontSize >= 11);
  for (const node of nodes) {
    assert.ok(node.x >= left && node.x <= left + width && node.y >= top && node.y <= top + height, node.key);
  }
});
