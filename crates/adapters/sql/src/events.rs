//! The event backbone's tables: the outbox the relay leases and marks, and the inbox of events
//! each consumer group processed.

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

/// Retention's deletes, a batch each: the oldest rows first, through the index on the time
/// each is judged by (`$1` the cutoff, `$2` the batch).
pub(crate) const PURGE_OUTBOX: &str = "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
    WHERE published_at IS NOT NULL AND published_at < $1 ORDER BY published_at LIMIT $2)";
pub(crate) const PURGE_INBOX: &str = "DELETE FROM inbox WHERE (consumer_group, event_id) IN \
    (SELECT consumer_group, event_id FROM inbox WHERE processed_at < $1 ORDER BY processed_at LIMIT $2)";
pub(crate) const PURGE_PROVIDER_EVENTS: &str = "DELETE FROM provider_events WHERE (provider, event_id) IN \
    (SELECT provider, event_id FROM provider_events WHERE received_at < $1 ORDER BY received_at LIMIT $2)";
pub(crate) const PURGE_EVENT_HISTORY: &str = "DELETE FROM event_history WHERE id IN \
    (SELECT id FROM event_history WHERE recorded_at < $1 ORDER BY recorded_at LIMIT $2)";

pub(crate) const PURGE_WEBHOOK_DELIVERIES: &str = "DELETE FROM webhook_deliveries WHERE id IN \
    (SELECT id FROM webhook_deliveries WHERE created_at < $1 ORDER BY created_at LIMIT $2)";

/// The event history: one aggregate's events in order.
pub(crate) const HISTORY_OF: &str = "SELECT id, aggregate_type, aggregate_id, sequence, event_type, \
    event_version, data, occurred_at, traceparent FROM event_history \
    WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence, id LIMIT $3";

/// The dead letters of the embedded mode.
pub(crate) const KEEP_DEAD_LETTER: &str = "INSERT INTO dead_letters \
    (id, consumer_group, envelope, error, failed_at, replay_at) VALUES ($1, $2, $3, $4, $5, NULL) \
    ON CONFLICT (id) DO UPDATE SET error = excluded.error, failed_at = excluded.failed_at, replay_at = NULL";
/// Listed: the letters no replay was asked for (a replay under way has left the list; it comes
/// back if it fails again).
pub(crate) const DEAD_LETTERS: &str = "SELECT id, consumer_group, envelope, error, failed_at \
    FROM dead_letters WHERE consumer_group = $1 AND replay_at IS NULL ORDER BY failed_at, id LIMIT $2";
pub(crate) const ASKED_REPLAYS: &str = "SELECT id, consumer_group, envelope, error, failed_at \
    FROM dead_letters WHERE consumer_group = $1 AND replay_at IS NOT NULL ORDER BY replay_at, id LIMIT $2";

