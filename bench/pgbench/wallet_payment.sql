-- The statements and transactions POST /api/v1/payments performs on PostgreSQL for one keyed
-- payment from the payer's wallet (payment_method "wallet"): payment.sql's, with the wallet
-- instead of the provider's clearing account. The wallet is a guarded account with one balance
-- row (slot 0), so concurrent payments from one wallet queue on that row's lock, as in
-- Portside; revenue stays spread over 16 slots.
\set r random(1, 9223372036854775806)
BEGIN;
INSERT INTO idempotency_keys (scope, key, fingerprint, transaction_id, locked_until, outcome, created_at, expires_at)
  VALUES ('user-pgbench', 'k' || :r::bigint, 'b1946ac92492d2347c6235b4d2611184b1946ac92492d2347c6235b4d2611184', md5('t' || :r::bigint)::uuid, now() + interval '30 seconds', NULL, now(), now() + interval '24 hours')
  ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, transaction_id = excluded.transaction_id, locked_until = excluded.locked_until, outcome = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at
  WHERE idempotency_keys.expires_at <= excluded.created_at RETURNING scope;
INSERT INTO payments (id, customer_id, amount_minor, currency, payment_method, payment_method_token, provider, status, refunded_minor, refund_pending_minor, provider_reference, failure_code, failure_decline_code, failure_message, description, metadata, version, event_sequence, created_at, updated_at)
  VALUES (md5('p' || :r::bigint)::uuid, '01a20000-0000-7000-8000-000000000001', 1999, 'USD', 'wallet', 'wallet', 'wallet', 'processing', 0, 0, NULL, NULL, NULL, NULL, NULL, '{}', 1, 1, now(), now());
INSERT INTO payment_transactions (id, payment_id, kind, amount_minor, currency, status, provider_key, provider_reference, failure_code, failure_decline_code, failure_message, reason, metadata, created_at, settled_at)
  VALUES (md5('t' || :r::bigint)::uuid, md5('p' || :r::bigint)::uuid, 'charge', 1999, 'USD', 'pending', 'portside-charge-' || :r::bigint, NULL, NULL, NULL, NULL, NULL, '{}', now(), NULL);
INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, event_type, event_version, data, occurred_at, traceparent)
  VALUES (md5('e1' || :r::bigint)::uuid, 'payment', md5('p' || :r::bigint)::text, 1, 'payment.created', 1, '{"payment": {"id": "01a20000-0000-7000-8000-000000000001","customer_id": "01a20000-0000-7000-8000-000000000001","amount": "19.99","currency": "USD","payment_method": "credit_card","provider": "mock","status": "processing","refunded_amount": "0.00","refundable_amount": "0.00","description": null,"metadata": {},"version": 1,"created_at": "2026-11-23T000000.000000Z","updated_at": "2026-11-23T000000.000000Z"}}', now(), NULL);
INSERT INTO ledger_transactions (id, phase, refers_to, cause, created_at)
  VALUES (md5('t' || :r::bigint)::uuid, 'pending', NULL, 'charge:' || md5('t' || :r::bigint)::uuid || ':' || 'pending', now());
INSERT INTO ledger_entries (transaction_id, line, account, currency, side, amount_minor, created_at)
  VALUES (md5('t' || :r::bigint)::uuid, 0, replace('customer/01a20000-0000-7000-8000-000000000001/wallet', '/', ':'), 'USD', 'debit', 1999, now()), (md5('t' || :r::bigint)::uuid, 1, replace('platform/revenue', '/', ':'), 'USD', 'credit', 1999, now());
