//! The contract of the payment store ports. Every adapter (in-memory, SQLite, PostgreSQL) runs
//! this same suite; a store that passes it can back the use cases.

use std::collections::BTreeMap;
use std::sync::Arc;

use portside_domain::{
    Aggregate, AmountLimit, Currency, CustomerId, Failure, Metadata, Money, NewPayment, Payment,
    PaymentId, PaymentMethod, PaymentStatus, Transaction, TransactionId, TransactionStatus,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::payments::idempotency::IdempotencyClaim;
use crate::payments::{
    Begin, IdempotencyStore, NoticeOutcome, Outcome, PaymentFilter, PaymentRepository,
    ProviderEventRecord, ProviderEvents,
};
use portside_events::retention::{Retained, Retention};
use portside_events::{EventHistory, Inbox, InboxMark, Outbox};
use portside_kernel::{PageRequest, StoreError};

/// Everything a payment store must do. Runs all checks in sequence on one store; each check
/// uses its own customer ids and keys, so the store may already hold other data.
pub async fn payment_store<S>(shared: Arc<S>)
where
    S: PaymentRepository
        + IdempotencyStore
        + Outbox
        + Inbox
        + ProviderEvents
        + Retention
        + EventHistory
        + 'static,
{
    let store = &*shared;
    provider_references_and_events(store).await;
    round_trips_every_field(store).await;
    charge_without_key_then_settle(store).await;
    key_is_claimed_once_and_replayed(store).await;
    expired_key_can_be_claimed_again(store).await;
    lock_release_and_relock(store).await;
    settle_is_guarded(store).await;
    refund_checks_version_and_writes_nothing_on_conflict(store).await;
    lists_newest_first_with_filters_and_cursor(store).await;
    stale_pending_finds_only_old_pending(store).await;
    purge_removes_only_expired_keys(store).await;
    outbox_leases_and_orders(store).await;
    retention_keeps_what_is_still_needed(store).await;
    history_keeps_each_event_once_in_order(store).await;
    concurrent_claims_have_one_winner(shared.clone()).await;
    concurrent_refunds_have_one_winner(shared).await;
}

/// What the payments use case stores on a key when a transaction settles.
fn outcome_of(payment: &Payment, transaction: &Transaction) -> Outcome {
    Outcome {
        payment: payment.state().clone(),
        transaction: transaction.clone(),
        accepted: false,
    }
}

/// A fixed instant the suite works from, with sub-second precision to catch truncation.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn unique() -> String {
    Uuid::now_v7().simple().to_string()
}

/// A Processing payment and its pending charge, as the pay use case builds them.
pub fn processing_payment(
    customer: &str,
    amount: Money,
    at: OffsetDateTime,
) -> (Payment, Transaction) {
    let mut metadata = BTreeMap::new();
    metadata.insert("order_id".to_owned(), "ord_1".to_owned());
    metadata.insert("note".to_owned(), "ünïcødé ✓".to_owned());
    let p = Payment::create(
        NewPayment {
            id: PaymentId(Uuid::now_v7()),
            customer_id: CustomerId::parse(customer).unwrap(),
            amount,
            method: PaymentMethod::CreditCard,
            method_token: "tok_visa".into(),
            provider: "mock".into(),
            description: Some("a description".into()),
            metadata: Metadata::new(metadata).unwrap(),
            routing: None,
        },
        AmountLimit {
            max_minor: i64::MAX,
        },
        at,
    )
    .unwrap();
    let charge = Transaction::charge(TransactionId(Uuid::now_v7()), p.id(), amount, at);
    (p, charge)
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::from_code("USD").unwrap())
}

fn claim(key: &str, txn: TransactionId, at: OffsetDateTime) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: "contract".into(),
        key: key.into(),
        fingerprint: format!("fp-{key}"),
        transaction_id: txn,
        locked_until: at + Duration::seconds(30),
        created_at: at,
        expires_at: at + Duration::hours(24),
        outcome: None,
    }
}

