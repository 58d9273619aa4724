-- The books. A ledger transaction is immutable: a pending one is resolved by a later `post` or
-- `void` that names it, a posted one corrected by a `reversal` that names it (each at most
-- once: the partial unique index). Entries are the lines; balances are kept per account,
-- currency and slot: a guarded account (a wallet) has one row, locked by the write that checks
-- it; a hot account (revenue, a provider's clearing) is spread over slots so that concurrent
-- payments do not queue on one row. An account's balance is the sum of its slots.

CREATE TABLE ledger_transactions (
    id          text PRIMARY KEY,
    phase       text NOT NULL CHECK (phase IN ('posted', 'pending', 'post', 'void', 'reversal')),
    refers_to   text REFERENCES ledger_transactions (id),
    cause       text NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    CHECK ((phase IN ('posted', 'pending')) = (refers_to IS NULL))
);

CREATE UNIQUE INDEX ledger_transactions_once_idx ON ledger_transactions (refers_to)
    WHERE refers_to IS NOT NULL;

CREATE TABLE ledger_entries (
    transaction_id text NOT NULL REFERENCES ledger_transactions (id),
    line           INTEGER NOT NULL,
    account        text NOT NULL,
    currency       text NOT NULL,
    side           text NOT NULL CHECK (side IN ('debit', 'credit')),
    amount_minor   INTEGER NOT NULL CHECK (amount_minor > 0),
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (transaction_id, line)
);

CREATE INDEX ledger_entries_account_idx
    ON ledger_entries (account, currency, created_at DESC, transaction_id DESC, line DESC);

CREATE TABLE ledger_balances (
    account         text NOT NULL,
    currency        text NOT NULL,
    slot            INTEGER NOT NULL,
    debits_posted   INTEGER NOT NULL DEFAULT 0,
    credits_posted  INTEGER NOT NULL DEFAULT 0,
    debits_pending  INTEGER NOT NULL DEFAULT 0,
    credits_pending INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, currency, slot)
);
