/* The console's state: the key, the open customer and its picture, the selection. One
   object, shared; the modules that change it say so. */

/** Arrow keys and the directions they move the focus in the picture (y grows downwards). */
export const ARROWS = new Map([
  ["ArrowRight", [1, 0]], ["ArrowLeft", [-1, 0]], ["ArrowDown", [0, 1]], ["ArrowUp", [0, -1]],
]);

export const state = {
  key: null, // the API key; null until given, "" when the service needs none
  graph: null, // the open customer's graph, as the API answered it
  view: null, // the drawn picture: { nodes: [node], byKey: Map, edges: Map }, see drawGraph
  selection: { contacts: [], value: null }, // up to two contact ids, or one value key
  lastContactId: null, // the contact last selected in the open customer
  openTicket: 0, // raised by every request for a customer, so only the newest one shows
  whyTicket: 0, // the same for "why" requests
  unlinking: null, // the value node the unlink dialog is about
  linking: null, // the link the link dialog previewed: { contactIds }
};

/**
 * The selection once contact `id` is chosen: with one contact already selected, the new one
 * becomes the second (the "why" chain between the two is then asked for); with two
 * selected, the new one replaces the second. Choosing the first one again starts over
 * from it.
 */
export function nextSelection(selection, id) {
  const first = selection.contacts[0];
  return {
    contacts: first === undefined || first === id ? [id] : [first, id],
    value: null,
  };
}
