//! The catalog use cases over the in-memory store.

use std::sync::Arc;

use portside_domain::{
    Actor, Currency, Money, Prices, ProductDetails, Role, Sku, StockAdjustment, UserId,
};
use portside_events::Outbox;
use portside_kernel::PageRequest;
use time::OffsetDateTime;

use super::{Catalog, NewProduct, ProductChanges, ProductFilter};
use crate::testing::fakes::{InMemoryStore, ManualClock};
use crate::{AppError, IfMatch};

fn admin() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(1)),
        role: Role::Admin,
    }
}

fn customer() -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(2)),
        role: Role::Customer,
    }
}

fn sku(code: &str) -> Sku {
    Sku::parse(code).unwrap()
}

fn new_product(code: &str, on_hand: Option<i64>) -> NewProduct {
    let usd = Currency::from_code("USD").unwrap();
    let prices = Prices::new([Money::parse("19.99", usd).unwrap()]).unwrap();
    NewProduct {
        sku: sku(code),
        details: ProductDetails::new("Laptop stand", "Aluminium", prices).unwrap(),
        on_hand,
        low_stock_threshold: None,
    }
}

fn catalog() -> (Catalog, Arc<InMemoryStore>) {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::at(OffsetDateTime::UNIX_EPOCH));
    (Catalog::new(store.clone(), clock), store)
}

fn first_page() -> PageRequest<Sku> {
    PageRequest {
        limit: 10,
        after: None,
    }
}

#[tokio::test]
async fn administrators_keep_the_catalog_and_customers_see_what_is_active() {
    let (c, store) = catalog();
    assert!(matches!(
        c.create(&customer(), new_product("stand", None)).await,
        Err(AppError::Forbidden(_))
    ));
    let made = c
        .create(&admin(), new_product("stand", Some(5)))
        .await
        .unwrap();
    assert_eq!(made.stock.as_ref().map(|s| s.on_hand), Some(5));
    assert_eq!(
        c.create(&admin(), new_product(" STAND ", None))
            .await
            .unwrap_err(),
        AppError::Taken("sku"),
        "a SKU differing by case and spaces is the same SKU"
    );
    c.create(&admin(), new_product("lamp", None)).await.unwrap();
    c.archive(&admin(), &sku("lamp"), IfMatch::version(1))
        .await
        .unwrap();
    assert_eq!(
        c.get(&customer(), &sku("lamp")).await.unwrap_err(),
        AppError::NotFound("product")
    );
    assert!(!c.get(&admin(), &sku("lamp")).await.unwrap().product.active);
    let listed = c
        .list(&customer(), ProductFilter::default(), first_page())
        .await
        .unwrap();
    let skus: Vec<_> = listed.items.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(skus, ["stand"]);
    assert!(matches!(
        c.list(
            &customer(),
            ProductFilter {
                active: Some(false)
            },
            first_page()
        )
        .await,
        Err(AppError::Forbidden(_))
    ));
    let all = c
        .list(
            &admin(),
            ProductFilter::default(),
            PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!((all.items.len(), all.next.clone()), (1, Some(sku("lamp"))));

    let renamed = c
        .update(
            &admin(),
            &sku("stand"),
            ProductChanges {
                name: Some("Stand".into()),
                ..ProductChanges::default()
            },
            IfMatch::version(1),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            renamed.product.version,
            renamed.product.details.name.as_str()
        ),
        (2, "Stand")
    );
    assert_eq!(
        c.update(
            &admin(),
            &sku("stand"),
            ProductChanges::default(),
            IfMatch::version(1)
        )
        .await
        .unwrap_err(),
        AppError::PreconditionFailed
    );
    let types: Vec<_> = store
        .unpublished(100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "product.created",
            "stock.adjusted",
            "product.created",
            "product.archived",
            "product.updated"
        ]
    );
}

#[tokio::test]
async fn stock_is_adjusted_with_a_reason_and_never_below_what_is_reserved() {
    let (c, _) = catalog();
    c.create(&admin(), new_product("stand", None))
        .await
        .unwrap();
    let adjust = |delta: i64, threshold: Option<Option<i64>>| StockAdjustment {
        delta,
        reason: "delivery".into(),
        low_stock_threshold: threshold,
    };
    assert!(matches!(
        c.adjust_stock(&customer(), &sku("stand"), adjust(5, None))
            .await,
        Err(AppError::Forbidden(_))
    ));
    let tracked = c
        .adjust_stock(&admin(), &sku("stand"), adjust(5, Some(Some(2))))
        .await
        .unwrap();
    let s = tracked.stock.unwrap();
    assert_eq!(
        (s.on_hand, s.reserved, s.low_stock_threshold),
        (5, 0, Some(2))
    );
    let below = c
        .adjust_stock(&admin(), &sku("stand"), adjust(-6, None))
        .await
        .unwrap_err();
    assert!(
        matches!(&below, AppError::Refused { conflict: true, refusals } if refusals[0].field == "quantity" && refusals[0].code == "stock_below_reserved"),
        "{below:?}"
    );
    assert_eq!(
        c.get(&admin(), &sku("stand"))
            .await
            .unwrap()
            .stock
            .unwrap()
            .on_hand,
        5,
        "a refused adjustment changes nothing"
    );
    let moves = c
        .movements(
            &admin(),
            &sku("stand"),
            PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(moves.items.len(), 1);
    assert_eq!(
        (moves.items[0].quantity, moves.items[0].reason.as_deref()),
        (5, Some("delivery"))
    );
    assert_eq!(
        c.adjust_stock(&admin(), &sku("nope"), adjust(1, None))
            .await
            .unwrap_err(),
        AppError::NotFound("product")
    );
}
