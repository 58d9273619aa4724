//! The store, written once and expanded for each engine. The SQL text is the same for SQLite
//! and PostgreSQL (both take `$n` placeholders, `ON CONFLICT` and `RETURNING`); the column
//! types differ and are bridged by `DbTime` and `DbId`.

use sqlx::{Database, Pool};

use crate::readers::Readers;

/// A SQL store: payments, transactions, idempotency keys and the outbox. Statements that
/// write (and transactions) go through sqlx's pool, one connection on SQLite so that writers
/// never race for the lock; single-statement reads go through [`Readers`].
#[derive(Debug)]
pub struct SqlStore<DB: Database> {
    pub(crate) write: Pool<DB>,
    pub(crate) read: Readers<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            write: self.write.clone(),
            read: self.read.clone(),
        }
    }
}

pub(crate) const PAYMENT_COLUMNS: &str = "id, customer_id, amount_minor, currency, payment_method, \
    payment_method_token, provider, status, refunded_minor, refund_pending_minor, provider_reference, \
    failure_code, failure_decline_code, failure_message, description, metadata, version, \
    event_sequence, created_at, updated_at";

pub(crate) const TRANSACTION_COLUMNS: &str = "id, payment_id, kind, amount_minor, currency, status, \
    provider_key, provider_reference, failure_code, failure_decline_code, failure_message, reason, \
    metadata, created_at, settled_at";

pub(crate) const KEY_COLUMNS: &str =
    "scope, key, fingerprint, transaction_id, locked_until, outcome, created_at, expires_at";

pub(crate) const INSERT_PAYMENT: &str = "INSERT INTO payments (id, customer_id, amount_minor, \
    currency, payment_method, payment_method_token, provider, status, refunded_minor, \
    refund_pending_minor, provider_reference, failure_code, failure_decline_code, failure_message, \
    description, metadata, version, event_sequence, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)";

pub(crate) const UPDATE_PAYMENT: &str = "UPDATE payments SET status = $2, refunded_minor = $3, \
    refund_pending_minor = $4, provider_reference = $5, failure_code = $6, failure_decline_code = $7, \
    failure_message = $8, version = $9, event_sequence = $10, updated_at = $11 \
    WHERE id = $1 AND version = $12";

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
    VALUES ($1, $2, $3, $4, $5, NULL, $6, $7) \
    ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
    transaction_id = excluded.transaction_id, locked_until = excluded.locked_until, outcome = NULL, \
    created_at = excluded.created_at, expires_at = excluded.expires_at \
    WHERE idempotency_keys.expires_at <= excluded.created_at \
    RETURNING scope";

pub(crate) const COMPLETE_KEY: &str =
    "UPDATE idempotency_keys SET outcome = $2, locked_until = NULL WHERE transaction_id = $1";

pub(crate) const RELOCK_KEY: &str = "UPDATE idempotency_keys SET locked_until = $4 \
    WHERE scope = $1 AND key = $2 AND outcome IS NULL AND (locked_until IS NULL OR locked_until <= $3)";

pub(crate) const RELEASE_KEY: &str = "UPDATE idempotency_keys SET locked_until = NULL \
    WHERE scope = $1 AND key = $2 AND outcome IS NULL";

pub(crate) const PURGE_KEYS: &str = "DELETE FROM idempotency_keys WHERE expires_at <= $1";

pub(crate) const INSERT_OUTBOX: &str = "INSERT INTO outbox (id, aggregate_type, aggregate_id, \
    sequence, event_type, event_version, data, occurred_at, traceparent) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const OUTBOX_COLUMNS: &str = "id, aggregate_type, aggregate_id, sequence, event_type, event_version, data, occurred_at, traceparent";

pub(crate) const UNPUBLISHED: &str = "SELECT id, aggregate_type, aggregate_id, sequence, event_type, \
    event_version, data, occurred_at, traceparent FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1";

