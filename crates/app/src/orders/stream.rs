//! The `order-stream` consumer group: every order event, as an entry of seed 003's stream
//! contract (`event_type`, `data`: the order exactly as `GET /api/v1/orders/{id}` returns it,
//! `timestamp`: Unix seconds, and `event_id` for readers that deduplicate), for workers written
//! to that contract. Off unless a stream is configured: the group then acknowledges and drops.
//! At least once, like every delivery: a redelivered event is appended again.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{OrderEvent, OrderEventData, OrderState};
use portside_events::worker::{EventHandler, HandlerError, Subscription};
use portside_events::{Envelope, InboxMark, StreamSink};

use super::OrderRepository;

/// How the API shows an order, so that the stream carries exactly that.
pub type OrderRenderer = Arc<dyn Fn(&OrderState) -> String + Send + Sync>;

/// The stream and how to render an order into it.
#[derive(Clone)]
pub struct OrderStreamPorts {
    pub sink: Arc<dyn StreamSink>,
    pub render: OrderRenderer,
}

/// Appends each order event to the configured stream.
pub struct OrderStreamFeed {
    orders: Arc<dyn OrderRepository>,
    out: Option<OrderStreamPorts>,
}

impl OrderStreamFeed {
    /// Every order event.
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "order-stream",
        event_types: OrderEvent::TYPES,
    };

    /// Feeds `out`, or nothing when it is `None`.
    pub fn new(orders: Arc<dyn OrderRepository>, out: Option<OrderStreamPorts>) -> Self {
        OrderStreamFeed { orders, out }
    }
}

#[async_trait]
impl EventHandler for OrderStreamFeed {
    fn subscription(&self) -> Subscription {
        Self::SUBSCRIPTION
    }

    async fn handle(&self, event: &Envelope, _: &InboxMark) -> Result<(), HandlerError> {
        let Some(out) = &self.out else {
            return Ok(());
        };
        let OrderEventData { order } = event.decode().map_err(HandlerError)?;
        // The order as GET shows it now (events carry a snapshot without its times).
        let current = self
            .orders
            .order(order.order_id)
            .await
            .map_err(|e| HandlerError(e.to_string()))?
            .ok_or_else(|| HandlerError(format!("order {} is not in the store", order.order_id)))?;
        let data = (out.render)(current.state());
        let timestamp = event.occurred_at.unix_timestamp().to_string();
        let event_id = event.id.to_string();
        out.sink
            .append(&[
                ("event_type", event.event_type.as_str()),
                ("data", &data),
                ("timestamp", &timestamp),
                ("event_id", &event_id),
            ])
            .await
            .map_err(|e| HandlerError(e.to_string()))
    }
}
