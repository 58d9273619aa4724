DROP TABLE outbox;
DROP TABLE idempotency_keys;
DROP TABLE payment_transactions;
DROP TABLE payments;
