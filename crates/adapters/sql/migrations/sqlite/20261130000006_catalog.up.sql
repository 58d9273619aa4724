-- The catalog: products with a price per currency, the stock of tracked products, every
-- movement of it, and what each open order holds.
--
-- Orders placed before this migration keep their lines as stored (product id, name, unit
-- price, quantity): their prices were the client's, and they hold no reservation, so
-- cancelling or shipping one moves no stock. New orders take price and name from `products`.

CREATE TABLE products (
    sku            TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    prices         TEXT NOT NULL,
    active         INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    event_sequence INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX products_active_idx ON products (active, sku);

CREATE TABLE stock_levels (
    sku                 TEXT PRIMARY KEY REFERENCES products (sku),
    on_hand             INTEGER NOT NULL CHECK (on_hand >= 0),
    reserved            INTEGER NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    low_stock_threshold INTEGER CHECK (low_stock_threshold >= 0),
    low                 INTEGER NOT NULL,
    version             INTEGER NOT NULL,
    event_sequence      INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

CREATE TABLE stock_movements (
    sku       TEXT NOT NULL REFERENCES products (sku),
    sequence  INTEGER NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('reserved', 'released', 'shipped', 'adjusted')),
    quantity  INTEGER NOT NULL,
    order_id  TEXT,
    reason    TEXT,
    on_hand   INTEGER NOT NULL,
    reserved  INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (sku, sequence)
) STRICT;

CREATE TABLE stock_reservations (
    order_id TEXT NOT NULL REFERENCES orders (id),
    sku      TEXT NOT NULL REFERENCES products (sku),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
) STRICT;
