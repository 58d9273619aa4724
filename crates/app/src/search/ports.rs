//! The search index port: documents of a read model, full-text queries with filters and facet
//! counts.

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Facets an index counts.
pub const FACETS: [&str; 3] = ["type", "status", "currency"];
/// Keyword fields a query may filter on.
pub const FILTERS: [&str; 4] = ["type", "status", "currency", "owner"];

/// A document of the read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDocument {
    /// Unique id (`order:<uuid>`, `payment:<uuid>`, or any id given over gRPC).
    pub id: String,
    /// Kind of document (`order`, `payment`, ...).
    pub doc_type: String,
    /// The customer who may find it; `None` for documents only administrators see.
    pub owner: Option<String>,
    /// Version of the source aggregate; an index keeps the highest.
    pub version: i64,
    /// Text fields; `status` and `currency` are also keyword fields.
    pub fields: BTreeMap<String, String>,
}

/// A query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchQuery {
    /// Full-text query (terms, phrases in quotes, AND/OR/NOT, field:value).
    pub text: String,
    /// Only this document type.
    pub doc_type: Option<String>,
    /// Exact matches on keyword fields (see [`FILTERS`]).
    pub filters: BTreeMap<String, String>,
    /// Facets to count (see [`FACETS`]).
    pub facets: Vec<String>,
    /// Page size.
    pub limit: u32,
    /// Documents to skip.
    pub offset: u32,
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub document: SearchDocument,
    /// Relevance.
    pub score: f32,
}

/// What a query found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResults {
    /// The requested page, best first.
    pub hits: Vec<SearchHit>,
    /// How many documents match in all.
    pub total: u64,
    /// Per requested facet, value → count (of all matches, not just the page).
    pub facets: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Why the index did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The query or document is not acceptable; the message says why.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The index cannot be reached or refuses work right now.
    #[error("search unavailable: {0}")]
    Unavailable(String),
    /// No answer in time.
    #[error("search timed out")]
    Timeout,
    /// Anything else.
    #[error("search failure: {0}")]
    Other(String),
}

/// A search index (Tantivy, OpenSearch/Elasticsearch).
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Adds or replaces documents; a document older (lower version) than the indexed one is
    /// ignored. Returns how many were written.
    async fn upsert(&self, documents: &[SearchDocument]) -> Result<usize, SearchError>;
    /// Removes a document; false when there was none.
    async fn delete(&self, id: &str) -> Result<bool, SearchError>;
    /// One document.
    async fn get(&self, id: &str) -> Result<Option<SearchDocument>, SearchError>;
    /// Runs a (validated) query.
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError>;
}
