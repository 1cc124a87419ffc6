-- See migrations/postgres: the same table in SQLite's types.
CREATE TABLE link_evidence (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    email        TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX link_evidence_email_idx ON link_evidence (email);
CREATE INDEX link_evidence_phone_number_idx ON link_evidence (phone_number);
