-- Provider webhook events, each processed once, and the lookup of a payment by the provider's id.

CREATE TABLE provider_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    payment_id   TEXT,
    outcome      TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
) STRICT;

CREATE INDEX payments_provider_reference_idx ON payments (provider, provider_reference)
    WHERE provider_reference IS NOT NULL;
