-- Manual links: two contacts that support staff joined by hand (they know the two customers
-- are one person), with who, when and why. A link is evidence: every re-clustering keeps
-- its two contacts in one customer while it stands. Erasing either contact deletes it (the
-- reason may name the person); deleting it re-clusters as if it had never been made.
CREATE TABLE manual_link (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the two contacts, the lower id first
    contact_a  bigint NOT NULL REFERENCES contact (id),
    contact_b  bigint NOT NULL REFERENCES contact (id),
    reason     text NOT NULL,
    -- the name of the API key that made it
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (contact_a < contact_b)
);
CREATE INDEX manual_link_contact_a_idx ON manual_link (contact_a);
CREATE INDEX manual_link_contact_b_idx ON manual_link (contact_b);
