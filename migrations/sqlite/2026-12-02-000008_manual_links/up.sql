-- See migrations/postgres: the same table in SQLite's types.
CREATE TABLE manual_link (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_a  INTEGER NOT NULL REFERENCES contact (id),
    contact_b  INTEGER NOT NULL REFERENCES contact (id),
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CHECK (contact_a < contact_b)
);
CREATE INDEX manual_link_contact_a_idx ON manual_link (contact_a);
CREATE INDEX manual_link_contact_b_idx ON manual_link (contact_b);
