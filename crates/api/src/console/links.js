/* Joining two customers by hand: finding the other customer, previewing, linking with a
   reason; undoing a link from its edge. */

import { api, valueBody } from "./api.js";
import { openCustomer, showResults } from "./customer.js";
import { byId, guarded, html, setStatus } from "./dom.js";
import { state } from "./state.js";
import { customerLine, plural } from "./words.js";

export function openLinkDialog() {
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
export async function findForLink(event) {
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

export async function previewLink(other) {
  const contactIds = [state.graph.primaryContactId, other.primaryContactId];
  const preview = await api("POST", "/links/preview", { contactIds });
  state.linking = { contactIds };
  byId("link-preview").textContent =
    `Linking makes one customer: ${customerLine(preview.customer)}.`;
  byId("link-confirm").disabled = false;
  byId("link-reason").focus();
}

export async function confirmLink(event) {
  event.preventDefault();
  const reason = byId("link-reason").value.trim();
  if (!state.linking || !reason) return;
  const answer = await api("POST", "/links", { ...state.linking, reason });
  byId("link-dialog").close();
  state.linking = null;
  setStatus(`Linked by hand (link ${answer.link.id}): ${customerLine(answer.customer)}`);
  await openCustomer(answer.customer.primaryContactId, { announce: false });
}

export async function undoLink(link) {
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
