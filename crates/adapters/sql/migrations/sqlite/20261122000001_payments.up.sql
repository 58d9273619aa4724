-- Payments, their transactions (charges and refunds), idempotency keys and the outbox.
-- Timestamps are INTEGER microseconds since the Unix epoch (UTC); ids are UUID text.

CREATE TABLE payments (
    id                   TEXT PRIMARY KEY,
    customer_id          TEXT NOT NULL,
    amount_minor         INTEGER NOT NULL CHECK (amount_minor > 0),
    currency             TEXT NOT NULL,
    payment_method       TEXT NOT NULL,
    payment_method_token TEXT NOT NULL,
    provider             TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed', 'partially_refunded', 'refunded')),
    refunded_minor       INTEGER NOT NULL DEFAULT 0,
    refund_pending_minor INTEGER NOT NULL DEFAULT 0,
    provider_reference   TEXT,
    failure_code         TEXT,
    failure_decline_code TEXT,
    failure_message      TEXT,
    description          TEXT,
    metadata             TEXT NOT NULL DEFAULT '{}',
    version              INTEGER NOT NULL,
    event_sequence       INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    CHECK (refunded_minor >= 0 AND refund_pending_minor >= 0
           AND refunded_minor + refund_pending_minor <= amount_minor)
) STRICT;

CREATE INDEX payments_customer_idx ON payments (customer_id, id);
CREATE INDEX payments_status_idx ON payments (status, id);

CREATE TABLE payment_transactions (
    id                   TEXT PRIMARY KEY,
    payment_id           TEXT NOT NULL REFERENCES payments (id),
    kind                 TEXT NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_minor         INTEGER NOT NULL CHECK (amount_minor > 0),
    currency             TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    provider_key         TEXT NOT NULL UNIQUE,
    provider_reference   TEXT,
    failure_code         TEXT,
    failure_decline_code TEXT,
    failure_message      TEXT,
    reason               TEXT,
    metadata             TEXT NOT NULL DEFAULT '{}',
    created_at           INTEGER NOT NULL,
    settled_at           INTEGER
) STRICT;

CREATE INDEX payment_transactions_payment_idx ON payment_transactions (payment_id, created_at);
CREATE INDEX payment_transactions_pending_idx ON payment_transactions (created_at) WHERE status = 'pending';
-- One charge per payment, whatever happens.
CREATE UNIQUE INDEX payment_transactions_one_charge_idx ON payment_transactions (payment_id) WHERE kind = 'charge';

CREATE TABLE idempotency_keys (
    scope          TEXT NOT NULL,
    key            TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    transaction_id TEXT NOT NULL UNIQUE,
    locked_until   INTEGER,
    outcome        TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;

CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

CREATE TABLE outbox (
    id             TEXT PRIMARY KEY,
    aggregate_type TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL,
    sequence       INTEGER NOT NULL,
    event_type     TEXT NOT NULL,
    event_version  INTEGER NOT NULL,
    data           TEXT NOT NULL,
    occurred_at    INTEGER NOT NULL,
    traceparent    TEXT,
    published_at   INTEGER,
    UNIQUE (aggregate_type, aggregate_id, sequence)
) STRICT;

CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
