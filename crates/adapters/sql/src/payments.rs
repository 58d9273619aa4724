//! Payments in SQL: payments and their transactions, the idempotency keys claimed in the same
//! transactions, and the log of processed provider notices.

pub(crate) const PAYMENT_COLUMNS: &str = "id, customer_id, amount_minor, currency, payment_method, \
    payment_method_token, provider, status, refunded_minor, refund_pending_minor, provider_reference, \
    failure_code, failure_decline_code, failure_message, description, metadata, version, \
    event_sequence, created_at, updated_at, routing";

pub(crate) const TRANSACTION_COLUMNS: &str = "id, payment_id, kind, amount_minor, currency, status, \
    provider_key, provider_reference, failure_code, failure_decline_code, failure_message, reason, \
    metadata, created_at, settled_at";

pub(crate) const KEY_COLUMNS: &str =
    "scope, key, fingerprint, transaction_id, locked_until, outcome, created_at, expires_at";

pub(crate) const INSERT_PAYMENT: &str = "INSERT INTO payments (id, customer_id, amount_minor, \
    currency, payment_method, payment_method_token, provider, status, refunded_minor, \
    refund_pending_minor, provider_reference, failure_code, failure_decline_code, failure_message, \
    description, metadata, version, event_sequence, created_at, updated_at, routing) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";

pub(crate) const UPDATE_PAYMENT: &str = "UPDATE payments SET status = $2, refunded_minor = $3, \
    refund_pending_minor = $4, provider_reference = $5, failure_code = $6, failure_decline_code = $7, \
    failure_message = $8, version = $9, event_sequence = $10, updated_at = $11, provider = $13, \
    routing = $14 WHERE id = $1 AND version = $12";

pub(crate) const INSERT_TRANSACTION: &str = "INSERT INTO payment_transactions (id, payment_id, kind, \
    amount_minor, currency, status, provider_key, provider_reference, failure_code, \
    failure_decline_code, failure_message, reason, metadata, created_at, settled_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

pub(crate) const SETTLE_TRANSACTION: &str = "UPDATE payment_transactions SET status = $2, \
    provider_reference = $3, failure_code = $4, failure_decline_code = $5, failure_message = $6, \
    settled_at = $7 WHERE id = $1 AND status = 'pending'";

/// Claims a key; an expired key is taken over, a live one is left alone (no row returned).
pub(crate) const CLAIM_KEY: &str = "INSERT INTO idempotency_keys (scope, key, fingerprint, \
    transaction_id, locked_until, outcome, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $8, $6, $7) \
    ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
    transaction_id = excluded.transaction_id, locked_until = excluded.locked_until, \
    outcome = excluded.outcome, \
    created_at = excluded.created_at, expires_at = excluded.expires_at \
    WHERE idempotency_keys.expires_at <= excluded.created_at \
    RETURNING scope";

/// Stores a settlement's outcome on its key, unless the key already holds the answer given
/// (an asynchronous submission's 202, which replays keep returning).
pub(crate) const COMPLETE_KEY: &str = "UPDATE idempotency_keys SET outcome = $2, \
    locked_until = NULL WHERE transaction_id = $1 AND outcome IS NULL";

pub(crate) const RELOCK_KEY: &str = "UPDATE idempotency_keys SET locked_until = $4 \
    WHERE scope = $1 AND key = $2 AND outcome IS NULL AND (locked_until IS NULL OR locked_until <= $3)";

pub(crate) const RELEASE_KEY: &str = "UPDATE idempotency_keys SET locked_until = NULL \
    WHERE scope = $1 AND key = $2 AND outcome IS NULL";

/// Expired idempotency keys, a batch at a time (a statement never holds many rows' locks).
pub(crate) const PURGE_KEYS: &str = "DELETE FROM idempotency_keys WHERE (scope, key) IN \
    (SELECT scope, key FROM idempotency_keys WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)";
const PURGE_KEYS_BATCH: i64 = 1000;

