//! The books in SQL: postings written inside the transaction of the change that causes them
//! ([`sqlite::post`], [`postgres::post`]), the ledger's reads and the reconciliation's queries,
//! and the backfill that gives charges and refunds stored before the ledger their postings.
//!
//! Balances live in `ledger_balances`, one row per account, currency and slot. A guarded
//! account (a wallet) has the single slot 0: the write that changes it holds its row lock and
//! checks the guard on the row it wrote. A hot account (revenue, a provider's clearing account)
//! takes the slot its posting's id picks among [`HOT_SLOTS`], so concurrent payments rarely
//! wait on one row; its balance is the sum of its slots.

use std::collections::BTreeMap;

use portside_domain::{Balance, Posting};

/// How many rows a hot account's balance is spread over.
pub(crate) const HOT_SLOTS: u128 = 16;

/// The balance rows a posting changes, keyed (and so sorted: every writer locks rows in the
/// same order, which keeps two transfers in opposite directions from deadlocking) by account,
/// currency and slot, with what each entry adds to them.
pub(crate) fn balance_deltas(p: &Posting) -> BTreeMap<(String, &'static str, i32), Balance> {
    let mut deltas: BTreeMap<(String, &'static str, i32), Balance> = BTreeMap::new();
    for e in &p.entries {
        let slot = if e.account.is_hot() {
            i32::try_from(p.id.0.as_u128() % HOT_SLOTS).unwrap_or(0)
        } else {
            0
        };
        let key = (e.account.to_string(), e.currency.code(), slot);
        let delta = Balance::delta(e.side, e.amount_minor, p.phase);
        let sum = deltas.entry(key).or_default();
        *sum = sum.plus(delta);
    }
    deltas
}

/// A `LIKE` pattern matching names that start with `prefix` (its `%`, `_` and `\` taken
/// literally).
pub(crate) fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The sum of each balance column, as a 64-bit integer on both engines (PostgreSQL's `SUM` of
/// a `bigint` is a `numeric`).
const SUMS: &str = "CAST(SUM(debits_posted) AS BIGINT), CAST(SUM(credits_posted) AS BIGINT), \
    CAST(SUM(debits_pending) AS BIGINT), CAST(SUM(credits_pending) AS BIGINT)";

const ENTRY_COLUMNS: &str = "e.transaction_id, e.line, t.phase, t.refers_to, t.cause, e.account, \
    e.currency, e.side, e.amount_minor, e.created_at";

/// Movements (charges and refunds) without their pending posting.
const MISSING: &str = "SELECT t.id, t.kind, t.status FROM payment_transactions t \
    WHERE NOT EXISTS (SELECT 1 FROM ledger_transactions l WHERE l.id = t.id) \
    ORDER BY t.created_at LIMIT $1";

/// Transfers without their posting.
const TRANSFER_MISSING: &str = "SELECT t.id FROM transfers t \
    WHERE NOT EXISTS (SELECT 1 FROM ledger_transactions l WHERE l.id = t.id) LIMIT $1";

/// Movements whose settlement in the books is not what their status says: a post for a
/// succeeded one, a void for a failed one, nothing yet for a pending one.
const SETTLEMENT_DIFFERS: &str = "SELECT t.id, t.status, s.phase FROM payment_transactions t \
    JOIN ledger_transactions l ON l.id = t.id \
    LEFT JOIN ledger_transactions s ON s.refers_to = l.id \
    WHERE (t.status = 'pending' AND s.id IS NOT NULL) \
    OR (t.status = 'succeeded' AND (s.phase IS NULL OR s.phase <> 'post')) \
    OR (t.status = 'failed' AND (s.phase IS NULL OR s.phase <> 'void')) LIMIT $1";

/// Postings of a movement (its pending one and its settlement) whose debits are not the
/// movement's amount in its currency.
const AMOUNT_DIFFERS: &str = "SELECT t.id, l.id, t.amount_minor, t.currency, e.currency, \
    CAST(SUM(CASE WHEN e.side = 'debit' THEN e.amount_minor ELSE 0 END) AS BIGINT) \
    FROM payment_transactions t \
    JOIN ledger_transactions l ON l.id = t.id OR l.refers_to = t.id \
    JOIN ledger_entries e ON e.transaction_id = l.id \
    GROUP BY t.id, l.id, t.amount_minor, t.currency, e.currency \
    HAVING e.currency <> t.currency \
    OR CAST(SUM(CASE WHEN e.side = 'debit' THEN e.amount_minor ELSE 0 END) AS BIGINT) <> t.amount_minor \
    LIMIT $1";

/// Pending postings that no movement caused.
const WITHOUT_MOVEMENT: &str = "SELECT l.id, l.cause FROM ledger_transactions l \
    WHERE l.phase = 'pending' \
    AND NOT EXISTS (SELECT 1 FROM payment_transactions t WHERE t.id = l.id) LIMIT $1";

/// Ledger transactions whose entries do not balance in a currency, or that have fewer than two.
const UNBALANCED: &str = "SELECT transaction_id, currency, \
    CAST(SUM(CASE WHEN side = 'debit' THEN amount_minor ELSE -amount_minor END) AS BIGINT), \
    CAST(COUNT(*) AS BIGINT) FROM ledger_entries GROUP BY transaction_id, currency \
    HAVING SUM(CASE WHEN side = 'debit' THEN amount_minor ELSE -amount_minor END) <> 0 \
    OR COUNT(*) < 2 LIMIT $1";

/// Every account's entries summed by side and by the phase of their transaction.
const ENTRY_SUMS: &str = "SELECT e.account, e.currency, e.side, t.phase, \
    CAST(SUM(e.amount_minor) AS BIGINT) FROM ledger_entries e \
    JOIN ledger_transactions t ON t.id = e.transaction_id \
    GROUP BY e.account, e.currency, e.side, t.phase";

/// Implements the ledger's writes and reads for the engine's `SqlStore`.
macro_rules! ledger {
    ($engine:ident, $one_statement:expr) => {
        /// The ledger's writes on this engine, in the caller's transaction.
        pub(crate) mod $engine {
            use std::collections::BTreeMap;

            use async_trait::async_trait;
            use portside_app::ledger::{
                AccountBalance, AccountCursor, AccountFilter, Difference, EntryCursor, EntryLine,
                LedgerStore,
            };
            use portside_domain::{
                AccountName, Balance, Currency, Entry, LedgerTransactionId, Phase, Posting, Side,
            };
            use portside_kernel::{PageRequest, StoreError};
            use sqlx::Row;
            use time::OffsetDateTime;

            use super::*;
            use crate::error::store_error;
            use crate::store::$engine::{Db, Tx};
            use crate::store::SqlStore;
            use crate::types::{DbId, DbTime};

            fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
                StoreError::Other(format!("stored {what} is invalid: {detail}"))
            }

            /// Writes a posting: its transaction, its entries and the balances they change (in
            /// one statement where the engine can).
            /// A guarded account that would go below zero refuses the whole write
            /// (`insufficient_funds`, naming the account); so does a second settlement of one
            /// pending posting (the unique index on `refers_to`: `Duplicate`).
            pub(crate) async fn post(tx: &mut Tx, p: &Posting) -> Result<(), StoreError> {
                let mut q = sqlx::QueryBuilder::<Db>::new("");
                if $one_statement {
                    q.push("WITH t AS (");
                }
                q.push(
                    "INSERT INTO ledger_transactions (id, phase, refers_to, cause, created_at) VALUES (",
                );
                q.push_bind(DbId(p.id.0))
                    .push(", ")
                    .push_bind(p.phase.as_str())
                    .push(", ")
                    .push_bind(p.phase.refers_to().map(|r| DbId(r.0)))
                    .push(", ")
                    .push_bind(p.cause.clone())
                    .push(", ")
                    .push_bind(DbTime(p.created_at))
                    .push(")");
                if $one_statement {
                    q.push("), e AS (");
                } else {
                    q.build().execute(&mut **tx).await.map_err(store_error)?;
                    q = sqlx::QueryBuilder::new("");
                }
                q.push(
                    "INSERT INTO ledger_entries (transaction_id, line, account, currency, side, \
                     amount_minor, created_at) ",
                );
                q.push_values(p.entries.iter().zip(0i32..), |mut row, (e, line)| {
                    row.push_bind(DbId(p.id.0))
                        .push_bind(line)
                        .push_bind(e.account.to_string())
                        .push_bind(e.currency.code())
                        .push_bind(e.side.as_str())
                        .push_bind(e.amount_minor)
                        .push_bind(DbTime(p.created_at));
                });
                if $one_statement {
                    q.push(") ");
                } else {
                    q.build().execute(&mut **tx).await.map_err(store_error)?;
                    q = sqlx::QueryBuilder::new("");
                }
                q.push(
                    "INSERT INTO ledger_balances (account, currency, slot, debits_posted, \
                     credits_posted, debits_pending, credits_pending) ",
                );
                q.push_values(balance_deltas(p), |mut row, ((account, currency, slot), d)| {
                    row.push_bind(account)
                        .push_bind(currency)
                        .push_bind(slot)
                        .push_bind(d.debits_posted)
                        .push_bind(d.credits_posted)
                        .push_bind(d.debits_pending)
                        .push_bind(d.credits_pending);
                });
                q.push(
                    " ON CONFLICT (account, currency, slot) DO UPDATE SET \
                     debits_posted = ledger_balances.debits_posted + excluded.debits_posted, \
                     credits_posted = ledger_balances.credits_posted + excluded.credits_posted, \
                     debits_pending = ledger_balances.debits_pending + excluded.debits_pending, \
                     credits_pending = ledger_balances.credits_pending + excluded.credits_pending \
                     RETURNING account, currency, debits_posted, credits_posted, debits_pending, \
                     credits_pending",
                );
                let rows = q.build().fetch_all(&mut **tx).await.map_err(store_error)?;
                for row in rows {
                    let name: String = row.try_get(0).map_err(store_error)?;
                    let account = AccountName::parse(&name).map_err(|e| corrupt("account", e))?;
                    let balance = balance_at(&row, 2)?;
                    if balance.breaks_guard(&account) {
                        let currency: String = row.try_get(1).map_err(store_error)?;
                        return Err(StoreError::Refused {
                            code: "insufficient_funds".into(),
                            subject: name,
                            detail: format!(
                                "the available balance of {account} in {currency} is too low"
                            ),
                        });
                    }
                }
                Ok(())
            }

            fn balance_at(row: &<Db as sqlx::Database>::Row, from: usize) -> Result<Balance, StoreError> {
                let col = |i: usize| row.try_get::<Option<i64>, _>(from + i).map(Option::unwrap_or_default).map_err(store_error);
                Ok(Balance {
                    debits_posted: col(0)?,
                    credits_posted: col(1)?,
                    debits_pending: col(2)?,
                    credits_pending: col(3)?,
                })
            }

            fn currency(code: &str) -> Result<Currency, StoreError> {
                Currency::from_code(code).map_err(|e| corrupt("currency", e))
            }

            fn phase(name: &str, refers_to: Option<DbId>) -> Result<Phase, StoreError> {
                Phase::parse(name, refers_to.map(|r| LedgerTransactionId(r.0)))
                    .ok_or_else(|| corrupt("ledger phase", name))
            }

            fn entry_line(row: &<Db as sqlx::Database>::Row) -> Result<EntryLine, StoreError> {
                let get_str = |i: usize| row.try_get::<String, _>(i).map_err(store_error);
                let id: DbId = row.try_get(0).map_err(store_error)?;
                let refers_to: Option<DbId> = row.try_get(3).map_err(store_error)?;
                let side = get_str(7)?;
                let at: DbTime = row.try_get(9).map_err(store_error)?;
                Ok(EntryLine {
                    transaction_id: LedgerTransactionId(id.0),
                    line: row.try_get(1).map_err(store_error)?,
                    phase: phase(&get_str(2)?, refers_to)?,
                    cause: get_str(4)?,
                    entry: Entry {
                        account: AccountName::parse(&get_str(5)?).map_err(|e| corrupt("account", e))?,
                        currency: currency(&get_str(6)?)?,
                        side: Side::parse(&side).ok_or_else(|| corrupt("side", &side))?,
                        amount_minor: row.try_get(8).map_err(store_error)?,
                    },
                    created_at: at.0,
                })
            }

            #[async_trait]
            impl LedgerStore for SqlStore<Db> {
                async fn accounts(
                    &self,
                    filter: &AccountFilter,
                    page: PageRequest<AccountCursor>,
                ) -> Result<Vec<AccountBalance>, StoreError> {
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                        "SELECT account, currency, {SUMS} FROM ledger_balances WHERE 1 = 1"
                    ));
                    if let Some(p) = &filter.prefix {
                        q.push(" AND account LIKE ").push_bind(prefix_pattern(p)).push(" ESCAPE '\\'");
                    }
                    if let Some(c) = filter.currency {
                        q.push(" AND currency = ").push_bind(c.code());
                    }
                    if let Some((account, currency)) = page.after {
                        q.push(" AND (account > ").push_bind(account.clone())
                            .push(" OR (account = ").push_bind(account)
                            .push(" AND currency > ").push_bind(currency).push("))");
                    }
                    q.push(" GROUP BY account, currency ORDER BY account, currency LIMIT ")
                        .push_bind(i64::from(page.limit));
                    let mut reader = self.read.get().await?;
                    let found = q.build().fetch_all(&mut *reader).await;
                    let rows = reader.vet(found)?;
                    rows.iter()
                        .map(|row| {
                            let name: String = row.try_get(0).map_err(store_error)?;
                            let code: String = row.try_get(1).map_err(store_error)?;
                            Ok(AccountBalance {
                                account: AccountName::parse(&name).map_err(|e| corrupt("account", e))?,
                                currency: currency(&code)?,
                                balance: balance_at(row, 2)?,
                            })
                        })
                        .collect()
                }

                async fn entries(
                    &self,
                    account: &AccountName,
                    currency: Option<Currency>,
                    page: PageRequest<EntryCursor>,
                ) -> Result<Vec<EntryLine>, StoreError> {
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                        "SELECT {ENTRY_COLUMNS} FROM ledger_entries e \
                         JOIN ledger_transactions t ON t.id = e.transaction_id WHERE e.account = "
                    ));
                    q.push_bind(account.to_string());
                    if let Some(c) = currency {
                        q.push(" AND e.currency = ").push_bind(c.code());
                    }
                    if let Some((at, id, line)) = page.after {
                        q.push(" AND (e.created_at < ").push_bind(DbTime(at))
                            .push(" OR (e.created_at = ").push_bind(DbTime(at))
                            .push(" AND (e.transaction_id < ").push_bind(DbId(id.0))
                            .push(" OR (e.transaction_id = ").push_bind(DbId(id.0))
                            .push(" AND e.line < ").push_bind(line).push("))))");
                    }
                    q.push(" ORDER BY e.created_at DESC, e.transaction_id DESC, e.line DESC LIMIT ")
                        .push_bind(i64::from(page.limit));
                    let mut reader = self.read.get().await?;
                    let found = q.build().fetch_all(&mut *reader).await;
                    let rows = reader.vet(found)?;
                    rows.iter().map(entry_line).collect()
                }

                async fn posting(&self, id: LedgerTransactionId) -> Result<Option<Posting>, StoreError> {
                    let sql = format!(
                        "SELECT {ENTRY_COLUMNS} FROM ledger_entries e \
                         JOIN ledger_transactions t ON t.id = e.transaction_id \
                         WHERE e.transaction_id = $1 ORDER BY e.line"
                    );
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query(&sql).bind(DbId(id.0)).fetch_all(&mut *reader).await;
                    let rows = reader.vet(found)?;
                    let lines = rows.iter().map(entry_line).collect::<Result<Vec<_>, _>>()?;
                    let Some(first) = lines.first() else {
                        return Ok(None);
                    };
                    let (phase, cause, at) = (first.phase, first.cause.clone(), first.created_at);
                    Posting::new(id, phase, cause, lines.into_iter().map(|l| l.entry).collect(), at)
                        .map(Some)
                        .map_err(|e| corrupt("ledger transaction", e))
                }

                async fn trial_balance(&self) -> Result<Vec<(Currency, Balance)>, StoreError> {
                    let sql = format!(
                        "SELECT currency, {SUMS} FROM ledger_balances GROUP BY currency ORDER BY currency"
                    );
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query(&sql).fetch_all(&mut *reader).await;
                    let rows = reader.vet(found)?;
                    rows.iter()
                        .map(|row| {
                            let code: String = row.try_get(0).map_err(store_error)?;
                            Ok((currency(&code)?, balance_at(row, 1)?))
                        })
                        .collect()
                }

                async fn differences(&self, limit: u32) -> Result<Vec<Difference>, StoreError> {
                    let limit = i64::from(limit);
                    // Several statements: the write pool's connections, not the single-read ones.
                    let mut found = Vec::new();
                    let rows = sqlx::query(MISSING).bind(limit).fetch_all(&self.write).await;
                    for row in rows.map_err(store_error)? {
                        let id: DbId = row.try_get(0).map_err(store_error)?;
                        let kind: String = row.try_get(1).map_err(store_error)?;
                        let status: String = row.try_get(2).map_err(store_error)?;
                        found.push(Difference {
                            code: "posting_missing",
                            subject: id.0.to_string(),
                            detail: format!("the {status} {kind} has no posting in the ledger"),
                        });
                    }
                    let rows = sqlx::query(TRANSFER_MISSING).bind(limit).fetch_all(&self.write).await;
                    for row in rows.map_err(store_error)? {
                        let id: DbId = row.try_get(0).map_err(store_error)?;
                        found.push(Difference {
                            code: "posting_missing",
                            subject: id.0.to_string(),
                            detail: "the transfer has no posting in the ledger".into(),
                        });
                    }
                    let rows = sqlx::query(SETTLEMENT_DIFFERS).bind(limit).fetch_all(&self.write).await;
                    for row in rows.map_err(store_error)? {
                        let id: DbId = row.try_get(0).map_err(store_error)?;
                        let status: String = row.try_get(1).map_err(store_error)?;
                        let settled: Option<String> = row.try_get(2).map_err(store_error)?;
                        found.push(Difference {
                            code: "settlement_differs",
                            subject: id.0.to_string(),
                            detail: format!(
                                "the movement is {status} but its pending posting is {}",
                                settled.map_or("not settled".to_owned(), |s| format!("settled by a {s}"))
                            ),
                        });
                    }
                    let rows = sqlx::query(AMOUNT_DIFFERS).bind(limit).fetch_all(&self.write).await;
                    for row in rows.map_err(store_error)? {
                        let id: DbId = row.try_get(0).map_err(store_error)?;
                        let posting: DbId = row.try_get(1).map_err(store_error)?;
                        let amount: i64 = row.try_get(2).map_err(store_error)?;
                        let currency: String = row.try_get(3).map_err(store_error)?;
                        let posted_currency: String = row.try_get(4).map_err(store_error)?;
                        let debits: i64 = row.try_get(5).map_err(store_error)?;
                        found.push(Difference {
                            code: "posting_amount_differs",
                            subject: id.0.to_string(),
                            detail: format!(
                                "the movement is {amount} {currency} minor units, its posting {} debits {debits} {posted_currency}",
                                posting.0
                            ),
                        });
                    }
                    let rows = sqlx::query(WITHOUT_MOVEMENT).bind(limit).fetch_all(&self.write).await;
                    for row in rows.map_err(store_error)? {
                        let id: DbId = row.try_get(0).map_err(store_error)?;
                        let cause: String = row.try_get(1).map_err(store_error)?;
                        found.push(Difference {
                            code: "posting_without_movement",
                            subject: id.0.to_string(),
                            detail: format!("the pending posting {cause} has no charge or refund"),
                        });
                    }
                    let rows = sqlx::query(UNBALANCED).bind(limit).fetch_all(&self.write).await;
                    for row in rows.map_err(store_error)? {
                        let id: DbId = row.try_get(0).map_err(store_error)?;
                        let currency: String = row.try_get(1).map_err(store_error)?;
                        let net: i64 = row.try_get(2).map_err(store_error)?;
                        let count: i64 = row.try_get(3).map_err(store_error)?;
                        found.push(Difference {
                            code: "transaction_unbalanced",
                            subject: id.0.to_string(),
                            detail: format!(
                                "{count} entries in {currency}: debits minus credits is {net}"
                            ),
                        });
                    }
                    let rows = sqlx::query(ENTRY_SUMS).fetch_all(&self.write).await;
                    let mut from_entries: BTreeMap<(String, String), Balance> = BTreeMap::new();
                    for row in rows.map_err(store_error)? {
                        let account: String = row.try_get(0).map_err(store_error)?;
                        let currency: String = row.try_get(1).map_err(store_error)?;
                        let side: String = row.try_get(2).map_err(store_error)?;
                        let phase_name: String = row.try_get(3).map_err(store_error)?;
                        let sum: i64 = row.try_get(4).map_err(store_error)?;
                        let side = Side::parse(&side).ok_or_else(|| corrupt("side", &side))?;
                        // Only the kind of phase matters for a balance, not what it refers to.
                        let refers = (!matches!(phase_name.as_str(), "posted" | "pending"))
                            .then_some(DbId(uuid::Uuid::nil()));
                        let delta = Balance::delta(side, sum, phase(&phase_name, refers)?);
                        let b = from_entries.entry((account, currency)).or_default();
                        *b = b.plus(delta);
                    }
                    let sql = format!(
                        "SELECT account, currency, {SUMS} FROM ledger_balances GROUP BY account, currency"
                    );
                    let rows = sqlx::query(&sql).fetch_all(&self.write).await;
                    let mut stored: BTreeMap<(String, String), Balance> = BTreeMap::new();
                    for row in rows.map_err(store_error)? {
                        let account: String = row.try_get(0).map_err(store_error)?;
                        let currency: String = row.try_get(1).map_err(store_error)?;
                        stored.insert((account, currency), balance_at(&row, 2)?);
                    }
                    let keys: std::collections::BTreeSet<_> =
                        from_entries.keys().chain(stored.keys()).cloned().collect();
                    for key in keys {
                        let want = from_entries.get(&key).copied().unwrap_or_default();
                        let have = stored.get(&key).copied().unwrap_or_default();
                        if want != have {
                            found.push(Difference {
                                code: "balance_differs",
                                subject: format!("{} {}", key.0, key.1),
                                detail: format!("stored {have:?}, its entries sum to {want:?}"),
                            });
                        }
                    }
                    found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                    Ok(found)
                }
            }

            impl SqlStore<Db> {
                /// Gives the charges and refunds stored before the ledger existed their postings:
                /// the pending one and, for a settled movement, its post or void, in one
                /// transaction per movement. Another process doing the same at once meets the
                /// primary key and leaves the movement to it. Returns how many it posted.
                pub(crate) async fn backfill_ledger(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
                    use portside_app::payments::PaymentRepository;
                    use portside_domain::{TransactionId, TransactionStatus};
                    let mut posted = 0;
                    loop {
                        let ids: Vec<DbId> = sqlx::query_scalar(
                            "SELECT t.id FROM payment_transactions t WHERE NOT EXISTS \
                             (SELECT 1 FROM ledger_transactions l WHERE l.id = t.id) \
                             ORDER BY t.created_at, t.id LIMIT 500",
                        )
                        .fetch_all(&self.write)
                        .await
                        .map_err(store_error)?;
                        if ids.is_empty() {
                            return Ok(posted);
                        }
                        let mut progressed = false;
                        for id in ids {
                            let Some(txn) = self.transaction(TransactionId(id.0)).await? else {
                                continue;
                            };
                            let Some(payment) = self.payment(txn.payment_id).await? else {
                                return Err(corrupt("transaction", format!("{} has no payment", txn.id)));
                            };
                            let state = payment.state();
                            let mut pending = txn.clone();
                            pending.status = TransactionStatus::Pending;
                            let bad = |e| corrupt("movement", e);
                            let mut tx = self.write.begin().await.map_err(store_error)?;
                            let first = Posting::of_movement(state, &pending, txn.created_at).map_err(bad)?;
                            match post(&mut tx, &first).await {
                                Err(StoreError::Duplicate) => continue,
                                other => other?,
                            }
                            if txn.status != TransactionStatus::Pending {
                                let at = txn.settled_at.unwrap_or(now);
                                post(&mut tx, &Posting::of_movement(state, &txn, at).map_err(bad)?).await?;
                            }
                            match tx.commit().await.map_err(store_error) {
                                Err(StoreError::Duplicate) => continue,
                                other => other?,
                            }
                            posted += 1;
                            progressed = true;
                        }
                        if !progressed {
                            return Ok(posted);
                        }
                    }
                }
            }
        }
    };
}

