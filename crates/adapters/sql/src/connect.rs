//! Opening a store from a URL, and its migrations (embedded in the binary, up and down).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Database, Pool, Postgres, Sqlite};

use crate::readers::{PING_AFTER_IDLE, Readers};
use crate::store::SqlStore;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Why a store could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The URL could not be parsed by the driver.
    #[error("invalid database URL: {0}")]
    InvalidUrl(sqlx::Error),
    /// The directory of the SQLite file could not be created.
    #[error("cannot create {path}: {source}")]
    Directory {
        /// The directory.
        path: String,
        source: std::io::Error,
    },
    /// The database did not answer.
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The ledger's backfill of earlier movements failed.
    #[error("posting earlier payments in the ledger failed: {0}")]
    Backfill(#[from] portside_kernel::StoreError),
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Connections of each pool: the read pool, and on PostgreSQL the write pool as well
    /// (SQLite writes through one connection).
    pub max_connections: u32,
    /// How long a request waits for a connection before the store reports itself unavailable.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// How many pooled connections are open and how many of those wait idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Open connections.
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
}

/// A store on either engine.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// The embedded engine.
    Sqlite(SqlStore<Sqlite>),
    /// The server engine.
    Postgres(SqlStore<Postgres>),
}

impl AnyStore {
    /// Opens the store a URL names (`sqlite://data/portside.db`, `postgres://…`).
    pub async fn open(url: &str, settings: PoolSettings) -> Result<Self, OpenError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url).map_err(OpenError::InvalidUrl)?;
            Ok(AnyStore::Sqlite(SqlStore::sqlite(options, settings).await?))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(OpenError::InvalidUrl)?;
            Ok(AnyStore::Postgres(
                SqlStore::postgres(options, settings).await?,
            ))
        } else {
            Err(OpenError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Applies every pending migration, then gives the charges and refunds stored before the
    /// ledger existed their postings (a data migration no SQL file can write: the postings are
    /// the domain's). Returns how many movements were posted (0 once every one has its posting).
    pub async fn migrate(&self) -> Result<u64, OpenError> {
        let now = time::OffsetDateTime::now_utc();
        match self {
            AnyStore::Sqlite(s) => {
                SQLITE_MIGRATIONS.run(&s.write).await?;
                Ok(s.backfill_ledger(now).await?)
            }
            AnyStore::Postgres(s) => {
                POSTGRES_MIGRATIONS.run(&s.write).await?;
                Ok(s.backfill_ledger(now).await?)
            }
        }
    }

    /// True when the PostgreSQL server runs without autovacuum: the tables retention deletes
    /// from (outbox, inbox, idempotency keys, …) then never reuse the space of their deleted
    /// rows and grow on disk without bound, and their statistics go stale. False on SQLite,
    /// whose deleted pages are reused as they are freed.
    pub async fn autovacuum_is_off(&self) -> bool {
        match self {
            AnyStore::Sqlite(_) => false,
            AnyStore::Postgres(s) => {
                sqlx::query_scalar::<_, String>("SELECT current_setting('autovacuum')")
                    .fetch_one(&s.write)
                    .await
                    .is_ok_and(|on| on == "off")
            }
        }
    }

    /// Reverts migrations down to `target` (0 reverts them all); `None` reverts the latest one.
    /// Returns the version the schema is at afterwards.
    pub async fn migrate_down(&self, target: Option<i64>) -> Result<i64, OpenError> {
        match self {
            AnyStore::Sqlite(s) => undo(&SQLITE_MIGRATIONS, &s.write, target).await,
            AnyStore::Postgres(s) => undo(&POSTGRES_MIGRATIONS, &s.write, target).await,
        }
    }

    /// Connections open and idle across the pools, for the pool gauges.
    pub fn pool_use(&self) -> PoolUse {
        let of = |size: u32, idle: usize| PoolUse {
            open: size,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
        };
        let sum = |w: PoolUse, (open, idle): (u32, u32)| PoolUse {
            open: w.open.saturating_add(open),
            idle: w.idle.saturating_add(idle),
        };
        match self {
            AnyStore::Sqlite(s) => sum(
                of(s.write.size(), s.write.num_idle()),
                s.read.open_and_idle(),
            ),
            AnyStore::Postgres(s) => sum(
                of(s.write.size(), s.write.num_idle()),
                s.read.open_and_idle(),
            ),
        }
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => {
                s.read.close();
                s.write.close().await;
            }
            AnyStore::Postgres(s) => {
                s.read.close();
                s.write.close().await;
            }
        }
    }
}

async fn undo<DB>(
    migrator: &Migrator,
    pool: &Pool<DB>,
    target: Option<i64>,
) -> Result<i64, OpenError>
where
    DB: Database,
    DB::Connection: Migrate,
{
    let mut conn = pool.acquire().await.map_err(OpenError::Connect)?;
    let mut applied: Vec<i64> = conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect();
    applied.sort_unstable();
    drop(conn);
    let target = match target {
        Some(t) => t,
        None => applied.iter().rev().nth(1).copied().unwrap_or(0),
    };
    migrator.undo(pool, target).await?;
    Ok(applied
        .into_iter()
        .filter(|v| *v <= target)
        .max()
        .unwrap_or(0))
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) a SQLite file in WAL mode with `synchronous=FULL`: one
    /// connection writes, the others read, so writers never fail with "database is locked".
    pub async fn sqlite(
        options: SqliteConnectOptions,
        settings: PoolSettings,
    ) -> Result<Self, OpenError> {
        if let Some(dir) = Path::new(options.get_filename()).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(OpenError::Connect)?;
        let read = Readers::new(options, settings.max_connections, settings.acquire_timeout)
            .map_err(pool_error)?;
        Ok(SqlStore { write, read })
    }
}

/// A read pool that cannot be built (its timeouts need a runtime, which it is given).
fn pool_error(e: deadpool::managed::BuildError) -> OpenError {
    OpenError::Connect(sqlx::Error::Configuration(e.to_string().into()))
}

/// The pool's check before handing out a connection. By default the pool pings every
/// connection on every checkout: one more round trip to PostgreSQL per statement. A busy
/// connection proved itself moments ago (and is pinged again when it returns to the pool);
/// a connection idle for a while, the one a server restart most likely broke, is still
/// pinged.
async fn ping_if_idle(
    conn: &mut sqlx::PgConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if meta.idle_for >= PING_AFTER_IDLE {
        conn.ping().await?;
    }
    Ok(true)
}

impl SqlStore<Postgres> {
    /// Connects a pool to PostgreSQL.
    pub async fn postgres(
        options: PgConnectOptions,
        settings: PoolSettings,
    ) -> Result<Self, OpenError> {
        let write = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
            .connect_with(options.clone())
            .await
            .map_err(OpenError::Connect)?;
        let read = Readers::new(options, settings.max_connections, settings.acquire_timeout)
            .map_err(pool_error)?;
        Ok(SqlStore { write, read })
    }
}
