-- Orders (seed 003's schema, with the total in minor units and its currency).

CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    items          TEXT NOT NULL,
    currency       TEXT NOT NULL,
    total_minor    INTEGER NOT NULL CHECK (total_minor >= 0),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'shipped', 'cancelled')),
    payment_id     TEXT,
    version        INTEGER NOT NULL,
    event_sequence INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX orders_customer_idx ON orders (customer_id, created_at, id);
CREATE INDEX orders_status_idx ON orders (status, created_at);
CREATE INDEX orders_created_idx ON orders (created_at, id);
