-- What GET /api/v1/payments/{id} asks PostgreSQL: one payment by primary key.
\set r random(1, 10000)
SELECT id, customer_id, amount_minor, currency, payment_method, payment_method_token, provider, status, refunded_minor, refund_pending_minor, provider_reference, failure_code, failure_decline_code, failure_message, description, metadata, version, event_sequence, created_at, updated_at
  FROM payments WHERE id = md5('p' || :r::bigint)::uuid;
