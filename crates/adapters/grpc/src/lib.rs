//! The gRPC driving adapter: `search.v1.SearchService` (see `proto/search/v1/search.proto`) and
//! seed 003's `search.SearchService` (`proto/search/search.proto`, in `seed`) over the search use
//! case, with server reflection, the standard `grpc.health.v1` service,
//! request logging and panic recovery. It is an internal service: it trusts its callers, so
//! bind it to a private address.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use portside_app::search::{MAX_LIMIT, MAX_OFFSET};
use portside_app::search::{Search, SearchDocument, SearchError, SearchQuery};
use tonic::{Request, Response, Status};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The generated messages, server and client.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("search.v1");

    /// The encoded descriptors, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("search_descriptor");
}

pub mod seed;

use pb::search_service_server::SearchServiceServer;
use seed::SeedSearchService;
use seed::pb::search_service_server::SearchServiceServer as SeedSearchServiceServer;

/// How long the index may take when the caller set no deadline.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// `search.v1.SearchService` over the search use case.
pub struct SearchService {
    search: Arc<Search>,
}

impl SearchService {
    /// Serves the search use case.
    pub fn new(search: Arc<Search>) -> Self {
        SearchService { search }
    }
}

/// The status of an index failure. Bad input is `InvalidArgument`, never `Internal`.
fn status(e: SearchError) -> Status {
    match e {
        SearchError::Invalid(m) => Status::invalid_argument(m),
        SearchError::Unavailable(m) => Status::unavailable(m),
        SearchError::Timeout => {
            Status::deadline_exceeded("the search index did not answer in time")
        }
        SearchError::Other(m) => Status::internal(m),
    }
}

/// How long the index may take: 90% of the caller's deadline (`grpc-timeout`), so that
/// DEADLINE_EXCEEDED reaches the caller before it gives up, and never more than the default.
fn deadline<T>(request: &Request<T>) -> Duration {
    request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map_or(DEFAULT_DEADLINE, |d| (d - d / 10).min(DEFAULT_DEADLINE))
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let at = v.len().checked_sub(1)?;
    if !v.is_char_boundary(at) {
        return None;
    }
    let (digits, unit) = v.split_at(at);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Runs index work within the deadline.
async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, SearchError>>,
) -> Result<T, Status> {
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r.map_err(status),
        Err(_) => Err(status(SearchError::Timeout)),
    }
}

fn document(d: pb::Document) -> SearchDocument {
    SearchDocument {
        id: d.id,
        doc_type: d.r#type,
        owner: Some(d.owner).filter(|o| !o.is_empty()),
        version: d.version,
        fields: d.fields.into_iter().collect(),
    }
}

/// A page size of 1 to [`MAX_LIMIT`] and an offset of 0 to [`MAX_OFFSET`], from the wire's
/// int32s.
fn page(limit: i32, offset: i32) -> Result<(u32, u32), Status> {
    let size = u32::try_from(limit)
        .ok()
        .filter(|l| (1..=MAX_LIMIT).contains(l))
        .ok_or_else(|| {
            Status::invalid_argument(format!("limit must be 1 to {MAX_LIMIT}, got {limit}"))
        })?;
    let skip = u32::try_from(offset)
        .ok()
        .filter(|o| *o <= MAX_OFFSET)
        .ok_or_else(|| {
            Status::invalid_argument(format!("offset must be 0 to {MAX_OFFSET}, got {offset}"))
        })?;
    Ok((size, skip))
}

/// Removes a document; NOT_FOUND when there is none.
async fn delete(search: &Search, id: &str, limit: Duration) -> Result<(), Status> {
    if within(limit, search.delete_document(id)).await? {
        Ok(())
    } else {
        Err(Status::not_found(format!("no document {id:?}")))
    }
}

