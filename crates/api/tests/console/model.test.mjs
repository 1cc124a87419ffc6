// Unit tests of the console's logic without a browser: node --test crates/api/tests/console/
// (what the picture shows, for the model; how it is laid out; what a why-chain highlights;
// how the selection moves; the words). Run by .ci/run beside the browser test.
import assert from "node:assert/strict";
import { test } from "node:test";

import { buildModel, chainKeys, contactKey, evidenceKey, holdKey, manualKey, valueKey } from "../../src/console/model.js";

const contact = (id, email, phoneNumber, linkedId = null) => ({
  id,
  email,
  phoneNumber,
  linkedId,
  linkPrecedence: linkedId ? "secondary" : "primary",
  createdAt: "2026-12-01T10:00:00.000000Z",
});

const graph = {
  primaryContactId: 1,
  contacts: [
    contact(3, "george@hv.edu", "555000", 1),
    contact(1, "lorraine@hv.edu", "123456"),
    contact(2, "mcfly@hv.edu", "123456", 1),
    contact(4, "jen@work.io", null, 1),
  ],
  evidence: [{ id: 9, email: "george@hv.edu", phoneNumber: "123456", createdAt: "2026-12-01T11:00:00Z" }],
  links: [
    { id: 5, contactIds: [2, 4], reason: "work address", createdBy: "support", createdAt: "2026-12-01T12:00:00Z" },
    { id: 6, contactIds: [2, 99], reason: "a contact not drawn", createdBy: "support", createdAt: "2026-12-01T12:00:00Z" },
  ],
};

test("the primary comes first, then the contacts by id", () => {
  const model = buildModel(graph);
  assert.deepEqual(model.contacts.map((node) => node.contact.id), [1, 2, 3, 4]);
});

test("a hub per value two contacts share or a request named; an evidence edge per request", () => {
  const model = buildModel(graph);
  assert.deepEqual(model.hubs.map((hub) => hub.key), [
    valueKey("email", "george@hv.edu"),
    valueKey("phone", "123456"),
  ]);
  const phone = model.hubs.find((hub) => hub.kind === "phone");
  assert.deepEqual(phone.holders, [1, 2]);
  assert.deepEqual(phone.requests, [9]);
  assert.deepEqual(model.evidence.map((e) => e.key), [evidenceKey("george@hv.edu", "123456")]);
});

test("links made by hand join two drawn contacts; one to a contact not drawn is left out", () => {
  const model = buildModel(graph);
  assert.deepEqual(model.manual.map((link) => [link.key, link.contactIds]), [[manualKey(5), [2, 4]]]);
});

test("a why-chain highlights its contacts, values, holds, requests and links", () => {
  const chain = [
    { kind: "contact", contactId: 1 },
    { kind: "sharedPhone", phoneNumber: "123456" },
    { kind: "contact", contactId: 2 },
    { kind: "manual", linkId: 5, createdBy: "support", reason: "work address", text: "joined by hand by support: work address" },
    { kind: "contact", contactId: 4 },
  ];
  const { nodes, edges } = chainKeys(chain);
  assert.deepEqual(nodes, [contactKey(1), valueKey("phone", "123456"), contactKey(2), contactKey(4)]);
  assert.deepEqual(edges, [
    holdKey(valueKey("phone", "123456"), 1),
    holdKey(valueKey("phone", "123456"), 2),
    manualKey(5),
  ]);
  const request = chainKeys([
    { kind: "contact", contactId: 3 },
    { kind: "request", email: "george@hv.edu", phoneNumber: "123456" },
    { kind: "contact", contactId: 1 },
  ]);
  assert.ok(request.edges.includes(evidenceKey("george@hv.edu", "123456")));
  assert.ok(request.nodes.includes(valueKey("email", "george@hv.edu")));
});