async fn succeed<S: PaymentRepository>(
    store: &S,
    mut p: Payment,
    mut charge: Transaction,
    at: OffsetDateTime,
) -> (Payment, Transaction) {
    p.succeed("ch_contract".into(), at).unwrap();
    charge.succeed("ch_contract".into(), at).unwrap();
    let outcome = outcome_of(&p, &charge);
    store.settle(&mut p, &charge, &outcome).await.unwrap();
    (p, charge)
}

/// A payment found by its provider reference; each provider event recorded once.
async fn provider_references_and_events<S: PaymentRepository + ProviderEvents>(store: &S) {
    let at = t0();
    let (mut p, mut charge) = processing_payment(&format!("c_{}", unique()), usd(500), at);
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    let reference = format!("pi_{}", unique());
    p.succeed(reference.clone(), at).unwrap();
    charge.succeed(reference.clone(), at).unwrap();
    let outcome = outcome_of(&p, &charge);
    store.settle(&mut p, &charge, &outcome).await.unwrap();
    let found = store
        .payment_by_reference(&p.state().provider, &reference)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id(), p.id());
    assert!(
        store
            .payment_by_reference("another-provider", &reference)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .payment_by_reference(&p.state().provider, "pi_nothing")
            .await
            .unwrap()
            .is_none()
    );

    let record = ProviderEventRecord {
        provider: "stripe".into(),
        event_id: format!("evt_{}", unique()),
        event_type: "payment_intent.succeeded".into(),
        payment_id: Some(p.id()),
        outcome: NoticeOutcome::Applied,
        received_at: at,
    };
    assert!(
        !store
            .provider_event_seen("stripe", &record.event_id)
            .await
            .unwrap()
    );
    assert!(store.record_provider_event(&record).await.unwrap());
    assert!(
        store
            .provider_event_seen("stripe", &record.event_id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .provider_event_seen("paypal", &record.event_id)
            .await
            .unwrap()
    );
    assert!(
        !store.record_provider_event(&record).await.unwrap(),
        "a second record of one event is refused"
    );
    let unknown = ProviderEventRecord {
        event_id: format!("evt_{}", unique()),
        payment_id: None,
        outcome: NoticeOutcome::UnknownPayment,
        ..record
    };
    assert!(store.record_provider_event(&unknown).await.unwrap());
}

async fn round_trips_every_field<S: PaymentRepository + Outbox>(store: &S) {
    for (code, minor) in [("JPY", 1_234_567), ("KWD", 1_001), ("USD", i64::MAX / 2)] {
        let amount = Money::from_minor(minor, Currency::from_code(code).unwrap());
        let (mut p, charge) = processing_payment(&format!("rt_{}", unique()), amount, t0());
        assert_eq!(
            store.begin_charge(None, &mut p, &charge).await.unwrap(),
            Begin::Started
        );
        let loaded = store
            .payment(p.id())
            .await
            .unwrap()
            .expect("payment stored");
        assert_eq!(
            loaded.state(),
            p.state(),
            "every payment field survives the store"
        );
        assert_eq!(loaded.loaded_version(), Some(p.state().version));
        let txn = store
            .transaction(charge.id)
            .await
            .unwrap()
            .expect("charge stored");
        assert_eq!(txn, charge, "every transaction field survives the store");
    }
    let at = t0();
    let (p, charge) = {
        let (mut p, c) = processing_payment(&format!("rt_{}", unique()), usd(500), at);
        store.begin_charge(None, &mut p, &c).await.unwrap();
        (p, c)
    };
    let mut p = p;
    let mut charge = charge;
    let failure = Failure::declined("insufficient_funds", "Your card has insufficient funds.");
    p.fail(failure.clone(), at).unwrap();
    charge.fail(failure.clone(), at).unwrap();
    let outcome = outcome_of(&p, &charge);
    store.settle(&mut p, &charge, &outcome).await.unwrap();
    let loaded = store.payment(p.id()).await.unwrap().unwrap();
    assert_eq!(loaded.state().failure.as_ref(), Some(&failure));
    assert_eq!(store.transaction(charge.id).await.unwrap().unwrap(), charge);
}