/// Leases unpublished rows to a relay ($1) until $3, oldest first, skipping rows leased by
/// others and rows of an aggregate whose earlier row another relay holds. `{lock}` is
/// ` FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent relays pass each other by.
pub(crate) fn claim_sql(lock: &str) -> String {
    format!(
        "UPDATE outbox SET claimed_until = $3, claimed_by = $1 WHERE id IN ( \
         SELECT o.id FROM outbox o WHERE o.published_at IS NULL \
         AND (o.claimed_until IS NULL OR o.claimed_until < $2) \
         AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.aggregate_type = o.aggregate_type \
           AND e.aggregate_id = o.aggregate_id AND e.sequence < o.sequence \
           AND e.published_at IS NULL AND e.claimed_until >= $2 AND e.claimed_by <> $1) \
         ORDER BY o.id LIMIT $4{lock}) RETURNING {OUTBOX_COLUMNS}"
    )
}

/// Implements every store port for `SqlStore<$db>`. A macro rather than generics: sqlx's
/// generic executor bounds would bury the SQL under where-clauses, and the code is identical.
macro_rules! impl_store {
    ($db:ty, $name:literal, $strpos:literal, $lock:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_app::payments::idempotency::{IdempotencyClaim, IdempotencyRecord};
            use portside_app::payments::{Begin, IdempotencyStore, PageRequest, PaymentFilter, PaymentRepository, ProviderEventRecord, ProviderEvents};
            use portside_events::{Envelope, Inbox, InboxMark, Outbox, OutboxLag};
            use portside_kernel::{Probe, StoreError};
            use portside_domain::{DomainEvent, Payment, PaymentId, RecordedEvent, Transaction, TransactionId};
            use serde_json::Value;
            use sqlx::types::Json;
            use time::OffsetDateTime;
            use uuid::Uuid;

            use crate::error::store_error;
            use crate::rows::{KeyRow, OutboxRow, PaymentRow, TransactionRow};
            use crate::store::*;
            use crate::types::{DbId, DbTime};

            type Db = $db;
            type Tx = sqlx::Transaction<'static, Db>;

            async fn claim(tx: &mut Tx, c: &IdempotencyClaim) -> Result<Option<IdempotencyRecord>, StoreError> {
                let claimed = sqlx::query(CLAIM_KEY)
                    .bind(&c.scope)
                    .bind(&c.key)
                    .bind(&c.fingerprint)
                    .bind(DbId(c.transaction_id.0))
                    .bind(DbTime(c.locked_until))
                    .bind(DbTime(c.created_at))
                    .bind(DbTime(c.expires_at))
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
                Ok(Some(row.into()))
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
                    .execute(&mut **tx)
                    .await
                    .map_err(store_error)?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::Conflict) }
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

            /// Appends an aggregate's new events to the outbox, in the caller's transaction.
            async fn write_events<E: DomainEvent>(
                tx: &mut Tx,
                aggregate_id: String,
                events: &[RecordedEvent<E>],
            ) -> Result<(), StoreError> {
                for recorded in events {
                    let e = Envelope::of(Uuid::now_v7(), aggregate_id.clone(), recorded)?;
                    sqlx::query(INSERT_OUTBOX)
                        .bind(DbId(e.id))
                        .bind(&e.aggregate_type)
                        .bind(&e.aggregate_id)
                        .bind(e.sequence)
                        .bind(&e.event_type)
                        .bind(e.version)
                        .bind(Json(&e.data))
                        .bind(DbTime(e.occurred_at))
                        .bind(&e.traceparent)
                        .execute(&mut **tx)
                        .await
                        .map_err(store_error)?;
                }
                Ok(())
            }

            async fn commit(tx: Tx, payment: &mut Payment) -> Result<(), StoreError> {
                tx.commit().await.map_err(store_error)?;
                payment.mark_saved();
                Ok(())
            }

            enum Write {
                Insert,
                Update,
            }

            /// Phase 1: claim the key, write the payment and its pending transaction.
            async fn begin(
                pool: &sqlx::Pool<Db>,
                claim_of: Option<&IdempotencyClaim>,
                payment: &mut Payment,
                txn: &Transaction,
                write: Write,
            ) -> Result<Begin, StoreError> {
                let mut tx = pool.begin().await.map_err(store_error)?;
                if let Some(c) = claim_of
                    && let Some(existing) = claim(&mut tx, c).await?
                {
                    return Ok(Begin::Existing(existing));
                }
                match write {
                    Write::Insert => insert_payment(&mut tx, payment).await?,
                    Write::Update => update_payment(&mut tx, payment).await?,
                }
                insert_transaction(&mut tx, txn).await?;
                write_events(&mut tx, payment.id().to_string(), payment.pending_events()).await?;
                commit(tx, payment).await?;
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
                    begin(&self.write, claim_of, payment, charge, Write::Insert).await
                }

                async fn begin_refund(
                    &self,
                    claim_of: Option<&IdempotencyClaim>,
                    payment: &mut Payment,
                    refund: &Transaction,
                ) -> Result<Begin, StoreError> {
                    begin(&self.write, claim_of, payment, refund, Write::Update).await
                }

                async fn settle(
                    &self,
                    payment: &mut Payment,
                    transaction: &Transaction,
                    outcome: &Value,
                ) -> Result<(), StoreError> {
                    let mut tx = self.write.begin().await.map_err(store_error)?;
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
                    if settled.rows_affected() != 1 {
                        return Err(StoreError::Conflict);
                    }
                    sqlx::query(COMPLETE_KEY)
                        .bind(DbId(transaction.id.0))
                        .bind(Json(outcome))
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                    write_events(&mut tx, payment.id().to_string(), payment.pending_events()).await?;
                    commit(tx, payment).await
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
                    page: PageRequest,
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
                    Ok(row.map(Into::into))
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
                    let done = sqlx::query(PURGE_KEYS)
                        .bind(DbTime(now))
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(done.rows_affected())
                }
            }

            #[async_trait]
            impl Outbox for SqlStore<Db> {
                async fn unpublished(&self, limit: u32) -> Result<Vec<Envelope>, StoreError> {
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(UNPUBLISHED)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *reader).await;
                    let rows: Vec<OutboxRow> = reader.vet(found)?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn claim(
                    &self,
                    relay: &str,
                    limit: u32,
                    now: OffsetDateTime,
                    lease_until: OffsetDateTime,
                ) -> Result<Vec<Envelope>, StoreError> {
                    let rows: Vec<OutboxRow> = sqlx::query_as(&claim_sql($lock))
                        .bind(relay)
                        .bind(DbTime(now))
                        .bind(DbTime(lease_until))
                        .bind(i64::from(limit))
                        .fetch_all(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn mark_published(&self, ids: &[Uuid], now: OffsetDateTime) -> Result<(), StoreError> {
                    if ids.is_empty() {
                        return Ok(());
                    }
                    let mut q = sqlx::QueryBuilder::<Db>::new("UPDATE outbox SET published_at = ");
                    q.push_bind(DbTime(now)).push(", claimed_until = NULL WHERE id IN (");
                    let mut list = q.separated(", ");
                    for id in ids {
                        list.push_bind(DbId(*id));
                    }
                    q.push(")");
                    q.build().execute(&self.write).await.map_err(store_error)?;
                    Ok(())
                }

                async fn release(&self, ids: &[Uuid]) -> Result<(), StoreError> {
                    if ids.is_empty() {
                        return Ok(());
                    }
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL WHERE published_at IS NULL AND id IN (",
                    );
                    let mut list = q.separated(", ");
                    for id in ids {
                        list.push_bind(DbId(*id));
                    }
                    q.push(")");
                    q.build().execute(&self.write).await.map_err(store_error)?;
                    Ok(())
                }

                async fn lag(&self) -> Result<OutboxLag, StoreError> {
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(
                        "SELECT count(*), min(occurred_at) FROM outbox WHERE published_at IS NULL",
                    )
                    .fetch_one(&mut *reader).await;
                    let (count, oldest): (i64, Option<DbTime>) = reader.vet(found)?;
                    Ok(OutboxLag {
                        unpublished: u64::try_from(count).unwrap_or(0),
                        oldest: oldest.map(|t| t.0),
                    })
                }
            }

            /// Records a mark in the caller's transaction; false if it was there already.
            async fn insert_mark(tx: &mut Tx, mark: &InboxMark) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "INSERT INTO inbox (consumer_group, event_id, processed_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (consumer_group, event_id) DO NOTHING",
                )
                .bind(&mark.group)
                .bind(DbId(mark.event_id))
                .bind(DbTime(mark.at))
                .execute(&mut **tx)
                .await
                .map_err(store_error)?;
                Ok(done.rows_affected() == 1)
            }

            #[async_trait]
            impl Inbox for SqlStore<Db> {
                async fn processed(&self, group: &str, event_id: Uuid) -> Result<bool, StoreError> {
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_scalar(
                        "SELECT 1 FROM inbox WHERE consumer_group = $1 AND event_id = $2",
                    )
                    .bind(group)
                    .bind(DbId(event_id))
                    .fetch_optional(&mut *reader).await;
                    let found: Option<i32> = reader.vet(found)?;
                    Ok(found.is_some())
                }

                async fn mark_processed(&self, mark: &InboxMark) -> Result<bool, StoreError> {
                    let mut tx = self.write.begin().await.map_err(store_error)?;
                    let fresh = insert_mark(&mut tx, mark).await?;
                    tx.commit().await.map_err(store_error)?;
                    Ok(fresh)
                }

                async fn processed_among(
                    &self,
                    group: &str,
                    event_ids: &[Uuid],
                ) -> Result<Vec<Uuid>, StoreError> {
                    if event_ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "SELECT event_id FROM inbox WHERE consumer_group = ",
                    );
                    q.push_bind(group.to_owned()).push(" AND event_id IN (");
                    let mut ids = q.separated(", ");
                    for id in event_ids {
                        ids.push_bind(DbId(*id));
                    }
                    ids.push_unseparated(")");
                    let mut reader = self.read.get().await?;
                    let found = q
                        .build_query_scalar()
                        .fetch_all(&mut *reader).await;
                    let found: Vec<DbId> = reader.vet(found)?;
                    Ok(found.into_iter().map(|id| id.0).collect())
                }

                async fn mark_all_processed(&self, marks: &[InboxMark]) -> Result<(), StoreError> {
                    if marks.is_empty() {
                        return Ok(());
                    }
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO inbox (consumer_group, event_id, processed_at) ",
                    );
                    q.push_values(marks, |mut row, mark| {
                        row.push_bind(mark.group.clone())
                            .push_bind(DbId(mark.event_id))
                            .push_bind(DbTime(mark.at));
                    });
                    q.push(" ON CONFLICT (consumer_group, event_id) DO NOTHING");
                    q.build()
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(())
                }
            }

            crate::identity_store::identity_impls!($strpos);
            crate::order_store::order_impls!();

            #[async_trait]
            impl Probe for SqlStore<Db> {
                fn name(&self) -> &'static str {
                    "store"
                }

                async fn check(&self) -> Result<(), String> {
                    let unreachable = |e: StoreError| format!("{} unreachable: {e}", $name);
                    let mut reader = self.read.get().await.map_err(unreachable)?;
                    let done = sqlx::query("SELECT 1").execute(&mut *reader).await;
                    reader.vet(done).map(|_| ()).map_err(unreachable)
                }
            }
        };
    };
}

impl_store!(sqlx::Sqlite, "sqlite", "instr", "");
impl_store!(
    sqlx::Postgres,
    "postgres",
    "strpos",
    " FOR UPDATE SKIP LOCKED"
);
