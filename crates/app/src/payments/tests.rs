//! Use-case tests of the payments flow against in-memory fakes of the ports.

use std::sync::Arc;

use portside_domain::{
    Actor, Currency, CustomerId, Failure, Metadata, Money, PaymentId, PaymentMethod, PaymentStatus,
    Role, TransactionKind, TransactionStatus, UserId,
};
use time::{Duration, OffsetDateTime};

use crate::AppError;
use crate::payments::idempotency::{IdempotencyKey, IdempotentRequest};
use crate::payments::{PayCommand, PaymentSettings, Payments, Providers, RefundCommand};
use crate::payments::{PaymentFilter, PaymentRepository, ProviderError, ProviderOutcome};
use crate::testing::fakes::{
    InMemoryStore, ManualClock, Scripted, ScriptedProvider, SequentialIds,
};
use portside_kernel::{IdGenerator, PageRequest};

struct World {
    payments: Payments,
    store: Arc<InMemoryStore>,
    provider: Arc<ScriptedProvider>,
    clock: Arc<ManualClock>,
}

fn world(answers: impl IntoIterator<Item = Scripted>) -> World {
    let store = Arc::new(InMemoryStore::new());
    let provider = Arc::new(ScriptedProvider::answering(answers));
    let clock = Arc::new(ManualClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
    ));
    let payments = Payments::new(
        store.clone(),
        store.clone(),
        Providers::new("mock", provider.clone()),
        clock.clone(),
        Arc::new(SequentialIds::default()),
        PaymentSettings::default(),
    );
    World {
        payments,
        store,
        provider,
        clock,
    }
}

fn usd(text: &str) -> Money {
    Money::parse(text, Currency::from_code("USD").unwrap()).unwrap()
}

fn key(k: &str, fingerprint: &str) -> Option<IdempotentRequest> {
    Some(IdempotentRequest {
        scope: "tests".into(),
        key: IdempotencyKey::parse(k).unwrap(),
        fingerprint: fingerprint.into(),
    })
}

/// The customer every test pays as.
fn me() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(42)),
        role: Role::Customer,
    }
}

fn admin() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(1)),
        role: Role::Admin,
    }
}

fn pay(amount: &str, idempotency: Option<IdempotentRequest>) -> PayCommand {
    PayCommand {
        payment_id: None,
        customer_id: None,
        amount: usd(amount),
        method: PaymentMethod::CreditCard,
        method_token: "tok_visa".into(),
        provider: None,
        description: None,
        metadata: Metadata::default(),
        idempotency,
    }
}

fn refund(
    id: PaymentId,
    amount: Option<&str>,
    idempotency: Option<IdempotentRequest>,
) -> RefundCommand {
    RefundCommand {
        payment_id: id,
        amount: amount.map(str::to_owned),
        currency: None,
        reason: None,
        metadata: Metadata::default(),
        idempotency,
    }
}

fn declined() -> Scripted {
    Ok(ProviderOutcome::Failed(Failure::declined(
        "generic_decline",
        "Your card was declined.",
    )))
}

#[tokio::test]
async fn a_payment_succeeds_with_one_charge() {
    let w = world([]);
    let reply = w.payments.pay(&me(), pay("99.99", None)).await.unwrap();
    assert!(!reply.replayed);
    let p = &reply.outcome.payment;
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(p.amount, usd("99.99"));
    let txns = w.payments.transactions(&me(), p.id).await.unwrap();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].kind, TransactionKind::Charge);
    assert_eq!(txns[0].status, TransactionStatus::Succeeded);
    assert_eq!(w.provider.calls(), vec![txns[0].provider_key.clone()]);
    assert_eq!(w.payments.get(&me(), p.id).await.unwrap(), *p);
}

#[tokio::test]
async fn a_decline_fails_the_payment_with_its_code() {
    let w = world([declined()]);
    let reply = w.payments.pay(&me(), pay("10.00", None)).await.unwrap();
    let p = reply.outcome.payment;
    assert_eq!(p.status, PaymentStatus::Failed);
    assert_eq!(
        p.failure.unwrap().decline_code.as_deref(),
        Some("generic_decline")
    );
    assert_eq!(reply.outcome.transaction.status, TransactionStatus::Failed);
}