async fn charge_without_key_then_settle<S: PaymentRepository + Outbox>(store: &S) {
    let at = t0();
    let (mut p, charge) = processing_payment(&format!("c_{}", unique()), usd(1999), at);
    assert_eq!(
        store.begin_charge(None, &mut p, &charge).await.unwrap(),
        Begin::Started
    );
    assert!(p.pending_events().is_empty(), "saved events are cleared");
    let loaded = store.payment(p.id()).await.unwrap().unwrap();
    assert_eq!(loaded.status(), PaymentStatus::Processing);
    let (p, _) = succeed(store, loaded, charge.clone(), at + Duration::seconds(1)).await;
    let loaded = store.payment(p.id()).await.unwrap().unwrap();
    assert_eq!(loaded.status(), PaymentStatus::Succeeded);
    assert_eq!(
        loaded.state().provider_reference.as_deref(),
        Some("ch_contract")
    );
    let txns = store.transactions(p.id()).await.unwrap();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].status, TransactionStatus::Succeeded);
    assert_eq!(txns[0].settled_at, Some(at + Duration::seconds(1)));
    let events: Vec<_> = store
        .unpublished(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.aggregate_id == p.id().to_string())
        .collect();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.sequence, e.event_type.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![(1, "payment.created"), (2, "payment.succeeded")]
    );
    assert_eq!(events[1].aggregate_type, "payment");
    assert_eq!(events[1].version, 1);
    assert_eq!(events[1].data["payment"]["status"], "succeeded");
    assert_eq!(events[1].data["payment"]["amount"], "19.99");
    assert_eq!(events[1].data["provider_reference"], "ch_contract");
}

async fn key_is_claimed_once_and_replayed<S: PaymentRepository + IdempotencyStore>(store: &S) {
    let at = t0();
    let key = format!("k_{}", unique());
    let customer = format!("k_{}", unique());
    let (mut first, charge) = processing_payment(&customer, usd(100), at);
    let c1 = claim(&key, charge.id, at);
    assert_eq!(
        store
            .begin_charge(Some(&c1), &mut first, &charge)
            .await
            .unwrap(),
        Begin::Started
    );

    let (mut second, charge2) = processing_payment(&customer, usd(100), at);
    let c2 = claim(&key, charge2.id, at + Duration::seconds(1));
    match store
        .begin_charge(Some(&c2), &mut second, &charge2)
        .await
        .unwrap()
    {
        Begin::Existing(record) => {
            assert_eq!(record.transaction_id, charge.id);
            assert_eq!(record.fingerprint, c1.fingerprint);
            assert_eq!(record.locked_until, Some(c1.locked_until));
            assert_eq!(record.outcome, None);
        }
        Begin::Started => panic!("a live key must not be claimed twice"),
    }
    assert!(
        store.payment(second.id()).await.unwrap().is_none(),
        "nothing written for the loser"
    );
    assert!(store.transaction(charge2.id).await.unwrap().is_none());

    first.succeed("ch_k".into(), at).unwrap();
    let mut settled = charge.clone();
    settled.succeed("ch_k".into(), at).unwrap();
    let outcome = Outcome {
        payment: first.state().clone(),
        transaction: settled.clone(),
        accepted: false,
    };
    store.settle(&mut first, &settled, &outcome).await.unwrap();
    let record = store
        .find("contract", &key, at)
        .await
        .unwrap()
        .expect("key kept");
    assert_eq!(record.outcome, Some(outcome));
    assert_eq!(record.locked_until, None);
    assert!(
        store.find("other-scope", &key, at).await.unwrap().is_none(),
        "keys are scoped"
    );
}

async fn expired_key_can_be_claimed_again<S: PaymentRepository + IdempotencyStore>(store: &S) {
    let at = t0();
    let key = format!("e_{}", unique());
    let (mut p1, c1) = processing_payment(&format!("e_{}", unique()), usd(100), at);
    store
        .begin_charge(Some(&claim(&key, c1.id, at)), &mut p1, &c1)
        .await
        .unwrap();
    let later = at + Duration::hours(25);
    assert!(
        store.find("contract", &key, later).await.unwrap().is_none(),
        "expired keys are not found"
    );
    let (mut p2, c2) = processing_payment(&format!("e_{}", unique()), usd(100), later);
    let again = claim(&key, c2.id, later);
    assert_eq!(
        store
            .begin_charge(Some(&again), &mut p2, &c2)
            .await
            .unwrap(),
        Begin::Started
    );
    let record = store.find("contract", &key, later).await.unwrap().unwrap();
    assert_eq!(record.transaction_id, c2.id);
}

