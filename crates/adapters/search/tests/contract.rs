//! The search index contract against a real Tantivy index on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use portside_app::testing::search as search_contract;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tantivy_index_survives_a_reopen_and_has_one_writer() {
    use portside_app::search::{SearchDocument, SearchError, SearchIndex};
    let dir = temp_dir();
    let doc = |id: &str| SearchDocument {
        id: id.into(),
        doc_type: "x".into(),
        owner: None,
        version: 1,
        fields: Default::default(),
    };
    let writer = TantivyIndex::open(&dir).unwrap();
    writer.upsert(&[doc("x:1")]).await.unwrap();
    let reader = TantivyIndex::open(&dir).unwrap();
    assert_eq!(reader.get("x:1").await.unwrap(), Some(doc("x:1")));
    assert!(
        matches!(
            reader.upsert(&[doc("x:9")]).await,
            Err(SearchError::Unavailable(_))
        ),
        "a second writer is refused, not corrupting"
    );
    writer.upsert(&[doc("x:2")]).await.unwrap();
    let mut seen = None;
    for _ in 0..100 {
        seen = reader.get("x:2").await.unwrap();
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, Some(doc("x:2")), "a reader sees the writer's commits");
    drop(writer);
    drop(reader);
    let again = TantivyIndex::open(&dir).unwrap();
    assert_eq!(
        again.get("x:1").await.unwrap(),
        Some(doc("x:1")),
        "committed documents survive"
    );
    assert_eq!(
        again.upsert(&[doc("x:3")]).await.unwrap(),
        1,
        "the lock is free again"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn unique_index() -> String {
    format!(
        "portside-test-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn opensearch_contract(cluster: &str) {
    use portside_search::{OpenSearchIndex, OpenSearchSettings};
    let url = format!("{}/{}", cluster.trim_end_matches('/'), unique_index());
    let index = Arc::new(OpenSearchIndex::new(OpenSearchSettings::new(url)).unwrap());
    index.prepare().await.unwrap();
    search_contract::search_index(index.clone()).await;

    // The index is lost (deleted, or the cluster lost its data): no documents, no error, and
    // the next write puts the template and the index back.
    use portside_app::search::{SearchDocument, SearchIndex, SearchQuery};
    index.delete_index().await.unwrap();
    let query = SearchQuery {
        text: "again".into(),
        limit: 10,
        facets: vec!["status".into()],
        ..SearchQuery::default()
    };
    assert_eq!(index.search(&query).await.unwrap().total, 0);
    assert_eq!(index.get("order:1").await.unwrap(), None);
    let doc = SearchDocument {
        id: "order:7".into(),
        doc_type: "order".into(),
        owner: None,
        version: 1,
        fields: [("status".to_owned(), "again".to_owned())].into(),
    };
    let mut written = index.upsert(std::slice::from_ref(&doc)).await;
    if written.is_err() {
        // A cluster that does not create indices on write refused it; the retry recreates.
        written = index.upsert(std::slice::from_ref(&doc)).await;
    }
    assert_eq!(written.unwrap(), 1);
    let found = index.search(&query).await.unwrap();
    assert_eq!((found.total, found.facets["status"]["again"]), (1, 1));
    index.delete_index().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osmem_server_keeps_the_search_contract() {
    let Some(server) = portside_search::testing::Osmem::start() else {
        return;
    };
    opensearch_contract(&server.url).await;
}

/// Runs only when `TEST_ELASTICSEARCH_URL` names a real cluster (Elasticsearch or OpenSearch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_cluster_keeps_the_search_contract() {
    let Ok(url) = std::env::var("TEST_ELASTICSEARCH_URL") else {
        eprintln!("*** SKIPPED: TEST_ELASTICSEARCH_URL is not set ***");
        return;
    };
    opensearch_contract(&url).await;
}

/// A one-line HTTP server: answers request `n` (from 0) with `answer(n)`, or never when `None`.
async fn fake_cluster(
    answer: impl Fn(usize) -> Option<(u16, &'static str)> + Send + Sync + 'static,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/fake", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => request.extend_from_slice(&buf[..k]),
                    }
                }
                let Some((status, body)) = answer(n) else {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    return;
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

fn quick(url: &str) -> portside_search::OpenSearchSettings {
    let mut s = portside_search::OpenSearchSettings::new(url);
    s.timeout = std::time::Duration::from_millis(300);
    s.retries = 1;
    s.backoff = std::time::Duration::from_millis(10);
    s.breaker_threshold = 2;
    s.breaker_cool_down = std::time::Duration::from_secs(60);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cluster_is_retried_timed_out_and_cut_off() {
    use portside_app::search::{SearchError, SearchIndex};
    use portside_search::OpenSearchIndex;
    use std::sync::atomic::Ordering;

    // A 503, then healthy answers: the retry hides the failure.
    let (url, seen) = fake_cluster(|n| {
        Some(if n == 0 {
            (503, r#"{"error":{"reason":"busy"}}"#)
        } else {
            (200, r#"{"acknowledged":true,"found":false}"#)
        })
    })
    .await;
    let index = OpenSearchIndex::new(quick(&url)).unwrap();
    assert_eq!(index.get("order:1").await.unwrap(), None);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        4,
        "503, template again, index, get"
    );

    // No answer: a timeout, retried once.
    let (url, seen) = fake_cluster(|_| None).await;
    let index = OpenSearchIndex::new(quick(&url)).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(index.prepare().await, Err(SearchError::Timeout));
    assert_eq!(seen.load(Ordering::SeqCst), 2, "one call and one retry");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));

    // Nobody listening: unavailable; after two failed calls the circuit opens and calls are
    // refused without touching the network.
    let index = OpenSearchIndex::new(quick("http://127.0.0.1:1/x")).unwrap();
    for _ in 0..2 {
        match index.prepare().await {
            Err(SearchError::Unavailable(m)) => assert!(m.contains("cannot reach"), "{m}"),
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
    let started = std::time::Instant::now();
    match index.search(&Default::default()).await {
        Err(SearchError::Unavailable(m)) => assert!(m.contains("calls resume in"), "{m}"),
        other => panic!("expected an open circuit, got {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_millis(50));

    // Credentials in the URL go in a header, never in the logged base URL or errors.
    let index =
        OpenSearchIndex::new(quick("http://elastic:s3cret@127.0.0.1:1/orders-read")).unwrap();
    assert_eq!(index.index(), "orders-read");
    let err = index.prepare().await.unwrap_err().to_string();
    assert!(!err.contains("s3cret"), "{err}");
    for bad in ["ftp://host/x", "http://127.0.0.1:9200/Upper", "not a url"] {
        assert!(
            matches!(
                OpenSearchIndex::new(quick(bad)),
                Err(SearchError::Invalid(_))
            ),
            "{bad}"
        );
    }
}
