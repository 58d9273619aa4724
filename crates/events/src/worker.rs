//! The worker: consumer groups on the event bus. Each handler is one group; each delivery is
//! checked against the inbox (effectively-once on at-least-once delivery), handled with retries
//! and exponential backoff, and dead-lettered with its error when it keeps failing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::Envelope;
use portside_kernel::Clock;

use crate::{Delivery, EventSource, Inbox, InboxMark};

/// A consumer group and the event types it wants (`#` for all): what a bus must know before
/// anything is published, so that no event is published before its consumers are declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// The consumer group (and queue) name.
    pub group: &'static str,
    /// The event types it wants.
    pub event_types: &'static [&'static str],
}

/// Declares every subscription on the bus, retrying while the bus is away; false when `stop`
/// came first.
pub async fn declare(
    source: &dyn EventSource,
    subscriptions: &[Subscription],
    stop: &CancellationToken,
) -> bool {
    for s in subscriptions {
        let mut pause = WorkerSettings::default().backoff;
        loop {
            match source.subscribe(s.group, s.event_types).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(group = s.group, error = %e, "cannot subscribe yet; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return false,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }
    true
}

/// Why a handler failed; retried, then dead-lettered with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// A consumer of events.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// Its consumer group and the event types it wants.
    fn subscription(&self) -> Subscription;
    /// The consumer group (and queue) name.
    fn group(&self) -> &'static str {
        self.subscription().group
    }
    /// The event types it wants; `#` for all.
    fn event_types(&self) -> &'static [&'static str] {
        self.subscription().event_types
    }
    /// Handles one event. `mark` is what the inbox records once it succeeds; a handler whose
    /// effect is a store write passes it to the store so both commit together.
    async fn handle(&self, event: &Envelope, mark: &InboxMark) -> Result<(), HandlerError>;
    /// Handles the fresh events of one delivery batch at once, for a handler that can do that
    /// cheaper than one by one (the search projection commits its index once per batch
    /// instead of once per event). `None`, the default, has the worker call
    /// [`handle`](Self::handle) for each event, in a span joined to the event's trace. The
    /// worker records the inbox marks of the whole batch after success; on failure it falls
    /// back to one event at a time, with retries and dead-lettering, so handling must stay
    /// idempotent.
    async fn handle_batch(
        &self,
        _batch: &[(&Envelope, InboxMark)],
    ) -> Option<Result<(), HandlerError>> {
        None
    }
}

