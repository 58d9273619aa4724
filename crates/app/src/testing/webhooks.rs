//! The contract of webhook deliveries: one delivery per event and endpoint, leased while it is
//! sent (never to two senders at once), attempts kept with it, an endpoint disabled once with
//! its event, and deliveries going with their endpoint. The in-memory fake, SQLite and
//! PostgreSQL run it. Each check uses endpoints of its own, so the store may hold others.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use portside_domain::webhook::delivery::{
    Attempt, DeliveryId, DeliveryStatus, DisabledReason, WebhookDelivery,
};
use portside_domain::webhook::{EndpointId, UrlPolicy, WebhookEndpoint, WebhookSecret};
use portside_events::Outbox;
use portside_events::retention::{Retained, Retention};
use portside_kernel::PageRequest;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::testing::payments::t0;
use crate::webhooks::{DeliveryFilter, WebhookDeliveryStore, WebhookEndpointStore};

/// Everything a store of deliveries must do.
pub async fn webhook_store<S>(store: Arc<S>)
where
    S: WebhookEndpointStore + WebhookDeliveryStore + Outbox + Retention + 'static,
{
    one_delivery_per_event_and_endpoint(store.clone()).await;
    a_claimed_delivery_is_leased_to_one_sender(store.clone()).await;
    attempts_are_kept_and_deliveries_listed_by_filter(store.clone()).await;
    retry_and_recover_make_deliveries_due(store.clone()).await;
    an_endpoints_health_and_its_disabling(store.clone()).await;
    deliveries_go_with_their_endpoint_and_their_retention(store).await;
}

async fn endpoint<S: WebhookEndpointStore>(store: &S) -> WebhookEndpoint {
    let e = WebhookEndpoint::create(
        EndpointId(Uuid::now_v7()),
        "https://hooks.example.com/contract",
        None,
        None,
        WebhookSecret::from_key([7; 24]),
        UrlPolicy::default(),
        t0(),
    )
    .unwrap();
    store.insert_endpoint(&e, 10_000).await.unwrap();
    e
}

fn delivery(endpoint: &WebhookEndpoint, event: Uuid, at: OffsetDateTime) -> WebhookDelivery {
    WebhookDelivery::new(
        DeliveryId(Uuid::now_v7()),
        endpoint.id,
        event,
        "payment.succeeded",
        format!(r#"{{"type":"payment.succeeded","data":{{"event":"{event}"}}}}"#),
        at,
    )
}

fn attempt(number: u32, status: Option<u16>, at: OffsetDateTime) -> Attempt {
    Attempt {
        number,
        at,
        status_code: status,
        latency: Duration::from_micros(1234),
        response: status.map(|s| format!("answered {s}")),
        error: status.is_none().then(|| "timed out".to_owned()),
    }
}

/// One attempt recorded, as the dispatcher records a batch of one.
async fn record<S: WebhookDeliveryStore + ?Sized>(store: &S, d: &WebhookDelivery, a: &Attempt) {
    store
        .record_attempts(&[(d.clone(), a.clone())])
        .await
        .unwrap();
}

fn all() -> PageRequest<DeliveryId> {
    PageRequest {
        limit: 1000,
        after: None,
    }
}

fn of(endpoint: &WebhookEndpoint) -> DeliveryFilter {
    DeliveryFilter {
        endpoint: Some(endpoint.id),
        ..DeliveryFilter::default()
    }
}

async fn one_delivery_per_event_and_endpoint<S>(store: Arc<S>)
where
    S: WebhookEndpointStore + WebhookDeliveryStore,
{
    let e = endpoint(&*store).await;
    let event = Uuid::now_v7();
    let first = delivery(&e, event, t0());
    store.enqueue(std::slice::from_ref(&first)).await.unwrap();
    // The same event again (a redelivery), under a new delivery id: nothing more.
    store.enqueue(&[delivery(&e, event, t0())]).await.unwrap();
    let found = store.deliveries(&of(&e), all()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].delivery, first, "stored as it was given");
    assert!(found[0].attempts.is_empty());
    assert_eq!(
        store.delivery(first.id).await.unwrap().map(|r| r.delivery),
        Some(first)
    );
    assert_eq!(
        store.delivery(DeliveryId(Uuid::now_v7())).await.unwrap(),
        None
    );
    let enabled: HashSet<EndpointId> = store
        .enabled_endpoints()
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert!(enabled.contains(&e.id));
}

