-- The statements POST /api/v1/orders performs on PostgreSQL for order.lua's order (2 × sku-1,
-- stock not tracked; 1 × sku-2, tracked): the two catalog reads, then one transaction that
-- inserts the order, reads what it holds, locks the stock rows of its SKUs in SKU order,
-- reserves on sku-2 (the level, its movement and stock.reserved), records the reservation and
-- writes order.created. Every client reserves the same product, as order.lua does. Ids come
-- from a random number on the server; the JSON has the size of Portside's.
\set r random(1, 9223372036854775806)
SELECT sku, name, description, prices, active, version, event_sequence, created_at, updated_at FROM products WHERE sku = 'sku-1';
SELECT sku, name, description, prices, active, version, event_sequence, created_at, updated_at FROM products WHERE sku = 'sku-2';
BEGIN;
INSERT INTO orders (id, customer_id, items, currency, total_minor, status, payment_id, version, event_sequence, created_at, updated_at, idempotency_scope, idempotency_key, request_fingerprint)
  VALUES (md5('o' || :r::bigint)::uuid, '01a20000-0000-7000-8000-000000000001', '[{"product_id": "sku-1", "name": "Mug", "quantity": 2, "unit_price_minor": 450}, {"product_id": "sku-2", "name": "Kite", "quantity": 1, "unit_price_minor": 3000}]', 'USD', 3900, 'pending', NULL, 1, 1, now(), now(), NULL, NULL, NULL);
SELECT sku, quantity FROM stock_reservations WHERE order_id = md5('o' || :r::bigint)::uuid;
SELECT sku, on_hand, reserved, low_stock_threshold, low, version, event_sequence, updated_at FROM stock_levels WHERE sku IN ('sku-1', 'sku-2') ORDER BY sku FOR UPDATE;
UPDATE stock_levels SET reserved = reserved + 1, low = false, version = version + 1, event_sequence = event_sequence + 1, updated_at = now() WHERE sku = 'sku-2';
INSERT INTO stock_movements (sku, sequence, kind, quantity, order_id, reason, on_hand, reserved, at)
  SELECT 'sku-2', event_sequence, 'reserved', 1, md5('o' || :r::bigint)::uuid, NULL, on_hand, reserved, now() FROM stock_levels WHERE sku = 'sku-2';
INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, event_type, event_version, data, occurred_at, traceparent)
  SELECT md5('s' || :r::bigint)::uuid, 'stock', 'sku-2', event_sequence, 'stock.reserved', 1, '{"stock": {"sku": "sku-2", "on_hand": 1000000000, "reserved": 1, "available": 999999999, "low_stock_threshold": null}, "movement": {"sku": "sku-2", "sequence": 2, "kind": "reserved", "quantity": 1, "order_id": "01a20000-0000-7000-8000-000000000001", "reason": null, "on_hand": 1000000000, "reserved": 1, "at": "2026-11-30T18:36:10.474822Z"}}', now(), NULL FROM stock_levels WHERE sku = 'sku-2';
DELETE FROM stock_reservations WHERE order_id = md5('o' || :r::bigint)::uuid;
INSERT INTO stock_reservations (order_id, sku, quantity) VALUES (md5('o' || :r::bigint)::uuid, 'sku-2', 1);
INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, event_type, event_version, data, occurred_at, traceparent)
  VALUES (md5('e' || :r::bigint)::uuid, 'order', md5('o' || :r::bigint)::text, 1, 'order.created', 1, '{"order": {"order_id": "01a20000-0000-7000-8000-000000000001", "customer_id": "01a20000-0000-7000-8000-000000000001", "items": [{"product_id": "sku-1", "name": "Mug", "quantity": 2, "unit_price": {"minor": 450, "currency": "USD"}}, {"product_id": "sku-2", "name": "Kite", "quantity": 1, "unit_price": {"minor": 3000, "currency": "USD"}}], "currency": "USD", "total": "39.00", "total_minor": 3900, "status": "pending", "payment_id": null, "version": 1}}', now(), NULL);
COMMIT;
