//! The store, written once and expanded for each engine. The SQL text is the same for SQLite
//! and PostgreSQL (both take `$n` placeholders, `ON CONFLICT` and `RETURNING`); the column
//! types differ and are bridged by `DbTime` and `DbId`. Each context's file (`payments`,
//! `users`, `messages`, `orders`, `events`) implements its ports with a macro expanded for both
//! engines: sqlx's generic executor bounds would bury the SQL under where-clauses, and the code
//! is identical.

use portside_kernel::StoreError;
use sqlx::{Database, Pool};

use crate::readers::Readers;

/// A SQL store of every context. Statements that write (and transactions) go through sqlx's
/// pool, one connection on SQLite so that writers never race for the lock; single-statement
/// reads go through [`Readers`].
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

/// The version check of an update (`... WHERE id = $1 AND version = $n`): exactly one row
/// changed, or another writer got there first.
pub(crate) fn version_checked(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

/// The one path every aggregate write takes, per engine: [`begin`](sqlite::begin) a
/// transaction (recording the consumer's inbox mark first, when the write is an event's
/// effect), run the aggregate's statements ([`version_checked`] for an update), then
/// [`finish`](sqlite::finish): its events into the outbox, commit, and the aggregate told it
/// was saved.
macro_rules! engine {
    ($db:ty) => {
        use portside_domain::{Aggregate, DomainEvent, RecordedEvent};
        use portside_events::{Envelope, InboxMark};
        use portside_kernel::StoreError;
        use sqlx::types::Json;
        use uuid::Uuid;

        use crate::error::store_error;
        use crate::types::{DbId, DbTime};

        pub(crate) type Db = $db;
        pub(crate) type Tx = sqlx::Transaction<'static, Db>;

        /// Begins a write. With `mark`, records it in the inbox first: `AlreadyProcessed` (and
        /// nothing written) when the consumer group handled the event before.
        pub(crate) async fn begin(
            pool: &sqlx::Pool<Db>,
            mark: Option<&InboxMark>,
        ) -> Result<Tx, StoreError> {
            let mut tx = pool.begin().await.map_err(store_error)?;
            if let Some(m) = mark
                && !insert_mark(&mut tx, m).await?
            {
                return Err(StoreError::AlreadyProcessed);
            }
            Ok(tx)
        }

        /// Writes the aggregate's new events to the outbox, commits, and marks it saved.
        pub(crate) async fn finish<A: Aggregate>(
            mut tx: Tx,
            aggregate: &mut A,
        ) -> Result<(), StoreError> {
            record(&mut tx, aggregate).await?;
            tx.commit().await.map_err(store_error)?;
            aggregate.mark_saved();
            Ok(())
        }

        /// Writes an aggregate's new events to the outbox in the caller's transaction, for a
        /// write of more than one aggregate (an order and the stock it reserves).
        pub(crate) async fn record<A: Aggregate>(
            tx: &mut Tx,
            aggregate: &A,
        ) -> Result<(), StoreError> {
            write_events(tx, aggregate.aggregate_id(), aggregate.pending_events()).await
        }

        /// Appends events to the outbox, in the caller's transaction.
        pub(crate) async fn write_events<E: DomainEvent>(
            tx: &mut Tx,
            aggregate_id: String,
            events: &[RecordedEvent<E>],
        ) -> Result<(), StoreError> {
            for recorded in events {
                let e = Envelope::of(Uuid::now_v7(), aggregate_id.clone(), recorded)?;
                sqlx::query(
                    "INSERT INTO outbox (id, aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, data, occurred_at, traceparent) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
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

        /// Records a mark in the caller's transaction; false if it was there already.
        pub(crate) async fn insert_mark(tx: &mut Tx, mark: &InboxMark) -> Result<bool, StoreError> {
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
    };
}

/// The save path on SQLite.
pub(crate) mod sqlite {
    engine!(sqlx::Sqlite);
}

/// The save path on PostgreSQL.
pub(crate) mod postgres {
    engine!(sqlx::Postgres);
}

/// Readiness of the store: one `SELECT 1` through the read pool.
macro_rules! probe {
    ($engine:ident, $name:literal) => {
        #[async_trait::async_trait]
        impl portside_kernel::Probe for SqlStore<crate::store::$engine::Db> {
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
}

probe!(sqlite, "sqlite");
probe!(postgres, "postgres");
