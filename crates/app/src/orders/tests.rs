//! Use-case tests of orders against in-memory fakes, including payment and confirmation.

use portside_kernel::PageRequest;

use std::sync::Arc;

use portside_domain::{
    Actor, Currency, CustomerId, Failure, Money, OrderItem, OrderStatus, PaymentMethod,
    PaymentStatus, Role, UserId,
};
use time::{Duration, OffsetDateTime};

use crate::AppError;
use crate::orders::OrderConfirmation;
use crate::orders::OrderFilter;
use crate::orders::{IfMatch, Orders, PayOrder, PlaceOrder};
use crate::payments::ProviderOutcome;
use crate::payments::idempotency::{IdempotencyKey, IdempotentRequest};
use crate::payments::{PaymentSettings, Payments, Providers};
use crate::testing::fakes::{InMemoryStore, ManualClock, ScriptedProvider, SequentialIds};
use portside_events::worker::EventHandler;
use portside_events::{InboxMark, Outbox};

struct World {
    orders: Arc<Orders>,
    store: Arc<InMemoryStore>,
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
        orders: Arc::new(Orders::new(store.clone(), payments, clock, ids)),
        store,
    }
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

fn line(qty: u32, price: &str) -> OrderItem {
    OrderItem {
        product_id: "sku-1".into(),
        name: "Mug".into(),
        quantity: qty,
        unit_price: Money::parse(price, usd()).unwrap(),
    }
}

fn place(items: Vec<OrderItem>) -> PlaceOrder {
    PlaceOrder {
        customer_id: None,
        currency: usd(),
        items,
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
    let w = world(vec![]);
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
    let w = world(vec![]);
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
    let w = world(vec![]);
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
        matches!(late, AppError::State(ref e) if e.code() == "invalid_state_transition"),
        "no cancelling once shipped"
    );
}

#[tokio::test]
async fn paying_confirms_through_the_event_once_and_replays_safely() {
    let w = world(vec![]);
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
    let w = world(vec![declined]);
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
    let w = world(vec![]);
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
