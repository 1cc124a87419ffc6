/* Words and dates: how the console says times, counts, lists, customers, history events
   and their causes. Pure: no DOM. */

/** Longest value label drawn in the picture; the details panel shows the whole value. */
export const LABEL_MAX = 28;

export const shortDate = new Intl.DateTimeFormat("en-GB", {
  day: "numeric", month: "short", year: "numeric", timeZone: "UTC",
});

export const fullDate = new Intl.DateTimeFormat("en-GB", {
  day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
  second: "2-digit", timeZone: "UTC", timeZoneName: "short",
});

/** Formats an RFC 3339 time; the service sends microseconds, which not every engine parses. */
export function formatTime(iso, format = fullDate) {
  const time = Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(time) ? String(iso ?? "") : format.format(time);
}

export function plural(count, word, many = `${word}s`) {
  return `${count} ${count === 1 ? word : many}`;
}

export function kindWord(kind) {
  return kind === "email" ? "email" : "phone";
}

/** "1, 2, 3" or, for long lists, "1, 2, … and 480 more". */
export function idList(ids, limit = 12) {
  if (ids.length <= limit) {
    return ids.join(", ");
  }
  return `${ids.slice(0, limit).join(", ")} … and ${ids.length - limit} more`;
}

export function truncate(text, max = LABEL_MAX) {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** One line about a customer in the API's shape, for result buttons and the dialog. */
export function customerLine(customer) {
  const contacts = 1 + (customer.secondaryContactIds ?? []).length;
  const values = [...(customer.emails ?? []), ...(customer.phoneNumbers ?? [])];
  return `Customer ${customer.primaryContactId}: ${plural(contacts, "contact")}` +
    (values.length ? ` — ${values.join(", ")}` : "");
}

/** Each event type in words; an unknown type shows as it is. */
export const EVENT_WORDS = new Map([
  ["contact.created", (event) => (event.after?.linkedId
    ? `created, linked to ${event.after.linkedId}`
    : "created")],
  ["contact.linked", (event) => `linked to ${event.after?.linkedId ?? "?"}`],
  ["primary.demoted", (event) => `demoted: merged into ${event.after?.linkedId ?? "?"}`],
  ["primary.promoted", () => "promoted to primary"],
  ["contact.normalized", () => "normalized"],
  ["contact.unlinked", () => "unlinked value taken off"],
  ["contact.erased", () => "erased"],
]);

export function eventWords(event) {
  return EVENT_WORDS.get(event.type)?.(event) ?? event.type;
}

/** A cause (`request:<id>`, `erasure:<id>`, `unlink:<rule id>`, `link:<link id>`, `import`, `normalize`) in words. */
export function causeWords(cause) {
  const [kind, ...rest] = String(cause).split(":");
  const id = rest.join(":");
  switch (kind) {
    case "request": return `request ${id}`;
    case "erasure": return `erasure ${id}`;
    case "unlink": return `unlink rule ${id}`;
    case "link": return `link ${id}, made or undone by hand`;
    case "import": return "import";
    case "normalize": return "normalization";
    default: return String(cause);
  }
}

export function consequence(value, customers, erased) {
  const erasedWords = erased ? `${plural(erased, "contact")} erased` : "no contact erased";
  return `Unlinking ${value} will leave ${plural(customers, "customer")} (${erasedWords}).`;
}

export function ruleValue(rule) {
  return rule.email ?? rule.phoneNumber ?? "";
}
