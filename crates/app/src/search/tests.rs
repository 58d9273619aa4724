//! Use-case tests of search against an in-memory index fake: owner scoping, query bounds, the
//! projection from real order events, and the rebuild from the store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portside_domain::{Actor, Currency, Money, Prices, Product, ProductDetails, Role, Sku, UserId};
use time::{Duration, OffsetDateTime};

use crate::AppError;
use crate::catalog::CatalogRepository;
use crate::orders::{IfMatch, LineRequest, Orders, PlaceOrder};
use crate::payments::{PaymentSettings, Payments, Providers};
use crate::search::{FACETS, SearchDocument, SearchError, SearchIndex, SearchQuery, SearchResults};
use crate::search::{Search, SearchProjection, validate, validate_document};
use crate::testing::fakes::{InMemoryStore, ManualClock, ScriptedProvider, SequentialIds};
use portside_events::worker::EventHandler;
use portside_events::{InboxMark, Outbox};

/// Keeps documents by id (highest version wins) and remembers the last query.
#[derive(Default)]
struct FakeIndex {
    docs: Mutex<BTreeMap<String, SearchDocument>>,
    last_query: Mutex<Option<SearchQuery>>,
}

#[async_trait]
impl SearchIndex for FakeIndex {
    async fn upsert(&self, documents: &[SearchDocument]) -> Result<usize, SearchError> {
        let mut docs = self.docs.lock().unwrap();
        let mut written = 0;
        for d in documents {
            if docs.get(&d.id).is_none_or(|old| old.version <= d.version) {
                docs.insert(d.id.clone(), d.clone());
                written += 1;
            }
        }
        Ok(written)
    }
    async fn delete(&self, id: &str) -> Result<bool, SearchError> {
        Ok(self.docs.lock().unwrap().remove(id).is_some())
    }
    async fn get(&self, id: &str) -> Result<Option<SearchDocument>, SearchError> {
        Ok(self.docs.lock().unwrap().get(id).cloned())
    }
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        *self.last_query.lock().unwrap() = Some(query.clone());
        Ok(SearchResults::default())
    }
}

struct World {
    index: Arc<FakeIndex>,
    search: Search,
    orders: Orders,
    store: Arc<InMemoryStore>,
}

async fn world() -> World {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
    ));
    let ids = Arc::new(SequentialIds::default());
    let payments = Arc::new(Payments::new(
        store.clone(),
        store.clone(),
        Providers::new("mock", Arc::new(ScriptedProvider::answering(vec![]))),
        clock.clone(),
        ids.clone(),
        PaymentSettings::default(),
    ));
    let index = Arc::new(FakeIndex::default());
    let usd = Currency::from_code("USD").unwrap();
    let prices = Prices::new([Money::parse("4.50", usd).unwrap()]).unwrap();
    let mut mug = Product::create(
        Sku::parse("sku-mug").unwrap(),
        ProductDetails::new("Blue mug", "", prices).unwrap(),
        OffsetDateTime::UNIX_EPOCH,
    );
    store.insert_product(&mut mug, None).await.unwrap();
    World {
        search: Search::new(index.clone(), store.clone(), store.clone(), store.clone()),
        orders: Orders::new(store.clone(), store.clone(), payments, clock, ids, usd),
        index,
        store,
    }
}

fn actor(n: u128, role: Role) -> Actor {
    Actor {
        user_id: UserId(uuid::Uuid::from_u128(n)),
        role,
    }
}

fn query(text: &str) -> SearchQuery {
    SearchQuery {
        text: text.into(),
        facets: FACETS.iter().map(|f| (*f).to_owned()).collect(),
        limit: 20,
        ..SearchQuery::default()
    }
}

fn mugs(n: u32) -> PlaceOrder {
    let usd = Currency::from_code("USD").unwrap();
    PlaceOrder {
        customer_id: None,
        currency: usd,
        lines: vec![LineRequest {
            sku: Sku::parse("sku-mug").unwrap(),
            quantity: n,
            expected_price: Some(Money::parse("4.50", usd).unwrap()),
            price_override: None,
        }],
        idempotency: None,
    }
}

