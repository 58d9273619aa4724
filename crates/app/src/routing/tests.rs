//! Routing's use cases, and payments along their routes, against in-memory fakes.

use std::sync::Arc;

use portside_domain::routing::{AttemptOutcome, RouteProvider, RouteRule};
use portside_domain::{
    Actor, Currency, Metadata, Money, PaymentMethod, PaymentStatus, Role, TransactionStatus, UserId,
};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::payments::{
    PayCommand, PaymentSettings, Payments, ProviderError, Providers, RefundCommand,
};
use crate::testing::fakes::{
    InMemoryStore, ManualClock, Scripted, ScriptedProvider, SequentialIds,
};

struct World {
    routing: Arc<Routing>,
    payments: Payments,
    a: Arc<ScriptedProvider>,
    b: Arc<ScriptedProvider>,
    clock: Arc<ManualClock>,
}

fn rule(name: &str, providers: &[(&str, Option<u32>)]) -> RouteRule {
    RouteRule {
        name: name.into(),
        currencies: vec![],
        min_amount: None,
        max_amount: None,
        methods: vec![],
        purposes: vec![],
        providers: providers
            .iter()
            .map(|(n, w)| RouteProvider {
                name: (*n).into(),
                weight: *w,
            })
            .collect(),
    }
}

/// Providers `a` (the default) and `b`, answering these first; the file's rules send every
/// payment to a, then b.
fn world(a: Vec<Scripted>, b: Vec<Scripted>) -> World {
    let store = Arc::new(InMemoryStore::new());
    let a = Arc::new(ScriptedProvider::answering(a));
    let b = Arc::new(ScriptedProvider::answering(b));
    let clock = Arc::new(ManualClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
    ));
    let providers = Providers::new("a", a.clone()).with("b", b.clone());
    let file = vec![rule("a-then-b", &[("a", None), ("b", None)])];
    Routing::check(&file, &providers.names()).unwrap();
    let routing = Arc::new(Routing::new(
        store.clone(),
        file,
        providers.names(),
        "a".into(),
        clock.clone(),
    ));
    let payments = Payments::new(
        store.clone(),
        store,
        providers,
        clock.clone(),
        Arc::new(SequentialIds::default()),
        PaymentSettings::default(),
    )
    .with_router(routing.clone());
    World {
        routing,
        payments,
        a,
        b,
        clock,
    }
}

fn admin() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(1)),
        role: Role::Admin,
    }
}

fn customer() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(42)),
        role: Role::Customer,
    }
}

fn pay(provider: Option<&str>) -> PayCommand {
    PayCommand {
        payment_id: None,
        customer_id: None,
        amount: Money::from_minor(1250, Currency::from_code("USD").unwrap()),
        method: PaymentMethod::Card,
        method_token: "tok_visa".into(),
        provider: provider.map(str::to_owned),
        description: None,
        metadata: Metadata::default(),
        idempotency: None,
    }
}

fn not_sent() -> Scripted {
    Err(ProviderError::NotSent("connection refused".into()))
}

fn outcomes(p: &portside_domain::PaymentState) -> Vec<(String, AttemptOutcome)> {
    p.routing
        .as_ref()
        .unwrap()
        .attempts
        .iter()
        .map(|a| (a.provider.clone(), a.outcome))
        .collect()
}

#[tokio::test]
async fn a_provider_that_was_not_reached_passes_the_charge_to_the_next() {
    let w = world(vec![not_sent()], vec![]);
    let paid = w.payments.pay(&customer(), pay(None)).await.unwrap();
    let p = paid.outcome.payment;
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(p.provider, "b");
    let routing = p.routing.as_ref().unwrap();
    assert_eq!(
        (routing.rule.as_str(), routing.provider.as_str()),
        ("a-then-b", "b")
    );
    assert_eq!(
        outcomes(&p),
        [
            ("a".to_owned(), AttemptOutcome::Unavailable),
            ("b".to_owned(), AttemptOutcome::Succeeded)
        ]
    );
    assert_eq!(
        routing.attempts[0].error.as_deref(),
        Some("connection refused")
    );
    assert_eq!((w.a.calls().len(), w.b.calls().len()), (1, 1));
    let stored = w.payments.get(&customer(), p.id).await.unwrap();
    assert_eq!(
        stored.routing, p.routing,
        "the route is stored with the payment"
    );
}

#[tokio::test]
async fn an_outcome_that_may_have_charged_never_fails_over() {
    for answer in [
        Err(ProviderError::Timeout),
        Err(ProviderError::Unavailable(
            "502 after the request was sent".into(),
        )),
    ] {
        let w = world(vec![answer], vec![]);
        let paid = w.payments.pay(&customer(), pay(None)).await.unwrap();
        let p = paid.outcome.payment;
        assert_eq!(p.status, PaymentStatus::Processing, "left for the recovery");
        assert_eq!(p.provider, "a");
        assert_eq!(paid.outcome.transaction.status, TransactionStatus::Pending);
        assert!(outcomes(&p).is_empty());
        assert_eq!(
            (w.a.calls().len(), w.b.calls().len()),
            (1, 0),
            "b never charged"
        );
    }
}