/// The longest pause between tries while the bus is away: a reconnect attempt costs little,
/// and the pause is added to the time to recover after an outage.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// How often the backlog gauges are read from a broker.
pub const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);

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
            batch: 500,
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
        let subscriptions: Vec<Subscription> = self
            .handlers
            .iter()
            .map(|h| Subscription {
                group: h.group(),
                event_types: h.event_types(),
            })
            .collect();
        declare(self.source.as_ref(), &subscriptions, stop).await
    }

    /// Consumes until `stop`; deliveries in hand are finished and acknowledged first.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        if !self.subscribe(&stop).await {
            return;
        }
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn({
            let (me, stop) = (self.clone(), stop.clone());
            async move { me.report_backlog(stop).await }
        }));
        for h in self.handlers.clone() {
            let (me, stop) = (self.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { me.consume(h, stop).await }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Sets `portside_consumer_backlog{group}` and `portside_consumer_oldest_age_seconds{group}`
    /// from the broker every [`BACKLOG_INTERVAL`] (the in-process bus sets them itself). Where
    /// the broker cannot tell the oldest event's age, the age is the time since the group was
    /// last seen with nothing waiting: everything waiting came after that, so it is an upper
    /// bound that keeps growing while a group is stuck.
    async fn report_backlog(&self, stop: CancellationToken) {
        let mut empty_at = std::collections::HashMap::new();
        loop {
            for h in &self.handlers {
                let group = h.group();
                let backlog = match self.source.backlog(group).await {
                    Ok(Some(b)) => b,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(group, error = %e, "cannot read the backlog");
                        continue;
                    }
                };
                let now = self.clock.now();
                let since = *empty_at.entry(group).or_insert(now);
                let oldest = match backlog.oldest {
                    Some(t) => t,
                    None if backlog.waiting > 0 => since,
                    None => {
                        empty_at.insert(group, now);
                        now
                    }
                };
                metrics::gauge!("portside_consumer_backlog", "group" => group)
                    .set(backlog.waiting as f64);
                metrics::gauge!("portside_consumer_oldest_age_seconds", "group" => group)
                    .set((now - oldest).as_seconds_f64().max(0.0));
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(BACKLOG_INTERVAL) => {}
            }
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
                    let rest = self.process_batch(handler.as_ref(), deliveries).await;
                    self.process_each(handler.as_ref(), rest).await;
                }
                Err(e) => {
                    tracing::warn!(group, error = %e, "receive failed; retrying");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
        tracing::info!(group, "consumer stopped");
    }

    /// Handles the first deliveries of a batch together: one inbox query, one
    /// [`EventHandler::handle_batch`], one inbox write, then the acks. Returns what is left
    /// for one-at-a-time handling, each with the attempt it is at: everything, when the
    /// inbox could not be read; the batch's failures (their first attempt spent); redeliveries,
    /// which may be the poison that needs retries and dead-lettering.
    async fn process_batch(
        &self,
        handler: &dyn EventHandler,
        deliveries: Vec<Delivery>,
    ) -> Vec<(Delivery, u32)> {
        let group = handler.group();
        let (fresh, rest): (Vec<Delivery>, Vec<Delivery>) =
            deliveries.into_iter().partition(|d| d.attempts <= 1);
        let at_first = |ds: Vec<Delivery>| ds.into_iter().map(|d| (d, 1)).collect::<Vec<_>>();
        if fresh.len() < 2 {
            return at_first(fresh.into_iter().chain(rest).collect());
        }
        let ids: Vec<_> = fresh.iter().map(|d| d.envelope.id).collect();
        let started = std::time::Instant::now();
        let done = match self.inbox.processed_among(group, &ids).await {
            Ok(done) => done,
            Err(_) => return at_first(fresh.into_iter().chain(rest).collect()),
        };
        let now = self.clock.now();
        let mut todo = Vec::new();
        for d in &fresh {
            let wanted = wants(handler, &d.envelope);
            if wanted && !done.contains(&d.envelope.id) {
                let mark = InboxMark {
                    group: group.to_owned(),
                    event_id: d.envelope.id,
                    at: now,
                };
                todo.push((&d.envelope, mark));
            } else if wanted {
                metrics::counter!("portside_consumer_duplicates_total", "group" => group)
                    .increment(1);
            }
        }
        let looked = stage(group, "inbox_read", started);
        let handled = self.handle_all(handler, &todo).await;
        let handled_at = stage(group, "handle", looked);
        // The inbox records when each event was handled (the batch's end), which is also
        // where its end-to-end latency ends.
        let done_at = self.clock.now();
        let left: Vec<uuid::Uuid> = todo[handled..].iter().map(|(e, _)| e.id).collect();
        let marks: Vec<InboxMark> = todo
            .into_iter()
            .take(handled)
            .map(|(_, mark)| InboxMark {
                at: done_at,
                ..mark
            })
            .collect();
        if let Err(e) = self.inbox.mark_all_processed(&marks).await {
            tracing::warn!(group, error = %e, "could not record the batch in the inbox");
        }
        let marked = stage(group, "inbox_write", handled_at);
        metrics::counter!("portside_consumer_processed_total", "group" => group)
            .increment(marks.len() as u64);
        for mark in &marks {
            if let Some(d) = fresh.iter().find(|d| d.envelope.id == mark.event_id) {
                end_to_end(group, &d.envelope, done_at);
            }
        }
        if !left.is_empty() {
            tracing::warn!(
                group,
                events = left.len(),
                "batch failed; handling the rest one at a time"
            );
        }
        let (again, finished): (Vec<Delivery>, Vec<Delivery>) = fresh
            .into_iter()
            .partition(|d| left.contains(&d.envelope.id));
        for d in &finished {
            self.ack(group, d).await;
        }
        stage(group, "ack", marked);
        // The first failed event's first attempt was the batch's: its retries go on from the
        // second; the events after it were not tried (or not alone) and start afresh.
        again
            .into_iter()
            .enumerate()
            .map(|(n, d)| (d, if n == 0 { 2 } else { 1 }))
            .chain(rest.into_iter().map(|d| (d, 1)))
            .collect()
    }

    /// Handles a batch; returns how many of its events, from the first, were handled (all or
    /// none for a handler's own batch handling).
    async fn handle_all(
        &self,
        handler: &dyn EventHandler,
        todo: &[(&Envelope, InboxMark)],
    ) -> usize {
        use tracing::Instrument;
        let group = handler.group();
        let span = tracing::info_span!("consume_batch", group, events = todo.len());
        if let Some(done) = handler.handle_batch(todo).instrument(span).await {
            return if done.is_ok() { todo.len() } else { 0 };
        }
        for (n, (event, mark)) in todo.iter().enumerate() {
            // A handler that commits the mark with its effect records when it began.
            let mark = InboxMark {
                at: self.clock.now(),
                ..mark.clone()
            };
            let handled = handler
                .handle(event, &mark)
                .instrument(consume_span(group, event))
                .await;
            if handled.is_err() {
                return n;
            }
        }
        todo.len()
    }

    /// Handles one delivery to the end: processed and acknowledged, or dead-lettered.
    pub async fn process(&self, handler: &dyn EventHandler, d: &Delivery) {
        self.process_each(handler, vec![(d.clone(), 1)]).await;
    }

    /// Handles deliveries one at a time, in order, each to the end (processed and
    /// acknowledged, or dead-lettered), starting each at the attempt it comes with. A failed
    /// event is retried after its own pause (the backoff, doubling with each attempt, at most
    /// 5 s), while the others go on: so a handler that fails every event costs a batch the
    /// sum of the pauses once, not once per event, and a broken group neither stalls itself
    /// for hours nor, on the in-process bus, the relay and every other group. An event holds
    /// back the later events of its aggregate until it is handled or dead-lettered: each
    /// aggregate's order is kept.
    async fn process_each(&self, handler: &dyn EventHandler, deliveries: Vec<(Delivery, u32)>) {
        let group = handler.group();
        let pause = |attempt: u32| {
            self.settings
                .backoff
                .saturating_mul(1 << attempt.saturating_sub(1).min(16))
                .min(MAX_PAUSE)
        };
        let start = tokio::time::Instant::now();
        let mut pending = Vec::new();
        for (d, attempt) in deliveries {
            if self.still_to_handle(handler, &d).await {
                // A delivery at its second attempt or later just failed its previous one.
                let due = if attempt > 1 {
                    start + pause(attempt - 1)
                } else {
                    start
                };
                pending.push((d, attempt, due));
            }
        }
        let aggregate = |d: &Delivery| {
            (
                d.envelope.aggregate_type.clone(),
                d.envelope.aggregate_id.clone(),
            )
        };
        // Each pass tries what is due and wakes at the earliest due of the events that lead
        // their aggregate (the others wait behind them).
        let mut wake = Some(start);
        while let Some(at) = wake {
            tokio::time::sleep_until(at).await;
            let now = tokio::time::Instant::now();
            wake = None;
            let mut held: Vec<(String, String)> = Vec::new();
            let mut next = Vec::new();
            for (d, attempt, due) in pending {
                let key = aggregate(&d);
                if held.contains(&key) {
                    next.push((d, attempt, due));
                    continue;
                }
                let (attempt, due) = if due > now {
                    (attempt, due)
                } else {
                    use tracing::Instrument;
                    let span = consume_span(group, &d.envelope);
                    let Err(e) = self.attempt(handler, &d, attempt).instrument(span).await else {
                        continue;
                    };
                    metrics::counter!("portside_consumer_retried_total", "group" => group)
                        .increment(1);
                    tracing::warn!(group, event = %d.envelope.id, event_type = %d.envelope.event_type, attempt, error = %e, "handler failed; retrying");
                    (attempt + 1, tokio::time::Instant::now() + pause(attempt))
                };
                held.push(key);
                wake = Some(wake.map_or(due, |w: tokio::time::Instant| w.min(due)));
                next.push((d, attempt, due));
            }
            pending = next;
        }
    }

    /// False (and the delivery acknowledged or dead-lettered) when there is nothing to do: an
    /// event the group does not want, one its inbox already holds, or one the broker delivered
    /// more often than the attempts allow.
    async fn still_to_handle(&self, handler: &dyn EventHandler, d: &Delivery) -> bool {
        let group = handler.group();
        let event = &d.envelope;
        if !wants(handler, event) {
            self.ack(group, d).await;
            return false;
        }
        match self.inbox.processed(group, event.id).await {
            Ok(true) => {
                metrics::counter!("portside_consumer_duplicates_total", "group" => group)
                    .increment(1);
                self.ack(group, d).await;
                return false;
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
            return false;
        }
        true
    }

    /// One attempt at a delivery: processed, recorded and acknowledged; dead-lettered when it
    /// was the last attempt; or the error, to be retried.
    async fn attempt(
        &self,
        handler: &dyn EventHandler,
        d: &Delivery,
        attempt: u32,
    ) -> Result<(), HandlerError> {
        let group = handler.group();
        let event = &d.envelope;
        if attempt > self.settings.max_attempts {
            self.dead_letter(
                group,
                d,
                "the handler failed on the delivery's only attempt",
            )
            .await;
            return Ok(());
        }
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
                end_to_end(group, event, mark.at);
                self.ack(group, d).await;
                Ok(())
            }
            Err(e) if attempt < self.settings.max_attempts => Err(e),
            Err(e) => {
                self.dead_letter(group, d, &e.0).await;
                Ok(())
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

/// Whether the handler subscribed to the event's type (`#`: every type).
fn wants(handler: &dyn EventHandler, event: &Envelope) -> bool {
    handler
        .event_types()
        .iter()
        .any(|t| *t == "#" || *t == event.event_type)
}

/// The span of handling one event, a child of the trace that produced it.
fn consume_span(group: &'static str, event: &Envelope) -> tracing::Span {
    let span =
        tracing::info_span!("consume", group, event_type = %event.event_type, event_id = %event.id);
    if let Some(parent) = &event.traceparent {
        crate::trace_context::join(&span, parent);
    }
    span
}

/// Records how long an event took from its commit (`occurred_at`, written in the same
/// transaction as the change) to its handling by `group`:
/// `portside_event_latency_seconds{group}`.
fn end_to_end(group: &str, event: &Envelope, handled_at: time::OffsetDateTime) {
    let seconds = (handled_at - event.occurred_at).as_seconds_f64().max(0.0);
    metrics::histogram!("portside_event_latency_seconds", "group" => group.to_owned())
        .record(seconds);
}

/// Records how long a stage of a batch took (`portside_consumer_stage_seconds{group,stage}`:
/// where a group spends its time) and returns when the next one starts.
fn stage(group: &str, name: &'static str, since: std::time::Instant) -> std::time::Instant {
    let now = std::time::Instant::now();
    metrics::histogram!("portside_consumer_stage_seconds", "group" => group.to_owned(), "stage" => name)
        .record((now - since).as_secs_f64());
    now
}
