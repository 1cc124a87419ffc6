-- Append-only history of every change to the contact graph. It holds ids and link states
-- only, never an email or a phone, so erasing a person leaves it intact.
CREATE TABLE contact_event (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The customer (its primary's id) the event belongs to, at the time.
    customer_id bigint NOT NULL,
    contact_id  bigint NOT NULL,
    -- contact.created, contact.linked, primary.demoted, primary.promoted, customers.merged,
    -- contact.erased
    kind        text NOT NULL,
    -- What caused it: a request id, "import", "normalize", "erasure".
    cause       text NOT NULL,
    before      text,
    after       text,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX contact_event_contact_idx ON contact_event (contact_id);
CREATE INDEX contact_event_customer_idx ON contact_event (customer_id);

-- Change events waiting to be delivered to the webhook, written in the same transaction as
-- the change (a transactional outbox). Payloads carry ids only.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     bigint NOT NULL,
    kind            text NOT NULL,
    payload         text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- A dispatcher's claim: nobody else delivers the event before this moment.
    claimed_until   timestamptz,
    delivered_at    timestamptz,
    last_error      text
);
CREATE INDEX outbox_pending_idx ON outbox (customer_id, id) WHERE delivered_at IS NULL;
