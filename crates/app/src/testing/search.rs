//! The contract of the search index port, run by every adapter on a fresh, empty index.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::search::{SearchDocument, SearchError, SearchIndex, SearchQuery};

fn doc(id: &str, ty: &str, owner: &str, version: i64, fields: &[(&str, &str)]) -> SearchDocument {
    SearchDocument {
        id: id.into(),
        doc_type: ty.into(),
        owner: Some(owner.into()),
        version,
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn query(text: &str) -> SearchQuery {
    SearchQuery {
        text: text.into(),
        limit: 10,
        ..SearchQuery::default()
    }
}

fn ids(r: &crate::search::SearchResults) -> Vec<String> {
    let mut ids: Vec<_> = r.hits.iter().map(|h| h.document.id.clone()).collect();
    ids.sort();
    ids
}

/// Upserts, full text, filters, facets, pages, versions, deletion and query errors.
pub async fn search_index<I: SearchIndex + 'static>(index: Arc<I>) {
    let docs = vec![
        doc(
            "order:1",
            "order",
            "c1",
            1,
            &[
                ("status", "pending"),
                ("currency", "EUR"),
                ("items", "2 × Laptop stand"),
                ("note", "ÜNÏCODE inside"),
            ],
        ),
        doc(
            "order:2",
            "order",
            "c2",
            1,
            &[
                ("status", "confirmed"),
                ("currency", "USD"),
                ("items", "1 × Coffee mug"),
            ],
        ),
        doc(
            "payment:1",
            "payment",
            "c1",
            2,
            &[
                ("status", "succeeded"),
                ("currency", "USD"),
                ("amount", "12.50"),
            ],
        ),
    ];
    assert_eq!(index.upsert(&docs).await.unwrap(), 3);
    assert_eq!(
        index.get("order:1").await.unwrap().as_ref(),
        Some(&docs[0]),
        "documents round-trip"
    );
    assert_eq!(index.get("order:9").await.unwrap(), None);

    let laptop = index.search(&query("laptop")).await.unwrap();
    assert_eq!(
        (ids(&laptop), laptop.total),
        (vec!["order:1".to_owned()], 1)
    );
    assert!(laptop.hits[0].score > 0.0);
    assert_eq!(
        ids(&index.search(&query("ünïcode")).await.unwrap()),
        vec!["order:1"],
        "case-insensitive, Unicode"
    );
    assert_eq!(
        index.search(&query("mug OR laptop")).await.unwrap().total,
        2
    );
    assert_eq!(
        index.search(&query("laptop mug")).await.unwrap().total,
        0,
        "terms are ANDed by default"
    );

    let everything = "order OR payment";
    let mut owned = query(everything);
    owned.filters.insert("owner".into(), "c1".into());
    assert_eq!(
        ids(&index.search(&owned).await.unwrap()),
        vec!["order:1", "payment:1"],
        "owner filter"
    );
    let mut typed = query(everything);
    typed.doc_type = Some("payment".into());
    assert_eq!(
        ids(&index.search(&typed).await.unwrap()),
        vec!["payment:1"],
        "type filter"
    );
    let mut confirmed = query(everything);
    confirmed
        .filters
        .insert("status".into(), "confirmed".into());
    assert_eq!(
        ids(&index.search(&confirmed).await.unwrap()),
        vec!["order:2"],
        "status filter"
    );

    let mut faceted = query(everything);
    faceted.facets = vec!["type".into(), "status".into(), "currency".into()];
    let r = index.search(&faceted).await.unwrap();
    let counts = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(r.facets["type"], counts(&[("order", 2), ("payment", 1)]));
    assert_eq!(r.facets["currency"], counts(&[("EUR", 1), ("USD", 2)]));
    assert_eq!(
        r.facets["status"],
        counts(&[("confirmed", 1), ("pending", 1), ("succeeded", 1)])
    );
    let mut page = query(everything);
    page.limit = 1;
    page.offset = 1;
    page.facets = vec!["type".into()];
    let r = index.search(&page).await.unwrap();
    assert_eq!(
        (r.hits.len(), r.total),
        (1, 3),
        "a page of one, total of all"
    );
    assert_eq!(
        r.facets["type"].values().sum::<u64>(),
        3,
        "facets count every match, not the page"
    );

    // The highest version wins; an older update is ignored.
    let cancelled_old = doc(
        "order:1",
        "order",
        "c1",
        0,
        &[
            ("status", "cancelled"),
            ("currency", "EUR"),
            ("items", "2 × Laptop stand"),
        ],
    );
    assert_eq!(index.upsert(&[cancelled_old]).await.unwrap(), 0);
    assert_eq!(
        index.get("order:1").await.unwrap().unwrap().fields["status"],
        "pending"
    );
    let cancelled = doc(
        "order:1",
        "order",
        "c1",
        5,
        &[
            ("status", "cancelled"),
            ("currency", "EUR"),
            ("items", "2 × Laptop stand"),
        ],
    );
    let replayed = cancelled.clone();
    assert_eq!(index.upsert(&[cancelled]).await.unwrap(), 1);
    assert_eq!(
        index.upsert(&[replayed]).await.unwrap(),
        1,
        "the same version again is harmless"
    );
    let mut now_cancelled = query("laptop");
    now_cancelled
        .filters
        .insert("status".into(), "cancelled".into());
    assert_eq!(index.search(&now_cancelled).await.unwrap().total, 1);
    assert_eq!(
        index.search(&query("laptop")).await.unwrap().total,
        1,
        "replaced, not duplicated"
    );

    assert!(index.delete("order:2").await.unwrap());
    assert!(!index.delete("order:2").await.unwrap());
    assert_eq!(index.search(&query("mug")).await.unwrap().total, 0);

    for bad in ["\"unclosed phrase", "status:(", "AND"] {
        match index.search(&query(bad)).await {
            Err(SearchError::Invalid(_)) => {}
            other => panic!("{bad:?} should be an invalid query, got {other:?}"),
        }
    }
}
