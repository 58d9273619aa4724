//! The contract of the event bus ports, run by every bus adapter (in-process, RabbitMQ, Redis
//! Streams). Publishing happens in a spawned task: a bus may confirm a publish only once its
//! consumers took the events (the in-process bus does).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Envelope;
use crate::{DeadLetters, Delivery, EventBus, EventSource};

fn event(event_type: &str, aggregate: &str, sequence: i64) -> Envelope {
    Envelope {
        id: Uuid::now_v7(),
        event_type: event_type.into(),
        version: 1,
        aggregate_type: "contract".into(),
        aggregate_id: aggregate.into(),
        sequence,
        occurred_at: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        data: json!({"n": sequence, "text": "ünïcode ✓"}),
    }
}

/// Receives until `n` deliveries came or `patience` passed.
async fn take<B: EventSource>(bus: &B, group: &str, n: usize, patience: Duration) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut got = Vec::new();
    while got.len() < n && tokio::time::Instant::now() < deadline {
        got.extend(
            bus.receive(group, n - got.len(), Duration::from_millis(300))
                .await
                .unwrap(),
        );
    }
    got
}

/// Publish, fan-out to groups, per-aggregate order, ack, dead letters, replay, purge.
/// `groups` must be fresh names for this run.
pub async fn bus<B>(bus: Arc<B>, groups: [&'static str; 2])
where
    B: EventBus + EventSource + DeadLetters + 'static,
{
    let [narrow, wide] = groups;
    bus.subscribe(narrow, &["payment.succeeded"]).await.unwrap();
    bus.subscribe(wide, &["#"]).await.unwrap();
    bus.subscribe(wide, &["#"]).await.unwrap(); // idempotent

    let agg = format!("agg-{}", Uuid::now_v7().simple());
    let events = vec![
        event("payment.succeeded", &agg, 1),
        event("user.registered", "other", 1),
        event("payment.succeeded", &agg, 2),
    ];
    let publishing = tokio::spawn({
        let (bus, events) = (bus.clone(), events.clone());
        async move { bus.publish(&events).await }
    });

    let wide_got = take(&*bus, wide, 3, Duration::from_secs(10)).await;
    assert_eq!(wide_got.len(), 3, "the catch-all group gets every event");
    let received: Vec<_> = wide_got.iter().map(|d| d.envelope.clone()).collect();
    for e in &events {
        assert!(received.contains(e), "delivered unchanged: {e:?}");
    }
    let order: Vec<i64> = received
        .iter()
        .filter(|e| e.aggregate_id == agg)
        .map(|e| e.sequence)
        .collect();
    assert_eq!(order, vec![1, 2], "in order per aggregate");
    assert!(wide_got.iter().all(|d| d.attempts >= 1));
    for d in &wide_got {
        bus.ack(wide, d).await.unwrap();
    }

    // A broker may also hand the narrow group other types (one stream for all); the worker
    // skips those. What matters: both subscribed events arrive, once.
    let mut narrow_ids = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while narrow_ids.len() < 2 && tokio::time::Instant::now() < deadline {
        for d in bus
            .receive(narrow, 10, Duration::from_millis(300))
            .await
            .unwrap()
        {
            if d.envelope.event_type == "payment.succeeded" {
                narrow_ids.push(d.envelope.id);
            }
            bus.ack(narrow, &d).await.unwrap();
        }
    }
    for d in take(&*bus, narrow, 1, Duration::from_millis(600)).await {
        assert_ne!(
            d.envelope.event_type, "payment.succeeded",
            "nothing delivered twice"
        );
        bus.ack(narrow, &d).await.unwrap();
    }
    narrow_ids.sort();
    let mut expected = vec![events[0].id, events[2].id];
    expected.sort();
    assert_eq!(
        narrow_ids, expected,
        "a group gets the types it subscribed to"
    );
    tokio::time::timeout(Duration::from_secs(10), publishing)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        take(&*bus, wide, 1, Duration::from_millis(600))
            .await
            .is_empty(),
        "acknowledged events are gone"
    );

    // Dead letters: listed with their error, replayed, purged.
    let poison = event("payment.refunded", &agg, 3);
    let publishing = tokio::spawn({
        let (bus, poison) = (bus.clone(), poison.clone());
        async move { bus.publish(&[poison]).await }
    });
    let got = take(&*bus, wide, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    bus.dead_letter(wide, &got[0], "handler exploded")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), publishing)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let dead = bus.dead_letters(wide, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].envelope.clone(),
            dead[0].error.as_str(),
            dead[0].group.as_str()
        ),
        (poison.clone(), "handler exploded", wide)
    );
    assert!(
        bus.dead_letters(narrow, 10).await.unwrap().is_empty(),
        "dead letters are per group"
    );
    assert!(!bus.replay(wide, "no-such-id").await.unwrap());
    assert!(bus.replay(wide, &dead[0].id).await.unwrap());
    assert!(
        bus.dead_letters(wide, 10).await.unwrap().is_empty(),
        "a replayed dead letter leaves the list"
    );
    let again = take(&*bus, wide, 1, Duration::from_secs(10)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].envelope, poison, "replay delivers the event again");
    bus.dead_letter(wide, &again[0], "still exploding")
        .await
        .unwrap();
    assert_eq!(bus.purge(wide).await.unwrap(), 1);
    assert!(bus.dead_letters(wide, 10).await.unwrap().is_empty());
    // The narrow group may hold the replayed copy; drain it so that nothing is left unacknowledged.
    for d in take(&*bus, narrow, 2, Duration::from_millis(600)).await {
        bus.ack(narrow, &d).await.unwrap();
    }
}

/// What a broker reports waiting for a group: what was published and not acknowledged, and
/// the commit time of the oldest where the broker can tell (`dated`); nothing once all is
/// acknowledged. `group` must be a fresh name.
pub async fn backlog<B>(bus: Arc<B>, group: &'static str, dated: bool)
where
    B: EventBus + EventSource + 'static,
{
    bus.subscribe(group, &["#"]).await.unwrap();
    let events: Vec<Envelope> = (1..=3).map(|n| event("payment.created", "b", n)).collect();
    bus.publish(&events).await.unwrap();
    let waiting = until(&*bus, group, |b| b.waiting == 3).await;
    assert_eq!(waiting.waiting, 3, "published and not yet received");
    if dated {
        assert_eq!(
            waiting.oldest,
            Some(events[0].occurred_at),
            "the oldest waiting event's commit time"
        );
    }
    let got = take(&*bus, group, 3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3);
    let held = until(&*bus, group, |b| b.waiting == 3).await;
    assert_eq!(held.waiting, 3, "received but not acknowledged still waits");
    assert_eq!(
        held.oldest,
        Some(events[0].occurred_at),
        "the oldest of what is held"
    );
    for d in &got {
        bus.ack(group, d).await.unwrap();
    }
    let done = until(&*bus, group, |b| b.waiting == 0).await;
    assert_eq!(done.waiting, 0, "acknowledged: nothing waits");
    assert_eq!(done.oldest, None);
}

/// The group's backlog once `ready` says so, or after 5 s (the broker counts asynchronously).
async fn until<B: EventSource>(
    bus: &B,
    group: &str,
    ready: impl Fn(&crate::Backlog) -> bool,
) -> crate::Backlog {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let b = bus
            .backlog(group)
            .await
            .unwrap()
            .expect("a broker reports its backlog");
        if ready(&b) || tokio::time::Instant::now() >= deadline {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
