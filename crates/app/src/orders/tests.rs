//! Use-case tests of orders against in-memory fakes, including payment and confirmation.

use portside_kernel::PageRequest;

use std::sync::Arc;

use portside_domain::{
    Actor, Currency, CustomerId, Failure, Money, OrderState, OrderStatus, PaymentId, PaymentMethod,
    PaymentStatus, Prices, Product, ProductDetails, RefundStatus, Role, Sku, Stock,
    TransactionKind, TransactionStatus, TransitionCause, UserId,
};
use time::{Duration, OffsetDateTime};

use crate::AppError;
use crate::catalog::CatalogRepository;
use crate::orders::OrderFilter;
use crate::orders::{CancellationRefunds, OrderConfirmation};
use crate::orders::{IfMatch, LineRequest, Orders, PayOrder, PlaceOrder};
use crate::payments::PaymentRepository;
use crate::payments::ProviderOutcome;
use crate::payments::idempotency::{IdempotencyKey, IdempotentRequest};
use crate::payments::{PaymentSettings, Payments, Providers};
use crate::testing::fakes::{InMemoryStore, ManualClock, ScriptedProvider, SequentialIds};
use portside_events::worker::EventHandler;
use portside_events::{InboxMark, Outbox};

struct World {
    orders: Arc<Orders>,
    payments: Arc<Payments>,
    store: Arc<InMemoryStore>,
    clock: Arc<ManualClock>,
}

fn world(answers: Vec<Result<ProviderOutcome, crate::payments::ProviderError>>) -> World {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
    ));
    let ids = Arc::new(SequentialIds::default());
    let payments = Arc::new(Payments::new(
        store.clone(),
        store.clone(),
        Providers::new("mock", Arc::new(ScriptedProvider::answering(answers))),
        clock.clone(),
        ids.clone(),
        PaymentSettings::default(),
    ));
    World {
        orders: Arc::new(Orders::new(
            store.clone(),
            store.clone(),
            payments.clone(),
            clock.clone(),
            ids,
            usd(),
        )),
        payments,
        store,
        clock,
    }
}

/// The world with a product `p-<price>` at each price, and `kite` with 3 in stock at 10.00.
async fn stocked(answers: Vec<Result<ProviderOutcome, crate::payments::ProviderError>>) -> World {
    let w = world(answers);
    let now = OffsetDateTime::UNIX_EPOCH;
    for price in ["1.00", "2.50", "3.50", "4.00", "5.00", "9.00"] {
        let mut p = product(&format!("p-{price}"), price);
        w.store.insert_product(&mut p, None).await.unwrap();
    }
    let mut kite = product("kite", "10.00");
    let mut stock = Stock::track(sku("kite"), 3, None, "count".into(), now).unwrap();
    w.store
        .insert_product(&mut kite, Some(&mut stock))
        .await
        .unwrap();
    w
}

fn product(code: &str, price: &str) -> Product {
    let prices = Prices::new([Money::parse(price, usd()).unwrap()]).unwrap();
    let details = ProductDetails::new(&format!("Product {code}"), "", prices).unwrap();
    Product::create(sku(code), details, OffsetDateTime::UNIX_EPOCH)
}

fn sku(code: &str) -> Sku {
    Sku::parse(code).unwrap()
}

fn customer(n: u128) -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(1000 + n)),
        role: Role::Customer,
    }
}

fn admin() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(1)),
        role: Role::Admin,
    }
}

fn usd() -> Currency {
    Currency::from_code("USD").unwrap()
}

/// A line of the product priced `price` (see [`stocked`]).
fn line(qty: u32, price: &str) -> LineRequest {
    LineRequest {
        sku: sku(&format!("p-{price}")),
        quantity: qty,
        expected_price: None,
        price_override: None,
    }
}

fn place(lines: Vec<LineRequest>) -> PlaceOrder {
    PlaceOrder {
        customer_id: None,
        currency: usd(),
        lines,
        idempotency: None,
    }
}

