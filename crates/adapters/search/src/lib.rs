//! Search index adapters: Tantivy on local disk (the embedded default) and OpenSearch or
//! Elasticsearch over their REST API.

mod opensearch;
mod tantivy_index;
#[cfg(feature = "testing")]
pub mod testing;

pub use opensearch::{OpenSearchIndex, OpenSearchSettings};
pub use tantivy_index::TantivyIndex;
