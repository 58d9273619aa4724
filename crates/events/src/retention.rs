//! Retention of the backbone's transport tables. The outbox and the inbox carry events; they
//! are not their history. Without cleaning, every published event stays in the outbox and
//! about three inbox rows stay per event, and each table slows the hot path as it grows.
//!
//! A sweep deletes, in small batches, what each table no longer needs:
//! - outbox rows published before their window (an unpublished row is never deleted: the
//!   relay has yet to send it);
//! - inbox rows older than theirs: a group must remember an event as long as the bus can
//!   deliver it again, so the window is far longer than any redelivery (a lease, an unacked
//!   delivery, a dead letter replayed by an operator within days);
//! - provider notices (webhook events) older than theirs: a provider retries a notice for
//!   days (Stripe for up to three), and the row is what makes a retry a no-op;
//! - the event history's entries older than its window, which is long (the history is what
//!   support reads about a payment, a dispute may come months later);
//! - outgoing webhook deliveries (and their attempts) older than theirs, whatever their status:
//!   a delivery's retries end within about a day and a half, and its record is for support.

use std::time::Duration;

use async_trait::async_trait;
use portside_kernel::StoreError;
use time::OffsetDateTime;

/// A table that retention cleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retained {
    /// Published outbox rows, by when they were published.
    Outbox,
    /// Inbox marks, by when they were processed.
    Inbox,
    /// Provider notices, by when they were received.
    ProviderEvents,
    /// The event history, by when each event was recorded.
    EventHistory,
    /// Outgoing webhook deliveries with their attempts, by when each was created.
    WebhookDeliveries,
}

impl Retained {
    /// Every table, in the order a sweep cleans them.
    pub const ALL: [Retained; 5] = [
        Retained::Outbox,
        Retained::Inbox,
        Retained::ProviderEvents,
        Retained::EventHistory,
        Retained::WebhookDeliveries,
    ];

    /// The table's name, as metrics and logs give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Retained::Outbox => "outbox",
            Retained::Inbox => "inbox",
            Retained::ProviderEvents => "provider_events",
            Retained::EventHistory => "event_history",
            Retained::WebhookDeliveries => "webhook_deliveries",
        }
    }
}

/// How long each table keeps a row, and how many rows one statement deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub outbox: Duration,
    pub inbox: Duration,
    pub provider_events: Duration,
    pub event_history: Duration,
    pub webhook_deliveries: Duration,
    /// Rows per delete: small enough that a batch holds its locks for milliseconds.
    pub batch: u32,
}

impl Windows {
    fn of(&self, table: Retained) -> Duration {
        match table {
            Retained::Outbox => self.outbox,
            Retained::Inbox => self.inbox,
            Retained::ProviderEvents => self.provider_events,
            Retained::EventHistory => self.event_history,
            Retained::WebhookDeliveries => self.webhook_deliveries,
        }
    }
}

/// The store's side of retention.
#[async_trait]
pub trait Retention: Send + Sync {
    /// Deletes up to `batch` rows of `table` older than `before` (for the outbox: published
    /// before it; unpublished rows stay whatever their age); how many it deleted.
    async fn purge(
        &self,
        table: Retained,
        before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError>;
}

/// One pass over every table: batches until one comes back short, so a pass after a long
/// pause catches up, and each batch is a short statement of its own that never holds the hot
/// path back. Counts what it deleted in `portside_retention_purged_total{table}`.
pub async fn sweep(
    store: &dyn Retention,
    windows: &Windows,
    now: OffsetDateTime,
) -> Result<Vec<(Retained, u64)>, StoreError> {
    let batch = windows.batch.max(1);
    let mut purged = Vec::new();
    for table in Retained::ALL {
        let window = time::Duration::try_from(windows.of(table)).unwrap_or(time::Duration::MAX);
        let before = now
            .checked_sub(window)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut total = 0;
        loop {
            let n = store.purge(table, before, batch).await?;
            total += n;
            metrics::counter!("portside_retention_purged_total", "table" => table.as_str())
                .increment(n);
            if n < u64::from(batch) {
                break;
            }
            tokio::task::yield_now().await;
        }
        purged.push((table, total));
    }
    Ok(purged)
}
