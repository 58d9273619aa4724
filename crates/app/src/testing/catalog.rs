//! The contract of the catalog store (products, stock, movements, reservations), run by every
//! adapter: the overselling check runs here, so it holds on each engine.

use std::sync::Arc;

use portside_domain::{
    Aggregate, Currency, CustomerId, Money, Order, OrderId, OrderItem, Prices, Product,
    ProductDetails, Sku, Stock, StockAdjustment,
};
use time::OffsetDateTime;
use uuid::Uuid;

use portside_events::Outbox;
use portside_kernel::{PageRequest, StoreError};

use crate::catalog::{CatalogRepository, ProductFilter};
use crate::orders::OrderRepository;
use crate::payments::idempotency::{IdempotencyKey, IdempotentRequest};

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_000_000).unwrap()
}

fn usd() -> Currency {
    Currency::from_code("USD").unwrap()
}

fn product(sku: &Sku, price: &str) -> Product {
    let jpy = Money::parse("1500", Currency::from_code("JPY").unwrap()).unwrap();
    let prices = Prices::new([Money::parse(price, usd()).unwrap(), jpy]).unwrap();
    let details = ProductDetails::new("Kite — ünïcode", "A red kite", prices).unwrap();
    Product::create(sku.clone(), details, t0())
}

fn order_of(sku: &Sku, quantity: u32) -> Order {
    let line = OrderItem {
        product_id: sku.to_string(),
        name: "Kite".into(),
        quantity,
        unit_price: Money::parse("5.00", usd()).unwrap(),
        price_overridden: false,
    };
    Order::place(
        OrderId(Uuid::now_v7()),
        CustomerId::parse("cat-customer").unwrap(),
        vec![line],
        usd(),
        t0(),
    )
    .unwrap()
}

async fn figures<S: CatalogRepository>(s: &S, sku: &Sku) -> (i64, i64) {
    let st = s.stock(sku).await.unwrap().expect("tracked");
    (st.state().on_hand, st.state().reserved)
}