fn query(r: pb::SearchRequest) -> Result<SearchQuery, Status> {
    let (limit, offset) = page(r.limit, r.offset)?;
    Ok(SearchQuery {
        text: r.query,
        doc_type: Some(r.r#type).filter(|t| !t.is_empty()),
        filters: r.filters.into_iter().collect(),
        facets: r.facets,
        limit,
        offset,
    })
}

#[tonic::async_trait]
impl pb::search_service_server::SearchService for SearchService {
    async fn index_document(
        &self,
        request: Request<pb::IndexDocumentRequest>,
    ) -> Result<Response<pb::IndexDocumentResponse>, Status> {
        let limit = deadline(&request);
        let doc = request
            .into_inner()
            .document
            .ok_or_else(|| Status::invalid_argument("document is required"))?;
        let written = within(limit, self.search.index_document(document(doc))).await?;
        Ok(Response::new(pb::IndexDocumentResponse { written }))
    }

    async fn bulk_index(
        &self,
        request: Request<pb::BulkIndexRequest>,
    ) -> Result<Response<pb::BulkIndexResponse>, Status> {
        let limit = deadline(&request);
        let docs: Vec<SearchDocument> = request
            .into_inner()
            .documents
            .into_iter()
            .map(document)
            .collect();
        let written = within(limit, self.search.index_documents(&docs)).await?;
        Ok(Response::new(pb::BulkIndexResponse {
            written: u32::try_from(written).unwrap_or(u32::MAX),
        }))
    }

    async fn delete_document(
        &self,
        request: Request<pb::DeleteDocumentRequest>,
    ) -> Result<Response<pb::DeleteDocumentResponse>, Status> {
        let limit = deadline(&request);
        delete(&self.search, &request.into_inner().id, limit).await?;
        Ok(Response::new(pb::DeleteDocumentResponse {}))
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let limit = deadline(&request);
        let q = query(request.into_inner())?;
        let found = within(limit, self.search.search_everything(&q)).await?;
        Ok(Response::new(pb::SearchResponse {
            documents: found
                .hits
                .into_iter()
                .map(|h| pb::Document {
                    id: h.document.id,
                    r#type: h.document.doc_type,
                    fields: h.document.fields.into_iter().collect(),
                    score: h.score,
                    version: h.document.version,
                    owner: h.document.owner.unwrap_or_default(),
                })
                .collect(),
            total: found.total,
            facets: found
                .facets
                .into_iter()
                .map(|(name, counts)| {
                    (
                        name,
                        pb::FacetCounts {
                            counts: counts.into_iter().collect(),
                        },
                    )
                })
                .collect(),
        }))
    }
}

/// A panic in a handler becomes `INTERNAL`, and the server keeps serving.
fn panic_status(_: Box<dyn std::any::Any + Send>) -> http::Response<tonic::body::Body> {
    tracing::error!("a gRPC handler panicked");
    Status::internal("internal error").into_http()
}

/// Serves the search service, reflection and health on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    search: Arc<Search>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<SearchServiceServer<SearchService>>()
        .await;
    health
        .set_serving::<SeedSearchServiceServer<SeedSearchService>>()
        .await;
    // Both reflection versions: grpcurl and most tools ask v1 first, older ones v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = reflection().build_v1()?;
    let v1alpha = reflection().build_v1alpha()?;
    let trace = TraceLayer::new_for_grpc()
        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
        .on_response(DefaultOnResponse::new().level(Level::INFO))
        .on_failure(DefaultOnFailure::new().level(Level::WARN));
    tonic::transport::Server::builder()
        .layer(trace)
        .layer(CatchPanicLayer::custom(panic_status))
        .add_service(health_service)
        .add_service(v1)
        .add_service(v1alpha)
        .add_service(SearchServiceServer::new(SearchService::new(search.clone())))
        .add_service(SeedSearchServiceServer::new(SeedSearchService::new(search)))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_or_are_ignored() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        for bad in ["", "m", "12", "123456789S", "5x", "-1S", "5é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
