-- The statements POST /api/v1/transfers performs on PostgreSQL for one keyed transfer of 0.01
-- between two wallets, in its one transaction: the transfer with its key (unless the key made
-- one), its posted ledger transaction, two entries, the two wallets' balance rows upserted in
-- one statement (each wallet one row, locked by the upsert), and transfer.completed. Account
-- names are spelt with replace() because pgbench reads ':name' as a variable.
\set r random(1, 9223372036854775806)
BEGIN;
INSERT INTO transfers (id, sender, recipient, currency, amount_minor, description, idempotency_scope, idempotency_key, fingerprint, created_at)
  VALUES (md5('x' || :r::bigint)::uuid, '01a20000-0000-7000-8000-000000000001', '01a20000-0000-7000-8000-000000000002', 'USD', 1, NULL, '01a20000-0000-7000-8000-000000000001', 'k' || :r::bigint, 'b1946ac92492d2347c6235b4d2611184b1946ac92492d2347c6235b4d2611184', now())
  ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING RETURNING id;
INSERT INTO ledger_transactions (id, phase, refers_to, cause, created_at)
  VALUES (md5('x' || :r::bigint)::uuid, 'posted', NULL, 'transfer:' || md5('x' || :r::bigint)::uuid, now());
INSERT INTO ledger_entries (transaction_id, line, account, currency, side, amount_minor, created_at)
  VALUES (md5('x' || :r::bigint)::uuid, 0, replace('customer/01a20000-0000-7000-8000-000000000001/wallet', '/', ':'), 'USD', 'debit', 1, now()), (md5('x' || :r::bigint)::uuid, 1, replace('customer/01a20000-0000-7000-8000-000000000002/wallet', '/', ':'), 'USD', 'credit', 1, now());
INSERT INTO ledger_balances (account, currency, slot, debits_posted, credits_posted, debits_pending, credits_pending)
  VALUES (replace('customer/01a20000-0000-7000-8000-000000000001/wallet', '/', ':'), 'USD', 0, 1, 0, 0, 0), (replace('customer/01a20000-0000-7000-8000-000000000002/wallet', '/', ':'), 'USD', 0, 0, 1, 0, 0)
  ON CONFLICT (account, currency, slot) DO UPDATE SET debits_posted = ledger_balances.debits_posted + excluded.debits_posted, credits_posted = ledger_balances.credits_posted + excluded.credits_posted, debits_pending = ledger_balances.debits_pending + excluded.debits_pending, credits_pending = ledger_balances.credits_pending + excluded.credits_pending
  RETURNING account, currency, debits_posted, credits_posted, debits_pending, credits_pending;
INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, event_type, event_version, data, occurred_at, traceparent)
  VALUES (md5('e' || :r::bigint)::uuid, 'transfer', md5('x' || :r::bigint)::text, 1, 'transfer.completed', 1, '{"transfer": {"amount": "0.01", "amount_minor": 1, "currency": "USD", "description": null, "recipient": "01a20000-0000-7000-8000-000000000002", "sender": "01a20000-0000-7000-8000-000000000001", "transfer_id": "01a20000-0000-7000-8000-000000000003"}}', now(), NULL);
COMMIT;
