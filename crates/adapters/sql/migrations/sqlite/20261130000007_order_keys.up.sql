-- The idempotency key an order was placed with (scoped to the caller) and the fingerprint of
-- that request: a retried placement finds its order instead of placing (and reserving) again.
-- Orders placed before have none.

ALTER TABLE orders ADD COLUMN idempotency_scope TEXT;
ALTER TABLE orders ADD COLUMN idempotency_key TEXT;
ALTER TABLE orders ADD COLUMN request_fingerprint TEXT;

CREATE UNIQUE INDEX orders_idempotency_idx ON orders (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
