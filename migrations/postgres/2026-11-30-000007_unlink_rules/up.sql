-- Unlink rules: values an operator marked as "does not identify anyone" (a family's shared
-- phone, a store's own number typed at checkout), with who made the rule, when and why.
-- While a rule stands no contact holds its value and /identify sets the value aside.
-- Deleting the rule lets the value link again; the row is gone with it.
CREATE TABLE unlink_rule (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- email or phone
    kind       text NOT NULL CHECK (kind IN ('email', 'phone')),
    -- normalized, as contacts hold it
    value      text NOT NULL,
    reason     text NOT NULL,
    -- the name of the API key (or command-line operator) that made it
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (kind, value)
);
