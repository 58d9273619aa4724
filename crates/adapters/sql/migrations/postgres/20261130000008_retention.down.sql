DROP INDEX provider_events_received_idx;
DROP INDEX outbox_published_idx;
