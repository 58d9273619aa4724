//! Redis as the cache: `SET key value PX ttl`, `GET`, `DEL`, through a reconnecting connection
//! manager with short timeouts, so that a slow or absent Redis costs milliseconds, not requests.

use std::time::Duration;

use async_trait::async_trait;
use portside_kernel::{Cache, CacheError};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A Redis-backed cache; every key is prefixed so that several deployments can share a server.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
}

fn unavailable(e: redis::RedisError) -> CacheError {
    CacheError(e.to_string())
}

impl RedisCache {
    /// Connects lazily to `url` (`redis://host:port/db`); start-up never waits for Redis.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(RedisCache {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Round trip to the server, for start-up logs and readiness.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

#[async_trait]
impl portside_kernel::Probe for RedisCache {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn essential(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), String> {
        self.ping()
            .await
            .map_err(|e| format!("Redis unreachable: {}", e.0))
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut conn = self.conn.clone();
        conn.get(self.key(key)).await.map_err(unavailable)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        conn.pset_ex::<_, _, ()>(self.key(key), value, millis)
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(self.key(key)).await.map_err(unavailable)
    }
}
