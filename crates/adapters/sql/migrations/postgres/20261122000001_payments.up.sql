-- Payments, their transactions (charges and refunds), idempotency keys and the outbox.

CREATE TABLE payments (
    id                   uuid PRIMARY KEY,
    customer_id          text NOT NULL,
    amount_minor         bigint NOT NULL CHECK (amount_minor > 0),
    currency             text NOT NULL,
    payment_method       text NOT NULL,
    payment_method_token text NOT NULL,
    provider             text NOT NULL,
    status               text NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed', 'partially_refunded', 'refunded')),
    refunded_minor       bigint NOT NULL DEFAULT 0,
    refund_pending_minor bigint NOT NULL DEFAULT 0,
    provider_reference   text,
    failure_code         text,
    failure_decline_code text,
    failure_message      text,
    description          text,
    metadata             jsonb NOT NULL DEFAULT '{}',
    version              bigint NOT NULL,
    event_sequence       bigint NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    CHECK (refunded_minor >= 0 AND refund_pending_minor >= 0
           AND refunded_minor + refund_pending_minor <= amount_minor)
);

CREATE INDEX payments_customer_idx ON payments (customer_id, id);
CREATE INDEX payments_status_idx ON payments (status, id);

CREATE TABLE payment_transactions (
    id                   uuid PRIMARY KEY,
    payment_id           uuid NOT NULL REFERENCES payments (id),
    kind                 text NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_minor         bigint NOT NULL CHECK (amount_minor > 0),
    currency             text NOT NULL,
    status               text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    provider_key         text NOT NULL UNIQUE,
    provider_reference   text,
    failure_code         text,
    failure_decline_code text,
    failure_message      text,
    reason               text,
    metadata             jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL,
    settled_at           timestamptz
);

CREATE INDEX payment_transactions_payment_idx ON payment_transactions (payment_id, created_at);
CREATE INDEX payment_transactions_pending_idx ON payment_transactions (created_at) WHERE status = 'pending';
-- One charge per payment, whatever happens.
CREATE UNIQUE INDEX payment_transactions_one_charge_idx ON payment_transactions (payment_id) WHERE kind = 'charge';

CREATE TABLE idempotency_keys (
    scope          text NOT NULL,
    key            text NOT NULL,
    fingerprint    text NOT NULL,
    transaction_id uuid NOT NULL UNIQUE,
    locked_until   timestamptz,
    outcome        jsonb,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

CREATE TABLE outbox (
    id             uuid PRIMARY KEY,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    sequence       bigint NOT NULL,
    event_type     text NOT NULL,
    event_version  integer NOT NULL,
    data           jsonb NOT NULL,
    occurred_at    timestamptz NOT NULL,
    traceparent    text,
    published_at   timestamptz,
    UNIQUE (aggregate_type, aggregate_id, sequence)
);

CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