#[tokio::test]
async fn amounts_beyond_the_limit_and_unknown_providers_are_refused_before_anything_is_written() {
    let w = world([]);
    let err = w
        .payments
        .pay(&me(), pay("1000000.00", None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppError::Invalid {
                field: "amount",
                ..
            }
        ),
        "{err:?}"
    );
    let mut cmd = pay("1.00", None);
    cmd.provider = Some("nope".into());
    assert_eq!(
        w.payments.pay(&me(), cmd).await.unwrap_err(),
        AppError::UnknownProvider("nope".into())
    );
    let page = w
        .payments
        .list(
            &me(),
            &PaymentFilter::default(),
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert!(w.provider.calls().is_empty());
}

#[tokio::test]
async fn the_same_key_and_request_replays_without_charging_again() {
    let w = world([]);
    let first = w
        .payments
        .pay(&me(), pay("5.00", key("k1", "fp")))
        .await
        .unwrap();
    let again = w
        .payments
        .pay(&me(), pay("5.00", key("k1", "fp")))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.outcome, first.outcome);
    assert_eq!(w.provider.calls().len(), 1);
    let err = w
        .payments
        .pay(&me(), pay("6.00", key("k1", "other-fp")))
        .await
        .unwrap_err();
    assert_eq!(err, AppError::IdempotencyKeyReused);
    let page = w
        .payments
        .list(
            &me(),
            &PaymentFilter::default(),
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "exactly one payment for one key");
}

#[tokio::test]
async fn a_key_held_by_a_running_request_is_refused_with_in_use() {
    let w = world([]);
    // Phase 1 of a first request that has not finished yet.
    let ids = SequentialIds::default();
    let _ = ids.new_id();
    let (mut p, charge) =
        crate::testing::payments::processing_payment("cust_001", usd("5.00"), w.clock_now());
    let claim = crate::payments::idempotency::IdempotencyClaim {
        scope: "tests".into(),
        key: "busy".into(),
        fingerprint: "fp".into(),
        transaction_id: charge.id,
        locked_until: w.clock_now() + Duration::seconds(30),
        created_at: w.clock_now(),
        expires_at: w.clock_now() + Duration::hours(24),
        outcome: None,
    };
    w.store
        .begin_charge(Some(&claim), &mut p, &charge)
        .await
        .unwrap();
    let err = w
        .payments
        .pay(&me(), pay("5.00", key("busy", "fp")))
        .await
        .unwrap_err();
    assert_eq!(err, AppError::IdempotencyKeyInUse);
    // Once its lock lapses (the first request crashed), a retry finishes the same charge.
    w.clock.advance(Duration::seconds(31));
    let reply = w
        .payments
        .pay(&me(), pay("5.00", key("busy", "fp")))
        .await
        .unwrap();
    assert_eq!(reply.outcome.payment.id, p.id());
    assert_eq!(reply.outcome.payment.status, PaymentStatus::Succeeded);
    assert_eq!(w.provider.calls(), vec![charge.provider_key.clone()]);
}

impl World {
    fn clock_now(&self) -> OffsetDateTime {
        use portside_kernel::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn an_unknown_outcome_stays_processing_and_a_retry_resumes_with_the_same_provider_key() {
    let w = world([Err(ProviderError::Timeout)]);
    let first = w
        .payments
        .pay(&me(), pay("7.00", key("t1", "fp")))
        .await
        .unwrap();
    assert_eq!(first.outcome.payment.status, PaymentStatus::Processing);
    assert_eq!(first.outcome.transaction.status, TransactionStatus::Pending);
    let retry = w
        .payments
        .pay(&me(), pay("7.00", key("t1", "fp")))
        .await
        .unwrap();
    assert!(!retry.replayed);
    assert_eq!(retry.outcome.payment.id, first.outcome.payment.id);
    assert_eq!(retry.outcome.payment.status, PaymentStatus::Succeeded);
    let calls = w.provider.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0], calls[1],
        "the provider sees one idempotent request"
    );
    let third = w
        .payments
        .pay(&me(), pay("7.00", key("t1", "fp")))
        .await
        .unwrap();
    assert!(third.replayed);
    assert_eq!(third.outcome, retry.outcome);
}