/// Implements the outbox and inbox ports for the engine's `SqlStore`; `$lock` is the row lock
/// of the relay's claim (` FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer).
macro_rules! events {
    ($engine:ident, $lock:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_events::retention::{Retained, Retention};
            use portside_events::{
                DeadLetter, DeadLetterStore, Envelope, EventHistory, Inbox, InboxMark, Outbox,
                OutboxLag,
            };
            use portside_kernel::StoreError;
            use time::OffsetDateTime;
            use uuid::Uuid;

            use crate::error::store_error;
            use crate::events::{
                ASKED_REPLAYS, DEAD_LETTERS, HISTORY_OF, KEEP_DEAD_LETTER, PURGE_EVENT_HISTORY,
                PURGE_INBOX, PURGE_OUTBOX, PURGE_PROVIDER_EVENTS, UNPUBLISHED, claim_sql,
            };
            use crate::rows::OutboxRow;
            use crate::store::$engine::{Db, insert_mark};
            use crate::store::SqlStore;
            use crate::types::{DbId, DbTime};

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

            type LetterRow = (String, String, String, String, DbTime);

            fn letter((id, group, envelope, error, failed_at): LetterRow) -> Result<DeadLetter, StoreError> {
                let envelope: Envelope = serde_json::from_str(&envelope)
                    .map_err(|e| StoreError::Other(format!("dead letter {id}: {e}")))?;
                Ok(DeadLetter { id, group, envelope, error, failed_at: failed_at.0 })
            }

            impl SqlStore<Db> {
                async fn letters_by(&self, sql: &str, group: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(sql)
                        .bind(group)
                        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                        .fetch_all(&mut *reader).await;
                    let rows: Vec<LetterRow> = reader.vet(found)?;
                    rows.into_iter().map(letter).collect()
                }
            }

            #[async_trait]
            impl DeadLetterStore for SqlStore<Db> {
                async fn keep(&self, d: &DeadLetter) -> Result<(), StoreError> {
                    let envelope = serde_json::to_string(&d.envelope)
                        .map_err(|e| StoreError::Other(e.to_string()))?;
                    sqlx::query(KEEP_DEAD_LETTER)
                        .bind(&d.id)
                        .bind(&d.group)
                        .bind(envelope)
                        .bind(&d.error)
                        .bind(DbTime(d.failed_at))
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(())
                }

                async fn letters(&self, group: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
                    self.letters_by(DEAD_LETTERS, group, limit).await
                }

                async fn ask_replay(&self, group: &str, id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
                    let done = sqlx::query("UPDATE dead_letters SET replay_at = $3 WHERE consumer_group = $1 AND id = $2")
                        .bind(group)
                        .bind(id)
                        .bind(DbTime(at))
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn asked(&self, group: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
                    self.letters_by(ASKED_REPLAYS, group, limit).await
                }

                async fn forget(&self, id: &str) -> Result<bool, StoreError> {
                    let done = sqlx::query("DELETE FROM dead_letters WHERE id = $1")
                        .bind(id)
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn forget_group(&self, group: &str) -> Result<u64, StoreError> {
                    let done = sqlx::query("DELETE FROM dead_letters WHERE consumer_group = $1")
                        .bind(group)
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(done.rows_affected())
                }
            }

            #[async_trait]
            impl Retention for SqlStore<Db> {
                async fn purge(
                    &self,
                    table: Retained,
                    before: OffsetDateTime,
                    batch: u32,
                ) -> Result<u64, StoreError> {
                    let sql = match table {
                        Retained::Outbox => PURGE_OUTBOX,
                        Retained::Inbox => PURGE_INBOX,
                        Retained::ProviderEvents => PURGE_PROVIDER_EVENTS,
                        Retained::EventHistory => PURGE_EVENT_HISTORY,
                        Retained::WebhookDeliveries => PURGE_WEBHOOK_DELIVERIES,
                    };
                    let done = sqlx::query(sql)
                        .bind(DbTime(before))
                        .bind(i64::from(batch))
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(done.rows_affected())
                }
            }

            #[async_trait]
            impl EventHistory for SqlStore<Db> {
                async fn append(&self, events: &[&Envelope], at: OffsetDateTime) -> Result<(), StoreError> {
                    if events.is_empty() {
                        return Ok(());
                    }
                    let mut q = sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO event_history (id, aggregate_type, aggregate_id, sequence, \
                         event_type, event_version, data, occurred_at, traceparent, recorded_at) ",
                    );
                    q.push_values(events, |mut row, e| {
                        row.push_bind(DbId(e.id))
                            .push_bind(e.aggregate_type.clone())
                            .push_bind(e.aggregate_id.clone())
                            .push_bind(e.sequence)
                            .push_bind(e.event_type.clone())
                            .push_bind(e.version)
                            .push_bind(sqlx::types::Json(e.data.clone()))
                            .push_bind(DbTime(e.occurred_at))
                            .push_bind(e.traceparent.clone())
                            .push_bind(DbTime(at));
                    });
                    q.push(" ON CONFLICT (id) DO NOTHING");
                    q.build()
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(())
                }

                async fn of(
                    &self,
                    aggregate_type: &str,
                    aggregate_id: &str,
                    limit: u32,
                ) -> Result<Vec<Envelope>, StoreError> {
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(HISTORY_OF)
                        .bind(aggregate_type)
                        .bind(aggregate_id)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *reader).await;
                    let rows: Vec<OutboxRow> = reader.vet(found)?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }
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
        };
    };
}

events!(sqlite, "");
events!(postgres, " FOR UPDATE SKIP LOCKED");
