//! The cache port: bytes by key with a time to live. A cache may lose anything at any time;
//! callers treat every error as a miss.

use std::time::Duration;

use async_trait::async_trait;

/// Why the cache did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

/// A key-value cache (in-memory or Redis).
#[async_trait]
pub trait Cache: Send + Sync {
    /// The value, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    /// Stores a value for `ttl`.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;
    /// Removes a value (absent is fine).
    async fn delete(&self, key: &str) -> Result<(), CacheError>;
}
