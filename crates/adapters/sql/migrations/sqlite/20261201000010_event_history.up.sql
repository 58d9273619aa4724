-- The event history the `audit` consumer group appends to: every event once, per aggregate in
-- order, kept for EVENT_HISTORY_RETENTION (the outbox and the inbox carry events and are
-- cleaned within days; this is what support and the API read).

CREATE TABLE event_history (
    id             TEXT PRIMARY KEY,
    aggregate_type TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL,
    sequence       INTEGER NOT NULL,
    event_type     TEXT NOT NULL,
    event_version  INTEGER NOT NULL,
    data           TEXT NOT NULL,
    occurred_at    INTEGER NOT NULL,
    traceparent    TEXT,
    recorded_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX event_history_aggregate_idx ON event_history (aggregate_type, aggregate_id, sequence);
CREATE INDEX event_history_recorded_idx ON event_history (recorded_at);
