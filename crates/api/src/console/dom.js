/* DOM helpers, the status line and error reports: building elements (text only: personal
   data never becomes markup), showing and hiding, reporting a failed request. */

import { formatTime, fullDate } from "./words.js";

export const SVG_NS = "http://www.w3.org/2000/svg";

export function byId(id) {
  return document.getElementById(id);
}

export function setAttributes(element, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) {
      element.setAttribute(name, String(value));
    }
  }
}

/** An HTML element; string children become text nodes. */
export function html(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

/** An SVG element; string children become text nodes. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  setAttributes(element, attributes);
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

export function show(element, visible) {
  element.hidden = !visible;
}

/** Wraps an async event handler so that any failure lands in the status line. */
export function guarded(handler) {
  return (event) => {
    handler(event).catch(report);
  };
}

export function setStatus(text, isError = false) {
  const status = byId("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

/** A failed request, from an application/problem+json answer or from the network. */
export class ProblemError extends Error {
  constructor(status, title, detail) {
    super(`${title}: ${detail}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

export function report(error) {
  if (!(error instanceof ProblemError)) {
    console.error(error);
    setStatus(`Console error: ${error.message}`, true);
    return;
  }
  setStatus(`${error.title}: ${error.detail}`, true);
  if (error.status === 401 || error.status === 403) {
    // The key was refused: the main module asks for another.
    document.dispatchEvent(new CustomEvent("key-refused"));
  }
}

export function timeElement(iso, format = fullDate) {
  return html("time", { datetime: iso }, formatTime(iso, format));
}
