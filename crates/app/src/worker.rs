//! The worker: consumer groups on the event bus. Each handler is one group; each delivery is
//! checked against the inbox (effectively-once on at-least-once delivery), handled with retries
//! and exponential backoff, and dead-lettered with its error when it keeps failing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::events::Envelope;
use crate::ports::{Clock, Delivery, EventSource, Inbox, InboxMark};

/// Why a handler failed; retried, then dead-lettered with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// A consumer of events.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// The consumer group (and queue) name.
    fn group(&self) -> &'static str;
    /// The event types it wants; `#` for all.
    fn event_types(&self) -> &'static [&'static str];
    /// Handles one event. `mark` is what the inbox records once it succeeds; a handler whose
    /// effect is a store write passes it to the store so both commit together.
    async fn handle(&self, event: &Envelope, mark: &InboxMark) -> Result<(), HandlerError>;
}

/// Tunables of the worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Attempts per delivery before it is dead-lettered.
    pub max_attempts: u32,
    /// First pause between attempts; doubles each time.
    pub backoff: Duration,
    /// Deliveries fetched at once.
    pub batch: usize,
    /// How long `receive` waits before the loop checks for shutdown.
    pub wait: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            max_attempts: 5,
            backoff: Duration::from_millis(100),
            batch: 32,
            wait: Duration::from_millis(500),
        }
    }
}

/// The consumers of one process.
pub struct Worker {
    source: Arc<dyn EventSource>,
    inbox: Arc<dyn Inbox>,
    clock: Arc<dyn Clock>,
    handlers: Vec<Arc<dyn EventHandler>>,
    settings: WorkerSettings,
}

impl Worker {
    /// A worker running `handlers`.
    pub fn new(
        source: Arc<dyn EventSource>,
        inbox: Arc<dyn Inbox>,
        clock: Arc<dyn Clock>,
        handlers: Vec<Arc<dyn EventHandler>>,
        settings: WorkerSettings,
    ) -> Self {
        Worker {
            source,
            inbox,
            clock,
            handlers,
            settings,
        }
    }

    /// Declares every group's subscription, retrying while the bus is down.
    pub async fn subscribe(&self, stop: &CancellationToken) -> bool {
        for h in &self.handlers {
            let mut pause = self.settings.backoff;
            loop {
                match self.source.subscribe(h.group(), h.event_types()).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(group = h.group(), error = %e, "cannot subscribe yet; retrying");
                        tokio::select! {
                            () = stop.cancelled() => return false,
                            () = tokio::time::sleep(pause) => {}
                        }
                        pause = (pause * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
        true
    }

    /// Consumes until `stop`; deliveries in hand are finished and acknowledged first.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        if !self.subscribe(&stop).await {
            return;
        }
        let mut tasks = Vec::new();
        for h in self.handlers.clone() {
            let (me, stop) = (self.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { me.consume(h, stop).await }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn consume(&self, handler: Arc<dyn EventHandler>, stop: CancellationToken) {
        let group = handler.group();
        tracing::info!(group, "consumer started");
        let mut pause = self.settings.backoff;
        while !stop.is_cancelled() {
            let received = tokio::select! {
                () = stop.cancelled() => break,
                r = self.source.receive(group, self.settings.batch, self.settings.wait) => r,
            };
            match received {
                Ok(deliveries) => {
                    pause = self.settings.backoff;
                    for d in deliveries {
                        self.process(handler.as_ref(), &d).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(group, error = %e, "receive failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            }
        }
        tracing::info!(group, "consumer stopped");
    }

    /// Handles one delivery to the end: processed and acknowledged, or dead-lettered.
    pub async fn process(&self, handler: &dyn EventHandler, d: &Delivery) {
        use tracing::Instrument;
        let span = tracing::info_span!("consume", group = handler.group(), event_type = %d.envelope.event_type, event_id = %d.envelope.id);
        if let Some(parent) = &d.envelope.traceparent {
            crate::trace_context::join(&span, parent);
        }
        self.process_in_span(handler, d).instrument(span).await;
    }

    async fn process_in_span(&self, handler: &dyn EventHandler, d: &Delivery) {
        let group = handler.group();
        let event = &d.envelope;
        let wanted = handler
            .event_types()
            .iter()
            .any(|t| *t == "#" || *t == event.event_type);
        if !wanted {
            self.ack(group, d).await;
            return;
        }
        match self.inbox.processed(group, event.id).await {
            Ok(true) => {
                metrics::counter!("portside_consumer_duplicates_total", "group" => group)
                    .increment(1);
                self.ack(group, d).await;
                return;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(group, error = %e, "inbox unreadable; handling anyway (handlers are idempotent)")
            }
        }
        if d.attempts > self.settings.max_attempts {
            self.dead_letter(
                group,
                d,
                &format!("delivered {} times without success", d.attempts),
            )
            .await;
            return;
        }
        let mut pause = self.settings.backoff;
        for attempt in 1..=self.settings.max_attempts {
            let mark = InboxMark {
                group: group.to_owned(),
                event_id: event.id,
                at: self.clock.now(),
            };
            match handler.handle(event, &mark).await {
                Ok(()) => {
                    if let Err(e) = self.inbox.mark_processed(&mark).await {
                        tracing::warn!(group, error = %e, "could not record the event in the inbox");
                    }
                    metrics::counter!("portside_consumer_processed_total", "group" => group)
                        .increment(1);
                    self.ack(group, d).await;
                    return;
                }
                Err(e) if attempt < self.settings.max_attempts => {
                    metrics::counter!("portside_consumer_retried_total", "group" => group)
                        .increment(1);
                    tracing::warn!(group, event = %event.id, event_type = %event.event_type, attempt, error = %e, "handler failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    self.dead_letter(group, d, &e.0).await;
                    return;
                }
            }
        }
    }

    async fn ack(&self, group: &str, d: &Delivery) {
        if let Err(e) = self.source.ack(group, d).await {
            tracing::warn!(group, error = %e, "ack failed; the event will be redelivered and deduplicated");
        }
    }

    async fn dead_letter(&self, group: &'static str, d: &Delivery, error: &str) {
        metrics::counter!("portside_consumer_dead_lettered_total", "group" => group).increment(1);
        tracing::error!(group, event = %d.envelope.id, event_type = %d.envelope.event_type, error, "event dead-lettered");
        if let Err(e) = self.source.dead_letter(group, d, error).await {
            tracing::error!(group, error = %e, "dead-lettering failed; the event will be redelivered");
        }
    }
}