#[tokio::test]
async fn a_named_provider_never_fails_over() {
    let w = world(vec![not_sent()], vec![]);
    let paid = w.payments.pay(&customer(), pay(Some("a"))).await.unwrap();
    let p = paid.outcome.payment;
    assert_eq!(
        (p.status, p.provider.as_str()),
        (PaymentStatus::Processing, "a")
    );
    assert_eq!(p.routing.as_ref().unwrap().rule, "requested");
    assert_eq!(w.b.calls().len(), 0);
}

#[tokio::test]
async fn an_open_circuit_is_passed_over_before_anything_is_written() {
    let w = world(vec![], vec![]);
    w.a.open_circuit(true);
    let p = w
        .payments
        .pay(&customer(), pay(None))
        .await
        .unwrap()
        .outcome
        .payment;
    assert_eq!(
        (p.status, p.provider.as_str()),
        (PaymentStatus::Succeeded, "b")
    );
    assert_eq!(
        outcomes(&p),
        [
            ("a".to_owned(), AttemptOutcome::CircuitOpen),
            ("b".to_owned(), AttemptOutcome::Succeeded)
        ]
    );
    assert_eq!(w.a.calls().len(), 0);
    w.b.open_circuit(true);
    assert!(matches!(
        w.payments.pay(&customer(), pay(None)).await,
        Err(AppError::ProviderUnavailable { .. })
    ));
    let page = portside_kernel::PageRequest {
        limit: 100,
        after: None,
    };
    let all = w
        .payments
        .list(&admin(), &Default::default(), page)
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1, "the refused payment wrote nothing");
}

#[tokio::test]
async fn when_no_provider_is_reached_the_charge_stays_with_the_last() {
    let w = world(vec![not_sent()], vec![not_sent()]);
    let p = w
        .payments
        .pay(&customer(), pay(None))
        .await
        .unwrap()
        .outcome
        .payment;
    assert_eq!(
        (p.status, p.provider.as_str()),
        (PaymentStatus::Processing, "b")
    );
    assert_eq!(
        outcomes(&p),
        [("a".to_owned(), AttemptOutcome::Unavailable)]
    );
    assert_eq!((w.a.calls().len(), w.b.calls().len()), (1, 1));
}

#[tokio::test]
async fn weights_split_payments_and_a_change_applies_to_the_next_payment() {
    let w = world(vec![], vec![]);
    let table = w.routing.rules(&admin()).await.unwrap();
    assert_eq!((table.version, table.source), (0, RuleSource::File));
    let split = vec![rule("split", &[("a", Some(70)), ("b", Some(30))])];
    let table = w
        .routing
        .replace(&admin(), &IfMatch::version(0), split)
        .await
        .unwrap();
    assert_eq!((table.version, table.source), (1, RuleSource::Api));
    let mut at_b = 0;
    for _ in 0..1000 {
        let p = w
            .payments
            .pay(&customer(), pay(None))
            .await
            .unwrap()
            .outcome
            .payment;
        assert_eq!(p.routing.as_ref().unwrap().rule, "split");
        if p.provider == "b" {
            at_b += 1;
        }
    }
    // 30 % of 1 000 is 300; the standard deviation of the count is about 14.5.
    assert!((240..=360).contains(&at_b), "{at_b} of 1000 went to b");
    w.routing
        .replace(
            &admin(),
            &IfMatch::version(1),
            vec![rule("only-b", &[("b", None)])],
        )
        .await
        .unwrap();
    let p = w
        .payments
        .pay(&customer(), pay(None))
        .await
        .unwrap()
        .outcome
        .payment;
    assert_eq!(
        (p.provider.as_str(), p.routing.unwrap().rule.as_str()),
        ("b", "only-b")
    );
}

