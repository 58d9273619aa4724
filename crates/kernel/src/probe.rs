//! Readiness: each dependency a process cannot do without (or can, degraded) answers a probe.

use async_trait::async_trait;

/// A dependency that `/health/ready` checks.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Short name shown in the readiness report (`store`, `bus`, ...).
    fn name(&self) -> &'static str;
    /// Whether requests fail without it. The store is essential; a broker (the outbox holds
    /// events while it is away) or a cache (reads go to the store) is not: without one of
    /// those the process is degraded but still serves.
    fn essential(&self) -> bool {
        true
    }
    /// Ok when usable.
    async fn check(&self) -> Result<(), String>;
}
