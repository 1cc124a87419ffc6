-- An event given up on (too many failed deliveries, or too old): it no longer holds back
-- the customer's later events; `identity-api events list` shows it, `events retry` queues
-- it again. Delivered and dead events are pruned after events.retention_hours.
ALTER TABLE outbox ADD COLUMN dead_at timestamptz;
DROP INDEX outbox_pending_idx;
CREATE INDEX outbox_pending_idx ON outbox (customer_id, id) WHERE delivered_at IS NULL AND dead_at IS NULL;
