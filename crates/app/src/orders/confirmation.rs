//! The `orders` consumer group: confirms the order a succeeded payment paid for.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{Currency, Money, OrderId, PaymentId};
use portside_events::worker::{EventHandler, HandlerError, Subscription};
use portside_events::{Envelope, InboxMark};

use super::{ORDER_KEY, Orders, PURPOSE_ORDER};
use crate::memberships::PURPOSE_KEY;

/// Confirms the order a succeeded payment paid for.
pub struct OrderConfirmation {
    orders: Arc<Orders>,
}

impl OrderConfirmation {
    /// Succeeded payments (those of an order are acted on).
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "orders",
        event_types: &["payment.succeeded"],
    };

    /// Confirms through the orders use cases.
    pub fn new(orders: Arc<Orders>) -> Self {
        OrderConfirmation { orders }
    }
}

#[async_trait]
impl EventHandler for OrderConfirmation {
    fn group(&self) -> &'static str {
        Self::SUBSCRIPTION.group
    }

    fn event_types(&self) -> &'static [&'static str] {
        Self::SUBSCRIPTION.event_types
    }

    async fn handle(&self, event: &Envelope, mark: &InboxMark) -> Result<(), HandlerError> {
        let payment = &event.data["payment"];
        if payment["metadata"][PURPOSE_KEY] != PURPOSE_ORDER {
            return Ok(());
        }
        let invalid =
            |why: &str| HandlerError(format!("order payment {}: {why}", event.aggregate_id));
        let order: OrderId = payment["metadata"][ORDER_KEY]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no valid order id in its metadata"))?;
        let id: PaymentId = payment["payment_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no payment id"))?;
        let currency = payment["currency"]
            .as_str()
            .and_then(|c| Currency::from_code(c).ok())
            .ok_or_else(|| invalid("no currency"))?;
        let paid = Money::from_minor(
            payment["amount_minor"]
                .as_i64()
                .ok_or_else(|| invalid("no amount"))?,
            currency,
        );
        let payer = payment["customer_id"].as_str().unwrap_or_default();
        self.orders
            .confirm_paid(order, id, paid, payer, mark)
            .await
            .map_err(|e| HandlerError(e.to_string()))
    }
}
