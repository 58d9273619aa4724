-- Retention deletes published outbox rows and provider notices oldest first (the inbox has its
-- index on processed_at already).

CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX provider_events_received_idx ON provider_events (received_at);
