//! The event history as owners and administrators read it: a payment's or an order's events in
//! order, as the `audit` consumer group recorded them. Whoever may read the payment (or the
//! order) may read its events; nobody else learns that it exists.

use std::sync::Arc;

use portside_domain::{Actor, DomainEvent, OrderEvent, OrderId, PaymentEvent, PaymentId};
use portside_events::{Envelope, EventHistory};

use crate::AppError;
use crate::orders::Orders;
use crate::payments::Payments;

/// The most events one answer holds (a payment or an order has a handful).
pub const MAX_EVENTS: u32 = 1000;

/// Reads the history of payments and orders.
pub struct EventLog {
    history: Arc<dyn EventHistory>,
    payments: Arc<Payments>,
    orders: Arc<Orders>,
}

impl EventLog {
    /// The log over `history`; access is checked by the payments and orders use cases.
    pub fn new(
        history: Arc<dyn EventHistory>,
        payments: Arc<Payments>,
        orders: Arc<Orders>,
    ) -> Self {
        EventLog {
            history,
            payments,
            orders,
        }
    }

    /// A payment's events, oldest first (its owner or an administrator).
    pub async fn of_payment(
        &self,
        actor: &Actor,
        id: PaymentId,
    ) -> Result<Vec<Envelope>, AppError> {
        self.payments.get(actor, id).await?;
        Ok(self
            .history
            .of(PaymentEvent::AGGREGATE, &id.to_string(), MAX_EVENTS)
            .await?)
    }

    /// An order's events, oldest first (its owner or an administrator).
    pub async fn of_order(&self, actor: &Actor, id: OrderId) -> Result<Vec<Envelope>, AppError> {
        self.orders.get(actor, id).await?;
        Ok(self
            .history
            .of(OrderEvent::AGGREGATE, &id.to_string(), MAX_EVENTS)
            .await?)
    }
}