fn pay(key: &str, me: &Actor) -> PayOrder {
    PayOrder {
        method: PaymentMethod::Card,
        method_token: "tok_visa".into(),
        provider: None,
        idempotency: IdempotentRequest {
            scope: me.user_id.to_string(),
            key: IdempotencyKey::parse(key).unwrap(),
            fingerprint: format!("fp-{key}"),
        },
    }
}

/// Delivers the newest payment.succeeded event to the order confirmation handler.
async fn deliver_success(w: &World) -> Result<(), portside_events::worker::HandlerError> {
    let event = w
        .store
        .unpublished(10_000)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .find(|e| e.event_type == "payment.succeeded")
        .unwrap();
    let mark = InboxMark {
        group: "orders".into(),
        event_id: event.id,
        at: OffsetDateTime::UNIX_EPOCH,
    };
    OrderConfirmation::new(w.orders.clone())
        .handle(&event, &mark)
        .await
}

#[tokio::test]
async fn an_order_is_placed_with_a_computed_total_for_its_customer() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let o = w
        .orders
        .place(&me, place(vec![line(2, "3.50"), line(1, "1.00")]))
        .await
        .unwrap();
    assert_eq!(
        (o.total.to_decimal_string().as_str(), o.status, o.version),
        ("8.00", OrderStatus::Pending, 1)
    );
    assert_eq!(o.customer_id, CustomerId::from(me.user_id));
    let mut theirs = place(vec![line(1, "1.00")]);
    theirs.customer_id = Some(CustomerId::from(customer(2).user_id));
    assert!(matches!(
        w.orders.place(&me, theirs.clone()).await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert_eq!(
        w.orders.place(&admin(), theirs).await.unwrap().customer_id,
        CustomerId::from(customer(2).user_id)
    );
    assert_eq!(
        w.orders.get(&customer(2), o.id).await.unwrap_err(),
        AppError::NotFound("order")
    );
    let mine = w
        .orders
        .list(
            &me,
            OrderFilter::default(),
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 1, "customers list their own orders");
    assert_eq!(
        w.orders
            .list(
                &admin(),
                OrderFilter::default(),
                PageRequest {
                    limit: 10,
                    after: None
                }
            )
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn stale_versions_are_refused_and_concurrent_updates_have_one_winner() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let o = w
        .orders
        .place(&me, place(vec![line(1, "1.00")]))
        .await
        .unwrap();
    let first = w
        .orders
        .replace_items(&me, o.id, vec![line(2, "1.00")], IfMatch::version(1))
        .await
        .unwrap();
    assert_eq!(
        (first.version, first.total.to_decimal_string().as_str()),
        (2, "2.00")
    );
    let second = w
        .orders
        .replace_items(&me, o.id, vec![line(3, "1.00")], IfMatch::version(1))
        .await
        .unwrap_err();
    assert_eq!(
        second,
        AppError::PreconditionFailed,
        "the loser of two writers with If-Match: 1"
    );
    assert_eq!(
        w.orders
            .get(&me, o.id)
            .await
            .unwrap()
            .total
            .to_decimal_string(),
        "2.00"
    );
    assert_eq!(
        w.orders
            .cancel(&me, o.id, IfMatch::version(7))
            .await
            .unwrap_err(),
        AppError::PreconditionFailed
    );
}

#[tokio::test]
async fn shipping_is_for_admins_and_only_after_payment() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let o = w
        .orders
        .place(&me, place(vec![line(1, "5.00")]))
        .await
        .unwrap();
    assert!(matches!(
        w.orders.ship(&me, o.id, IfMatch::Any).await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert!(
        matches!(w.orders.ship(&admin(), o.id, IfMatch::Any).await.unwrap_err(), AppError::State(ref e) if e.code() == "invalid_state_transition")
    );
    w.orders
        .pay(&me, o.id, pay("k1", &me), IfMatch::Any)
        .await
        .unwrap();
    deliver_success(&w).await.unwrap();
    assert_eq!(
        w.orders.get(&me, o.id).await.unwrap().status,
        OrderStatus::Confirmed
    );
    assert_eq!(
        w.orders
            .ship(&admin(), o.id, IfMatch::Any)
            .await
            .unwrap()
            .status,
        OrderStatus::Shipped
    );
    let late = w.orders.cancel(&me, o.id, IfMatch::Any).await.unwrap_err();
    assert!(
        matches!(late, AppError::State(ref e) if e.code() == "order_shipped" && e.is_state_conflict()),
        "no cancelling once shipped"
    );
}

/// Delivers every event recorded so far that the `order-refunds` group wants, oldest first
/// (again, for those delivered before: a redelivery).
async fn run_refund_saga(w: &World) {
    let saga = CancellationRefunds::new(w.orders.clone());
    for event in w.store.unpublished(10_000).await.unwrap() {
        if CancellationRefunds::SUBSCRIPTION
            .event_types
            .contains(&event.event_type.as_str())
        {
            let mark = InboxMark {
                group: "order-refunds".into(),
                event_id: event.id,
                at: OffsetDateTime::UNIX_EPOCH,
            };
            saga.handle(&event, &mark).await.unwrap();
        }
    }
}

/// The refund transactions of a payment: (status, minor units).
async fn refunds_of(w: &World, payment: PaymentId) -> Vec<(TransactionStatus, i64)> {
    w.store
        .transactions(payment)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.kind == TransactionKind::Refund)
        .map(|t| (t.status, t.amount.minor()))
        .collect()
}

/// An order of one product at `price`, paid with the key `k1` (its answer as the provider's
/// script says).
async fn placed_and_paid(
    w: &World,
    me: &Actor,
    price: &str,
) -> (OrderState, crate::payments::Reply) {
    let o = w
        .orders
        .place(me, place(vec![line(1, price)]))
        .await
        .unwrap();
    let reply = w
        .orders
        .pay(me, o.id, pay("k1", me), IfMatch::Any)
        .await
        .unwrap();
    (o, reply)
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_it_in_full_once_through_the_saga() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let (o, _) = placed_and_paid(&w, &me, "5.00").await;
    deliver_success(&w).await.unwrap();
    let cancelled = w.orders.cancel(&me, o.id, IfMatch::Any).await.unwrap();
    let pid = cancelled.payment_id.unwrap();
    let due = cancelled.refund.clone().unwrap();
    assert_eq!((due.status, due.payment_id), (RefundStatus::Due, pid));
    assert!(
        refunds_of(&w, pid).await.is_empty(),
        "cancelling calls no provider"
    );
    run_refund_saga(&w).await;
    run_refund_saga(&w).await;
    assert_eq!(
        refunds_of(&w, pid).await,
        vec![(TransactionStatus::Succeeded, 500)],
        "one refund of everything, whatever is delivered twice"
    );
    let after = w.orders.get(&me, o.id).await.unwrap();
    let refund = after.refund.unwrap();
    assert_eq!(
        (refund.status, refund.amount_minor),
        (RefundStatus::Succeeded, Some(500))
    );
    assert_eq!(
        w.payments.status_of(pid).await.unwrap(),
        Some(PaymentStatus::Refunded)
    );
    let causes: Vec<_> = after.history.iter().map(|h| (h.status, h.cause)).collect();
    assert_eq!(
        causes,
        vec![
            (OrderStatus::Pending, TransitionCause::Placed),
            (OrderStatus::Confirmed, TransitionCause::Paid),
            (OrderStatus::Cancelled, TransitionCause::CancelledByCustomer),
        ]
    );
}

#[tokio::test]
async fn an_order_cancelled_while_its_payment_runs_is_refunded_once_the_payment_succeeds() {
    let unknown = Err(crate::payments::ProviderError::Unavailable(
        "timeout".into(),
    ));
    let w = stocked(vec![unknown]).await;
    let me = customer(1);
    let (o, paying) = placed_and_paid(&w, &me, "4.00").await;
    assert_eq!(paying.outcome.payment.status, PaymentStatus::Processing);
    let pid = paying.outcome.payment.id;
    w.orders.cancel(&admin(), o.id, IfMatch::Any).await.unwrap();
    run_refund_saga(&w).await;
    assert!(
        refunds_of(&w, pid).await.is_empty(),
        "nothing to refund while the charge is unknown"
    );
    // The recovery task settles the charge; its success reaches the groups.
    w.clock.advance(Duration::minutes(5));
    assert_eq!(w.payments.recover_stale().await.unwrap(), 1);
    deliver_success(&w)
        .await
        .expect("a cancelled order's payment is not an error for the orders group");
    run_refund_saga(&w).await;
    assert_eq!(
        refunds_of(&w, pid).await,
        vec![(TransactionStatus::Succeeded, 400)]
    );
    let after = w.orders.get(&me, o.id).await.unwrap();
    assert_eq!(after.status, OrderStatus::Cancelled);
    assert_eq!(after.refund.unwrap().status, RefundStatus::Succeeded);
    assert_eq!(
        after.history.last().map(|h| h.cause),
        Some(TransitionCause::CancelledByAdministrator)
    );
}

#[tokio::test]
async fn a_cancelled_order_whose_payment_failed_owes_nothing() {
    let declined = Ok(ProviderOutcome::Failed(Failure::declined(
        "card_declined",
        "declined",
    )));
    let w = stocked(vec![declined]).await;
    let me = customer(1);
    let (o, _) = placed_and_paid(&w, &me, "4.00").await;
    let noted = w.orders.get(&me, o.id).await.unwrap();
    assert_eq!(noted.payment_id, None, "a declined payment is not noted");
    let cancelled = w.orders.cancel(&me, o.id, IfMatch::Any).await.unwrap();
    assert_eq!(cancelled.refund, None);
    run_refund_saga(&w).await;
    assert_eq!(w.orders.get(&me, o.id).await.unwrap().refund, None);

    // Cancelled while the charge was unknown, which then fails: the refund due is dropped.
    let unknown = Err(crate::payments::ProviderError::Unavailable(
        "timeout".into(),
    ));
    let declined = Ok(ProviderOutcome::Failed(Failure::declined(
        "card_declined",
        "no",
    )));
    let w = stocked(vec![unknown, declined]).await;
    let (o, paying) = placed_and_paid(&w, &me, "4.00").await;
    let pid = paying.outcome.payment.id;
    let cancelled = w.orders.cancel(&me, o.id, IfMatch::Any).await.unwrap();
    assert_eq!(cancelled.refund.map(|r| r.status), Some(RefundStatus::Due));
    w.clock.advance(Duration::minutes(5));
    assert_eq!(w.payments.recover_stale().await.unwrap(), 1);
    assert_eq!(
        w.payments.status_of(pid).await.unwrap(),
        Some(PaymentStatus::Failed)
    );
    run_refund_saga(&w).await;
    assert_eq!(w.orders.get(&me, o.id).await.unwrap().refund, None);
    assert!(refunds_of(&w, pid).await.is_empty(), "nothing was refunded");
}

#[tokio::test]
async fn a_refused_refund_shows_on_the_order_and_an_administrator_retries_it() {
    let refused = Ok(ProviderOutcome::Failed(Failure::new(
        "refund_failed",
        "the card account is closed",
    )));
    let charged = Ok(ProviderOutcome::Succeeded {
        reference: "ch_1".into(),
    });
    let w = stocked(vec![charged, refused]).await;
    let me = customer(1);
    let (o, _) = placed_and_paid(&w, &me, "9.00").await;
    deliver_success(&w).await.unwrap();
    w.orders.cancel(&me, o.id, IfMatch::Any).await.unwrap();
    run_refund_saga(&w).await;
    let failed = w.orders.get(&me, o.id).await.unwrap().refund.unwrap();
    assert_eq!(failed.status, RefundStatus::Failed);
    assert_eq!(failed.failure.unwrap().code, "refund_failed");
    assert!(matches!(
        w.orders
            .retry_refund(&me, o.id, IfMatch::Any)
            .await
            .unwrap_err(),
        AppError::Forbidden(_)
    ));
    let again = w
        .orders
        .retry_refund(&admin(), o.id, IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(
        again.refund.as_ref().map(|r| (r.status, r.attempt)),
        Some((RefundStatus::Due, 2))
    );
    run_refund_saga(&w).await;
    let pid = again.payment_id.unwrap();
    assert_eq!(
        refunds_of(&w, pid).await,
        vec![
            (TransactionStatus::Failed, 900),
            (TransactionStatus::Succeeded, 900)
        ]
    );
    assert_eq!(
        w.orders
            .get(&me, o.id)
            .await
            .unwrap()
            .refund
            .unwrap()
            .status,
        RefundStatus::Succeeded
    );
    assert!(
        w.orders
            .retry_refund(&admin(), o.id, IfMatch::Any)
            .await
            .is_err(),
        "a succeeded refund is not retried"
    );
}

#[tokio::test]
async fn paying_confirms_through_the_event_once_and_replays_safely() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let o = w
        .orders
        .place(&me, place(vec![line(3, "2.50")]))
        .await
        .unwrap();
    let reply = w
        .orders
        .pay(&me, o.id, pay("pay-1", &me), IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(
        (
            reply.outcome.payment.status,
            reply.outcome.payment.amount.to_decimal_string().as_str()
        ),
        (PaymentStatus::Succeeded, "7.50")
    );
    let after = w.orders.get(&me, o.id).await.unwrap();
    assert_eq!(
        (after.status, after.payment_id),
        (OrderStatus::Pending, Some(reply.outcome.payment.id)),
        "paid, not yet confirmed"
    );
    assert!(
        matches!(
            w.orders
                .replace_items(&me, o.id, vec![line(1, "1.00")], IfMatch::Any)
                .await
                .unwrap_err(),
            AppError::State(_)
        ),
        "lines freeze once paying"
    );
    let replay = w
        .orders
        .pay(&me, o.id, pay("pay-1", &me), IfMatch::Any)
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.outcome.payment.id, reply.outcome.payment.id);
    let other = w
        .orders
        .pay(&me, o.id, pay("pay-2", &me), IfMatch::Any)
        .await
        .unwrap_err();
    assert!(
        matches!(other, AppError::State(ref e) if e.code() == "order_not_modifiable"),
        "no second payment"
    );
    deliver_success(&w).await.unwrap();
    deliver_success(&w).await.unwrap();
    let confirmed = w.orders.get(&me, o.id).await.unwrap();
    assert_eq!(confirmed.status, OrderStatus::Confirmed);
    let confirmations = w
        .store
        .unpublished(10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "order.confirmed")
        .count();
    assert_eq!(confirmations, 1, "a redelivered event confirms once");
}

#[tokio::test]
async fn a_declined_payment_leaves_the_order_pending_and_payable() {
    let declined = Ok(ProviderOutcome::Failed(Failure::declined(
        "insufficient_funds",
        "no",
    )));
    let w = stocked(vec![declined]).await;
    let me = customer(1);
    let o = w
        .orders
        .place(&me, place(vec![line(1, "9.00")]))
        .await
        .unwrap();
    let reply = w
        .orders
        .pay(&me, o.id, pay("try-1", &me), IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(reply.outcome.payment.status, PaymentStatus::Failed);
    let still = w.orders.get(&me, o.id).await.unwrap();
    assert_eq!(
        (still.status, still.payment_id),
        (OrderStatus::Pending, None)
    );
    let ok = w
        .orders
        .pay(&me, o.id, pay("try-2", &me), IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(
        ok.outcome.payment.status,
        PaymentStatus::Succeeded,
        "payable again with a new key"
    );
}

#[tokio::test]
async fn cancelled_orders_are_not_paid_and_odd_payments_are_not_confirmed() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let o = w
        .orders
        .place(&me, place(vec![line(1, "4.00")]))
        .await
        .unwrap();
    w.orders.cancel(&me, o.id, IfMatch::Any).await.unwrap();
    let err = w
        .orders
        .pay(&me, o.id, pay("k", &me), IfMatch::Any)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::State(ref e) if e.code() == "order_not_modifiable"));
    let o2 = w
        .orders
        .place(&me, place(vec![line(1, "4.00")]))
        .await
        .unwrap();
    let mark = InboxMark {
        group: "orders".into(),
        event_id: uuid::Uuid::now_v7(),
        at: OffsetDateTime::UNIX_EPOCH,
    };
    let wrong = w
        .orders
        .confirm_paid(
            o2.id,
            portside_domain::PaymentId(uuid::Uuid::nil()),
            Money::parse("3.99", usd()).unwrap(),
            &o2.customer_id.to_string(),
            &mark,
        )
        .await;
    assert!(
        wrong.is_err(),
        "a payment of another amount does not confirm the order"
    );
    assert_eq!(
        w.orders.get(&me, o2.id).await.unwrap().status,
        OrderStatus::Pending
    );
}

fn refusal(e: &AppError) -> (bool, Vec<(&str, &str)>) {
    match e {
        AppError::Refused { conflict, refusals } => (
            *conflict,
            refusals
                .iter()
                .map(|r| (r.field.as_str(), r.code.as_str()))
                .collect(),
        ),
        other => panic!("not a refusal: {other:?}"),
    }
}

async fn on_hand_and_reserved(w: &World, code: &str) -> (i64, i64) {
    let s = w.store.stock(&sku(code)).await.unwrap().unwrap();
    (s.state().on_hand, s.state().reserved)
}

#[tokio::test]
async fn prices_come_from_the_catalog_and_a_buyer_never_sets_one() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let mut cheap = line(1, "1.00");
    cheap.sku = sku("kite");
    cheap.expected_price = Some(Money::parse("0.01", usd()).unwrap());
    let err = w
        .orders
        .place(&me, place(vec![cheap.clone()]))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (false, vec![("items[0].price", "price_mismatch")])
    );
    assert!(
        err.to_string().contains("10.00"),
        "names the current price: {err}"
    );
    assert_eq!(
        on_hand_and_reserved(&w, "kite").await,
        (3, 0),
        "nothing reserved"
    );
    assert!(
        w.store
            .unpublished(1000)
            .await
            .unwrap()
            .iter()
            .all(|e| e.event_type != "order.created")
    );

    cheap.expected_price = Some(Money::parse("10", usd()).unwrap());
    let o = w
        .orders
        .place(&me, place(vec![cheap.clone()]))
        .await
        .unwrap();
    assert_eq!(
        (
            o.items[0].name.as_str(),
            o.items[0].unit_price.to_decimal_string().as_str()
        ),
        ("Product kite", "10.00"),
        "name and price copied from the catalog"
    );

    let mut overridden = cheap.clone();
    overridden.expected_price = None;
    overridden.price_override = Some(Money::parse("7.00", usd()).unwrap());
    assert!(matches!(
        w.orders
            .place(&me, place(vec![overridden.clone()]))
            .await
            .unwrap_err(),
        AppError::Forbidden(_)
    ));
    let mut for_me = place(vec![overridden]);
    for_me.customer_id = Some(CustomerId::from(me.user_id));
    let by_admin = w.orders.place(&admin(), for_me).await.unwrap();
    assert_eq!(by_admin.total.to_decimal_string(), "7.00");
    assert!(
        by_admin.items[0].price_overridden,
        "the override is recorded on the line"
    );
}