INSERT INTO ledger_balances (account, currency, slot, debits_posted, credits_posted, debits_pending, credits_pending)
  VALUES (replace('platform/revenue', '/', ':'), 'USD', (:r::bigint % 16)::int, 0, 0, 0, 1999), (replace('customer/01a20000-0000-7000-8000-000000000001/wallet', '/', ':'), 'USD', 0, 0, 0, 1999, 0)
  ON CONFLICT (account, currency, slot) DO UPDATE SET debits_posted = ledger_balances.debits_posted + excluded.debits_posted, credits_posted = ledger_balances.credits_posted + excluded.credits_posted, debits_pending = ledger_balances.debits_pending + excluded.debits_pending, credits_pending = ledger_balances.credits_pending + excluded.credits_pending
  RETURNING account, currency, debits_posted, credits_posted, debits_pending, credits_pending;
COMMIT;
BEGIN;
UPDATE payments SET status = 'succeeded', refunded_minor = 0, refund_pending_minor = 0, provider_reference = 'ch_mock_0123456789abcdef', failure_code = NULL, failure_decline_code = NULL, failure_message = NULL, version = 2, event_sequence = 2, updated_at = now()
  WHERE id = md5('p' || :r::bigint)::uuid AND version = 1;
UPDATE payment_transactions SET status = 'succeeded', provider_reference = 'ch_mock_0123456789abcdef', failure_code = NULL, failure_decline_code = NULL, failure_message = NULL, settled_at = now()
  WHERE id = md5('t' || :r::bigint)::uuid AND status = 'pending';
INSERT INTO ledger_transactions (id, phase, refers_to, cause, created_at)
  VALUES (md5('s' || :r::bigint)::uuid, 'post', md5('t' || :r::bigint)::uuid, 'charge:' || md5('t' || :r::bigint)::uuid || ':' || 'post', now());
INSERT INTO ledger_entries (transaction_id, line, account, currency, side, amount_minor, created_at)
  VALUES (md5('s' || :r::bigint)::uuid, 0, replace('customer/01a20000-0000-7000-8000-000000000001/wallet', '/', ':'), 'USD', 'debit', 1999, now()), (md5('s' || :r::bigint)::uuid, 1, replace('platform/revenue', '/', ':'), 'USD', 'credit', 1999, now());
INSERT INTO ledger_balances (account, currency, slot, debits_posted, credits_posted, debits_pending, credits_pending)
  VALUES (replace('platform/revenue', '/', ':'), 'USD', ((:r::bigint + 1) % 16)::int, 0, 1999, 0, -1999), (replace('customer/01a20000-0000-7000-8000-000000000001/wallet', '/', ':'), 'USD', 0, 1999, 0, -1999, 0)
  ON CONFLICT (account, currency, slot) DO UPDATE SET debits_posted = ledger_balances.debits_posted + excluded.debits_posted, credits_posted = ledger_balances.credits_posted + excluded.credits_posted, debits_pending = ledger_balances.debits_pending + excluded.debits_pending, credits_pending = ledger_balances.credits_pending + excluded.credits_pending
  RETURNING account, currency, debits_posted, credits_posted, debits_pending, credits_pending;
UPDATE idempotency_keys SET outcome = '{"payment": {"id": "01a20000-0000-7000-8000-000000000001","status": "succeeded","amount": "19.99","currency": "USD","refunded_amount": "0.00","refundable_amount": "19.99","version": 2},"transaction": {"id": "01a20000-0000-7000-8000-000000000002","status": "succeeded","provider_reference": "ch_mock_0123456789abcdef"}}', locked_until = NULL
  WHERE transaction_id = md5('t' || :r::bigint)::uuid;
INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, event_type, event_version, data, occurred_at, traceparent)
  VALUES (md5('e2' || :r::bigint)::uuid, 'payment', md5('p' || :r::bigint)::text, 2, 'payment.succeeded', 1, '{"payment": {"id": "01a20000-0000-7000-8000-000000000001","customer_id": "01a20000-0000-7000-8000-000000000001","amount": "19.99","currency": "USD","payment_method": "credit_card","provider": "mock","status": "succeeded","refunded_amount": "0.00","refundable_amount": "19.99","description": null,"metadata": {},"version": 2,"created_at": "2026-11-23T000000.000000Z","updated_at": "2026-11-23T000000.000000Z"}}', now(), NULL);
COMMIT;
