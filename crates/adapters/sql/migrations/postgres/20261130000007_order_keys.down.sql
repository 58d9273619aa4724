DROP INDEX orders_idempotency_idx;
ALTER TABLE orders DROP COLUMN request_fingerprint;
ALTER TABLE orders DROP COLUMN idempotency_key;
ALTER TABLE orders DROP COLUMN idempotency_scope;
