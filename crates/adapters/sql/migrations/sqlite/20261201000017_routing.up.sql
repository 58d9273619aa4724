-- Payment routing: the route each payment took (its rule, its provider now, each attempt), and
-- the rules administrators set through the API (one row; none, or rules NULL, means the
-- configuration file's rules apply). The version grows with every change, for If-Match.

ALTER TABLE payments ADD COLUMN routing text;

CREATE TABLE routing_rules (
    id          integer PRIMARY KEY CHECK (id = 1),
    version     bigint NOT NULL,
    rules       text,
    updated_at  INTEGER NOT NULL,
    updated_by  text
);
