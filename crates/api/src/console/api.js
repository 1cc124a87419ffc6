/* The service's JSON API: one call, with the key, answering the body or throwing a
   ProblemError. */

import { ProblemError } from "./dom.js";
import { state } from "./state.js";

/** Calls the API; answers the parsed JSON body (null for 204), throws ProblemError else. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (state.key) {
    headers.Authorization = `Bearer ${state.key}`;
  }
  const init = { method, headers, cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ProblemError(0, "No answer", "the service could not be reached; try again");
  }
  if (!response.ok) {
    throw await problemOf(response);
  }
  if (response.status === 204) {
    return null;
  }
  try {
    return await response.json();
  } catch {
    throw new ProblemError(response.status, "Unreadable answer", "the answer is not JSON");
  }
}

export async function problemOf(response) {
  // Not a problem document (a proxy's error page, say): the status line has to do.
  const problem = (await response.json().catch(() => null)) ?? {};
  const title = typeof problem.title === "string" && problem.title
    ? problem.title
    : `HTTP ${response.status}`;
  const detail = typeof problem.detail === "string" && problem.detail
    ? problem.detail
    : response.statusText || "the request failed";
  return new ProblemError(response.status, title, detail);
}

/** The request body naming one value: {"email": …} or {"phoneNumber": …}. */
export function valueBody(kind, value) {
  return kind === "email" ? { email: value } : { phoneNumber: value };
}