/// Products round-trip with their version checks and pages; stock moves only as the domain
/// allows, with a movement for each change; orders reserve, release and ship in their own
/// transaction; and 100 concurrent orders of one unit against 10 in stock place exactly 10.
pub async fn catalog_store<S>(store: Arc<S>)
where
    S: CatalogRepository + OrderRepository + Outbox + 'static,
{
    let s = &*store;
    let run = Uuid::now_v7().simple().to_string();
    let sku = |name: &str| Sku::parse(&format!("{name}-{run}")).unwrap();

    // Products.
    let kite = sku("kite");
    let mut p = product(&kite, "19.99");
    s.insert_product(&mut p, None).await.unwrap();
    assert!(p.pending_events().is_empty());
    let loaded = s.product(&kite).await.unwrap().expect("stored");
    assert_eq!(loaded.state(), p.state(), "every field survives the store");
    assert_eq!(
        s.insert_product(&mut product(&kite, "1.00"), None).await,
        Err(StoreError::Duplicate)
    );
    let (mut a, mut b) = (loaded.clone(), loaded.clone());
    a.archive(t0());
    s.update_product(&mut a).await.unwrap();
    b.archive(t0());
    assert_eq!(s.update_product(&mut b).await, Err(StoreError::Conflict));
    let active_only = ProductFilter { active: Some(true) };
    let first = PageRequest {
        limit: 1000,
        after: None,
    };
    assert!(
        s.products(&active_only, first.clone())
            .await
            .unwrap()
            .iter()
            .all(|p| p.sku() != &kite),
        "archived products are filtered out"
    );
    let (one, two) = (sku("a1"), sku("a2"));
    for k in [&one, &two] {
        s.insert_product(&mut product(k, "1.00"), None)
            .await
            .unwrap();
    }
    let page = s
        .products(
            &active_only,
            PageRequest {
                limit: 1,
                after: Some(one.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(page[0].sku(), &two, "pages go by SKU");

    // Stock: adjustments, refusals that write nothing, movements newest first.
    let mug = sku("mug");
    let mut stock = Stock::track(mug.clone(), 5, Some(1), "initial count".into(), t0()).unwrap();
    s.insert_product(&mut product(&mug, "4.50"), Some(&mut stock))
        .await
        .unwrap();
    assert_eq!(figures(s, &mug).await, (5, 0));
    let adjust = |delta: i64| StockAdjustment {
        delta,
        reason: "recount".into(),
        low_stock_threshold: None,
    };
    let refused = s.adjust_stock(&mug, &adjust(-6), t0()).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Refused { code, subject, .. } if code == "stock_below_reserved" && subject == mug.as_str()),
        "{refused:?}"
    );
    s.adjust_stock(&mug, &adjust(-1), t0()).await.unwrap();
    assert_eq!(figures(s, &mug).await, (4, 0));
    let untracked = sku("untracked");
    s.insert_product(&mut product(&untracked, "1.00"), None)
        .await
        .unwrap();
    assert!(s.stock(&untracked).await.unwrap().is_none());
    let started = s.adjust_stock(&untracked, &adjust(7), t0()).await.unwrap();
    assert_eq!(started.state().on_hand, 7, "an adjustment starts tracking");

    // Orders reserve in their own transaction; cancelling releases, shipping takes on hand.
    let mut big = order_of(&mug, 5);
    let short = s.insert_order(&mut big).await.unwrap_err();
    assert!(
        matches!(&short, StoreError::Refused { code, .. } if code == "insufficient_stock"),
        "{short:?}"
    );
    assert!(
        s.order(big.id()).await.unwrap().is_none(),
        "refused: the order is not placed"
    );
    let mut kept = order_of(&mug, 3);
    s.insert_order(&mut kept).await.unwrap();
    assert_eq!(figures(s, &mug).await, (4, 3));
    let mut cancelled = order_of(&mug, 1);
    s.insert_order(&mut cancelled).await.unwrap();
    assert_eq!(figures(s, &mug).await, (4, 4));
    cancelled.cancel(false, t0()).unwrap();
    s.update_order(&mut cancelled, None).await.unwrap();
    assert_eq!(figures(s, &mug).await, (4, 3));
    kept.confirm(portside_domain::PaymentId(Uuid::now_v7()), t0())
        .unwrap();
    kept.ship(t0()).unwrap();
    s.update_order(&mut kept, None).await.unwrap();
    assert_eq!(figures(s, &mug).await, (1, 0));
    let moves: Vec<_> = s
        .movements(
            &mug,
            PageRequest {
                limit: 3,
                after: None,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.kind.as_str(),
                m.quantity,
                m.order_id,
                m.on_hand,
                m.reserved,
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("shipped", 3, Some(kept.id()), 1, 0),
            ("released", 1, Some(cancelled.id()), 4, 3),
            ("reserved", 1, Some(cancelled.id()), 4, 4),
        ],
        "newest first"
    );
    let mug_events: Vec<_> = s
        .unpublished(100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.aggregate_type == "stock" && e.aggregate_id == mug.as_str())
        .map(|e| (e.sequence, e.event_type))
        .collect();
    let types: Vec<_> = mug_events.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "stock.adjusted",
            "stock.adjusted",
            "stock.reserved",
            "stock.low",
            "stock.reserved",
            "stock.released",
            "stock.shipped",
        ],
        "stock.low once, when available fell to the threshold"
    );
    let sequences: Vec<_> = mug_events.iter().map(|(n, _)| *n).collect();
    assert_eq!(sequences, (1..=7).collect::<Vec<_>>());

    // An order placed with a key: the key is taken once, reserving once.
    let keyed_sku = sku("keyed");
    let mut stock = Stock::track(keyed_sku.clone(), 5, None, "initial count".into(), t0()).unwrap();
    s.insert_product(&mut product(&keyed_sku, "1.00"), Some(&mut stock))
        .await
        .unwrap();
    let key = IdempotentRequest {
        scope: format!("scope-{run}"),
        key: IdempotencyKey::parse("place-1").unwrap(),
        fingerprint: "fp-1".into(),
    };
    let mut first = order_of(&keyed_sku, 2);
    s.insert_keyed_order(&mut first, Some(&key)).await.unwrap();
    let mut retry = order_of(&keyed_sku, 2);
    assert_eq!(
        s.insert_keyed_order(&mut retry, Some(&key)).await,
        Err(StoreError::Duplicate)
    );
    assert!(s.order(retry.id()).await.unwrap().is_none());
    assert_eq!(figures(s, &keyed_sku).await, (5, 2), "reserved once");
    let (found, fingerprint) = s
        .order_by_key(&key.scope, key.key.as_str())
        .await
        .unwrap()
        .expect("the key names its order");
    assert_eq!((found.id(), fingerprint.as_str()), (first.id(), "fp-1"));
    assert!(
        s.order_by_key("another-scope", key.key.as_str())
            .await
            .unwrap()
            .is_none()
    );

    // 100 concurrent orders of one unit against 10 in stock: exactly 10 are placed.
    let hot = sku("hot");
    let mut stock = Stock::track(hot.clone(), 10, None, "initial count".into(), t0()).unwrap();
    s.insert_product(&mut product(&hot, "9.99"), Some(&mut stock))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let store = store.clone();
            let hot = hot.clone();
            tokio::spawn(async move { store.insert_order(&mut order_of(&hot, 1)).await })
        })
        .collect();
    let (mut placed, mut short) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => placed += 1,
            Err(StoreError::Refused { code, .. }) if code == "insufficient_stock" => short += 1,
            Err(other) => panic!("neither placed nor out of stock: {other:?}"),
        }
    }
    assert_eq!((placed, short), (10, 90), "never oversold, never undersold");
    assert_eq!(figures(s, &hot).await, (10, 10));
    let reservations = s
        .movements(
            &hot,
            PageRequest {
                limit: 1000,
                after: None,
            },
        )
        .await
        .unwrap()
        .iter()
        .filter(|m| m.kind.as_str() == "reserved")
        .count();
    assert_eq!(reservations, 10, "one movement per reservation");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fakes::InMemoryStore;

    #[tokio::test]
    async fn the_in_memory_store_keeps_the_catalog_contract() {
        catalog_store(Arc::new(InMemoryStore::new())).await;
    }
}
