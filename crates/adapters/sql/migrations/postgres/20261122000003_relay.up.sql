-- Relay leases on the outbox, and the consumers' inbox of processed events.

ALTER TABLE outbox ADD COLUMN claimed_until timestamptz;
ALTER TABLE outbox ADD COLUMN claimed_by text;

CREATE TABLE inbox (
    consumer_group text NOT NULL,
    event_id       uuid NOT NULL,
    processed_at   timestamptz NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);

CREATE INDEX inbox_processed_idx ON inbox (processed_at);
