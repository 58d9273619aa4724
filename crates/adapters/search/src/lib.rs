//! Search index adapters: Tantivy on local disk (the embedded default) and OpenSearch or
//! Elasticsearch over their REST API.

mod tantivy_index;

pub use tantivy_index::TantivyIndex;
