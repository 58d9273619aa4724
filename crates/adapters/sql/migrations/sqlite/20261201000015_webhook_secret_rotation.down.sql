ALTER TABLE webhook_endpoints DROP COLUMN previous_until;
ALTER TABLE webhook_endpoints DROP COLUMN previous_secret;
