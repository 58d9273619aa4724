//! `GET /api/v1/search`: the read model of orders, payments and products, with facet counts. Customers
//! find their own documents and, with `type=product`, the active products; administrators all.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use portside_app::search::{FACETS, SearchQuery};
use portside_app::search::{MAX_OFFSET, Search};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::json::QueryParams;
use crate::page;
use crate::problem::{Problem, ProblemBody};

/// The routes of the search context.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/search", get(search))
        .route("/api/v1/search/reindex", post(reindex))
}

/// Query of `GET /api/v1/search`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    q: Option<String>,
    #[serde(rename = "type")]
    doc_type: Option<String>,
    status: Option<String>,
    currency: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// One document found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hit {
    /// `order:<uuid>` or `payment:<uuid>`.
    pub id: String,
    /// `order` or `payment`.
    #[serde(rename = "type")]
    pub doc_type: String,
    /// Relevance.
    pub score: f32,
    /// The document's fields.
    pub fields: BTreeMap<String, String>,
}

/// Search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// The page, best first.
    pub data: Vec<Hit>,
    /// Matches in all.
    pub total: u64,
    /// Counts per facet (type, status, currency) over all matches.
    pub facets: BTreeMap<String, BTreeMap<String, u64>>,
}

/// What a rebuild wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reindexed {
    /// Documents written.
    pub documents: usize,
}

/// Rebuilds the read model from the store (administrators). Safe while events flow: the index
/// keeps each document's highest version.
#[utoipa::path(post, path = "/api/v1/search/reindex", tag = "search", security(("bearer" = [])),
    responses((status = 200, body = Reindexed), (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn reindex(
    State(search): State<Arc<Search>>,
    Authenticated(actor): Authenticated,
) -> Result<Json<Reindexed>, Problem> {
    let documents = search.reindex_as(&actor).await?;
    Ok(Json(Reindexed { documents }))
}

/// Full-text search over orders and payments.
#[utoipa::path(get, path = "/api/v1/search", tag = "search", security(("bearer" = [])),
    params(
        ("q" = String, Query, min_length = 1, max_length = 1000, pattern = r"\S", description = "Query: words (ANDed), \"phrases\", OR, NOT, field:value; 1 to 1000 characters"),
        ("type" = Option<String>, Query, description = "order, payment or product (customers: `product` searches the active products of the catalog, anything else their own documents)"),
        ("status" = Option<String>, Query, description = "Exact status"),
        ("currency" = Option<String>, Query, description = "Exact currency"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
        ("offset" = Option<u32>, Query, minimum = 0, maximum = 10000, description = "0 to 10000"),
    ),
    responses((status = 200, body = SearchResponse), (status = 400, description = "Bad or missing query, limit or offset", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn search(
    State(search): State<Arc<Search>>,
    Authenticated(actor): Authenticated,
    QueryParams(p): QueryParams<SearchParams>,
) -> Result<Json<SearchResponse>, Problem> {
    let text =
        p.q.ok_or_else(|| Problem::bad_parameter("q", "invalid_parameter", "q is required"))?;
    let limit = page::limit(p.limit.as_deref())?;
    let offset = match p.offset.as_deref() {
        None => 0,
        Some(o) => o
            .parse::<u32>()
            .ok()
            .filter(|o| *o <= MAX_OFFSET)
            .ok_or_else(|| {
                Problem::bad_parameter(
                    "offset",
                    "invalid_parameter",
                    format!("offset must be an integer from 0 to {MAX_OFFSET}"),
                )
            })?,
    };
    let mut filters = BTreeMap::new();
    if let Some(s) = p.status {
        filters.insert("status".to_owned(), s);
    }
    if let Some(c) = p.currency {
        filters.insert("currency".to_owned(), c);
    }
    let query = SearchQuery {
        text,
        doc_type: p.doc_type,
        filters,
        facets: FACETS.iter().map(|f| (*f).to_owned()).collect(),
        limit,
        offset,
    };
    let found = search.search(&actor, query).await?;
    Ok(Json(SearchResponse {
        data: found
            .hits
            .into_iter()
            .map(|h| Hit {
                id: h.document.id,
                doc_type: h.document.doc_type,
                score: h.score,
                fields: h.document.fields,
            })
            .collect(),
        total: found.total,
        facets: found.facets,
    }))
}
