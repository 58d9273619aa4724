//! Use-case tests of webhook endpoints over the in-memory store.

use std::sync::Arc;
use std::time::Duration;

use portside_domain::webhook::delivery::{DeliveryStatus, DisabledReason, RetrySchedule};
use portside_domain::webhook::{
    EndpointChanges, EndpointId, UrlPolicy, WebhookEndpoint, WebhookMessage, WebhookSecret,
};
use portside_domain::{Actor, Role, UserId};
use portside_events::worker::EventHandler;
use portside_events::{Envelope, InboxMark, Outbox};
use portside_kernel::Clock;
use portside_kernel::PageRequest;
use time::OffsetDateTime;

use crate::AppError;
use crate::testing::fakes::{FakeReceiver, InMemoryStore, ManualClock, SequentialIds};
use crate::webhooks::{
    DeliveryFilter, DeliveryRecord, DispatchSettings, NewEndpoint, WebhookDispatcher,
    WebhookEndpoints, WebhookFanOut, WebhookSettings,
};

fn admin() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(1)),
        role: Role::Admin,
    }
}

fn endpoints(max: u32) -> WebhookEndpoints {
    let store = Arc::new(InMemoryStore::new());
    WebhookEndpoints::new(
        store.clone(),
        store,
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(ManualClock::at(OffsetDateTime::UNIX_EPOCH)),
        Arc::new(SequentialIds::default()),
        WebhookSettings {
            urls: UrlPolicy::default(),
            max_endpoints: max,
            ..WebhookSettings::default()
        },
    )
}

fn new(url: &str, types: Option<Vec<&str>>) -> NewEndpoint {
    NewEndpoint {
        url: url.into(),
        description: Some("shop front".into()),
        event_types: types.map(|t| t.into_iter().map(str::to_owned).collect()),
    }
}

