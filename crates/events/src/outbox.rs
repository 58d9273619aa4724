//! The outbox and the inbox as the backbone sees them: the relay leases and marks outbox rows;
//! the worker records which consumer group processed which event.

use async_trait::async_trait;
use portside_kernel::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Envelope;

/// How far the relay is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxLag {
    /// Rows not yet published.
    pub unpublished: u64,
    /// When the oldest of them was written.
    pub oldest: Option<OffsetDateTime>,
}

/// The outbox as the relay sees it. Rows are claimed with a lease (so several relays never
/// publish the same row at once, and a crashed relay's rows come back), published, then marked.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Unpublished events, oldest first (diagnostics and tests).
    async fn unpublished(&self, limit: u32) -> Result<Vec<Envelope>, StoreError>;

    /// Leases up to `limit` unpublished rows to `relay` until `lease_until`, oldest first,
    /// skipping rows leased by others and rows whose aggregate has an earlier row leased by
    /// another relay (per-aggregate order).
    async fn claim(
        &self,
        relay: &str,
        limit: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// Marks rows published (after the bus confirmed them).
    async fn mark_published(&self, ids: &[Uuid], now: OffsetDateTime) -> Result<(), StoreError>;

    /// Gives leased rows back (the bus refused them).
    async fn release(&self, ids: &[Uuid]) -> Result<(), StoreError>;

    /// Count and age of what is not yet published.
    async fn lag(&self) -> Result<OutboxLag, StoreError>;
}

/// Which consumer group processed which event: the inbox that makes at-least-once delivery
/// effectively-once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMark {
    /// Consumer group.
    pub group: String,
    pub event_id: Uuid,
    /// When processed.
    pub at: OffsetDateTime,
}

/// The inbox of processed events.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Whether the group already processed the event.
    async fn processed(&self, group: &str, event_id: Uuid) -> Result<bool, StoreError>;
    /// Records the event as processed; false if it already was.
    async fn mark_processed(&self, mark: &InboxMark) -> Result<bool, StoreError>;
    /// Which of `event_ids` the group already processed (a store answers in one query).
    async fn processed_among(
        &self,
        group: &str,
        event_ids: &[Uuid],
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut done = Vec::new();
        for id in event_ids {
            if self.processed(group, *id).await? {
                done.push(*id);
            }
        }
        Ok(done)
    }
    /// Records several events as processed (a store commits them together).
    async fn mark_all_processed(&self, marks: &[InboxMark]) -> Result<(), StoreError> {
        for mark in marks {
            self.mark_processed(mark).await?;
        }
        Ok(())
    }
}
