-- Orders (seed 003's schema, with the total in minor units and its currency).

CREATE TABLE orders (
    id             uuid PRIMARY KEY,
    customer_id    text NOT NULL,
    items          jsonb NOT NULL,
    currency       text NOT NULL,
    total_minor    bigint NOT NULL CHECK (total_minor >= 0),
    status         text NOT NULL CHECK (status IN ('pending', 'confirmed', 'shipped', 'cancelled')),
    payment_id     uuid,
    version        bigint NOT NULL,
    event_sequence bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE INDEX orders_customer_idx ON orders (customer_id, created_at, id);
CREATE INDEX orders_status_idx ON orders (status, created_at);
CREATE INDEX orders_created_idx ON orders (created_at, id);
