//! The read pool: connections for single-statement reads. sqlx's own pool pings every
//! connection when it is handed back (one more round trip to the database per statement, in a
//! task of its own), a cost measured in docs/BENCHMARKS.md ("What the profile showed"). A reader goes back to the pool as it is, and the pool stays healthy another way:
//! a statement that fails retires its connection instead of returning it, and a connection that
//! sat idle for a while (the one a database restart most likely broke) is pinged before reuse.
//! A read cancelled half-way leaves nothing behind: the driver drains the rest of the answer
//! before the connection's next statement.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleResult};
use portside_kernel::StoreError;
use sqlx::{ConnectOptions, Connection, Database};

use crate::error::store_error;

/// How long a connection may sit idle before it is pinged on checkout.
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Opens and checks the connections of a [`Readers`] pool.
pub struct Opener<DB: Database> {
    options: <DB::Connection as Connection>::Options,
}

impl<DB: Database> managed::Manager for Opener<DB> {
    type Type = DB::Connection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<DB::Connection, sqlx::Error> {
        self.options.connect().await
    }

    async fn recycle(
        &self,
        conn: &mut DB::Connection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if metrics.last_used() >= PING_AFTER_IDLE {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// A pool of read connections (cheap to clone: clones share the pool).
pub struct Readers<DB: Database> {
    pool: managed::Pool<Opener<DB>>,
}

impl<DB: Database> Clone for Readers<DB> {
    fn clone(&self) -> Self {
        Readers {
            pool: self.pool.clone(),
        }
    }
}

impl<DB: Database> fmt::Debug for Readers<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readers")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl<DB: Database> Readers<DB> {
    /// Up to `size` connections opened on demand with `options`; a checkout waits at most
    /// `timeout` for a free connection and as long again for a new one to open.
    pub fn new(
        options: <DB::Connection as Connection>::Options,
        size: u32,
        timeout: Duration,
    ) -> Result<Self, managed::BuildError> {
        let pool = managed::Pool::builder(Opener { options })
            .max_size(usize::try_from(size.max(1)).unwrap_or(1))
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()?;
        Ok(Readers { pool })
    }

    /// A connection for one statement; hand its result to [`Reader::vet`].
    pub async fn get(&self) -> Result<Reader<DB>, StoreError> {
        match self.pool.get().await {
            Ok(conn) => Ok(Reader { conn }),
            Err(PoolError::Backend(e)) => Err(store_error(e)),
            Err(e) => Err(StoreError::Unavailable(format!("read pool: {e}"))),
        }
    }

    /// Connections open, and those of them idle.
    pub fn open_and_idle(&self) -> (u32, u32) {
        let status = self.pool.status();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (count(status.size), count(status.available))
    }

    /// Closes the pool: checkouts fail from now on, and connections close as they come back.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// A checked-out read connection.
pub struct Reader<DB: Database> {
    conn: Object<Opener<DB>>,
}

impl<DB: Database> Reader<DB> {
    /// The statement's result as a store result. A failed statement retires the connection:
    /// whatever went wrong (a dropped socket, a server shutting down), the next reader gets a
    /// connection that has not failed.
    pub fn vet<T>(self, result: Result<T, sqlx::Error>) -> Result<T, StoreError> {
        result.map_err(|e| {
            drop(Object::take(self.conn));
            store_error(e)
        })
    }
}

impl<DB: Database> Deref for Reader<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: Database> DerefMut for Reader<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}