#[tokio::test]
async fn refunds_go_to_the_provider_that_charged_whatever_the_rules_say() {
    let w = world(vec![not_sent()], vec![]);
    let p = w
        .payments
        .pay(&customer(), pay(None))
        .await
        .unwrap()
        .outcome
        .payment;
    assert_eq!(p.provider, "b");
    w.routing
        .replace(
            &admin(),
            &IfMatch::Any,
            vec![rule("only-a", &[("a", None)])],
        )
        .await
        .unwrap();
    let refunded = w
        .payments
        .refund(
            &customer(),
            RefundCommand {
                payment_id: p.id,
                amount: None,
                currency: None,
                reason: None,
                metadata: Metadata::default(),
                idempotency: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(refunded.outcome.payment.status, PaymentStatus::Refunded);
    assert_eq!(
        (w.a.calls().len(), w.b.calls().len()),
        (1, 2),
        "charge and refund at b"
    );
}

#[tokio::test]
async fn rules_change_only_for_administrators_at_the_version_they_read() {
    let w = world(vec![], vec![]);
    assert!(matches!(
        w.routing.rules(&customer()).await,
        Err(AppError::Forbidden(_))
    ));
    assert!(matches!(
        w.routing.replace(&customer(), &IfMatch::Any, vec![]).await,
        Err(AppError::Forbidden(_))
    ));
    let bad = vec![
        rule("x", &[("a", Some(60)), ("b", Some(30))]),
        rule("y", &[("stripe", None)]),
    ];
    match w.routing.replace(&admin(), &IfMatch::Any, bad).await {
        Err(AppError::Refused { conflict, refusals }) => {
            assert!(!conflict);
            let fields: Vec<(&str, &str)> = refusals
                .iter()
                .map(|r| (r.field.as_str(), r.code.as_str()))
                .collect();
            assert_eq!(
                fields,
                [
                    ("rules[0].providers", "route_weights_invalid"),
                    ("rules[1].providers[0].name", "route_provider_unknown"),
                    ("rules[1]", "route_unreachable"),
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.routing.rules(&admin()).await.unwrap().version,
        0,
        "nothing changed"
    );
    w.routing
        .replace(
            &admin(),
            &IfMatch::version(0),
            vec![rule("b", &[("b", None)])],
        )
        .await
        .unwrap();
    assert!(matches!(
        w.routing
            .replace(&admin(), &IfMatch::version(0), vec![])
            .await,
        Err(AppError::PreconditionFailed)
    ));
    assert!(matches!(
        w.routing.reset(&admin(), &IfMatch::version(0)).await,
        Err(AppError::PreconditionFailed)
    ));
    let reset = w
        .routing
        .reset(&admin(), &IfMatch::version(1))
        .await
        .unwrap();
    assert_eq!((reset.version, reset.source), (2, RuleSource::File));
    assert_eq!(reset.rules[0].name, "a-then-b", "the file's rules again");
    assert_eq!(
        reset.updated_by.as_deref(),
        Some(admin().user_id.to_string().as_str())
    );
}

fn keyed(key: &str, fingerprint: &str) -> PayCommand {
    PayCommand {
        idempotency: Some(crate::payments::idempotency::IdempotentRequest {
            scope: "tests".into(),
            key: crate::payments::idempotency::IdempotencyKey::parse(key).unwrap(),
            fingerprint: fingerprint.into(),
        }),
        ..pay(None)
    }
}

#[tokio::test]
async fn a_submitted_payment_is_answered_at_once_and_charged_by_the_worker_once() {
    let w = world(vec![not_sent()], vec![]);
    let accepted = w
        .payments
        .submit(&customer(), keyed("async-1", "fp"))
        .await
        .unwrap();
    assert!(accepted.outcome.accepted && !accepted.replayed);
    let p = &accepted.outcome.payment;
    assert_eq!(p.status, PaymentStatus::Pending);
    assert_eq!(
        p.routing.as_ref().unwrap().next,
        ["b"],
        "the route's rest kept for the worker"
    );
    assert_eq!(
        (w.a.calls().len(), w.b.calls().len()),
        (0, 0),
        "nothing charged yet"
    );

    // The worker takes it; the mock is not reached, so the charge moves to b.
    w.payments.charge_submitted(p.id).await.unwrap();
    let charged = w.payments.get(&customer(), p.id).await.unwrap();
    assert_eq!(
        (charged.status, charged.provider.as_str()),
        (PaymentStatus::Succeeded, "b")
    );
    // A redelivery, or the recovery task, finds it taken: nothing more is charged.
    w.payments.charge_submitted(p.id).await.unwrap();
    w.clock.advance(Duration::minutes(5));
    w.payments.recover_stale().await.unwrap();
    assert_eq!((w.a.calls().len(), w.b.calls().len()), (1, 1));

    // The key replays the 202 as given (the current state is at the payment's location); a
    // different request with it is refused.
    let replay = w
        .payments
        .submit(&customer(), keyed("async-1", "fp"))
        .await
        .unwrap();
    assert!(replay.replayed && replay.outcome.accepted);
    assert_eq!(replay.outcome.payment.status, PaymentStatus::Pending);
    assert!(matches!(
        w.payments
            .submit(&customer(), keyed("async-1", "other"))
            .await,
        Err(AppError::IdempotencyKeyReused)
    ));
    assert_eq!((w.a.calls().len(), w.b.calls().len()), (1, 1));
}

#[tokio::test]
async fn the_recovery_task_charges_a_submitted_payment_no_worker_took() {
    let w = world(vec![], vec![]);
    let p = w
        .payments
        .submit(&customer(), pay(None))
        .await
        .unwrap()
        .outcome
        .payment;
    w.payments.recover_stale().await.unwrap();
    assert_eq!(w.a.calls().len(), 0, "not before the grace");
    w.clock.advance(Duration::minutes(5));
    assert_eq!(w.payments.recover_stale().await.unwrap(), 1);
    let charged = w.payments.get(&customer(), p.id).await.unwrap();
    assert_eq!(
        (charged.status, charged.provider.as_str()),
        (PaymentStatus::Succeeded, "a")
    );
    w.payments.charge_submitted(p.id).await.unwrap();
    assert_eq!(
        w.a.calls().len(),
        1,
        "the worker arriving late charges nothing"
    );
}
