//! The contract of the cache port, run by the in-memory and Redis adapters.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::Cache;

/// Set, get, overwrite, delete and expiry.
pub async fn cache<C: Cache + 'static>(cache: Arc<C>) {
    let key = format!("contract:{}", Uuid::now_v7());
    assert_eq!(cache.get(&key).await.unwrap(), None);
    cache
        .set(&key, b"one", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"one"[..]));
    cache
        .set(&key, b"two", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"two"[..]));
    cache.delete(&key).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap(), None);
    cache.delete(&key).await.unwrap();

    let binary: Vec<u8> = (0..=255).collect();
    cache
        .set(&key, &binary, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get(&key).await.unwrap(), Some(binary));

    let short = format!("contract:{}", Uuid::now_v7());
    cache
        .set(&short, b"brief", Duration::from_millis(1000))
        .await
        .unwrap();
    assert!(cache.get(&short).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        cache.get(&short).await.unwrap(),
        None,
        "entries expire with their TTL"
    );
}
