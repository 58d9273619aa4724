//! No cache at all: every read misses. For deployments that want every read from the store,
//! and for measuring what the cache buys.

use std::time::Duration;

use async_trait::async_trait;
use portside_kernel::{Cache, CacheError};

/// A cache that holds nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCache;

#[async_trait]
impl Cache for NoCache {
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(None)
    }

    async fn set(&self, _: &str, _: &[u8], _: Duration) -> Result<(), CacheError> {
        Ok(())
    }

    async fn delete(&self, _: &str) -> Result<(), CacheError> {
        Ok(())
    }
}
