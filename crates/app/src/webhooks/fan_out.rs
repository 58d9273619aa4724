//! The `webhooks` consumer group: turns every event into a durable delivery for each enabled
//! endpoint that wants its type. It runs on whichever bus carries the events (in-process,
//! RabbitMQ, Redis Streams), so deliveries follow the outbox's at-least-once guarantee; the
//! sending is the dispatcher's, off the bus, so a slow endpoint never holds a consumer back.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::webhook::WebhookEndpoint;
use portside_domain::webhook::delivery::{DeliveryId, WebhookDelivery};
use portside_events::worker::{EventHandler, HandlerError, Subscription};
use portside_events::{Envelope, InboxMark};
use portside_kernel::{Clock, IdGenerator};
use tokio::sync::Notify;

use super::WebhookDeliveryStore;

/// The body a receiver gets: the event's type, when it happened and its data.
pub fn body(
    event_type: &str,
    occurred_at: time::OffsetDateTime,
    data: &serde_json::Value,
) -> String {
    let timestamp = occurred_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({ "type": event_type, "timestamp": timestamp, "data": data }).to_string()
}

/// Enqueues the deliveries of each event.
pub struct WebhookFanOut {
    store: Arc<dyn WebhookDeliveryStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    /// Wakes the dispatcher of this process when something was enqueued.
    wake: Arc<Notify>,
}

impl WebhookFanOut {
    /// Every event type.
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "webhooks",
        event_types: &["#"],
    };

    pub fn new(
        store: Arc<dyn WebhookDeliveryStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        wake: Arc<Notify>,
    ) -> Self {
        WebhookFanOut {
            store,
            clock,
            ids,
            wake,
        }
    }

    async fn enqueue(&self, events: &[&Envelope]) -> Result<(), HandlerError> {
        let failed = |e: portside_kernel::StoreError| HandlerError(e.to_string());
        let endpoints: Vec<WebhookEndpoint> =
            self.store.enabled_endpoints().await.map_err(failed)?;
        if endpoints.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let mut deliveries = Vec::new();
        for event in events {
            let wanted = endpoints.iter().filter(|e| e.wants(&event.event_type));
            let mut text = None;
            for endpoint in wanted {
                let text = text
                    .get_or_insert_with(|| body(&event.event_type, event.occurred_at, &event.data));
                deliveries.push(WebhookDelivery::new(
                    DeliveryId(self.ids.new_id()),
                    endpoint.id,
                    event.id,
                    &event.event_type,
                    text.clone(),
                    now,
                ));
            }
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        self.store.enqueue(&deliveries).await.map_err(failed)?;
        metrics::counter!("portside_webhook_enqueued_total").increment(deliveries.len() as u64);
        self.wake.notify_one();
        Ok(())
    }
}

#[async_trait]
impl EventHandler for WebhookFanOut {
    fn subscription(&self) -> Subscription {
        Self::SUBSCRIPTION
    }

    async fn handle(&self, event: &Envelope, _mark: &InboxMark) -> Result<(), HandlerError> {
        self.enqueue(&[event]).await
    }

    /// One read of the endpoints and one transaction per batch.
    async fn handle_batch(
        &self,
        batch: &[(&Envelope, InboxMark)],
    ) -> Option<Result<(), HandlerError>> {
        let events: Vec<&Envelope> = batch.iter().map(|(e, _)| *e).collect();
        Some(self.enqueue(&events).await)
    }
}
