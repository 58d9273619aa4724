-- Outgoing webhook deliveries: one row per event and endpoint, due at next_attempt_at while
-- pending (a delivery being sent is leased by moving next_attempt_at past its request's
-- timeout), with one row per attempt. An endpoint records since when every attempt failed,
-- why Portside disabled it, and how many events it has recorded (their sequence).

ALTER TABLE webhook_endpoints ADD COLUMN failing_since timestamptz;
ALTER TABLE webhook_endpoints ADD COLUMN disabled_reason text;
ALTER TABLE webhook_endpoints ADD COLUMN event_sequence bigint NOT NULL DEFAULT 0;

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL,
    attempts         integer NOT NULL,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (endpoint_id, event_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    delivery_id   uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    number        integer NOT NULL,
    attempted_at  timestamptz NOT NULL,
    status_code   integer,
    latency_us    bigint NOT NULL,
    response      text,
    error         text,
    PRIMARY KEY (delivery_id, number)
);
