-- The consumers ask "which of these events did group G handle?" (`consumer_group = $1 AND
-- event_id IN (…)`, up to WORKER_BATCH ids). With the key led by the group, a planner whose
-- statistics lag behind a fast-growing inbox read every row of the group and filtered them
-- (84–106 ms per batch measured at 700 000 rows, 0.5 ms once analysed); led by the event, the
-- only index the query can use probes each id. The inbox and the outbox also get analysed and
-- vacuumed sooner than the default 10 % / 20 % of changed rows.

ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (event_id, consumer_group);
ALTER TABLE inbox SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE outbox SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