fn refused_field(r: Result<impl std::fmt::Debug, AppError>) -> (String, String) {
    match r {
        Err(AppError::Invalid { field, error }) => (field.to_owned(), error.code().to_owned()),
        Err(AppError::Refused { refusals, .. }) => {
            (refusals[0].field.clone(), refusals[0].code.clone())
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn administrators_register_endpoints_with_a_secret_of_their_own() {
    let e = endpoints(2);
    let first = e
        .create(
            &admin(),
            new(
                "https://hooks.example.com/a",
                Some(vec!["payment.succeeded"]),
            ),
        )
        .await
        .unwrap();
    let secret = e.reveal_secret(&admin(), first.id).await.unwrap();
    assert!(secret.starts_with("whsec_"));
    let second = e
        .create(&admin(), new("https://hooks.example.com/b", None))
        .await
        .unwrap();
    assert_ne!(
        e.reveal_secret(&admin(), second.id).await.unwrap(),
        secret,
        "each endpoint has its own secret"
    );
    // The secret signs as the endpoint's receiver will verify.
    let key = WebhookSecret::parse(&secret).unwrap();
    let message = WebhookMessage {
        id: "msg_1",
        timestamp: 1,
        body: b"{}",
    };
    assert!(message.signature(&[key]).starts_with("v1,"));

    assert_eq!(
        refused_field(
            e.create(&admin(), new("https://hooks.example.com/c", None))
                .await
        ),
        ("url".into(), "webhook_endpoints_limit".into())
    );
    let page = e
        .list(
            &admin(),
            PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next.is_some());
    e.delete(&admin(), first.id).await.unwrap();
    assert!(matches!(
        e.get(&admin(), first.id).await,
        Err(AppError::NotFound("webhook_endpoint"))
    ));
    assert!(matches!(
        e.delete(&admin(), first.id).await,
        Err(AppError::NotFound("webhook_endpoint"))
    ));
}

#[tokio::test]
async fn bad_endpoints_are_refused_by_field_and_customers_are_turned_away() {
    let e = endpoints(10);
    for (endpoint, field, code) in [
        (new("not a url", None), "url", "webhook_url_invalid"),
        (
            new("http://hooks.example.com/x", None),
            "url",
            "webhook_url_invalid",
        ),
        (
            new("https://10.0.0.1/x", None),
            "url",
            "webhook_url_invalid",
        ),
        (
            new(
                "https://hooks.example.com/x",
                Some(vec!["payment.exploded"]),
            ),
            "event_types",
            "event_types_invalid",
        ),
        (
            new("https://hooks.example.com/x", Some(vec![])),
            "event_types",
            "event_types_invalid",
        ),
    ] {
        assert_eq!(
            refused_field(e.create(&admin(), endpoint).await),
            (field.to_owned(), code.to_owned())
        );
    }
    let mut long = new("https://hooks.example.com/x", None);
    long.description = Some("d".repeat(501));
    assert_eq!(
        refused_field(e.create(&admin(), long).await),
        ("description".into(), "text_too_long".into())
    );
    let customer = Actor {
        user_id: UserId(uuid::Uuid::from_u128(2)),
        role: Role::Customer,
    };
    assert!(matches!(
        e.create(&customer, new("https://hooks.example.com/x", None))
            .await,
        Err(AppError::Forbidden(_))
    ));
}

/// The pieces of delivery over one in-memory store, a manual clock and a fake receiver.
struct Rig {
    store: Arc<InMemoryStore>,
    clock: Arc<ManualClock>,
    receiver: Arc<FakeReceiver>,
    endpoints: WebhookEndpoints,
    fan_out: WebhookFanOut,
    dispatcher: Arc<WebhookDispatcher>,
}

fn rig(receiver: FakeReceiver, settings: DispatchSettings) -> Rig {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::at(
        OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
    ));
    let ids = Arc::new(SequentialIds::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let receiver = Arc::new(receiver);
    Rig {
        endpoints: WebhookEndpoints::new(
            store.clone(),
            store.clone(),
            wake.clone(),
            clock.clone(),
            ids.clone(),
            WebhookSettings::default(),
        ),
        fan_out: WebhookFanOut::new(store.clone(), clock.clone(), ids, wake.clone()),
        dispatcher: Arc::new(WebhookDispatcher::new(
            store.clone(),
            receiver.clone(),
            clock.clone(),
            settings,
            wake,
        )),
        store,
        clock,
        receiver,
    }
}

fn quick() -> DispatchSettings {
    DispatchSettings {
        schedule: RetrySchedule::new(vec![Duration::from_secs(5), Duration::from_secs(60)]),
        ..DispatchSettings::default()
    }
}

fn event(event_type: &str, n: u128) -> Envelope {
    Envelope {
        id: uuid::Uuid::from_u128(n),
        event_type: event_type.into(),
        version: 1,
        aggregate_type: "payment".into(),
        aggregate_id: format!("p-{n}"),
        sequence: 1,
        occurred_at: OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
        traceparent: None,
        data: serde_json::json!({"amount": "12.50"}),
    }
}

fn mark(e: &Envelope) -> InboxMark {
    InboxMark {
        group: "webhooks".into(),
        event_id: e.id,
        at: OffsetDateTime::UNIX_EPOCH,
    }
}

impl Rig {
    async fn endpoint(&self, types: Option<Vec<&str>>) -> WebhookEndpoint {
        self.endpoints
            .create(&admin(), new("https://hooks.example.com/a", types))
            .await
            .unwrap()
    }

    async fn handle(&self, e: &Envelope) {
        self.fan_out.handle(e, &mark(e)).await.unwrap();
    }

    /// One pass of the dispatcher, waiting for the requests it started.
    async fn dispatch(&self) -> usize {
        let mut running = tokio::task::JoinSet::new();
        let started = self.dispatcher.start_due(&mut running).await.unwrap();
        while running.join_next().await.is_some() {}
        started
    }

    async fn deliveries(&self, endpoint: &WebhookEndpoint) -> Vec<DeliveryRecord> {
        self.endpoints
            .deliveries(
                &admin(),
                DeliveryFilter {
                    endpoint: Some(endpoint.id),
                    ..DeliveryFilter::default()
                },
                PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await
            .unwrap()
            .items
    }
}

#[tokio::test]
async fn every_wanted_event_is_delivered_once_signed_with_the_events_id() {
    let r = rig(FakeReceiver::default(), quick());
    let picky = r.endpoint(Some(vec!["payment.succeeded"])).await;
    let all = r.endpoint(None).await;
    let paid = event("payment.succeeded", 7);
    let joined = event("user.registered", 8);
    r.handle(&paid).await;
    r.handle(&joined).await;
    r.handle(&paid).await; // redelivered by the bus: enqueues nothing twice
    assert_eq!(r.deliveries(&picky).await.len(), 1);
    assert_eq!(r.deliveries(&all).await.len(), 2);

    assert_eq!(r.dispatch().await, 3);
    let requests = r.receiver.requests();
    assert_eq!(requests.len(), 3);
    for (_, id, _, _, body) in &requests {
        let sent: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(sent["timestamp"], "2024-10-04T00:00:00Z");
        assert_eq!(sent["data"]["amount"], "12.50");
        let event_id = if sent["type"] == "payment.succeeded" {
            paid.id
        } else {
            joined.id
        };
        assert_eq!(id, &event_id.to_string(), "webhook-id is the event's id");
    }
    let signed_by = |endpoint: &WebhookEndpoint| {
        requests
            .iter()
            .filter(|(_, id, timestamp, signature, body)| {
                let message = WebhookMessage {
                    id,
                    timestamp: *timestamp,
                    body: body.as_bytes(),
                };
                signature == &message.signature(std::slice::from_ref(&endpoint.secret))
            })
            .count()
    };
    assert_eq!(
        (signed_by(&picky), signed_by(&all)),
        (1, 2),
        "each signed with its endpoint's secret"
    );
    for d in r.deliveries(&all).await {
        assert_eq!(d.delivery.status, DeliveryStatus::Succeeded);
        assert_eq!(d.attempts.len(), 1);
        assert_eq!(d.attempts[0].status_code, Some(200));
    }
    assert_eq!(r.dispatch().await, 0, "nothing is sent twice");
}

#[tokio::test]
async fn failures_are_retried_on_the_schedule_until_a_2xx() {
    let r = rig(
        FakeReceiver::answering([Some(500), None, Some(204)]),
        quick(),
    );
    let e = r.endpoint(None).await;
    r.handle(&event("payment.succeeded", 1)).await;
    assert_eq!(r.dispatch().await, 1);
    assert_eq!(r.dispatch().await, 0, "not due before its pause");
    let failing = r.endpoints.get(&admin(), e.id).await.unwrap();
    assert!(failing.failing_since.is_some(), "the endpoint is failing");
    r.clock.advance(time::Duration::seconds(6));
    assert_eq!(r.dispatch().await, 1, "due after about 5 s (±10 %)");
    r.clock.advance(time::Duration::seconds(50));
    assert_eq!(r.dispatch().await, 0, "the second pause is about a minute");
    r.clock.advance(time::Duration::seconds(20));
    assert_eq!(r.dispatch().await, 1);
    let d = &r.deliveries(&e).await[0];
    assert_eq!(d.delivery.status, DeliveryStatus::Succeeded);
    let codes: Vec<Option<u16>> = d.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), None, Some(204)]);
    assert_eq!(d.attempts[1].error.as_deref(), Some("connection refused"));
    let ids: std::collections::HashSet<String> = r
        .receiver
        .requests()
        .into_iter()
        .map(|(_, id, ..)| id)
        .collect();
    assert_eq!(ids.len(), 1, "every retry carries the same webhook-id");
    let healthy = r.endpoints.get(&admin(), e.id).await.unwrap();
    assert_eq!(healthy.failing_since, None, "a success ends the failing");
}

#[tokio::test]
async fn a_spent_schedule_fails_the_delivery_and_recover_or_retry_sends_it_again() {
    let r = rig(
        FakeReceiver::answering([Some(500), Some(500), Some(500)]),
        quick(),
    );
    let e = r.endpoint(None).await;
    r.handle(&event("payment.succeeded", 1)).await;
    for _ in 0..3 {
        r.dispatch().await;
        r.clock.advance(time::Duration::minutes(2));
    }
    let failed = &r.deliveries(&e).await[0];
    assert_eq!(failed.delivery.status, DeliveryStatus::Failed);
    assert_eq!(failed.attempts.len(), 3);
    assert_eq!(r.dispatch().await, 0);

    let since = r.clock.now() - time::Duration::hours(1);
    assert_eq!(r.endpoints.recover(&admin(), e.id, since).await.unwrap(), 1);
    assert_eq!(
        r.dispatch().await,
        1,
        "recovered deliveries are sent at once"
    );
    let recovered = &r.deliveries(&e).await[0];
    assert_eq!(recovered.delivery.status, DeliveryStatus::Succeeded);
    assert_eq!(recovered.attempts.len(), 4);

    let again = r
        .endpoints
        .retry(&admin(), recovered.delivery.id)
        .await
        .unwrap();
    assert_eq!(again.delivery.status, DeliveryStatus::Pending);
    assert_eq!(
        r.dispatch().await,
        1,
        "a retry sends even a succeeded delivery again"
    );
    let later = r.clock.now();
    assert_eq!(r.endpoints.recover(&admin(), e.id, later).await.unwrap(), 0);
}

#[tokio::test]
async fn a_410_disables_the_endpoint_with_an_event() {
    let r = rig(FakeReceiver::answering([Some(410)]), quick());
    let e = r.endpoint(None).await;
    r.handle(&event("payment.succeeded", 1)).await;
    r.handle(&event("payment.succeeded", 2)).await;
    let started = r.dispatch().await;
    assert_eq!(started, 2);
    let gone = r.endpoints.get(&admin(), e.id).await.unwrap();
    assert!(!gone.enabled);
    assert_eq!(gone.disabled_reason, Some(DisabledReason::Gone));
    let disabled: Vec<Envelope> = r
        .store
        .unpublished(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "webhook_endpoint.disabled")
        .collect();
    assert_eq!(
        disabled.len(),
        1,
        "one event, however many attempts saw the 410"
    );
    assert_eq!(disabled[0].data["reason"], "gone");
    assert_eq!(disabled[0].data["endpoint_id"], e.id.to_string());
    r.handle(&event("payment.succeeded", 3)).await;
    assert_eq!(
        r.deliveries(&e).await.len(),
        2,
        "a disabled endpoint gets nothing new"
    );

    let enabled = r
        .endpoints
        .update(
            &admin(),
            e.id,
            EndpointChanges {
                enabled: Some(true),
                ..EndpointChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(enabled.disabled_reason, None);
}

#[tokio::test]
async fn an_endpoint_failing_for_longer_than_the_setting_is_disabled() {
    let settings = DispatchSettings {
        schedule: RetrySchedule::new(vec![Duration::from_secs(3600); 10]),
        disable_after: Duration::from_secs(3 * 3600),
        ..DispatchSettings::default()
    };
    let r = rig(FakeReceiver::answering([None; 10]), settings);
    let e = r.endpoint(None).await;
    r.handle(&event("payment.succeeded", 1)).await;
    for _ in 0..3 {
        r.dispatch().await;
        assert!(r.endpoints.get(&admin(), e.id).await.unwrap().enabled);
        r.clock.advance(time::Duration::minutes(70));
    }
    r.dispatch().await;
    let off = r.endpoints.get(&admin(), e.id).await.unwrap();
    assert!(!off.enabled, "failing for 3.5 h against a limit of 3 h");
    assert_eq!(off.disabled_reason, Some(DisabledReason::Failing));
}

#[tokio::test]
async fn each_endpoint_has_its_own_bound_on_requests_in_flight() {
    let settings = DispatchSettings {
        concurrency: 2,
        batch: 4,
        ..quick()
    };
    let r = rig(FakeReceiver::slow(Duration::from_millis(20)), settings);
    let one = r.endpoint(None).await;
    let other = r.endpoint(None).await;
    for n in 1..=5 {
        r.handle(&event("payment.succeeded", n)).await;
    }
    let mut running = tokio::task::JoinSet::new();
    // A batch of four for each endpoint; the fifth waits for the next batch.
    assert_eq!(r.dispatcher.start_due(&mut running).await.unwrap(), 8);
    assert_eq!(
        r.dispatcher.start_due(&mut running).await.unwrap(),
        0,
        "one batch per endpoint at a time"
    );
    while running.join_next().await.is_some() {}
    let most = r
        .receiver
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(most <= 4, "two lanes per endpoint, two endpoints: {most}");
    assert!(most >= 3, "the lanes ran side by side: {most}");
    assert_eq!(r.dispatch().await, 2);
    for e in [&one, &other] {
        assert!(
            r.deliveries(e)
                .await
                .iter()
                .all(|d| d.delivery.status == DeliveryStatus::Succeeded)
        );
    }
}

#[tokio::test]
async fn a_test_event_goes_to_one_endpoint_whatever_it_wants() {
    let r = rig(FakeReceiver::default(), quick());
    let picky = r.endpoint(Some(vec!["order.shipped"])).await;
    let other = r.endpoint(None).await;
    let sent = r.endpoints.send_test(&admin(), picky.id).await.unwrap();
    assert_eq!(sent.delivery.event_type, "webhook_endpoint.test");
    assert_eq!(r.dispatch().await, 1);
    let body: serde_json::Value = serde_json::from_str(&r.receiver.requests()[0].4).unwrap();
    assert_eq!(body["type"], "webhook_endpoint.test");
    assert_eq!(body["data"]["endpoint_id"], picky.id.to_string());
    assert!(r.deliveries(&other).await.is_empty());
    let missing = EndpointId(uuid::Uuid::from_u128(999));
    assert!(matches!(
        r.endpoints.send_test(&admin(), missing).await,
        Err(AppError::NotFound(_))
    ));
    let customer = Actor {
        user_id: UserId(uuid::Uuid::from_u128(2)),
        role: Role::Customer,
    };
    assert!(matches!(
        r.endpoints.send_test(&customer, picky.id).await,
        Err(AppError::Forbidden(_))
    ));
}
