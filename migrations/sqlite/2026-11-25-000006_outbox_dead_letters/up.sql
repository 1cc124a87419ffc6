-- See migrations/postgres.
ALTER TABLE outbox ADD COLUMN dead_at TEXT;
DROP INDEX outbox_pending_idx;
CREATE INDEX outbox_pending_idx ON outbox (customer_id, id) WHERE delivered_at IS NULL AND dead_at IS NULL;