#[tokio::test]
async fn customers_search_only_their_own_documents_administrators_all() {
    let w = world().await;
    let me = actor(7, Role::Customer);
    let mut sneaky = query("mug");
    sneaky
        .filters
        .insert("owner".into(), uuid::Uuid::from_u128(8).to_string());
    w.search.search(&me, sneaky).await.unwrap();
    let seen = w.index.last_query.lock().unwrap().clone().unwrap();
    assert_eq!(
        seen.filters.get("owner").map(String::as_str),
        Some(uuid::Uuid::from_u128(7).to_string().as_str()),
        "a customer's own id replaces any owner filter they give"
    );

    let admin = actor(1, Role::Admin);
    w.search.search(&admin, query("mug")).await.unwrap();
    let seen = w.index.last_query.lock().unwrap().clone().unwrap();
    assert!(!seen.filters.contains_key("owner"));
}

#[tokio::test]
async fn bad_queries_are_refused_before_the_index_sees_them() {
    let w = world().await;
    let me = actor(7, Role::Customer);
    let long = "é".repeat(1001);
    let mut cases: Vec<(&str, SearchQuery)> = vec![
        ("empty", query("")),
        ("blank", query("  \t")),
        ("1001 characters", query(&long)),
    ];
    let mut q = query("a");
    q.limit = 0;
    cases.push(("limit 0", q));
    let mut q = query("a");
    q.limit = 101;
    cases.push(("limit 101", q));
    let mut q = query("a");
    q.offset = 10_001;
    cases.push(("offset 10001", q));
    let mut q = query("a");
    q.facets.push("price".into());
    cases.push(("unknown facet", q));
    let mut q = query("a");
    q.filters.insert("total".into(), "1".into());
    cases.push(("unknown filter", q));
    for (name, q) in cases {
        assert!(
            matches!(validate(&q), Err(SearchError::Invalid(_))),
            "{name}"
        );
        assert!(
            matches!(w.search.search(&me, q).await, Err(AppError::BadQuery(_))),
            "{name}"
        );
    }
    assert!(w.index.last_query.lock().unwrap().is_none());
    assert!(
        validate(&query(&"é".repeat(1000))).is_ok(),
        "characters, not bytes"
    );
}

#[test]
fn documents_given_over_grpc_are_bounded() {
    let ok = SearchDocument {
        id: "doc-1".into(),
        doc_type: "note".into(),
        owner: None,
        version: 1,
        fields: BTreeMap::from([("title".to_owned(), "hello".to_owned())]),
    };
    assert!(validate_document(&ok).is_ok());
    let bad = [
        SearchDocument {
            id: String::new(),
            ..ok.clone()
        },
        SearchDocument {
            id: "x".repeat(201),
            ..ok.clone()
        },
        SearchDocument {
            doc_type: " ".into(),
            ..ok.clone()
        },
        SearchDocument {
            fields: BTreeMap::from([("body".to_owned(), "x".repeat(10_001))]),
            ..ok.clone()
        },
        SearchDocument {
            fields: (0..101)
                .map(|i| (format!("f{i}"), "v".to_owned()))
                .collect(),
            ..ok.clone()
        },
    ];
    for d in bad {
        assert!(matches!(
            validate_document(&d),
            Err(SearchError::Invalid(_))
        ));
    }
}

