DROP INDEX payments_provider_reference_idx;
DROP TABLE provider_events;
