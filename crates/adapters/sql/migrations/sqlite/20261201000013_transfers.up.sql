-- Transfers between customers' wallets. Each is written with its posted ledger transaction
-- (the same id) and its event, in one database transaction. A client's idempotency key (scoped
-- to the sender) is kept with the transfer it made, so a retry finds it instead of moving the
-- money twice; keys of transfers are kept as long as the transfers.

CREATE TABLE transfers (
    id                 text PRIMARY KEY,
    sender             text NOT NULL,
    recipient          text NOT NULL,
    currency           text NOT NULL,
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    description        text,
    idempotency_scope  text,
    idempotency_key    text,
    fingerprint        text,
    created_at         INTEGER NOT NULL,
    CHECK (sender <> recipient)
);

CREATE UNIQUE INDEX transfers_idempotency_idx ON transfers (idempotency_scope, idempotency_key);
