-- A rotated secret keeps signing beside the new one until previous_until.

ALTER TABLE webhook_endpoints ADD COLUMN previous_secret text;
ALTER TABLE webhook_endpoints ADD COLUMN previous_until timestamptz;
