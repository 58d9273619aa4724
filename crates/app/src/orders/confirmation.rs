//! The `orders` consumer group: confirms the order a succeeded payment paid for.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{Currency, Money, PaymentEvent, PaymentEventData, Purpose};
use portside_events::worker::{EventHandler, HandlerError, Subscription};
use portside_events::{Envelope, InboxMark};

use super::Orders;

/// Confirms the order a succeeded payment paid for.
pub struct OrderConfirmation {
    orders: Arc<Orders>,
}

impl OrderConfirmation {
    /// Succeeded payments (those of an order are acted on).
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "orders",
        event_types: &[PaymentEvent::SUCCEEDED],
    };

    /// Confirms through the orders use cases.
    pub fn new(orders: Arc<Orders>) -> Self {
        OrderConfirmation { orders }
    }
}

#[async_trait]
impl EventHandler for OrderConfirmation {
    fn subscription(&self) -> Subscription {
        Self::SUBSCRIPTION
    }

    async fn handle(&self, event: &Envelope, mark: &InboxMark) -> Result<(), HandlerError> {
        let PaymentEventData { payment } = event.decode().map_err(HandlerError)?;
        let invalid =
            |why: &str| HandlerError(format!("order payment {}: {why}", event.aggregate_id));
        let order = match payment.purpose() {
            Ok(Some(Purpose::Order(order))) => order,
            Ok(_) => return Ok(()),
            Err(e) => return Err(invalid(&e.to_string())),
        };
        let currency =
            Currency::from_code(&payment.currency).map_err(|e| invalid(&e.to_string()))?;
        let paid = Money::from_minor(payment.amount_minor, currency);
        let (id, payer) = (payment.payment_id, payment.customer_id.as_str());
        self.orders
            .confirm_paid(order, id, paid, payer, mark)
            .await
            .map_err(|e| HandlerError(e.to_string()))
    }
}