async fn a_claimed_delivery_is_leased_to_one_sender<S>(store: Arc<S>)
where
    S: WebhookEndpointStore + WebhookDeliveryStore + 'static,
{
    let e = endpoint(&*store).await;
    let later = t0() + time::Duration::hours(1);
    let due = |now| {
        let store = store.clone();
        let id = e.id;
        async move {
            store
                .due_endpoints(now)
                .await
                .unwrap()
                .iter()
                .any(|found| found.id == id)
        }
    };
    assert!(!due(t0()).await, "nothing to send yet");
    let deliveries: Vec<WebhookDelivery> = (0..10)
        .map(|_| delivery(&e, Uuid::now_v7(), t0()))
        .collect();
    store.enqueue(&deliveries).await.unwrap();
    assert!(due(t0()).await);
    // Four senders at once, five each at most: every delivery goes to exactly one.
    let claims = (0..4).map(|_| {
        let store = store.clone();
        let id = e.id;
        tokio::spawn(async move { store.claim(id, t0(), later, 5).await.unwrap() })
    });
    let mut claimed = Vec::new();
    for c in claims {
        claimed.extend(c.await.unwrap());
    }
    let ids: HashSet<DeliveryId> = claimed.iter().map(|d| d.id).collect();
    assert_eq!((claimed.len(), ids.len()), (10, 10), "each claimed once");
    assert!(claimed.iter().all(|d| d.next_attempt_at == Some(later)));
    assert!(!due(t0()).await, "leased deliveries are not due");
    assert!(store.claim(e.id, t0(), later, 5).await.unwrap().is_empty());
    // A sender that died: once its lease ends, the deliveries are due again.
    assert!(due(later).await);
    let again = store
        .claim(e.id, later, later + time::Duration::hours(1), 3)
        .await
        .unwrap();
    assert_eq!(again.len(), 3, "the limit holds");
}

async fn attempts_are_kept_and_deliveries_listed_by_filter<S>(store: Arc<S>)
where
    S: WebhookEndpointStore + WebhookDeliveryStore,
{
    let e = endpoint(&*store).await;
    let other = endpoint(&*store).await;
    let event = Uuid::now_v7();
    let mut d = delivery(&e, event, t0());
    let mut d2 = delivery(&other, event, t0());
    store.enqueue(&[d.clone(), d2.clone()]).await.unwrap();
    let first = attempt(1, Some(503), t0());
    d.attempts = 1;
    d.next_attempt_at = Some(t0() + time::Duration::seconds(5));
    d.updated_at = t0();
    record(&*store, &d, &first).await;
    let second = attempt(2, None, t0() + time::Duration::seconds(5));
    d.attempts = 2;
    d.status = DeliveryStatus::Failed;
    d.next_attempt_at = None;
    d.updated_at = second.at;
    record(&*store, &d, &second).await;
    // An attempt recorded twice (a retried write) is kept once.
    record(&*store, &d, &second).await;
    let found = store.delivery(d.id).await.unwrap().unwrap();
    assert_eq!(found.delivery, d);
    assert_eq!(found.attempts, vec![first, second]);

    d2.attempts = 1;
    d2.status = DeliveryStatus::Succeeded;
    d2.next_attempt_at = None;
    record(&*store, &d2, &attempt(1, Some(200), t0())).await;
    let by_event = DeliveryFilter {
        event: Some(event),
        ..DeliveryFilter::default()
    };
    assert_eq!(store.deliveries(&by_event, all()).await.unwrap().len(), 2);
    let failed = DeliveryFilter {
        endpoint: Some(e.id),
        status: Some(DeliveryStatus::Failed),
        ..DeliveryFilter::default()
    };
    let listed = store.deliveries(&failed, all()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].attempts.len(), 2, "a list carries the attempts");
    let succeeded = DeliveryFilter {
        endpoint: Some(e.id),
        status: Some(DeliveryStatus::Succeeded),
        ..DeliveryFilter::default()
    };
    assert!(
        store
            .deliveries(&succeeded, all())
            .await
            .unwrap()
            .is_empty()
    );

    // Pages follow the deliveries' ids.
    let more: Vec<WebhookDelivery> = (0..3).map(|_| delivery(&e, Uuid::now_v7(), t0())).collect();
    store.enqueue(&more).await.unwrap();
    let page = |after| PageRequest { limit: 2, after };
    let one = store.deliveries(&of(&e), page(None)).await.unwrap();
    let two = store
        .deliveries(&of(&e), page(Some(one[1].delivery.id)))
        .await
        .unwrap();
    let ids: Vec<DeliveryId> = one.iter().chain(&two).map(|r| r.delivery.id).collect();
    let mut expected = vec![d.id];
    expected.extend(more.iter().map(|m| m.id));
    assert_eq!(ids, expected);
}

