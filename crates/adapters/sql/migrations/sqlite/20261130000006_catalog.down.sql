DROP TABLE stock_reservations;
DROP TABLE stock_movements;
DROP TABLE stock_levels;
DROP TABLE products;
