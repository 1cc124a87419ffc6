DROP INDEX outbox_pending_idx;
CREATE INDEX outbox_pending_idx ON outbox (customer_id, id) WHERE delivered_at IS NULL;
ALTER TABLE outbox DROP COLUMN dead_at;
