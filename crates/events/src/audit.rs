//! The audit consumer group: every event, written to the log under the target `audit`.

use async_trait::async_trait;

use crate::worker::{EventHandler, HandlerError, Subscription};
use crate::{Envelope, InboxMark};

/// Writes every event to the log (target `audit`).
pub struct AuditLog;

impl AuditLog {
    /// Every event.
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "audit",
        event_types: &["#"],
    };
}

#[async_trait]
impl EventHandler for AuditLog {
    fn subscription(&self) -> Subscription {
        Self::SUBSCRIPTION
    }

    async fn handle(&self, event: &Envelope, _: &InboxMark) -> Result<(), HandlerError> {
        tracing::info!(
            target: "audit",
            event_id = %event.id,
            event_type = %event.event_type,
            aggregate = %event.aggregate_type,
            aggregate_id = %event.aggregate_id,
            sequence = event.sequence,
            "event"
        );
        Ok(())
    }
}