// SQLite runs in the process: three statements cost no round trip. PostgreSQL takes the posting
// in one statement (data-modifying CTEs; the entries' foreign key is checked at its end).
ledger!(sqlite, false);
ledger!(postgres, true);

#[cfg(test)]
mod tests {
    use portside_domain::{AccountName, Currency, Entry, LedgerTransactionId, Phase, Side};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_posting_changes_each_row_once_in_one_order() {
        let usd = Currency::from_code("USD").unwrap();
        let wallet = |c: &str| AccountName::parse(&format!("customer:{c}:wallet")).unwrap();
        let entry = |account, side| Entry {
            account,
            currency: usd,
            side,
            amount_minor: 5,
        };
        let p = Posting::new(
            LedgerTransactionId(Uuid::now_v7()),
            Phase::Posted,
            "t".into(),
            vec![
                entry(wallet("b"), Side::Debit),
                entry(wallet("a"), Side::Credit),
                entry(wallet("b"), Side::Debit),
                entry(wallet("a"), Side::Credit),
            ],
            time::OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let deltas: Vec<_> = balance_deltas(&p).into_iter().collect();
        assert_eq!(deltas.len(), 2);
        assert_eq!(deltas[0].0.0, "customer:a:wallet");
        assert_eq!(deltas[0].1.credits_posted, 10);
        assert_eq!(deltas[1].1.debits_posted, 10);
        assert_eq!(prefix_pattern("a_b%"), "a\\_b\\%%");
    }
}
