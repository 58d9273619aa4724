//! The relay and the worker against fakes: order, marking, outages, inbox, retries and
//! dead letters.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use portside_domain::{Currency, Money};
use time::OffsetDateTime;

use crate::payments::PaymentRepository;
use crate::testing::fakes::{InMemoryStore, ManualClock, RecordingBus};
use crate::testing::payments::processing_payment;
use portside_events::Envelope;
use portside_events::relay::{Relay, RelaySettings};
use portside_events::worker::{EventHandler, HandlerError, Subscription, Worker, WorkerSettings};
use portside_events::{BusError, Delivery, EventSource, Inbox, InboxMark, Outbox};

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::from_code("USD").unwrap())
}

async fn store_with_events(n: usize) -> Arc<InMemoryStore> {
    let store = Arc::new(InMemoryStore::new());
    for i in 0..n {
        let (mut p, c) =
            processing_payment(&format!("relay{i}"), usd(100), OffsetDateTime::now_utc());
        store.begin_charge(None, &mut p, &c).await.unwrap();
    }
    store
}

fn relay(store: Arc<InMemoryStore>, bus: Arc<RecordingBus>, batch: u32) -> Relay {
    Relay::new(
        store,
        bus,
        Arc::new(ManualClock::at(OffsetDateTime::now_utc())),
        "test-relay".into(),
        RelaySettings {
            batch,
            ..RelaySettings::default()
        },
    )
}

#[tokio::test]
async fn publishes_everything_once_and_marks_it() {
    let store = store_with_events(5).await;
    let bus = Arc::new(RecordingBus::default());
    let r = relay(store.clone(), bus.clone(), 2);
    assert_eq!(r.pass().await.unwrap(), 2);
    assert_eq!(r.pass().await.unwrap(), 2);
    assert_eq!(r.pass().await.unwrap(), 1);
    assert_eq!(r.pass().await.unwrap(), 0);
    let published = bus.published();
    assert_eq!(published.len(), 5);
    let mut ids: Vec<_> = published.iter().map(|e| e.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "none twice");
    assert_eq!(r.lag().await.unwrap().unpublished, 0);
}

#[tokio::test]
async fn a_bus_outage_keeps_events_in_the_outbox() {
    let store = store_with_events(3).await;
    let bus = Arc::new(RecordingBus::default());
    let r = relay(store.clone(), bus.clone(), 10);
    bus.fail(true);
    assert!(r.pass().await.is_err());
    assert_eq!(r.lag().await.unwrap().unpublished, 3, "nothing lost");
    assert!(
        r.pass().await.is_err(),
        "released rows are retried at once, not after the lease"
    );
    bus.fail(false);
    assert_eq!(r.pass().await.unwrap(), 3);
    assert_eq!(bus.published().len(), 3, "nothing invented");
}

#[tokio::test]
async fn the_run_loop_catches_up_after_an_outage_and_stops_on_request() {
    let store = store_with_events(4).await;
    let bus = Arc::new(RecordingBus::default());
    bus.fail(true);
    let r = Arc::new(relay(store.clone(), bus.clone(), 10));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn({
        let (r, stop) = (r.clone(), stop.clone());
        async move { r.run(stop).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bus.published().is_empty());
    bus.fail(false);
    for _ in 0..100 {
        if bus.published().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(bus.published().len(), 4);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

/// A source fed by the test, recording acks and dead letters.
#[derive(Default)]
struct FakeSource {
    queue: Mutex<VecDeque<Delivery>>,
    acked: Mutex<Vec<String>>,
    dead: Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl EventSource for FakeSource {
    async fn subscribe(&self, _: &str, _: &[&str]) -> Result<(), BusError> {
        Ok(())
    }
    async fn receive(
        &self,
        _: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let batch: Vec<_> = {
            let mut q = self.queue.lock().unwrap();
            let n = q.len().min(max);
            q.drain(..n).collect()
        };
        if batch.is_empty() {
            tokio::time::sleep(wait).await;
        }
        Ok(batch)
    }
    async fn ack(&self, _: &str, d: &Delivery) -> Result<(), BusError> {
        self.acked.lock().unwrap().push(d.tag.clone());
        Ok(())
    }
    async fn dead_letter(&self, _: &str, d: &Delivery, error: &str) -> Result<(), BusError> {
        self.dead
            .lock()
            .unwrap()
            .push((d.tag.clone(), error.to_owned()));
        self.acked.lock().unwrap().push(d.tag.clone());
        Ok(())
    }
}

/// Counts what it handles; fails always for events of aggregate "poison".
#[derive(Default)]
struct Counting {
    handled: Mutex<Vec<uuid::Uuid>>,
    attempts: Mutex<u32>,
}

#[async_trait]
impl EventHandler for Counting {
    fn subscription(&self) -> Subscription {
        Subscription {
            group: "counting",
            event_types: &["payment.created"],
        }
    }
    async fn handle(&self, event: &Envelope, _: &InboxMark) -> Result<(), HandlerError> {
        *self.attempts.lock().unwrap() += 1;
        if event.aggregate_id == "poison" {
            return Err(HandlerError("cannot digest this".into()));
        }
        self.handled.lock().unwrap().push(event.id);
        Ok(())
    }
}

fn delivery(event: &Envelope, tag: &str, attempts: u32) -> Delivery {
    Delivery {
        envelope: event.clone(),
        attempts,
        tag: tag.into(),
    }
}

#[tokio::test]
async fn the_worker_deduplicates_retries_and_dead_letters() {
    let store = store_with_events(2).await;
    let events = store.unpublished(10).await.unwrap();
    let mut poison = events[0].clone();
    poison.id = uuid::Uuid::now_v7();
    poison.aggregate_id = "poison".into();
    let mut other_type = events[1].clone();
    other_type.id = uuid::Uuid::now_v7();
    other_type.event_type = "payment.refunded".into();

    let source = Arc::new(FakeSource::default());
    source.queue.lock().unwrap().extend([
        delivery(&events[0], "t1", 1),
        delivery(&events[0], "t1-again", 2),
        delivery(&poison, "t-poison", 1),
        delivery(&events[1], "t2", 1),
        delivery(&other_type, "t-other", 1),
        delivery(&events[1], "t2-tired", 9),
    ]);
    let handler = Arc::new(Counting::default());
    let worker = Worker::new(
        source.clone(),
        store.clone(),
        Arc::new(ManualClock::at(OffsetDateTime::now_utc())),
        vec![handler.clone()],
        WorkerSettings {
            max_attempts: 3,
            backoff: Duration::from_millis(1),
            ..WorkerSettings::default()
        },
    );
    let queued: Vec<_> = source.queue.lock().unwrap().drain(..).collect();
    for d in queued {
        worker.process(handler.as_ref(), &d).await;
    }
    assert_eq!(
        *handler.handled.lock().unwrap(),
        vec![events[0].id, events[1].id],
        "each event handled once"
    );
    assert_eq!(
        *handler.attempts.lock().unwrap(),
        2 + 3,
        "two successes and three tries of the poison"
    );
    let dead = source.dead.lock().unwrap().clone();
    assert_eq!(
        dead,
        vec![("t-poison".to_owned(), "cannot digest this".to_owned())]
    );
    assert_eq!(
        source.acked.lock().unwrap().len(),
        6,
        "every delivery is acknowledged in the end"
    );
    assert!(store.processed("counting", events[0].id).await.unwrap());
    assert!(!store.processed("counting", poison.id).await.unwrap());
}
