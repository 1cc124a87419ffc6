/* "Why one customer?": fetches the chain between two selected contacts, tells it in words
   and highlights it in the picture. */

import { api } from "./api.js";
import { byId, html, setStatus } from "./dom.js";
import { chainKeys } from "./model.js";
import { state } from "./state.js";
import { plural } from "./words.js";

export function renderWhyIdle() {
  byId("why").replaceChildren(html("p", { class: "hint" },
    "Select two contacts to see the chain of shared values and requests that joins them."));
}

export function clearWhy() {
  state.whyTicket += 1;
  for (const element of byId("graph").querySelectorAll(".why")) {
    element.classList.remove("why");
  }
  renderWhyIdle();
}

export async function explainWhy(from, to) {
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
export function chainPart(step) {
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

/** Adds class `why` to the chain's contacts, hubs, the edges between them and evidence links. */
export function highlightChain(chain) {
  const { byKey, edges } = state.view;
  const { nodes, edges: edgeKeys } = chainKeys(chain);
  nodes.forEach((key) => byKey.get(key)?.element.classList.add("why"));
  edgeKeys.forEach((key) => edges.get(key)?.elements.forEach((e) => e.classList.add("why")));
}
