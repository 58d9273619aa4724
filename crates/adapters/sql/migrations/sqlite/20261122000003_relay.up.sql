-- Relay leases on the outbox, and the consumers' inbox of processed events.

ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;

CREATE TABLE inbox (
    consumer_group TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    processed_at   INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
) STRICT;

CREATE INDEX inbox_processed_idx ON inbox (processed_at);