async fn lock_release_and_relock<S: PaymentRepository + IdempotencyStore>(store: &S) {
    let at = t0();
    let key = format!("l_{}", unique());
    let (mut p, c) = processing_payment(&format!("l_{}", unique()), usd(100), at);
    store
        .begin_charge(Some(&claim(&key, c.id, at)), &mut p, &c)
        .await
        .unwrap();
    let soon = at + Duration::seconds(5);
    assert!(
        !store
            .relock("contract", &key, soon, soon + Duration::seconds(30))
            .await
            .unwrap(),
        "held lock"
    );
    store.release("contract", &key).await.unwrap();
    assert_eq!(
        store
            .find("contract", &key, soon)
            .await
            .unwrap()
            .unwrap()
            .locked_until,
        None
    );
    assert!(
        store
            .relock("contract", &key, soon, soon + Duration::seconds(30))
            .await
            .unwrap()
    );
    assert!(
        !store
            .relock("contract", &key, soon, soon + Duration::seconds(30))
            .await
            .unwrap(),
        "one winner"
    );
    let lapsed = soon + Duration::seconds(31);
    assert!(
        store
            .relock("contract", &key, lapsed, lapsed + Duration::seconds(30))
            .await
            .unwrap(),
        "lapsed lock"
    );
    assert!(
        !store
            .relock("contract", "no-such-key", lapsed, lapsed)
            .await
            .unwrap()
    );
}

async fn settle_is_guarded<S: PaymentRepository>(store: &S) {
    let at = t0();
    let (mut p, charge) = processing_payment(&format!("g_{}", unique()), usd(700), at);
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    let stale = p.clone();
    let (_, settled) = succeed(store, p, charge.clone(), at).await;
    // The same transaction again, from a copy that missed the first settlement.
    let mut again = stale.clone();
    again.succeed("ch_2".into(), at).unwrap();
    let outcome = outcome_of(&again, &settled);
    assert_eq!(
        store.settle(&mut again, &settled, &outcome).await,
        Err(StoreError::Conflict)
    );
    let loaded = store.payment(stale.id()).await.unwrap().unwrap();
    assert_eq!(
        loaded.state().provider_reference.as_deref(),
        Some("ch_contract")
    );
}

