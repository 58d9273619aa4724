//! Seed 003's `search.SearchService` (`proto/search/search.proto`): the seed's message and field
//! names over the same search use case as `search.v1`, with the same trust model.

use std::sync::Arc;

use portside_app::search::{Search, SearchDocument, SearchQuery};
use tonic::{Request, Response, Status};

use super::{deadline, delete, page, within};

/// The generated messages, server and client of package `search`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("search");
}

/// Page size when the caller gives none (a proto3 `0`).
const DEFAULT_LIMIT: i32 = 10;

/// `search.SearchService` over the search use case.
pub struct SeedSearchService {
    search: Arc<Search>,
}

impl SeedSearchService {
    pub fn new(search: Arc<Search>) -> Self {
        SeedSearchService { search }
    }
}

/// A type as the seed writes it (`orders`) or as Portside does (`order`).
fn doc_type(text: &str) -> Option<String> {
    let t = text.trim();
    match t {
        "" => None,
        "orders" | "payments" | "products" => Some(t.trim_end_matches('s').to_owned()),
        other => Some(other.to_owned()),
    }
}

fn query(r: pb::SearchRequest) -> Result<SearchQuery, Status> {
    let limit = if r.limit == 0 { DEFAULT_LIMIT } else { r.limit };
    let (limit, offset) = page(limit, r.offset)?;
    Ok(SearchQuery {
        text: r.query,
        doc_type: doc_type(&r.r#type),
        limit,
        offset,
        ..SearchQuery::default()
    })
}

#[tonic::async_trait]
impl pb::search_service_server::SearchService for SeedSearchService {
    async fn index_document(
        &self,
        request: Request<pb::IndexRequest>,
    ) -> Result<Response<pb::IndexResponse>, Status> {
        let limit = deadline(&request);
        let r = request.into_inner();
        let document = SearchDocument {
            id: r.id,
            doc_type: r.r#type,
            owner: None,
            version: 0,
            fields: r.fields.into_iter().collect(),
        };
        let indexed = within(limit, self.search.index_document(document)).await?;
        Ok(Response::new(pb::IndexResponse { indexed }))
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
                })
                .collect(),
            total: i64::try_from(found.total).unwrap_or(i64::MAX),
        }))
    }

    async fn delete_document(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let limit = deadline(&request);
        delete(&self.search, &request.into_inner().id, limit).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_plural_types_name_portsides_types() {
        for (given, wanted) in [
            ("orders", Some("order")),
            ("order", Some("order")),
            ("payments", Some("payment")),
            ("products", Some("product")),
            ("notes", Some("notes")),
            ("", None),
        ] {
            assert_eq!(doc_type(given).as_deref(), wanted, "{given:?}");
        }
    }
}
