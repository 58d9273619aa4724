-- The statements POST /api/v1/orders performs on PostgreSQL for order_spread.lua's order (1 ×
-- one of 100 tracked products, at random): the catalog read, then one transaction that inserts
-- the order, reads what it holds, locks the product's stock row, reserves (the level, its
-- movement and stock.reserved), records the reservation and writes order.created.
\set r random(1, 9223372036854775806)
\set s random(1, 100)
SELECT sku, name, description, prices, active, version, event_sequence, created_at, updated_at FROM products WHERE sku = 'sku-s' || :s;
BEGIN;
INSERT INTO orders (id, customer_id, items, currency, total_minor, status, payment_id, version, event_sequence, created_at, updated_at, idempotency_scope, idempotency_key, request_fingerprint)
  VALUES (md5('o' || :r::bigint)::uuid, '01a20000-0000-7000-8000-000000000001', '[{"product_id": "sku-s42", "name": "Spread 42", "quantity": 1, "unit_price_minor": 1000}]', 'USD', 1000, 'pending', NULL, 1, 1, now(), now(), NULL, NULL, NULL);
SELECT sku, quantity FROM stock_reservations WHERE order_id = md5('o' || :r::bigint)::uuid;
SELECT sku, on_hand, reserved, low_stock_threshold, low, version, event_sequence, updated_at FROM stock_levels WHERE sku IN ('sku-s' || :s) ORDER BY sku FOR UPDATE;
UPDATE stock_levels SET reserved = reserved + 1, low = false, version = version + 1, event_sequence = event_sequence + 1, updated_at = now() WHERE sku = 'sku-s' || :s;
INSERT INTO stock_movements (sku, sequence, kind, quantity, order_id, reason, on_hand, reserved, at)
  SELECT sku, event_sequence, 'reserved', 1, md5('o' || :r::bigint)::uuid, NULL, on_hand, reserved, now() FROM stock_levels WHERE sku = 'sku-s' || :s;
INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, event_type, event_version, data, occurred_at, traceparent)
  SELECT md5('s' || :r::bigint)::uuid, 'stock', sku, event_sequence, 'stock.reserved', 1, '{"stock": {"sku": "sku-s42", "on_hand": 1000000000, "reserved": 1, "available": 999999999, "low_stock_threshold": null}, "movement": {"sku": "sku-s42", "sequence": 2, "kind": "reserved", "quantity": 1, "order_id": "01a20000-0000-7000-8000-000000000001", "reason": null, "on_hand": 1000000000, "reserved": 1, "at": "2026-11-30T18:36:10.474822Z"}}', now(), NULL FROM stock_levels WHERE sku = 'sku-s' || :s;
DELETE FROM stock_reservations WHERE order_id = md5('o' || :r::bigint)::uuid;
INSERT INTO stock_reservations (order_id, sku, quantity) VALUES (md5('o' || :r::bigint)::uuid, 'sku-s' || :s, 1);
INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, event_type, event_version, data, occurred_at, traceparent)
  VALUES (md5('e' || :r::bigint)::uuid, 'order', md5('o' || :r::bigint)::text, 1, 'order.created', 1, '{"order": {"order_id": "01a20000-0000-7000-8000-000000000001", "customer_id": "01a20000-0000-7000-8000-000000000001", "items": [{"product_id": "sku-s42", "name": "Spread 42", "quantity": 1, "unit_price": {"minor": 1000, "currency": "USD"}}], "currency": "USD", "total": "10.00", "total_minor": 1000, "status": "pending", "payment_id": null, "version": 1}}', now(), NULL);
COMMIT;
