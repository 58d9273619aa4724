//! The search index contract against a real Tantivy index on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use portside_app::testing::search_contract;
use portside_search::TantivyIndex;

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("portside-search-{}", std::process::id()))
        .join(format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_keeps_the_search_contract() {
    let dir = temp_dir();
    search_contract::search_index(Arc::new(TantivyIndex::open(&dir).unwrap())).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_tantivy_index_survives_a_reopen_and_has_one_owner() {
    use portside_app::ports::{SearchDocument, SearchIndex};
    let dir = temp_dir();
    let index = TantivyIndex::open(&dir).unwrap();
    let doc = SearchDocument {
        id: "x:1".into(),
        doc_type: "x".into(),
        owner: None,
        version: 1,
        fields: Default::default(),
    };
    index.upsert(std::slice::from_ref(&doc)).await.unwrap();
    assert!(
        TantivyIndex::open(&dir).is_err(),
        "a second writer is refused, not corrupting"
    );
    drop(index);
    let again = TantivyIndex::open(&dir).unwrap();
    assert_eq!(
        again.get("x:1").await.unwrap(),
        Some(doc),
        "committed documents survive"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