async fn retry_and_recover_make_deliveries_due<S>(store: Arc<S>)
where
    S: WebhookEndpointStore + WebhookDeliveryStore,
{
    let e = endpoint(&*store).await;
    let mut old = delivery(&e, Uuid::now_v7(), t0());
    let mut new = delivery(&e, Uuid::now_v7(), t0() + time::Duration::hours(2));
    let done = delivery(&e, Uuid::now_v7(), t0() + time::Duration::hours(2));
    store
        .enqueue(&[old.clone(), new.clone(), done.clone()])
        .await
        .unwrap();
    for d in [&mut old, &mut new] {
        d.attempts = 8;
        d.status = DeliveryStatus::Failed;
        d.next_attempt_at = None;
        record(&*store, d, &attempt(8, Some(500), t0())).await;
    }
    let now = t0() + time::Duration::hours(3);
    let since = t0() + time::Duration::hours(1);
    assert_eq!(
        store.recover(e.id, since, now).await.unwrap(),
        1,
        "failed since then only"
    );
    let recovered = store.delivery(new.id).await.unwrap().unwrap().delivery;
    assert_eq!(
        (recovered.status, recovered.next_attempt_at),
        (DeliveryStatus::Pending, Some(now))
    );
    let kept = store.delivery(old.id).await.unwrap().unwrap().delivery;
    assert_eq!(kept.status, DeliveryStatus::Failed);
    assert!(store.retry_now(old.id, now).await.unwrap());
    let retried = store.delivery(old.id).await.unwrap().unwrap().delivery;
    assert_eq!(
        (retried.status, retried.attempts),
        (DeliveryStatus::Pending, 8),
        "a retry keeps the count of attempts"
    );
    assert!(
        !store
            .retry_now(DeliveryId(Uuid::now_v7()), now)
            .await
            .unwrap()
    );
    let pending = store.pending().await.unwrap();
    let mine = pending.iter().find(|p| p.endpoint == e.id).unwrap();
    assert_eq!((mine.pending, mine.oldest), (3, t0()));
}

async fn an_endpoints_health_and_its_disabling<S>(store: Arc<S>)
where
    S: WebhookEndpointStore + WebhookDeliveryStore + Outbox,
{
    let e = endpoint(&*store).await;
    let later = t0() + time::Duration::minutes(5);
    assert_eq!(store.endpoint_failed(e.id, t0()).await.unwrap(), Some(t0()));
    assert_eq!(
        store.endpoint_failed(e.id, later).await.unwrap(),
        Some(t0()),
        "failing since the first failure"
    );
    store.endpoint_succeeded(e.id).await.unwrap();
    assert_eq!(
        store.endpoint(e.id).await.unwrap().unwrap().failing_since,
        None
    );
    assert_eq!(
        store.endpoint_failed(e.id, later).await.unwrap(),
        Some(later)
    );

    assert!(
        store
            .disable_endpoint(e.id, DisabledReason::Failing, later)
            .await
            .unwrap()
    );
    assert!(
        !store
            .disable_endpoint(e.id, DisabledReason::Gone, later)
            .await
            .unwrap(),
        "disabled once"
    );
    let off = store.endpoint(e.id).await.unwrap().unwrap();
    assert!(!off.enabled);
    assert_eq!(off.disabled_reason, Some(DisabledReason::Failing));
    assert_eq!(off.failing_since, None);
    assert!(
        !store
            .enabled_endpoints()
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == e.id)
    );
    let events: Vec<_> = store
        .unpublished(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|ev| ev.aggregate_id == e.id.to_string())
        .collect();
    assert_eq!(events.len(), 1, "one event");
    assert_eq!(events[0].event_type, "webhook_endpoint.disabled");
    assert_eq!(events[0].sequence, 1);
    assert_eq!(events[0].data["reason"], "failing");
    assert_eq!(events[0].data["url"], e.url);
    let d = delivery(&e, Uuid::now_v7(), t0());
    store.enqueue(std::slice::from_ref(&d)).await.unwrap();
    assert!(
        !store
            .due_endpoints(later)
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == e.id),
        "a disabled endpoint's deliveries wait"
    );
}

async fn deliveries_go_with_their_endpoint_and_their_retention<S>(store: Arc<S>)
where
    S: WebhookEndpointStore + WebhookDeliveryStore + Retention,
{
    let e = endpoint(&*store).await;
    let d = delivery(&e, Uuid::now_v7(), t0());
    store.enqueue(std::slice::from_ref(&d)).await.unwrap();
    record(&*store, &d, &attempt(1, Some(500), t0())).await;
    assert!(store.delete_endpoint(e.id).await.unwrap());
    assert_eq!(
        store.delivery(d.id).await.unwrap(),
        None,
        "gone with its endpoint"
    );

    let kept = endpoint(&*store).await;
    let ancient = delivery(&kept, Uuid::now_v7(), t0() - time::Duration::days(400));
    let recent = delivery(&kept, Uuid::now_v7(), t0());
    store
        .enqueue(&[ancient.clone(), recent.clone()])
        .await
        .unwrap();
    record(
        &*store,
        &ancient,
        &attempt(1, Some(200), ancient.created_at),
    )
    .await;
    let mut purged = 0;
    loop {
        let n = store
            .purge(
                Retained::WebhookDeliveries,
                t0() - time::Duration::days(30),
                500,
            )
            .await
            .unwrap();
        purged += n;
        if n < 500 {
            break;
        }
    }
    assert!(purged >= 1);
    assert_eq!(store.delivery(ancient.id).await.unwrap(), None);
    assert!(store.delivery(recent.id).await.unwrap().is_some());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::InMemoryStore;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_contract() {
        webhook_store(Arc::new(InMemoryStore::new())).await;
    }
}
