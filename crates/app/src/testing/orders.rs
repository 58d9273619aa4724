//! The contract of the order store, run by every adapter.

use std::sync::Arc;

use portside_domain::{
    Aggregate, Currency, CustomerId, Failure, Money, Order, OrderId, OrderItem, OrderStatus,
    PaymentId, RefundOutcome, TransactionId,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use portside_events::{InboxMark, Outbox};

use portside_kernel::{PageRequest, StoreError};

use crate::orders::{OrderFilter, OrderRepository};

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_777_000_000).unwrap()
}

fn item(product: &str, qty: u32, price: &str, currency: &str) -> OrderItem {
    OrderItem {
        product_id: product.into(),
        name: format!("Product {product} — ünïcode"),
        quantity: qty,
        unit_price: Money::parse(price, Currency::from_code(currency).unwrap()).unwrap(),
        price_overridden: false,
    }
}

fn new_order(customer: &str, at: OffsetDateTime) -> Order {
    Order::place(
        OrderId(Uuid::now_v7()),
        CustomerId::parse(customer).unwrap(),
        vec![item("p1", 2, "19.99", "EUR"), item("p2", 1, "0.02", "EUR")],
        Currency::from_code("EUR").unwrap(),
        at,
    )
    .unwrap()
}

/// Orders round-trip, version checks, inbox marks, filters and newest-first pages.
pub async fn order_store<S>(store: Arc<S>)
where
    S: OrderRepository + Outbox + 'static,
{
    let s = &*store;
    let customer = format!("oc_{}", Uuid::now_v7().simple());
    let mut o = new_order(&customer, t0());
    s.insert_order(&mut o).await.unwrap();
    assert!(o.pending_events().is_empty());
    let loaded = s.order(o.id()).await.unwrap().expect("stored");
    assert_eq!(loaded.state(), o.state(), "every field survives the store");
    assert_eq!(loaded.state().total.to_decimal_string(), "40.00");
    assert!(s.order(OrderId(Uuid::now_v7())).await.unwrap().is_none());

    let mut a = loaded.clone();
    let mut b = loaded.clone();
    a.replace_items(vec![item("p3", 3, "1.00", "EUR")], t0())
        .unwrap();
    s.update_order(&mut a, None).await.unwrap();
    b.cancel(false, t0()).unwrap();
    assert_eq!(
        s.update_order(&mut b, None).await,
        Err(StoreError::Conflict),
        "one of two concurrent writers wins"
    );
    let now = s.order(o.id()).await.unwrap().unwrap();
    assert_eq!(
        (
            now.state().status,
            now.state().total.to_decimal_string().as_str(),
            now.state().version
        ),
        (OrderStatus::Pending, "3.00", 2)
    );

    let mark = InboxMark {
        group: "contract".into(),
        event_id: Uuid::now_v7(),
        at: t0(),
    };
    let mut paid = now.clone();
    paid.confirm(PaymentId(Uuid::now_v7()), t0()).unwrap();
    let mut again = now.clone();
    s.update_order(&mut paid, Some(&mark)).await.unwrap();
    again.confirm(PaymentId(Uuid::now_v7()), t0()).unwrap();
    assert_eq!(
        s.update_order(&mut again, Some(&mark)).await,
        Err(StoreError::AlreadyProcessed)
    );
    assert_eq!(
        s.order(o.id()).await.unwrap().unwrap().state().payment_id,
        paid.state().payment_id
    );
    // The history and the refund a cancellation owes survive the store.
    let mut refused = s.order(o.id()).await.unwrap().unwrap();
    refused.cancel(true, t0() + Duration::seconds(1)).unwrap();
    let refusal = Failure::declined("refund_refused", "the account is closed — ünïcode");
    refused
        .refund_made(
            TransactionId(Uuid::now_v7()),
            300,
            RefundOutcome::Failed(refusal),
            t0() + Duration::seconds(2),
        )
        .unwrap();
    s.update_order(&mut refused, None).await.unwrap();
    let stored = s.order(o.id()).await.unwrap().unwrap();
    assert_eq!(
        stored.state(),
        refused.state(),
        "every field survives an update"
    );
    assert_eq!(stored.state().history.len(), 3);

    let events: Vec<_> = s
        .unpublished(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.aggregate_id == o.id().to_string())
        .map(|e| {
            (
                e.sequence,
                e.event_type,
                e.data["order"]["status"].clone(),
                e.data["order"]["total"].clone(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            (
                1,
                "order.created".to_owned(),
                "pending".into(),
                "40.00".into()
            ),
            (
                2,
                "order.updated".to_owned(),
                "pending".into(),
                "3.00".into()
            ),
            (
                3,
                "order.confirmed".to_owned(),
                "confirmed".into(),
                "3.00".into()
            ),
            (
                4,
                "order.cancelled".to_owned(),
                "cancelled".into(),
                "3.00".into()
            ),
            (
                5,
                "order.updated".to_owned(),
                "cancelled".into(),
                "3.00".into()
            ),
        ]
    );

    // Pages: newest first, filters by customer, status and creation time.
    let mut ids = vec![o.id()];
    for i in 1..5 {
        let mut more = new_order(&customer, t0() + Duration::seconds(i));
        if i == 4 {
            more.cancel(false, t0()).unwrap();
        }
        s.insert_order(&mut more).await.unwrap();
        ids.push(more.id());
    }
    ids.reverse();
    let mine = OrderFilter {
        customer_id: Some(CustomerId::parse(&customer).unwrap()),
        ..OrderFilter::default()
    };
    let first = s
        .orders(
            &mine,
            PageRequest {
                limit: 3,
                after: None,
            },
        )
        .await
        .unwrap();
    let last = first.last().unwrap().state();
    let rest = s
        .orders(
            &mine,
            PageRequest {
                limit: 10,
                after: Some((last.created_at, last.id)),
            },
        )
        .await
        .unwrap();
    let seen: Vec<_> = first.iter().chain(rest.iter()).map(|o| o.id()).collect();
    assert_eq!(seen, ids, "newest first, each once");
    let cancelled = OrderFilter {
        status: Some(OrderStatus::Cancelled),
        ..mine.clone()
    };
    assert_eq!(
        s.orders(
            &cancelled,
            PageRequest {
                limit: 10,
                after: None
            }
        )
        .await
        .unwrap()
        .len(),
        2,
        "the first order (cancelled after its payment) and the fifth"
    );
    let recent = OrderFilter {
        created_after: Some(t0() + Duration::seconds(2)),
        ..mine.clone()
    };
    assert_eq!(
        s.orders(
            &recent,
            PageRequest {
                limit: 10,
                after: None
            }
        )
        .await
        .unwrap()
        .len(),
        2,
        "created_after is exclusive"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::InMemoryStore;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_order_contract() {
        order_store(Arc::new(InMemoryStore::new())).await;
    }
}