#[tokio::test]
async fn recovery_finishes_abandoned_charges_after_the_grace_period() {
    let w = world([Err(ProviderError::Unavailable("503".into()))]);
    let first = w.payments.pay(&me(), pay("3.00", None)).await.unwrap();
    assert_eq!(first.outcome.payment.status, PaymentStatus::Processing);
    assert_eq!(
        w.payments.recover_stale().await.unwrap(),
        0,
        "too young to recover"
    );
    w.clock.advance(Duration::seconds(61));
    assert_eq!(w.payments.recover_stale().await.unwrap(), 1);
    let p = w
        .payments
        .get(&me(), first.outcome.payment.id)
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Succeeded);
    assert_eq!(w.payments.recover_stale().await.unwrap(), 0);
    let txns = w.payments.transactions(&me(), p.id).await.unwrap();
    assert_eq!(txns.len(), 1, "one charge, however many attempts");
}

#[tokio::test]
async fn refunds_partial_then_the_rest_then_nothing() {
    let w = world([]);
    let p = w
        .payments
        .pay(&me(), pay("100.00", None))
        .await
        .unwrap()
        .outcome
        .payment;
    let r1 = w
        .payments
        .refund(&me(), refund(p.id, Some("30.00"), None))
        .await
        .unwrap();
    assert_eq!(r1.outcome.payment.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(r1.outcome.transaction.amount, usd("30.00"));
    let r2 = w
        .payments
        .refund(&me(), refund(p.id, Some("20"), None))
        .await
        .unwrap();
    assert_eq!(r2.outcome.payment.refunded_minor, 5000);
    let over = w
        .payments
        .refund(&me(), refund(p.id, Some("50.01"), None))
        .await
        .unwrap_err();
    assert!(
        matches!(over, AppError::Invalid { field: "amount", ref error } if error.code() == "refund_exceeds_refundable"),
        "{over:?}"
    );
    let rest = w
        .payments
        .refund(&me(), refund(p.id, None, None))
        .await
        .unwrap();
    assert_eq!(rest.outcome.transaction.amount, usd("50.00"));
    assert_eq!(rest.outcome.payment.status, PaymentStatus::Refunded);
    let done = w
        .payments
        .refund(&me(), refund(p.id, None, None))
        .await
        .unwrap_err();
    assert!(
        matches!(done, AppError::State(ref e) if e.code() == "payment_not_refundable"),
        "{done:?}"
    );
    let kinds: Vec<_> = w
        .payments
        .transactions(&me(), p.id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            TransactionKind::Charge,
            TransactionKind::Refund,
            TransactionKind::Refund,
            TransactionKind::Refund
        ]
    );
}

#[tokio::test]
async fn refund_refusals() {
    let w = world([declined()]);
    let failed = w
        .payments
        .pay(&me(), pay("10.00", None))
        .await
        .unwrap()
        .outcome
        .payment;
    let err = w
        .payments
        .refund(&me(), refund(failed.id, None, None))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::State(ref e) if e.code() == "payment_not_refundable"));
    let ok = w
        .payments
        .pay(&me(), pay("10.00", None))
        .await
        .unwrap()
        .outcome
        .payment;
    let mut cmd = refund(ok.id, Some("1.00"), None);
    cmd.currency = Some(Currency::from_code("EUR").unwrap());
    assert!(matches!(
        w.payments.refund(&me(), cmd).await.unwrap_err(),
        AppError::Invalid {
            field: "currency",
            ..
        }
    ));
    let err = w
        .payments
        .refund(&me(), refund(ok.id, Some("1.001"), None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::Invalid { field: "amount", ref error } if error.code() == "amount_too_precise")
    );
    let missing = PaymentId(uuid::Uuid::from_u128(999_999));
    assert_eq!(
        w.payments
            .refund(&me(), refund(missing, None, None))
            .await
            .unwrap_err(),
        AppError::NotFound("payment")
    );
    assert_eq!(
        w.payments.get(&me(), ok.id).await.unwrap().refunded_minor,
        0,
        "refusals change nothing"
    );
}

