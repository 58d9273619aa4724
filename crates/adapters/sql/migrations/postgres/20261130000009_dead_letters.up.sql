-- Dead letters of the embedded mode (the in-process bus has no broker to keep them): each with
-- its group, the event as JSON, the last error, and when an operator asked for a replay.

CREATE TABLE dead_letters (
    id             text PRIMARY KEY,
    consumer_group text NOT NULL,
    envelope       text NOT NULL,
    error          text NOT NULL,
    failed_at      timestamptz NOT NULL,
    replay_at      timestamptz
);

CREATE INDEX dead_letters_group_idx ON dead_letters (consumer_group, failed_at);
