-- An order's status history (each transition with its time and cause) and the refund its
-- cancellation owes. Orders placed before keep an empty history.

ALTER TABLE orders ADD COLUMN history text NOT NULL DEFAULT '[]';
ALTER TABLE orders ADD COLUMN refund text;
