//! The audit consumer group: every event, appended to the event history (and written to the
//! log under the target `audit`).

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::history::EventHistory;
use crate::worker::{EventHandler, HandlerError, Subscription};
use crate::{Envelope, InboxMark};

/// Appends every event to the history.
pub struct AuditLog {
    history: Arc<dyn EventHistory>,
}

impl AuditLog {
    /// Every event.
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "audit",
        event_types: &["#"],
    };

    /// An audit group appending to `history`.
    pub fn new(history: Arc<dyn EventHistory>) -> Self {
        AuditLog { history }
    }

    async fn record(&self, events: &[&Envelope], at: OffsetDateTime) -> Result<(), HandlerError> {
        for event in events {
            tracing::info!(
                target: "audit",
                event_id = %event.id,
                event_type = %event.event_type,
                aggregate = %event.aggregate_type,
                aggregate_id = %event.aggregate_id,
                sequence = event.sequence,
                "event"
            );
        }
        self.history
            .append(events, at)
            .await
            .map_err(|e| HandlerError(e.to_string()))
    }
}

#[async_trait]
impl EventHandler for AuditLog {
    fn subscription(&self) -> Subscription {
        Self::SUBSCRIPTION
    }

    async fn handle(&self, event: &Envelope, mark: &InboxMark) -> Result<(), HandlerError> {
        self.record(&[event], mark.at).await
    }

    /// One insert for the whole batch.
    async fn handle_batch(
        &self,
        batch: &[(&Envelope, InboxMark)],
    ) -> Option<Result<(), HandlerError>> {
        let at = batch.first().map(|(_, m)| m.at)?;
        let events: Vec<&Envelope> = batch.iter().map(|(e, _)| *e).collect();
        Some(self.record(&events, at).await)
    }
}
