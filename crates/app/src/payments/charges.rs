//! The `charges` consumer group: charges the payments submitted for asynchronous charging
//! (`Prefer: respond-async`), outside the request that accepted them.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{PaymentEvent, PaymentEventData};
use portside_events::worker::{EventHandler, HandlerError, Subscription};
use portside_events::{Envelope, InboxMark};

use super::Payments;

/// Charges a submitted payment along its route (once: whoever takes it first charges it).
pub struct SubmittedCharges {
    payments: Arc<Payments>,
}

impl SubmittedCharges {
    /// Submitted payments only: a payment charged in its request never comes here.
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "charges",
        event_types: &[PaymentEvent::SUBMITTED],
    };

    /// Charges through the payments use cases.
    pub fn new(payments: Arc<Payments>) -> Self {
        SubmittedCharges { payments }
    }
}

#[async_trait]
impl EventHandler for SubmittedCharges {
    fn subscription(&self) -> Subscription {
        Self::SUBSCRIPTION
    }

    async fn handle(&self, event: &Envelope, _: &InboxMark) -> Result<(), HandlerError> {
        let PaymentEventData { payment } = event.decode().map_err(HandlerError)?;
        self.payments
            .charge_submitted(payment.payment_id)
            .await
            .map_err(|e| HandlerError(e.to_string()))
    }
}
