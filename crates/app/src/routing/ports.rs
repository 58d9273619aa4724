//! Ports of the routing context: where the rules administrators set are kept, and how the
//! payments context asks for a route.

use async_trait::async_trait;
use portside_domain::routing::{Route, RouteFacts, RouteRule};
use portside_kernel::StoreError;
use time::OffsetDateTime;

/// The rules as stored: `rules` is `None` while the configuration file's rules apply.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredRules {
    /// 0 until the first change; one more with every change.
    pub version: i64,
    pub rules: Option<Vec<RouteRule>>,
    pub updated_at: Option<OffsetDateTime>,
    /// The administrator who made the last change.
    pub updated_by: Option<String>,
}

/// The one stored set of rules, read by every process before each routed payment, so that a
/// change applies to the next payment everywhere.
#[async_trait]
pub trait RoutingStore: Send + Sync {
    /// The stored rules (version 0, no rules, when nothing was ever stored).
    async fn rules(&self) -> Result<StoredRules, StoreError>;

    /// Stores `rules` (`None`: back to the file's) if the version is still `expected`; returns
    /// the new version, or `Conflict` when another change came first.
    async fn replace(
        &self,
        expected: i64,
        rules: Option<&[RouteRule]>,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<i64, StoreError>;
}

/// How the payments context gets the providers a payment should try.
#[async_trait]
pub trait Router: Send + Sync {
    /// The route of a payment with these facts.
    async fn route(&self, facts: &RouteFacts) -> Result<Route, StoreError>;
}
