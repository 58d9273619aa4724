//! A Redis stream written in a format of its own (`XADD <stream> * field value …`), for workers
//! outside Portside that read it with their own consumer group, as seed 003's worker reads
//! `orders:events`.

use std::time::Duration;

use async_trait::async_trait;
use portside_events::{BusError, StreamSink};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Appends entries to one Redis stream.
pub struct RedisStreamSink {
    conn: ConnectionManager,
    stream: String,
}

impl RedisStreamSink {
    /// The stream `stream` on the Redis at `url`; connects at the first append.
    pub fn new(url: &str, stream: &str) -> Result<Self, BusError> {
        let unavailable = |e: redis::RedisError| BusError::Unavailable(e.to_string());
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1);
        Ok(RedisStreamSink {
            conn: ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?,
            stream: stream.to_owned(),
        })
    }
}

#[async_trait]
impl StreamSink for RedisStreamSink {
    async fn append(&self, fields: &[(&str, &str)]) -> Result<(), BusError> {
        let mut conn = self.conn.clone();
        let _: String = conn
            .xadd(&self.stream, "*", fields)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        Ok(())
    }
}
