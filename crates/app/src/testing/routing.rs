//! The contract of the routing store: versioned replacement of the one stored set of rules.

use std::sync::Arc;

use portside_domain::routing::{RouteProvider, RouteRule};
use portside_kernel::StoreError;
use time::macros::datetime;

use crate::routing::RoutingStore;

/// Every check of the contract.
pub async fn routing_store<S: RoutingStore + 'static>(store: Arc<S>) {
    let empty = store.rules().await.unwrap();
    assert_eq!(
        (empty.version, empty.rules),
        (0, None),
        "nothing stored yet"
    );
    let rules = vec![RouteRule {
        name: "eu".into(),
        currencies: vec![portside_domain::Currency::from_code("EUR").unwrap()],
        min_amount: Some(1),
        max_amount: Some(50_000),
        methods: vec![portside_domain::PaymentMethod::Card],
        purposes: vec![portside_domain::routing::PurposeKind::Order],
        providers: vec![
            RouteProvider {
                name: "stripe".into(),
                weight: Some(70),
            },
            RouteProvider {
                name: "paypal".into(),
                weight: Some(30),
            },
        ],
    }];
    let at = datetime!(2026-12-01 12:00 UTC);
    assert_eq!(store.replace(0, Some(&rules), "admin-1", at).await, Ok(1));
    let stored = store.rules().await.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.rules.as_ref(), Some(&rules), "kept as written");
    assert_eq!(stored.updated_at, Some(at));
    assert_eq!(stored.updated_by.as_deref(), Some("admin-1"));
    assert_eq!(
        store.replace(0, None, "admin-2", at).await,
        Err(StoreError::Conflict),
        "a stale version changes nothing"
    );
    assert_eq!(store.rules().await.unwrap().rules.as_ref(), Some(&rules));
    assert_eq!(store.replace(1, None, "admin-2", at).await, Ok(2));
    let reset = store.rules().await.unwrap();
    assert_eq!(
        (reset.version, reset.rules),
        (2, None),
        "back to the file's"
    );
    assert_eq!(store.replace(2, Some(&[]), "admin-1", at).await, Ok(3));
    assert_eq!(
        store.rules().await.unwrap().rules,
        Some(vec![]),
        "no rules at all is a choice of its own, not the file's"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::InMemoryStore;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_contract() {
        routing_store(Arc::new(InMemoryStore::new())).await;
    }
}
