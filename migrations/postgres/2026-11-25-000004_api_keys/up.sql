-- API keys: who may call the service, and with which scopes. The secret itself is never
-- stored, only its SHA-256 (hex). Revoked keys are kept, for the record.
CREATE TABLE api_key (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    key_hash     text NOT NULL UNIQUE,
    -- identify, read, admin: comma-separated
    scopes       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
