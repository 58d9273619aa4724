-- The event history the `audit` consumer group appends to: every event once, per aggregate in
-- order, kept for EVENT_HISTORY_RETENTION (the outbox and the inbox carry events and are
-- cleaned within days; this is what support and the API read).

CREATE TABLE event_history (
    id             uuid PRIMARY KEY,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    sequence       bigint NOT NULL,
    event_type     text NOT NULL,
    event_version  integer NOT NULL,
    data           jsonb NOT NULL,
    occurred_at    timestamptz NOT NULL,
    traceparent    text,
    recorded_at    timestamptz NOT NULL
);

CREATE INDEX event_history_aggregate_idx ON event_history (aggregate_type, aggregate_id, sequence);
CREATE INDEX event_history_recorded_idx ON event_history (recorded_at);
