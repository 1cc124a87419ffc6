// How the selection moves and what the console says, without a browser.
import assert from "node:assert/strict";
import { test } from "node:test";

import { nextSelection } from "../../src/console/state.js";
import { causeWords, eventWords, idList, plural, truncate } from "../../src/console/words.js";

test("choosing contacts: the first, then a second, then another second; the first again starts over", () => {
  let selection = { contacts: [], value: "phone:1" };
  selection = nextSelection(selection, 4);
  assert.deepEqual(selection, { contacts: [4], value: null });
  selection = nextSelection(selection, 7);
  assert.deepEqual(selection.contacts, [4, 7]);
  selection = nextSelection(selection, 9);
  assert.deepEqual(selection.contacts, [4, 9]);
  selection = nextSelection(selection, 4);
  assert.deepEqual(selection.contacts, [4]);
});

test("causes and events in words", () => {
  assert.equal(causeWords("unlink:3"), "unlink rule 3");
  assert.equal(causeWords("link:5"), "link 5, made or undone by hand");
  assert.equal(causeWords("request:abc"), "request abc");
  assert.equal(causeWords("something:new"), "something:new");
  assert.equal(typeof eventWords({ type: "primary.demoted", contactId: 2, after: { linkedId: 1 } }), "string");
});

test("counts, lists and labels", () => {
  assert.equal(plural(1, "contact"), "1 contact");
  assert.equal(plural(2, "contact"), "2 contacts");
  assert.equal(plural(2, "link by hand", "links by hand"), "2 links by hand");
  assert.equal(idList([1, 2, 3]), "1, 2, 3");
  assert.ok(idList(Array.from({ length: 500 }, (_, i) => i)).includes("more"));
  assert.ok(truncate("a".repeat(100)).length < 100);
});
