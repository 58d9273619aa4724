-- The catalog: products with a price per currency, the stock of tracked products, every
-- movement of it, and what each open order holds.
--
-- Orders placed before this migration keep their lines as stored (product id, name, unit
-- price, quantity): their prices were the client's, and they hold no reservation, so
-- cancelling or shipping one moves no stock. New orders take price and name from `products`.

CREATE TABLE products (
    sku            text PRIMARY KEY,
    name           text NOT NULL,
    description    text NOT NULL,
    prices         jsonb NOT NULL,
    active         boolean NOT NULL,
    version        bigint NOT NULL,
    event_sequence bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE INDEX products_active_idx ON products (active, sku);

CREATE TABLE stock_levels (
    sku                 text PRIMARY KEY REFERENCES products (sku),
    on_hand             bigint NOT NULL CHECK (on_hand >= 0),
    reserved            bigint NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    low_stock_threshold bigint CHECK (low_stock_threshold >= 0),
    low                 boolean NOT NULL,
    version             bigint NOT NULL,
    event_sequence      bigint NOT NULL,
    updated_at          timestamptz NOT NULL
);

CREATE TABLE stock_movements (
    sku       text NOT NULL REFERENCES products (sku),
    sequence  bigint NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('reserved', 'released', 'shipped', 'adjusted')),
    quantity  bigint NOT NULL,
    order_id  uuid,
    reason    text,
    on_hand   bigint NOT NULL,
    reserved  bigint NOT NULL,
    at        timestamptz NOT NULL,
    PRIMARY KEY (sku, sequence)
);

CREATE TABLE stock_reservations (
    order_id uuid NOT NULL REFERENCES orders (id),
    sku      text NOT NULL REFERENCES products (sku),
    quantity bigint NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);
