-- The endpoints that want Portside's events (outgoing webhooks). event_types is a JSON array
-- of event types, or NULL for every type. The signing secret is kept as its text: shown
-- to administrators who ask for it, never logged.

CREATE TABLE webhook_endpoints (
    id           text PRIMARY KEY,
    url          text NOT NULL,
    description  text,
    event_types  text,
    enabled      boolean NOT NULL,
    secret       text NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