#[tokio::test]
async fn the_projection_indexes_order_events_and_ignores_an_older_redelivery() {
    let w = world().await;
    let me = actor(7, Role::Customer);
    let placed = w.orders.place(&me, mugs(2)).await.unwrap();
    w.orders.cancel(&me, placed.id, IfMatch::Any).await.unwrap();
    let events: Vec<_> = w
        .store
        .unpublished(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.aggregate_type == "order")
        .collect();
    assert_eq!(
        events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["order.created", "order.cancelled"]
    );
    let projection = SearchProjection::new(w.index.clone());
    let mark = |e: &portside_events::Envelope| InboxMark {
        group: "search".into(),
        event_id: e.id,
        at: OffsetDateTime::UNIX_EPOCH,
    };
    for e in [&events[0], &events[1], &events[0]] {
        projection.handle(e, &mark(e)).await.unwrap();
    }
    let doc = w
        .index
        .get(&format!("order:{}", placed.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.doc_type, "order");
    assert_eq!(doc.owner.as_deref(), Some(me.user_id.to_string().as_str()));
    assert_eq!(doc.version, 2);
    assert_eq!(
        doc.fields["status"], "cancelled",
        "the late created event lost"
    );
    assert_eq!(doc.fields["total"], "9.00");
    assert_eq!(doc.fields["currency"], "USD");
    assert_eq!(doc.fields["items"], "2 × Blue mug");
    assert_eq!(doc.fields["product_ids"], "sku-mug");

    let mut broken = events[0].clone();
    broken.data = serde_json::json!({"order": {"order_id": "x"}});
    assert!(projection.handle(&broken, &mark(&broken)).await.is_err());
}

#[tokio::test]
async fn the_rebuild_writes_every_order_of_the_store() {
    let w = world().await;
    for n in 1..=3 {
        w.orders
            .place(&actor(10 + u128::from(n), Role::Customer), mugs(n))
            .await
            .unwrap();
    }
    assert!(matches!(
        w.search.reindex_as(&actor(11, Role::Customer)).await,
        Err(AppError::Forbidden(_))
    ));
    assert_eq!(
        w.search.reindex_as(&actor(1, Role::Admin)).await.unwrap(),
        4,
        "three orders and the product they order"
    );
    assert_eq!(w.index.docs.lock().unwrap().len(), 4);
    assert_eq!(
        w.search.reindex().await.unwrap(),
        4,
        "same versions rewrite"
    );
}

#[tokio::test]
async fn products_are_indexed_and_customers_search_the_active_ones() {
    let w = world().await;
    let now = OffsetDateTime::UNIX_EPOCH;
    let usd = Currency::from_code("USD").unwrap();
    let prices = Prices::new([Money::parse("1999", usd).unwrap()]).unwrap();
    let mut laptop = Product::create(
        Sku::parse("laptop-pro-16").unwrap(),
        ProductDetails::new("Laptop Pro 16", "A sturdy laptop", prices).unwrap(),
        now,
    );
    w.store.insert_product(&mut laptop, None).await.unwrap();
    laptop.archive(now);
    w.store.update_product(&mut laptop).await.unwrap();
    let projection = SearchProjection::new(w.index.clone());
    let doc = || {
        w.index
            .docs
            .lock()
            .unwrap()
            .get("product:laptop-pro-16")
            .cloned()
    };
    for e in w.store.unpublished(100).await.unwrap() {
        if e.aggregate_id != "laptop-pro-16" {
            continue;
        }
        let mark = InboxMark {
            group: "search".into(),
            event_id: e.id,
            at: now,
        };
        projection.handle(&e, &mark).await.unwrap();
        let indexed = doc().expect("indexed");
        let status = if e.event_type == "product.created" {
            "active"
        } else {
            "archived"
        };
        assert_eq!(indexed.fields["status"], status);
    }
    let indexed = doc().unwrap();
    assert_eq!(
        (
            indexed.doc_type.as_str(),
            indexed.owner.clone(),
            indexed.version
        ),
        ("product", None, 2)
    );
    assert_eq!(indexed.fields["prices"], "USD 1999.00");

    let me = actor(7, Role::Customer);
    let mut products = query("sturdy");
    products.doc_type = Some("product".into());
    w.search.search(&me, products.clone()).await.unwrap();
    let sent = w.index.last_query.lock().unwrap().clone().unwrap();
    assert_eq!(
        (
            sent.filters.get("status").map(String::as_str),
            sent.filters.get("owner")
        ),
        (Some("active"), None),
        "customers find active products, whoever owns nothing"
    );
    w.search.search(&me, query("sturdy")).await.unwrap();
    let sent = w.index.last_query.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent.filters.get("owner").map(String::as_str),
        Some(me.user_id.to_string().as_str()),
        "without type=product, their own documents only"
    );
    w.search
        .search(&actor(1, Role::Admin), products)
        .await
        .unwrap();
    let sent = w.index.last_query.lock().unwrap().clone().unwrap();
    assert!(
        sent.filters.is_empty(),
        "administrators see archived products too"
    );
}
