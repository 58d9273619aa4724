-- Provider webhook events, each processed once, and the lookup of a payment by the provider's id.

CREATE TABLE provider_events (
    provider     text NOT NULL,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    payment_id   uuid,
    outcome      text NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (provider, event_id)
);

CREATE INDEX payments_provider_reference_idx ON payments (provider, provider_reference)
    WHERE provider_reference IS NOT NULL;
