ALTER TABLE outbox RESET (autovacuum_analyze_scale_factor, autovacuum_vacuum_scale_factor);
ALTER TABLE inbox RESET (autovacuum_analyze_scale_factor, autovacuum_vacuum_scale_factor);
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (consumer_group, event_id);
