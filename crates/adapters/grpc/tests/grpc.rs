//! The gRPC service through a real tonic client over a TCP socket: indexing, search with facets,
//! deletion, every bad input as INVALID_ARGUMENT, health, reflection, and the status of an index
//! that is down, slow or panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portside_app::search::{
    Search, SearchDocument, SearchError, SearchIndex, SearchQuery, SearchResults,
};
use portside_app::testing::fakes::InMemoryStore;
use portside_grpc::pb::search_service_client::SearchServiceClient;
use portside_grpc::pb::{
    BulkIndexRequest, DeleteDocumentRequest, Document, IndexDocumentRequest, SearchRequest,
};
use portside_search::TantivyIndex;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

struct Server {
    client: SearchServiceClient<Channel>,
    channel: Channel,
    stop: CancellationToken,
}

async fn start(index: Arc<dyn SearchIndex>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    // The store is the in-memory fake: the gRPC operations never rebuild the index from it.
    let store = Arc::new(InMemoryStore::new());
    let search = Arc::new(Search::new(index, store.clone(), store.clone(), store));
    tokio::spawn(portside_grpc::serve(
        listener,
        search,
        stop.clone().cancelled_owned(),
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Server {
        client: SearchServiceClient::new(channel.clone()),
        channel,
        stop,
    }
}

fn doc(id: &str, ty: &str, fields: &[(&str, &str)]) -> Document {
    Document {
        id: id.into(),
        r#type: ty.into(),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        version: 1,
        ..Document::default()
    }
}

fn search(query: &str) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        limit: 10,
        ..SearchRequest::default()
    }
}

fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "portside-grpc-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_service_over_a_socket() {
    let dir = temp_dir();
    let s = start(Arc::new(TantivyIndex::open(&dir).unwrap())).await;
    let mut c = s.client.clone();

    let bulk = c
        .bulk_index(BulkIndexRequest {
            documents: vec![
                doc(
                    "a",
                    "order",
                    &[
                        ("status", "pending"),
                        ("currency", "EUR"),
                        ("items", "red kite"),
                    ],
                ),
                doc(
                    "b",
                    "order",
                    &[
                        ("status", "shipped"),
                        ("currency", "USD"),
                        ("items", "blue kite"),
                    ],
                ),
                doc(
                    "c",
                    "payment",
                    &[
                        ("status", "succeeded"),
                        ("currency", "USD"),
                        ("note", "kite deposit"),
                    ],
                ),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bulk.written, 3);
    let one = c
        .index_document(IndexDocumentRequest {
            document: Some(doc("d", "note", &[("text", "paper plane")])),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(one.written);

    let found = c
        .search(SearchRequest {
            facets: vec!["type".into(), "status".into(), "currency".into()],
            ..search("kite")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.total, 3);
    assert!(found.documents.iter().all(|d| d.score > 0.0));
    assert_eq!(
        found.facets["type"].counts,
        HashMap::from([("order".to_owned(), 2), ("payment".to_owned(), 1)])
    );
    assert_eq!(found.facets["currency"].counts["USD"], 2);
    let red = c.search(search("red kite")).await.unwrap().into_inner();
    assert_eq!(red.total, 1);
    assert_eq!(red.documents[0].id, "a");
    assert_eq!(red.documents[0].fields["items"], "red kite");
    let usd_orders = c
        .search(SearchRequest {
            r#type: "order".into(),
            filters: HashMap::from([("currency".to_owned(), "USD".to_owned())]),
            ..search("kite")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        usd_orders
            .documents
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    let second_page = c
        .search(SearchRequest {
            limit: 2,
            offset: 2,
            ..search("kite")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((second_page.total, second_page.documents.len()), (3, 1));

    c.delete_document(DeleteDocumentRequest { id: "d".into() })
        .await
        .unwrap();
    let gone = c
        .delete_document(DeleteDocumentRequest { id: "d".into() })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(
        c.search(search("plane")).await.unwrap().into_inner().total,
        0
    );

    // Every bad input is INVALID_ARGUMENT with a message, and changes nothing.
    let ten_kb = "k".repeat(10 * 1024);
    let bad_searches = [
        ("empty query", search("")),
        ("10 KB query", search(&ten_kb)),
        ("unclosed phrase", search("\"red kite")),
        ("dangling field", search("status:(")),
        (
            "limit 0",
            SearchRequest {
                limit: 0,
                ..search("kite")
            },
        ),
        (
            "limit 10000",
            SearchRequest {
                limit: 10_000,
                ..search("kite")
            },
        ),
        (
            "negative offset",
            SearchRequest {
                offset: -1,
                ..search("kite")
            },
        ),
        (
            "offset past 10000",
            SearchRequest {
                offset: 10_001,
                ..search("kite")
            },
        ),
        (
            "unknown facet",
            SearchRequest {
                facets: vec!["colour".into()],
                ..search("kite")
            },
        ),
        (
            "unknown filter",
            SearchRequest {
                filters: HashMap::from([("colour".to_owned(), "red".to_owned())]),
                ..search("kite")
            },
        ),
    ];
    for (name, request) in bad_searches {
        let e = c.search(request).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name}: {e:?}");
        assert!(!e.message().is_empty(), "{name}");
    }
    let bad_writes = [
        (
            "no document",
            c.index_document(IndexDocumentRequest { document: None })
                .await,
        ),
        (
            "document without id",
            c.index_document(IndexDocumentRequest {
                document: Some(doc("", "note", &[])),
            })
            .await,
        ),
        (
            "document without type",
            c.index_document(IndexDocumentRequest {
                document: Some(doc("e", "", &[])),
            })
            .await,
        ),
    ];
    for (name, r) in bad_writes {
        let e = r.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name}: {e:?}");
    }
    let e = c
        .bulk_index(BulkIndexRequest { documents: vec![] })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .bulk_index(BulkIndexRequest {
            documents: vec![
                doc("f", "note", &[("text", "glider")]),
                doc("", "note", &[]),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("documents[1]"), "{}", e.message());
    assert_eq!(
        c.search(search("glider")).await.unwrap().into_inner().total,
        0,
        "a bulk with one bad document writes none"
    );
    let e = c
        .delete_document(DeleteDocumentRequest { id: " ".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Health and reflection, as grpcurl and load balancers use them.
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel.clone());
    for service in ["", "search.v1.SearchService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let services = list_services(s.channel.clone()).await;
    for expected in [
        "search.v1.SearchService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(services.iter().any(|s| s == expected), "{services:?}");
    }

    s.stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seed 003's `search.SearchService`, as its own client calls it, over the same index as v1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003s_search_service_is_served_beside_v1() {
    use portside_grpc::seed::pb;
    use portside_grpc::seed::pb::search_service_client::SearchServiceClient as SeedClient;

    let dir = temp_dir();
    let s = start(Arc::new(TantivyIndex::open(&dir).unwrap())).await;
    let mut v1 = s.client.clone();
    v1.index_document(IndexDocumentRequest {
        document: Some(doc(
            "order:1",
            "order",
            &[("items", "1 × Laptop Pro 16"), ("status", "pending")],
        )),
    })
    .await
    .unwrap();
    let mut seed = SeedClient::new(s.channel.clone());
    let indexed = seed
        .index_document(pb::IndexRequest {
            id: "note:1".into(),
            r#type: "note".into(),
            fields: HashMap::from([("text".to_owned(), "a laptop bag".to_owned())]),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(indexed.indexed);
    // As the seed's example: `{"query":"laptop","type":"orders","limit":10}`.
    let orders = seed
        .search(pb::SearchRequest {
            query: "laptop".into(),
            r#type: "orders".into(),
            limit: 10,
            offset: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(orders.total, 1);
    assert_eq!(
        (
            orders.documents[0].id.as_str(),
            orders.documents[0].r#type.as_str()
        ),
        ("order:1", "order")
    );
    assert_eq!(orders.documents[0].fields["status"], "pending");
    let all = seed
        .search(pb::SearchRequest {
            query: "laptop".into(),
            ..pb::SearchRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.total, 2, "no type, no limit: every type, 10 at most");
    for (request, what) in [
        (
            pb::SearchRequest {
                query: "".into(),
                ..pb::SearchRequest::default()
            },
            "empty query",
        ),
        (
            pb::SearchRequest {
                query: "a".into(),
                limit: 101,
                ..pb::SearchRequest::default()
            },
            "limit",
        ),
        (
            pb::SearchRequest {
                query: "a".into(),
                offset: -1,
                ..pb::SearchRequest::default()
            },
            "offset",
        ),
    ] {
        assert_eq!(
            seed.search(request).await.unwrap_err().code(),
            Code::InvalidArgument,
            "{what}"
        );
    }
    seed.delete_document(pb::DeleteRequest {
        id: "note:1".into(),
    })
    .await
    .unwrap();
    let again = seed
        .delete_document(pb::DeleteRequest {
            id: "note:1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let services = list_services(s.channel.clone()).await;
    for expected in ["search.SearchService", "search.v1.SearchService"] {
        assert!(services.iter().any(|s| s == expected), "{services:?}");
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "search.SearchService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    s.stop.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `grpcurl list`: the services the reflection service names.
async fn list_services(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    match answer.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

/// An index that is down, slow, or panics, depending on the query.
struct Troubled;

#[async_trait]
impl SearchIndex for Troubled {
    async fn upsert(&self, _: &[SearchDocument]) -> Result<usize, SearchError> {
        Err(SearchError::Unavailable("the cluster is red".into()))
    }
    async fn delete(&self, _: &str) -> Result<bool, SearchError> {
        Err(SearchError::Unavailable("the cluster is red".into()))
    }
    async fn get(&self, _: &str) -> Result<Option<SearchDocument>, SearchError> {
        Ok(None)
    }
    async fn search(&self, q: &SearchQuery) -> Result<SearchResults, SearchError> {
        match q.text.as_str() {
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(SearchResults::default())
            }
            "boom" => panic!("the index exploded"),
            _ => Err(SearchError::Timeout),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_failures_map_to_grpc_status_codes() {
    let s = start(Arc::new(Troubled)).await;
    let mut c = s.client.clone();
    let down = c
        .index_document(IndexDocumentRequest {
            document: Some(doc("a", "note", &[])),
        })
        .await
        .unwrap_err();
    assert_eq!(down.code(), Code::Unavailable);
    assert!(down.message().contains("red"));

    let mut slow = tonic::Request::new(search("slow"));
    slow.set_timeout(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let e = c.search(slow).await.unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the deadline was kept"
    );
    assert_eq!(
        c.search(search("late")).await.unwrap_err().code(),
        Code::DeadlineExceeded
    );

    let e = c.search(search("boom")).await.unwrap_err();
    assert_eq!(e.code(), Code::Internal, "{e:?}");
    let after = c.search(search("late")).await.unwrap_err();
    assert_eq!(
        after.code(),
        Code::DeadlineExceeded,
        "the server still serves after a panic"
    );
    s.stop.cancel();
}
