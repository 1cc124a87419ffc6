-- See migrations/postgres: the same tables in SQLite's types.
CREATE TABLE contact_event (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL,
    contact_id  INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    cause       TEXT NOT NULL,
    before      TEXT,
    after       TEXT,
    occurred_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX contact_event_contact_idx ON contact_event (contact_id);
CREATE INDEX contact_event_customer_idx ON contact_event (customer_id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id     INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    claimed_until   TEXT,
    delivered_at    TEXT,
    last_error      TEXT
);
CREATE INDEX outbox_pending_idx ON outbox (customer_id, id) WHERE delivered_at IS NULL;
