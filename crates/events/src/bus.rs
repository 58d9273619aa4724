//! Ports of the event bus: publishing (the relay), consuming (the worker) and operating the
//! dead letters. Delivery is at least once; consumers deduplicate with the inbox.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::Envelope;

/// Why the bus did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached or refused the message; retry later.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("bus error: {0}")]
    Other(String),
}

/// Publishing.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes in order and returns once the broker confirmed every event as stored.
    async fn publish(&self, events: &[Envelope]) -> Result<(), BusError>;
}

/// One delivery of an event to a consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub envelope: Envelope,
    /// How many times it was delivered to this group, this time included (as far as the
    /// broker counts; at least 1).
    pub attempts: u32,
    /// The broker's handle for acknowledging it.
    pub tag: String,
}

/// Consuming, in consumer groups: every group gets every event it subscribed to; the
/// consumers of one group share the load.
#[async_trait]
pub trait EventSource: Send + Sync {
    /// Declares the group and the event types it wants (`#` for all). Idempotent.
    async fn subscribe(&self, group: &str, event_types: &[&str]) -> Result<(), BusError>;
    /// Up to `max` deliveries, waiting at most `wait` for the first.
    async fn receive(
        &self,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError>;
    /// Done with a delivery.
    async fn ack(&self, group: &str, delivery: &Delivery) -> Result<(), BusError>;
    /// Moves a delivery that keeps failing to the group's dead letters, with the error.
    async fn dead_letter(
        &self,
        group: &str,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), BusError>;
    /// What waits in the broker for a group, for `/metrics`; `None` where the bus reports it
    /// itself (the in-process bus sets the gauges when a group comes for more).
    async fn backlog(&self, _group: &str) -> Result<Option<Backlog>, BusError> {
        Ok(None)
    }
}

/// Events waiting for a consumer group in a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Events not yet acknowledged by the group (as far as the broker counts them).
    pub waiting: u64,
    /// When the oldest of them was published, where the broker can tell.
    pub oldest: Option<OffsetDateTime>,
}

/// A dead-lettered event.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Its id in the dead-letter store.
    pub id: String,
    /// The group whose handler failed.
    pub group: String,
    pub envelope: Envelope,
    /// The last error.
    pub error: String,
    /// When it was dead-lettered.
    pub failed_at: OffsetDateTime,
}

/// Operating the dead letters (`portside events dlq`).
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Up to `limit` dead letters of a group, oldest first.
    async fn dead_letters(&self, group: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError>;
    /// Publishes a dead letter again and removes it; false when there is no such id.
    async fn replay(&self, group: &str, id: &str) -> Result<bool, BusError>;
    /// Deletes a group's dead letters; returns how many.
    async fn purge(&self, group: &str) -> Result<u64, BusError>;
}

/// An outgoing stream in a format of its own, for readers outside Portside (seed 003's
/// `orders:events`): each entry is a list of named text fields.
#[async_trait]
pub trait StreamSink: Send + Sync {
    /// Appends one entry; returns once the stream stored it.
    async fn append(&self, fields: &[(&str, &str)]) -> Result<(), BusError>;
}
