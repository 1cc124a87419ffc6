-- What joined two customers without creating a contact (rule 4: a request whose email
-- belongs to one customer and whose phone to another): the request's email and phone. The
-- contacts alone cannot tell that the two belong together once a contact is erased, so
-- re-clustering after an erasure reads these too. Personal data: an erasure deletes the
-- rows that hold a value no live contact holds any more.
CREATE TABLE link_evidence (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email        text NOT NULL,
    phone_number text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX link_evidence_email_idx ON link_evidence (email);
CREATE INDEX link_evidence_phone_number_idx ON link_evidence (phone_number);