/// Implements the payments context's store ports for the engine's `SqlStore`.
macro_rules! payments {
    ($engine:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_app::payments::idempotency::{IdempotencyClaim, IdempotencyRecord};
            use portside_app::payments::{
                Begin, IdempotencyStore, Outcome, PaymentFilter, PaymentRepository,
                ProviderEventRecord, ProviderEvents,
            };
            use portside_domain::{Aggregate, Payment, PaymentId, Posting, Transaction, TransactionId};
            use portside_kernel::{PageRequest, StoreError};
            use sqlx::types::Json;
            use time::OffsetDateTime;

            use crate::error::store_error;
            use crate::ledger::$engine::post;
            use crate::payments::*;
            use crate::rows::{KeyRow, PaymentRow, TransactionRow};
            use crate::store::$engine::{Db, Tx, begin, finish};
            use crate::store::{SqlStore, version_checked};
            use crate::types::{DbId, DbTime};

            async fn claim(tx: &mut Tx, c: &IdempotencyClaim) -> Result<Option<IdempotencyRecord>, StoreError> {
                let claimed = sqlx::query(CLAIM_KEY)
                    .bind(&c.scope)
                    .bind(&c.key)
                    .bind(&c.fingerprint)
                    .bind(DbId(c.transaction_id.0))
                    .bind(c.outcome.is_none().then_some(DbTime(c.locked_until)))
                    .bind(DbTime(c.created_at))
                    .bind(DbTime(c.expires_at))
                    .bind(c.outcome.as_ref().map(Json))
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(store_error)?;
                if claimed.is_some() {
                    return Ok(None);
                }
                let sql = format!("SELECT {KEY_COLUMNS} FROM idempotency_keys WHERE scope = $1 AND key = $2");
                let row: KeyRow = sqlx::query_as(&sql)
                    .bind(&c.scope)
                    .bind(&c.key)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(store_error)?;
                Ok(Some(row.try_into()?))
            }

            async fn insert_payment(tx: &mut Tx, payment: &Payment) -> Result<(), StoreError> {
                let s = payment.state();
                let failure = s.failure.as_ref();
                sqlx::query(INSERT_PAYMENT)
                    .bind(DbId(s.id.0))
                    .bind(s.customer_id.as_str())
                    .bind(s.amount.minor())
                    .bind(s.amount.currency().code())
                    .bind(s.method.as_str())
                    .bind(&s.method_token)
                    .bind(&s.provider)
                    .bind(s.status.as_str())
                    .bind(s.refunded_minor)
                    .bind(s.refund_pending_minor)
                    .bind(&s.provider_reference)
                    .bind(failure.map(|f| f.code.as_str()))
                    .bind(failure.and_then(|f| f.decline_code.as_deref()))
                    .bind(failure.map(|f| f.message.as_str()))
                    .bind(&s.description)
                    .bind(Json(&s.metadata))
                    .bind(s.version)
                    .bind(s.event_sequence)
                    .bind(DbTime(s.created_at))
                    .bind(DbTime(s.updated_at))
                    .bind(s.routing.as_ref().map(Json))
                    .execute(&mut **tx)
                    .await
                    .map_err(store_error)?;
                Ok(())
            }

            /// Version-checked update: `Conflict` when another writer got there first.
            async fn update_payment(tx: &mut Tx, payment: &Payment) -> Result<(), StoreError> {
                let s = payment.state();
                let failure = s.failure.as_ref();
                let done = sqlx::query(UPDATE_PAYMENT)
                    .bind(DbId(s.id.0))
                    .bind(s.status.as_str())
                    .bind(s.refunded_minor)
                    .bind(s.refund_pending_minor)
                    .bind(&s.provider_reference)
                    .bind(failure.map(|f| f.code.as_str()))
                    .bind(failure.and_then(|f| f.decline_code.as_deref()))
                    .bind(failure.map(|f| f.message.as_str()))
                    .bind(s.version)
                    .bind(s.event_sequence)
                    .bind(DbTime(s.updated_at))
                    .bind(payment.loaded_version())
                    .bind(&s.provider)
                    .bind(s.routing.as_ref().map(Json))
                    .execute(&mut **tx)
                    .await
                    .map_err(store_error)?;
                version_checked(done.rows_affected())
            }

            async fn insert_transaction(tx: &mut Tx, t: &Transaction) -> Result<(), StoreError> {
                let failure = t.failure.as_ref();
                sqlx::query(INSERT_TRANSACTION)
                    .bind(DbId(t.id.0))
                    .bind(DbId(t.payment_id.0))
                    .bind(t.kind.as_str())
                    .bind(t.amount.minor())
                    .bind(t.amount.currency().code())
                    .bind(t.status.as_str())
                    .bind(&t.provider_key)
                    .bind(&t.provider_reference)
                    .bind(failure.map(|f| f.code.as_str()))
                    .bind(failure.and_then(|f| f.decline_code.as_deref()))
                    .bind(failure.map(|f| f.message.as_str()))
                    .bind(&t.reason)
                    .bind(Json(&t.metadata))
                    .bind(DbTime(t.created_at))
                    .bind(t.settled_at.map(DbTime))
                    .execute(&mut **tx)
                    .await
                    .map_err(store_error)?;
                Ok(())
            }

            /// The posting of a charge or refund at its current status.
            fn movement(payment: &Payment, txn: &Transaction, at: OffsetDateTime) -> Result<Posting, StoreError> {
                Posting::of_movement(payment.state(), txn, at)
                    .map_err(|e| StoreError::Other(format!("no posting for {}: {e}", txn.id)))
            }

            enum Write {
                Insert,
                Update,
            }

            /// Phase 1: claim the key, write the payment and its pending transaction.
            async fn start(
                pool: &sqlx::Pool<Db>,
                claim_of: Option<&IdempotencyClaim>,
                payment: &mut Payment,
                txn: &Transaction,
                write: Write,
            ) -> Result<Begin, StoreError> {
                let mut tx = begin(pool, None).await?;
                if let Some(c) = claim_of
                    && let Some(existing) = claim(&mut tx, c).await?
                {
                    return Ok(Begin::Existing(Box::new(existing)));
                }
                match write {
                    Write::Insert => insert_payment(&mut tx, payment).await?,
                    Write::Update => update_payment(&mut tx, payment).await?,
                }
                insert_transaction(&mut tx, txn).await?;
                post(&mut tx, &movement(payment, txn, txn.created_at)?).await?;
                finish(tx, payment).await?;
                Ok(Begin::Started)
            }

            #[async_trait]
            impl PaymentRepository for SqlStore<Db> {
                async fn begin_charge(
                    &self,
                    claim_of: Option<&IdempotencyClaim>,
                    payment: &mut Payment,
                    charge: &Transaction,
                ) -> Result<Begin, StoreError> {
                    start(&self.write, claim_of, payment, charge, Write::Insert).await
                }

                async fn begin_refund(
                    &self,
                    claim_of: Option<&IdempotencyClaim>,
                    payment: &mut Payment,
                    refund: &Transaction,
                ) -> Result<Begin, StoreError> {
                    start(&self.write, claim_of, payment, refund, Write::Update).await
                }

                async fn reroute(&self, payment: &mut Payment) -> Result<(), StoreError> {
                    let mut tx = begin(&self.write, None).await?;
                    update_payment(&mut tx, payment).await?;
                    finish(tx, payment).await
                }

                async fn settle(
                    &self,
                    payment: &mut Payment,
                    transaction: &Transaction,
                    outcome: &Outcome,
                ) -> Result<(), StoreError> {
                    let outcome = serde_json::to_value(outcome)
                        .map_err(|e| StoreError::Other(format!("outcome not serializable: {e}")))?;
                    let mut tx = begin(&self.write, None).await?;
                    update_payment(&mut tx, payment).await?;
                    let failure = transaction.failure.as_ref();
                    let settled = sqlx::query(SETTLE_TRANSACTION)
                        .bind(DbId(transaction.id.0))
                        .bind(transaction.status.as_str())
                        .bind(&transaction.provider_reference)
                        .bind(failure.map(|f| f.code.as_str()))
                        .bind(failure.and_then(|f| f.decline_code.as_deref()))
                        .bind(failure.map(|f| f.message.as_str()))
                        .bind(transaction.settled_at.map(DbTime))
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                    version_checked(settled.rows_affected())?;
                    let at = transaction.settled_at.unwrap_or(payment.state().updated_at);
                    post(&mut tx, &movement(payment, transaction, at)?).await?;
                    sqlx::query(COMPLETE_KEY)
                        .bind(DbId(transaction.id.0))
                        .bind(Json(&outcome))
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                    finish(tx, payment).await
                }

                async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
                    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1");
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(&sql)
                        .bind(DbId(id.0))
                        .fetch_optional(&mut *reader).await;
                    let row: Option<PaymentRow> = reader.vet(found)?;
                    row.map(|r| r.try_into().map(Payment::restore)).transpose()
                }

                async fn payments(
                    &self,
                    filter: &PaymentFilter,
                    page: PageRequest<PaymentId>,
                ) -> Result<Vec<Payment>, StoreError> {
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE 1 = 1"
                    ));
                    if let Some(c) = &filter.customer_id {
                        q.push(" AND customer_id = ").push_bind(c.as_str().to_owned());
                    }
                    if let Some(s) = filter.status {
                        q.push(" AND status = ").push_bind(s.as_str());
                    }
                    if let Some(after) = page.after {
                        q.push(" AND id < ").push_bind(DbId(after.0));
                    }
                    q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(page.limit));
                    let mut reader = self.read.get().await?;
                    let found = q
                        .build_query_as()
                        .fetch_all(&mut *reader).await;
                    let rows: Vec<PaymentRow> = reader.vet(found)?;
                    rows.into_iter()
                        .map(|r| r.try_into().map(Payment::restore))
                        .collect()
                }

                async fn transaction(&self, id: TransactionId) -> Result<Option<Transaction>, StoreError> {
                    let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM payment_transactions WHERE id = $1");
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(&sql)
                        .bind(DbId(id.0))
                        .fetch_optional(&mut *reader).await;
                    let row: Option<TransactionRow> = reader.vet(found)?;
                    row.map(TryInto::try_into).transpose()
                }

                async fn transactions(&self, payment_id: PaymentId) -> Result<Vec<Transaction>, StoreError> {
                    let sql = format!(
                        "SELECT {TRANSACTION_COLUMNS} FROM payment_transactions WHERE payment_id = $1 ORDER BY created_at, id"
                    );
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(&sql)
                        .bind(DbId(payment_id.0))
                        .fetch_all(&mut *reader).await;
                    let rows: Vec<TransactionRow> = reader.vet(found)?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }

                async fn stale_pending(
                    &self,
                    started_before: OffsetDateTime,
                    limit: u32,
                ) -> Result<Vec<Transaction>, StoreError> {
                    let sql = format!(
                        "SELECT {TRANSACTION_COLUMNS} FROM payment_transactions \
                         WHERE status = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2"
                    );
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(&sql)
                        .bind(DbTime(started_before))
                        .bind(i64::from(limit))
                        .fetch_all(&mut *reader).await;
                    let rows: Vec<TransactionRow> = reader.vet(found)?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }

                async fn payment_by_reference(
                    &self,
                    provider: &str,
                    reference: &str,
                ) -> Result<Option<Payment>, StoreError> {
                    let sql = format!(
                        "SELECT {PAYMENT_COLUMNS} FROM payments \
                         WHERE provider = $1 AND provider_reference = $2"
                    );
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(&sql)
                        .bind(provider)
                        .bind(reference)
                        .fetch_optional(&mut *reader).await;
                    let row: Option<PaymentRow> = reader.vet(found)?;
                    row.map(|r| r.try_into().map(Payment::restore)).transpose()
                }
            }

            #[async_trait]
            impl ProviderEvents for SqlStore<Db> {
                async fn provider_event_seen(
                    &self,
                    provider: &str,
                    event_id: &str,
                ) -> Result<bool, StoreError> {
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_scalar(
                        "SELECT 1 FROM provider_events WHERE provider = $1 AND event_id = $2",
                    )
                    .bind(provider)
                    .bind(event_id)
                    .fetch_optional(&mut *reader).await;
                    let found: Option<i32> = reader.vet(found)?;
                    Ok(found.is_some())
                }

                async fn record_provider_event(
                    &self,
                    r: &ProviderEventRecord,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "INSERT INTO provider_events \
                         (provider, event_id, event_type, payment_id, outcome, received_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, event_id) DO NOTHING",
                    )
                    .bind(&r.provider)
                    .bind(&r.event_id)
                    .bind(&r.event_type)
                    .bind(r.payment_id.map(|p| DbId(p.0)))
                    .bind(r.outcome.as_str())
                    .bind(DbTime(r.received_at))
                    .execute(&self.write)
                    .await
                    .map_err(store_error)?;
                    Ok(done.rows_affected() == 1)
                }
            }

            #[async_trait]
            impl IdempotencyStore for SqlStore<Db> {
                async fn find(
                    &self,
                    scope: &str,
                    key: &str,
                    now: OffsetDateTime,
                ) -> Result<Option<IdempotencyRecord>, StoreError> {
                    let sql = format!(
                        "SELECT {KEY_COLUMNS} FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at > $3"
                    );
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(&sql)
                        .bind(scope)
                        .bind(key)
                        .bind(DbTime(now))
                        .fetch_optional(&mut *reader).await;
                    let row: Option<KeyRow> = reader.vet(found)?;
                    row.map(TryInto::try_into).transpose()
                }

                async fn relock(
                    &self,
                    scope: &str,
                    key: &str,
                    now: OffsetDateTime,
                    until: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(RELOCK_KEY)
                        .bind(scope)
                        .bind(key)
                        .bind(DbTime(now))
                        .bind(DbTime(until))
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(done.rows_affected() == 1)
                }

                async fn release(&self, scope: &str, key: &str) -> Result<(), StoreError> {
                    sqlx::query(RELEASE_KEY)
                        .bind(scope)
                        .bind(key)
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(())
                }

                async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
                    let mut total = 0;
                    loop {
                        let done = sqlx::query(PURGE_KEYS)
                            .bind(DbTime(now))
                            .bind(PURGE_KEYS_BATCH)
                            .execute(&self.write)
                            .await
                            .map_err(store_error)?;
                        total += done.rows_affected();
                        if done.rows_affected() < PURGE_KEYS_BATCH as u64 {
                            return Ok(total);
                        }
                    }
                }
            }
        };
    };
}

payments!(sqlite);
payments!(postgres);