async fn refund_checks_version_and_writes_nothing_on_conflict<S: PaymentRepository>(store: &S) {
    let at = t0();
    let (mut p, charge) = processing_payment(&format!("r_{}", unique()), usd(1000), at);
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    let (p, _) = succeed(store, p, charge, at).await;
    let fresh = store.payment(p.id()).await.unwrap().unwrap();

    let mut a = fresh.clone();
    let amount = a.begin_refund(Some(usd(300)), at).unwrap();
    let ra = Transaction::refund(
        TransactionId(Uuid::now_v7()),
        a.id(),
        amount,
        Some("dup".into()),
        at,
    )
    .unwrap();
    assert_eq!(
        store.begin_refund(None, &mut a, &ra).await.unwrap(),
        Begin::Started
    );

    let mut b = fresh.clone();
    let amount = b.begin_refund(Some(usd(800)), at).unwrap();
    let rb = Transaction::refund(TransactionId(Uuid::now_v7()), b.id(), amount, None, at).unwrap();
    assert_eq!(
        store.begin_refund(None, &mut b, &rb).await,
        Err(StoreError::Conflict)
    );
    assert!(
        store.transaction(rb.id).await.unwrap().is_none(),
        "the loser wrote nothing"
    );

    let loaded = store.payment(p.id()).await.unwrap().unwrap();
    assert_eq!(loaded.state().refund_pending_minor, 300);
    assert_eq!(loaded.state().refundable().minor(), 700);
    let mut settled = loaded.clone();
    settled.complete_refund(ra.id, ra.amount, at).unwrap();
    let mut done = ra.clone();
    done.succeed("re_1".into(), at).unwrap();
    let outcome = outcome_of(&settled, &done);
    store.settle(&mut settled, &done, &outcome).await.unwrap();
    let loaded = store.payment(p.id()).await.unwrap().unwrap();
    assert_eq!(loaded.status(), PaymentStatus::PartiallyRefunded);
    assert_eq!(loaded.state().refunded_minor, 300);
    assert_eq!(loaded.state().refund_pending_minor, 0);
    let kinds: Vec<_> = store
        .transactions(p.id())
        .await
        .unwrap()
        .iter()
        .map(|t| (t.kind.as_str(), t.status.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![("charge", "succeeded"), ("refund", "succeeded")]
    );
}

async fn lists_newest_first_with_filters_and_cursor<S: PaymentRepository>(store: &S) {
    let at = t0();
    let customer = format!("list_{}", unique());
    let mut ids = Vec::new();
    for i in 0..5 {
        let (mut p, c) = processing_payment(&customer, usd(100 + i), at);
        store.begin_charge(None, &mut p, &c).await.unwrap();
        if i % 2 == 0 {
            succeed(store, p.clone(), c, at).await;
        }
        ids.push(p.id());
    }
    ids.reverse();
    let filter = PaymentFilter {
        customer_id: Some(CustomerId::parse(&customer).unwrap()),
        status: None,
    };
    let all = store
        .payments(
            &filter,
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(Payment::id).collect::<Vec<_>>(),
        ids,
        "newest first"
    );
    let page1 = store
        .payments(
            &filter,
            PageRequest {
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap();
    let page2 = store
        .payments(
            &filter,
            PageRequest {
                limit: 2,
                after: Some(page1[1].id()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page1
            .iter()
            .chain(page2.iter())
            .map(Payment::id)
            .collect::<Vec<_>>(),
        ids[..4].to_vec()
    );
    let succeeded = PaymentFilter {
        status: Some(PaymentStatus::Succeeded),
        ..filter.clone()
    };
    let found = store
        .payments(
            &succeeded,
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|p| p.status() == PaymentStatus::Succeeded));
    let unfiltered = store
        .payments(
            &PaymentFilter::default(),
            PageRequest {
                limit: 3,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(unfiltered.len(), 3);
    assert!(unfiltered.windows(2).all(|w| w[0].id() > w[1].id()));
}

async fn stale_pending_finds_only_old_pending<S: PaymentRepository>(store: &S) {
    let old = t0() - Duration::days(3650);
    let (mut p, c) = processing_payment(&format!("s_{}", unique()), usd(100), old);
    store.begin_charge(None, &mut p, &c).await.unwrap();
    let (mut q, d) = processing_payment(&format!("s_{}", unique()), usd(100), old);
    store.begin_charge(None, &mut q, &d).await.unwrap();
    succeed(store, q, d.clone(), old).await;
    let found = store
        .stale_pending(old + Duration::seconds(1), 10_000)
        .await
        .unwrap();
    assert!(
        found.iter().any(|t| t.id == c.id),
        "old pending charge is found"
    );
    assert!(!found.iter().any(|t| t.id == d.id), "settled charge is not");
    assert!(found.iter().all(
        |t| t.status == TransactionStatus::Pending && t.created_at < old + Duration::seconds(1)
    ));
    let none = store.stale_pending(old, 10_000).await.unwrap();
    assert!(
        !none.iter().any(|t| t.id == c.id),
        "the cutoff is exclusive"
    );
}

async fn purge_removes_only_expired_keys<S: PaymentRepository + IdempotencyStore>(store: &S) {
    let at = t0() + Duration::days(400);
    let (old_key, new_key) = (format!("p_{}", unique()), format!("p_{}", unique()));
    let (mut p, c) = processing_payment(&format!("p_{}", unique()), usd(100), at);
    store
        .begin_charge(Some(&claim(&old_key, c.id, at)), &mut p, &c)
        .await
        .unwrap();
    let later = at + Duration::hours(20);
    let (mut q, d) = processing_payment(&format!("p_{}", unique()), usd(100), later);
    store
        .begin_charge(Some(&claim(&new_key, d.id, later)), &mut q, &d)
        .await
        .unwrap();
    let purge_at = at + Duration::hours(25);
    assert!(store.purge_expired(purge_at).await.unwrap() >= 1);
    assert!(
        store
            .find("contract", &old_key, at)
            .await
            .unwrap()
            .is_none(),
        "expired key deleted"
    );
    assert!(
        store
            .find("contract", &new_key, purge_at)
            .await
            .unwrap()
            .is_some(),
        "live key kept"
    );
    assert!(
        store.payment(p.id()).await.unwrap().is_some(),
        "purging keys never touches payments"
    );
}

/// Relays lease rows, never two relays the same row, never a later event of an aggregate while
/// another relay holds an earlier one; published rows are done; released and lapsed leases
/// come back. Also the inbox.
/// Leases and marks published, at `now`, every row the outbox holds.
async fn publish_all<S: Outbox>(store: &S, now: OffsetDateTime) {
    let later = now + Duration::seconds(30);
    loop {
        let old = store.claim("drain", 1000, now, later).await.unwrap();
        if old.is_empty() {
            break;
        }
        let ids: Vec<_> = old.iter().map(|e| e.id).collect();
        store.mark_published(&ids, now).await.unwrap();
    }
}

async fn outbox_leases_and_orders<S: PaymentRepository + Outbox + Inbox>(store: &S) {
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::seconds(30);
    // Publish whatever earlier checks left, so this one sees only its own rows.
    publish_all(store, now).await;
    assert_eq!(store.lag().await.unwrap().unpublished, 0);

    let (mut x, cx) = processing_payment(&format!("o_{}", unique()), usd(100), now);
    store.begin_charge(None, &mut x, &cx).await.unwrap();
    let (mut y, cy) = processing_payment(&format!("o_{}", unique()), usd(200), now);
    store.begin_charge(None, &mut y, &cy).await.unwrap();
    succeed(store, x.clone(), cx, now).await; // x.2 after y.1
    let lag = store.lag().await.unwrap();
    assert_eq!(lag.unpublished, 3);
    assert!(lag.oldest.is_some());

    let a = store.claim("relay-a", 1, now, later).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].aggregate_id.clone(), a[0].sequence),
        (x.id().to_string(), 1)
    );
    let b = store.claim("relay-b", 10, now, later).await.unwrap();
    let b_keys: Vec<_> = b
        .iter()
        .map(|e| (e.aggregate_id.clone(), e.sequence))
        .collect();
    assert_eq!(
        b_keys,
        vec![(y.id().to_string(), 1)],
        "x.2 waits while relay A holds x.1"
    );
    assert!(
        store
            .claim("relay-c", 10, now, later)
            .await
            .unwrap()
            .is_empty(),
        "nothing is leased twice"
    );

    store.mark_published(&[a[0].id], now).await.unwrap();
    store.release(&[b[0].id]).await.unwrap();
    let c = store.claim("relay-c", 10, now, later).await.unwrap();
    let mut c_keys: Vec<_> = c
        .iter()
        .map(|e| (e.aggregate_id.clone(), e.sequence))
        .collect();
    c_keys.sort();
    let mut expected = vec![(x.id().to_string(), 2), (y.id().to_string(), 1)];
    expected.sort();
    assert_eq!(
        c_keys, expected,
        "released rows and the next in order are claimable"
    );
    let lapsed = store
        .claim(
            "relay-d",
            10,
            later + Duration::seconds(1),
            later + Duration::seconds(60),
        )
        .await
        .unwrap();
    assert_eq!(lapsed.len(), 2, "a crashed relay's lease lapses");
    let ids: Vec<_> = lapsed.iter().map(|e| e.id).collect();
    store.mark_published(&ids, now).await.unwrap();
    assert_eq!(
        store.lag().await.unwrap(),
        portside_events::OutboxLag::default()
    );
    assert!(store.unpublished(10).await.unwrap().is_empty());
    let data = &lapsed.iter().find(|e| e.sequence == 2).unwrap().data;
    assert_eq!(
        data["payment"]["status"], "succeeded",
        "the envelope carries the event's data"
    );

    let event = uuid::Uuid::now_v7();
    let mark = InboxMark {
        group: "contract".into(),
        event_id: event,
        at: now,
    };
    assert!(!store.processed("contract", event).await.unwrap());
    assert!(store.mark_processed(&mark).await.unwrap());
    assert!(
        !store.mark_processed(&mark).await.unwrap(),
        "once per group"
    );
    assert!(store.processed("contract", event).await.unwrap());
    assert!(
        !store.processed("other-group", event).await.unwrap(),
        "groups are independent"
    );
}

/// Retention deletes only what is past its window, a batch at a time, and never an
/// unpublished outbox row, whatever its age.
async fn retention_keeps_what_is_still_needed<S>(store: &S)
where
    S: PaymentRepository + Outbox + Inbox + ProviderEvents + Retention,
{
    let now = OffsetDateTime::now_utc();
    let (mut published, c) = processing_payment(&format!("r_{}", unique()), usd(100), now);
    store.begin_charge(None, &mut published, &c).await.unwrap();
    publish_all(store, now).await;
    let (mut waiting, c) = processing_payment(&format!("r_{}", unique()), usd(100), now);
    store.begin_charge(None, &mut waiting, &c).await.unwrap();

    let purge_all = |table, before| async move {
        let mut total = 0;
        loop {
            let n = store.purge(table, before, 500).await.unwrap();
            total += n;
            if n < 500 {
                return total;
            }
        }
    };
    // Rows of earlier runs may be older; after one full purge nothing before the cutoff is left.
    purge_all(Retained::Outbox, now - Duration::days(1)).await;
    assert_eq!(
        store
            .purge(Retained::Outbox, now - Duration::days(1), 500)
            .await
            .unwrap(),
        0,
        "rows published just now are inside the window"
    );
    assert_eq!(
        store
            .purge(Retained::Outbox, now + Duration::seconds(1), 1)
            .await
            .unwrap(),
        1,
        "one batch deletes at most its size"
    );
    purge_all(Retained::Outbox, now + Duration::days(3650)).await;
    let left = store.unpublished(1000).await.unwrap();
    assert!(
        left.iter()
            .any(|e| e.aggregate_id == waiting.id().to_string()),
        "an unpublished row is never deleted"
    );
    assert!(
        !left
            .iter()
            .any(|e| e.aggregate_id == published.id().to_string()),
        "published rows past the window are"
    );
    publish_all(store, now).await;

    let group = format!("retention-{}", unique());
    let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
    for (event_id, at) in [(old, now - Duration::days(8)), (new, now)] {
        let mark = InboxMark {
            group: group.clone(),
            event_id,
            at,
        };
        assert!(store.mark_processed(&mark).await.unwrap());
    }
    assert!(purge_all(Retained::Inbox, now - Duration::days(7)).await >= 1);
    assert!(!store.processed(&group, old).await.unwrap());
    assert!(
        store.processed(&group, new).await.unwrap(),
        "a mark inside the window stays, so a redelivery is still a duplicate"
    );

    let notice = |event_id: String, received_at| ProviderEventRecord {
        provider: "stripe".into(),
        event_id,
        event_type: "payment_intent.succeeded".into(),
        payment_id: None,
        outcome: NoticeOutcome::UnknownPayment,
        received_at,
    };
    let (old, new) = (format!("evt_{}", unique()), format!("evt_{}", unique()));
    store
        .record_provider_event(&notice(old.clone(), now - Duration::days(8)))
        .await
        .unwrap();
    store
        .record_provider_event(&notice(new.clone(), now))
        .await
        .unwrap();
    assert!(purge_all(Retained::ProviderEvents, now - Duration::days(7)).await >= 1);
    assert!(!store.provider_event_seen("stripe", &old).await.unwrap());
    assert!(store.provider_event_seen("stripe", &new).await.unwrap());
}

/// The event history holds each event once, whatever the redeliveries, reads an aggregate's
/// events in order, and forgets only what is past its window.
async fn history_keeps_each_event_once_in_order<S>(store: &S)
where
    S: PaymentRepository + Outbox + Retention + EventHistory,
{
    let now = OffsetDateTime::now_utc();
    let (mut p, c) = processing_payment(&format!("h_{}", unique()), usd(100), now);
    store.begin_charge(None, &mut p, &c).await.unwrap();
    let (p, _) = succeed(store, p, c, now).await;
    let id = p.id().to_string();
    let mut events: Vec<_> = store
        .unpublished(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.aggregate_id == id)
        .collect();
    assert!(events.len() >= 2, "a created and a succeeded event");
    events.reverse();
    let refs: Vec<_> = events.iter().collect();
    store
        .append(&refs, now - Duration::days(800))
        .await
        .unwrap();
    store.append(&refs, now).await.unwrap(); // a redelivery
    let read = store.of("payment", &id, 100).await.unwrap();
    assert_eq!(read.len(), events.len(), "each event once");
    assert!(
        read.windows(2).all(|w| w[0].sequence < w[1].sequence),
        "in the aggregate's order"
    );
    assert_eq!(read[0].event_type, "payment.created");
    assert_eq!(
        read[0].data,
        events.last().unwrap().data,
        "data as published"
    );
    assert_eq!(store.of("payment", &id, 1).await.unwrap().len(), 1);
    assert!(store.of("order", &id, 100).await.unwrap().is_empty());
    // Recorded 800 days ago (the first append; the redelivery changed nothing): past a 730-day
    // window, inside a 1000-day one.
    while store
        .purge(Retained::EventHistory, now - Duration::days(1000), 500)
        .await
        .unwrap()
        == 500
    {}
    assert_eq!(
        store.of("payment", &id, 100).await.unwrap().len(),
        events.len()
    );
    while store
        .purge(Retained::EventHistory, now - Duration::days(730), 500)
        .await
        .unwrap()
        == 500
    {}
    assert!(store.of("payment", &id, 100).await.unwrap().is_empty());
    publish_all(store, now).await;
}

async fn concurrent_claims_have_one_winner<S: PaymentRepository + IdempotencyStore + 'static>(
    store: Arc<S>,
) {
    let at = t0();
    let key = format!("race_{}", unique());
    let customer = format!("race_{}", unique());
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (store, key, customer) = (store.clone(), key.clone(), customer.clone());
        racers.spawn(async move {
            let (mut p, c) = processing_payment(&customer, usd(100), at);
            let won = store
                .begin_charge(Some(&claim(&key, c.id, at)), &mut p, &c)
                .await;
            (won, c.id)
        });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(joined) = racers.join_next().await {
        match joined.unwrap() {
            (Ok(Begin::Started), id) => winners.push(id),
            (Ok(Begin::Existing(_)), _) => losers += 1,
            (Err(e), _) => panic!("a racing claim must win or see the winner, not fail: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    assert_eq!(losers, 19);
    let filter = PaymentFilter {
        customer_id: Some(CustomerId::parse(&customer).unwrap()),
        status: None,
    };
    let stored = store
        .payments(
            &filter,
            PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "exactly one payment exists");
    let record = store.find("contract", &key, at).await.unwrap().unwrap();
    assert_eq!(record.transaction_id, winners[0]);
}

async fn concurrent_refunds_have_one_winner<S: PaymentRepository + 'static>(store: Arc<S>) {
    let at = t0();
    let (mut p, charge) = processing_payment(&format!("rr_{}", unique()), usd(1000), at);
    store.begin_charge(None, &mut p, &charge).await.unwrap();
    let (p, _) = succeed(&*store, p, charge, at).await;
    let fresh = store.payment(p.id()).await.unwrap().unwrap();
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (store, mut mine) = (store.clone(), fresh.clone());
        racers.spawn(async move {
            let amount = mine.begin_refund(Some(usd(600)), at).unwrap();
            let r = Transaction::refund(TransactionId(Uuid::now_v7()), mine.id(), amount, None, at)
                .unwrap();
            store.begin_refund(None, &mut mine, &r).await
        });
    }
    let mut started = 0;
    while let Some(joined) = racers.join_next().await {
        match joined.unwrap() {
            Ok(Begin::Started) => started += 1,
            Err(StoreError::Conflict) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started, 1, "one writer per payment version");
    let loaded = store.payment(p.id()).await.unwrap().unwrap();
    assert_eq!(loaded.state().refund_pending_minor, 600);
    assert_eq!(store.transactions(p.id()).await.unwrap().len(), 2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::InMemoryStore;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_contract() {
        payment_store(Arc::new(InMemoryStore::new())).await;
    }
}