#[tokio::test]
async fn unknown_archived_unpriced_and_repeated_products_are_refused_by_line() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let mut gone = product("gone", "1.00");
    gone.archive(OffsetDateTime::UNIX_EPOCH);
    w.store.insert_product(&mut gone, None).await.unwrap();
    let mut unknown = line(1, "1.00");
    unknown.sku = sku("nope");
    let mut archived = line(1, "1.00");
    archived.sku = sku("gone");
    let err = w
        .orders
        .place(
            &me,
            place(vec![line(1, "1.00"), unknown, archived, line(2, "1.00")]),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (
            false,
            vec![
                ("items[1].sku", "product_unknown"),
                ("items[2].sku", "product_archived"),
                ("items[3].sku", "sku_duplicate"),
            ]
        )
    );
    let mut euros = place(vec![line(1, "1.00")]);
    euros.currency = Currency::from_code("EUR").unwrap();
    let err = w.orders.place(&me, euros).await.unwrap_err();
    assert_eq!(
        refusal(&err),
        (false, vec![("items[0].sku", "price_unavailable")])
    );
}

#[tokio::test]
async fn stock_is_reserved_released_on_cancel_and_shipped_out_of_on_hand() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let mut two = line(2, "1.00");
    two.sku = sku("kite");
    let o = w
        .orders
        .place(&me, place(vec![two.clone(), line(1, "1.00")]))
        .await
        .unwrap();
    assert_eq!(on_hand_and_reserved(&w, "kite").await, (3, 2));
    let err = w
        .orders
        .place(&me, place(vec![line(1, "1.00"), two.clone()]))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (true, vec![("items[1].quantity", "insufficient_stock")]),
        "409 naming the line"
    );
    let mut one = two.clone();
    one.quantity = 1;
    w.orders
        .replace_items(&me, o.id, vec![one], IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(
        on_hand_and_reserved(&w, "kite").await,
        (3, 1),
        "re-lined, re-reserved"
    );
    w.orders.cancel(&me, o.id, IfMatch::Any).await.unwrap();
    assert_eq!(
        on_hand_and_reserved(&w, "kite").await,
        (3, 0),
        "cancelling releases"
    );

    let paid = w.orders.place(&me, place(vec![two])).await.unwrap();
    w.orders
        .pay(&me, paid.id, pay("k-ship", &me), IfMatch::Any)
        .await
        .unwrap();
    deliver_success(&w).await.unwrap();
    assert_eq!(
        on_hand_and_reserved(&w, "kite").await,
        (3, 2),
        "paid: still reserved"
    );
    w.orders
        .ship(&admin(), paid.id, IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(
        on_hand_and_reserved(&w, "kite").await,
        (1, 0),
        "shipped out of on hand"
    );
    let kinds: Vec<_> = w
        .store
        .movements(
            &sku("kite"),
            PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|m| (m.kind.as_str(), m.quantity, m.reason))
        .collect();
    assert_eq!(
        kinds,
        [
            ("adjusted", 3, Some("count".to_owned())),
            ("reserved", 2, None),
            ("released", 2, Some("lines replaced".to_owned())),
            ("reserved", 1, None),
            ("released", 1, Some("cancelled".to_owned())),
            ("reserved", 2, None),
            ("shipped", 2, None),
        ]
    );
}

#[tokio::test]
async fn a_retried_placement_answers_the_first_order_and_reserves_once() {
    let w = stocked(vec![]).await;
    let me = customer(1);
    let mut kite = line(2, "1.00");
    kite.sku = sku("kite");
    let keyed = |fingerprint: &str| {
        let mut cmd = place(vec![kite.clone()]);
        cmd.idempotency = Some(IdempotentRequest {
            scope: me.user_id.to_string(),
            key: IdempotencyKey::parse("place-1").unwrap(),
            fingerprint: fingerprint.into(),
        });
        cmd
    };
    let first = w.orders.place_keyed(&me, keyed("fp-a")).await.unwrap();
    let again = w.orders.place_keyed(&me, keyed("fp-a")).await.unwrap();
    assert_eq!((first.replayed, again.replayed), (false, true));
    assert_eq!(again.order.id, first.order.id);
    assert_eq!(
        on_hand_and_reserved(&w, "kite").await,
        (3, 2),
        "reserved once"
    );
    assert_eq!(
        w.orders.place_keyed(&me, keyed("fp-b")).await.unwrap_err(),
        AppError::IdempotencyKeyReused
    );
    let mut theirs = keyed("fp-a");
    let other = customer(2);
    if let Some(k) = theirs.idempotency.as_mut() {
        k.scope = other.user_id.to_string();
    }
    let refused = w.orders.place_keyed(&other, theirs).await.unwrap_err();
    assert_eq!(
        refusal(&refused),
        (true, vec![("items[0].quantity", "insufficient_stock")]),
        "another caller's key is another key"
    );
}

#[tokio::test]
async fn unpaid_orders_expire_and_give_their_units_back_but_never_while_paying() {
    let timeout = Err(crate::payments::ProviderError::Timeout);
    let declined = Ok(ProviderOutcome::Failed(Failure::declined(
        "card_declined",
        "no",
    )));
    let w = stocked(vec![timeout, declined]).await;
    let me = customer(1);
    let kite = |quantity: u32| {
        let mut l = line(quantity, "1.00");
        l.sku = sku("kite");
        place(vec![l])
    };
    let idle = w.orders.place(&me, kite(1)).await.unwrap();
    let paying = w.orders.place(&me, kite(1)).await.unwrap();
    let failed = w.orders.place(&me, kite(1)).await.unwrap();
    assert_eq!(on_hand_and_reserved(&w, "kite").await, (3, 3));
    let unknown = w
        .orders
        .pay(&me, paying.id, pay("slow", &me), IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(unknown.outcome.payment.status, PaymentStatus::Processing);
    let noted = w.orders.get(&me, paying.id).await.unwrap().payment_id;
    assert_eq!(
        noted,
        Some(unknown.outcome.payment.id),
        "noted before the provider answered"
    );
    let refused = w
        .orders
        .pay(&me, failed.id, pay("no", &me), IfMatch::Any)
        .await
        .unwrap();
    assert_eq!(refused.outcome.payment.status, PaymentStatus::Failed);
    assert_eq!(
        w.orders.get(&me, failed.id).await.unwrap().payment_id,
        None,
        "a failed payment reopens the order"
    );

    let ttl = Duration::minutes(30);
    assert_eq!(
        w.orders.expire_unpaid(ttl).await.unwrap(),
        0,
        "nothing is 30 minutes old yet"
    );
    w.clock.advance(Duration::minutes(31));
    assert_eq!(w.orders.expire_unpaid(ttl).await.unwrap(), 2);
    for (order, status) in [
        (idle.id, OrderStatus::Cancelled),
        (failed.id, OrderStatus::Cancelled),
        (paying.id, OrderStatus::Pending),
    ] {
        assert_eq!(w.orders.get(&me, order).await.unwrap().status, status);
    }
    assert_eq!(
        on_hand_and_reserved(&w, "kite").await,
        (3, 1),
        "the order being paid keeps its unit"
    );
    let released: Vec<_> = w
        .store
        .movements(
            &sku("kite"),
            PageRequest {
                limit: 2,
                after: None,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.kind.as_str(), m.reason.unwrap_or_default()))
        .collect();
    assert_eq!(
        released,
        [
            ("released", "expired".to_owned()),
            ("released", "expired".to_owned())
        ]
    );
    assert_eq!(
        w.orders.expire_unpaid(ttl).await.unwrap(),
        0,
        "expired once"
    );
}

/// A stream that keeps what is appended.
#[derive(Default)]
struct KeptStream(std::sync::Mutex<Vec<Vec<(String, String)>>>);

#[async_trait::async_trait]
impl portside_events::StreamSink for KeptStream {
    async fn append(&self, fields: &[(&str, &str)]) -> Result<(), portside_events::BusError> {
        let entry = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0.lock().unwrap().push(entry);
        Ok(())
    }
}

#[tokio::test]
async fn order_events_reach_the_configured_stream_as_the_api_shows_the_order() {
    use crate::orders::{OrderStreamFeed, OrderStreamPorts};
    let w = stocked(vec![]).await;
    let me = customer(1);
    let placed = w
        .orders
        .place(&me, place(vec![line(2, "1.00")]))
        .await
        .unwrap();
    let created = w
        .store
        .unpublished(100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "order.created")
        .unwrap();
    let mark = InboxMark {
        group: "order-stream".into(),
        event_id: created.id,
        at: OffsetDateTime::UNIX_EPOCH,
    };
    OrderStreamFeed::new(w.store.clone(), None)
        .handle(&created, &mark)
        .await
        .unwrap();
    let kept = Arc::new(KeptStream::default());
    let out = OrderStreamPorts {
        sink: kept.clone(),
        render: Arc::new(|o: &portside_domain::OrderState| {
            format!("order {} v{}", o.id, o.version)
        }),
    };
    OrderStreamFeed::new(w.store.clone(), Some(out))
        .handle(&created, &mark)
        .await
        .unwrap();
    let entries = kept.0.lock().unwrap().clone();
    let at = created.occurred_at.unix_timestamp().to_string();
    assert_eq!(
        entries,
        vec![vec![
            ("event_type".to_owned(), "order.created".to_owned()),
            ("data".to_owned(), format!("order {} v1", placed.id)),
            ("timestamp".to_owned(), at),
            ("event_id".to_owned(), created.id.to_string()),
        ]]
    );
}
