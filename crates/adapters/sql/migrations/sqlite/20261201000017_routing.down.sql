DROP TABLE routing_rules;
ALTER TABLE payments DROP COLUMN routing;
