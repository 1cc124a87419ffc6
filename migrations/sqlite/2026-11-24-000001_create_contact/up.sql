-- The same table as PostgreSQL's (migrations/postgres), in SQLite's types. Timestamps are
-- UTC ISO 8601 text with milliseconds.
CREATE TABLE contact (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    phone_number    TEXT,
    email           TEXT,
    linked_id       INTEGER REFERENCES contact (id),
    link_precedence TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    deleted_at      TEXT,
    CONSTRAINT contact_link_precedence_valid
        CHECK (link_precedence IN ('primary', 'secondary')),
    CONSTRAINT contact_link_matches_precedence
        CHECK ((link_precedence = 'primary') = (linked_id IS NULL) AND (linked_id IS NULL OR linked_id <> id)),
    CONSTRAINT contact_has_identifier
        CHECK (deleted_at IS NOT NULL OR email IS NOT NULL OR phone_number IS NOT NULL)
);

CREATE INDEX contact_email_idx ON contact (email) WHERE deleted_at IS NULL;
CREATE INDEX contact_phone_number_idx ON contact (phone_number) WHERE deleted_at IS NULL;
CREATE INDEX contact_linked_id_idx ON contact (linked_id) WHERE deleted_at IS NULL;
