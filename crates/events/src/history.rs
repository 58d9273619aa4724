//! The event history: every event once, per aggregate in order, kept long after the outbox
//! and the inbox (transport, cleaned within days) have let it go. The `audit` consumer group
//! appends to it; support, the API (a payment's or an order's events) and the chaos driver's
//! checks read it.

use async_trait::async_trait;
use portside_kernel::StoreError;
use time::OffsetDateTime;

use crate::Envelope;

/// The store's append-only history of events.
#[async_trait]
pub trait EventHistory: Send + Sync {
    /// Records events as of `at`; an event already recorded stays as it was (a redelivery
    /// appends nothing).
    async fn append(&self, events: &[&Envelope], at: OffsetDateTime) -> Result<(), StoreError>;

    /// Up to `limit` events of one aggregate, in its order (`sequence`).
    async fn of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        limit: u32,
    ) -> Result<Vec<Envelope>, StoreError>;
}