#[tokio::test]
async fn a_refund_replays_even_after_the_payment_is_fully_refunded() {
    let w = world([]);
    let p = w
        .payments
        .pay(&me(), pay("10.00", None))
        .await
        .unwrap()
        .outcome
        .payment;
    let first = w
        .payments
        .refund(&me(), refund(p.id, None, key("r1", "fp")))
        .await
        .unwrap();
    let again = w
        .payments
        .refund(&me(), refund(p.id, None, key("r1", "fp")))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.outcome, first.outcome);
    assert_eq!(w.payments.transactions(&me(), p.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_refused_refund_makes_the_amount_refundable_again() {
    let w = world([
        Ok(ProviderOutcome::Succeeded {
            reference: "ch".into(),
        }),
        Ok(ProviderOutcome::Failed(Failure::new("refund_failed", "no"))),
    ]);
    let p = w
        .payments
        .pay(&me(), pay("10.00", None))
        .await
        .unwrap()
        .outcome
        .payment;
    let r = w
        .payments
        .refund(&me(), refund(p.id, Some("4.00"), None))
        .await
        .unwrap();
    assert_eq!(r.outcome.transaction.status, TransactionStatus::Failed);
    assert_eq!(r.outcome.payment.status, PaymentStatus::Succeeded);
    assert_eq!(r.outcome.payment.refundable().minor(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_never_exceed_the_payment() {
    let w = Arc::new(world([]));
    let p = w
        .payments
        .pay(&me(), pay("10.00", None))
        .await
        .unwrap()
        .outcome
        .payment;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            w.payments
                .refund(&me(), refund(p.id, Some("3.00"), None))
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 3, "three refunds of 3.00 fit in 10.00");
    assert_eq!(
        w.payments.get(&me(), p.id).await.unwrap().refunded_minor,
        900
    );
}

#[tokio::test]
async fn lists_pages_with_a_cursor() {
    let w = world([]);
    for _ in 0..5 {
        w.payments.pay(&me(), pay("1.00", None)).await.unwrap();
    }
    let filter = PaymentFilter::default();
    let first = w
        .payments
        .list(
            &me(),
            &filter,
            PageRequest {
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let second = w
        .payments
        .list(
            &me(),
            &filter,
            PageRequest {
                limit: 2,
                after: first.next,
            },
        )
        .await
        .unwrap();
    let third = w
        .payments
        .list(
            &me(),
            &filter,
            PageRequest {
                limit: 2,
                after: second.next,
            },
        )
        .await
        .unwrap();
    assert_eq!(third.items.len(), 1);
    assert_eq!(third.next, None);
    let mut ids: Vec<_> = [first.items, second.items, third.items]
        .concat()
        .iter()
        .map(|p| p.id)
        .collect();
    let before = ids.clone();
    ids.sort();
    ids.reverse();
    ids.dedup();
    assert_eq!(ids, before, "newest first, no repeats");
}

#[tokio::test]
async fn customers_see_and_touch_only_their_own_payments() {
    let w = world([]);
    let mine = w
        .payments
        .pay(&me(), pay("10.00", None))
        .await
        .unwrap()
        .outcome
        .payment;
    assert_eq!(
        mine.customer_id,
        CustomerId::from(me().user_id),
        "the customer comes from the actor"
    );
    let stranger = Actor {
        user_id: UserId(uuid::Uuid::from_u128(7)),
        role: Role::Customer,
    };
    assert_eq!(
        w.payments.get(&stranger, mine.id).await.unwrap_err(),
        AppError::NotFound("payment")
    );
    assert_eq!(
        w.payments
            .transactions(&stranger, mine.id)
            .await
            .unwrap_err(),
        AppError::NotFound("payment")
    );
    let mut theirs = refund(mine.id, None, None);
    theirs.reason = Some("mine now".into());
    assert_eq!(
        w.payments.refund(&stranger, theirs).await.unwrap_err(),
        AppError::NotFound("payment")
    );
    let all = PaymentFilter::default();
    let page = PageRequest {
        limit: 10,
        after: None,
    };
    assert!(
        w.payments
            .list(&stranger, &all, page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let spying = PaymentFilter {
        customer_id: Some(CustomerId::from(me().user_id)),
        status: None,
    };
    assert!(matches!(
        w.payments.list(&stranger, &spying, page).await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    let mut for_me = pay("1.00", None);
    for_me.customer_id = Some(CustomerId::from(me().user_id));
    assert!(matches!(
        w.payments.pay(&stranger, for_me.clone()).await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert_eq!(
        w.payments.get(&me(), mine.id).await.unwrap().refunded_minor,
        0,
        "nothing was refunded"
    );
    // Administrators see everything and may pay for a customer.
    assert_eq!(w.payments.get(&admin(), mine.id).await.unwrap().id, mine.id);
    let on_behalf = w
        .payments
        .pay(&admin(), for_me)
        .await
        .unwrap()
        .outcome
        .payment;
    assert_eq!(on_behalf.customer_id, CustomerId::from(me().user_id));
    assert_eq!(
        w.payments
            .list(&admin(), &all, page)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}
