//! The event envelope (docs/EVENTS.md): what the outbox stores, the relay publishes and the
//! consumers receive. `data` is the domain event's own JSON; the envelope says what it is.

use portside_domain::webhook::delivery::WebhookEndpointEvent;
use portside_domain::{
    DomainEvent, OrderEvent, PaymentEvent, ProductEvent, RecordedEvent, StockEvent, TransferEvent,
    UserEvent,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use portside_kernel::StoreError;

/// One event on its way from an aggregate to its consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Event id (UUID v7): consumers deduplicate on it.
    pub id: Uuid,
    /// Catalog name, e.g. `payment.succeeded`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Schema version of `data`.
    pub version: i32,
    /// `payment`, `user`, ...
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// 1, 2, 3, ... per aggregate.
    pub sequence: i64,
    /// When it happened (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// W3C trace context of the request that caused it, when traced.
    pub traceparent: Option<String>,
    /// The event's data.
    pub data: Value,
}

impl Envelope {
    /// The envelope of an aggregate's recorded event; `id` comes from the caller (a UUID v7).
    pub fn of<E: DomainEvent>(
        id: Uuid,
        aggregate_id: String,
        recorded: &RecordedEvent<E>,
    ) -> Result<Self, StoreError> {
        Ok(Envelope {
            id,
            event_type: recorded.event.event_type().to_owned(),
            version: recorded.event.version(),
            aggregate_type: E::AGGREGATE.to_owned(),
            aggregate_id,
            sequence: recorded.sequence,
            occurred_at: recorded.occurred_at,
            traceparent: crate::trace_context::current(),
            data: serde_json::to_value(&recorded.event)
                .map_err(|e| StoreError::Other(format!("event not serializable: {e}")))?,
        })
    }

    /// The envelope as bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The event's data as the consumer's type (a payment event's `PaymentEventData`, an order
    /// event's `OrderEventData`); the error names the event.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        T::deserialize(&self.data)
            .map_err(|e| format!("{} {} has unreadable data: {e}", self.event_type, self.id))
    }

    /// An envelope from the wire.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not an event envelope: {e}"))
    }
}

/// Every event type Portside publishes, with its schema version (documented in docs/EVENTS.md).
pub const CATALOG: &[(&str, i32)] = &[
    (PaymentEvent::SUBMITTED, 1),
    (PaymentEvent::CREATED, 1),
    (PaymentEvent::SUCCEEDED, 1),
    (PaymentEvent::FAILED, 1),
    (PaymentEvent::REFUNDED, 1),
    (PaymentEvent::REFUND_FAILED, 1),
    (UserEvent::REGISTERED, 1),
    (UserEvent::UPDATED, 1),
    (UserEvent::MEMBERSHIP_UPGRADED, 1),
    (UserEvent::MEMBERSHIP_RENEWED, 1),
    (UserEvent::MEMBERSHIP_ENDED, 1),
    (UserEvent::DELETED, 1),
    (OrderEvent::CREATED, 1),
    (OrderEvent::UPDATED, 1),
    (OrderEvent::CONFIRMED, 1),
    (OrderEvent::SHIPPED, 1),
    (OrderEvent::CANCELLED, 1),
    (ProductEvent::CREATED, 1),
    (ProductEvent::UPDATED, 1),
    (ProductEvent::ARCHIVED, 1),
    (StockEvent::RESERVED, 1),
    (StockEvent::RELEASED, 1),
    (StockEvent::SHIPPED, 1),
    (StockEvent::ADJUSTED, 1),
    (StockEvent::LOW, 1),
    (TransferEvent::COMPLETED, 1),
    (WebhookEndpointEvent::DISABLED, 1),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cataloged_event_is_documented_with_an_example() {
        let doc = include_str!("../../../docs/EVENTS.md");
        for (event_type, version) in CATALOG {
            assert!(
                doc.contains(&format!("### `{event_type}`")),
                "{event_type} has a section in docs/EVENTS.md"
            );
            assert!(
                doc.contains(&format!("| `{event_type}` | {version} |")),
                "{event_type} v{version} is in the table"
            );
            assert!(
                doc.contains(&format!("\"type\": \"{event_type}\"")),
                "{event_type} has an example"
            );
        }
    }

    #[test]
    fn the_catalog_names_every_event_type_once() {
        let mut named: Vec<&str> = PaymentEvent::TYPES
            .iter()
            .chain(UserEvent::TYPES)
            .chain(OrderEvent::TYPES)
            .chain(ProductEvent::TYPES)
            .chain(StockEvent::TYPES)
            .chain(TransferEvent::TYPES)
            .chain(WebhookEndpointEvent::TYPES)
            .copied()
            .collect();
        let mut cataloged: Vec<&str> = CATALOG.iter().map(|(t, _)| *t).collect();
        named.sort_unstable();
        cataloged.sort_unstable();
        assert_eq!(cataloged, named);
    }

    #[test]
    fn the_envelope_round_trips_with_type_as_the_key() {
        let e = Envelope {
            id: Uuid::now_v7(),
            event_type: "payment.succeeded".into(),
            version: 1,
            aggregate_type: "payment".into(),
            aggregate_id: "p1".into(),
            sequence: 2,
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            traceparent: None,
            data: serde_json::json!({"a": 1}),
        };
        let json: Value = serde_json::from_slice(&e.to_bytes()).unwrap();
        assert_eq!(json["type"], "payment.succeeded");
        assert_eq!(json["occurred_at"], "1970-01-01T00:00:00Z");
        assert_eq!(Envelope::from_bytes(&e.to_bytes()).unwrap(), e);
        assert!(Envelope::from_bytes(b"{}").is_err());
    }
}
