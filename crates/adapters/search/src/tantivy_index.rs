//! Tantivy on local disk. Keyword fields (`id`, `type`, `status`, `currency`, `owner`) are raw
//! and fast, so they filter exactly and feed the facet counts; every field value also goes into
//! `body` for full-text search. Any number of processes may read an index directory; one writes
//! (Tantivy's writer lock, taken at the first write), so in split mode the search process owns
//! the embedded index and other processes only read it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portside_app::search::{
    SearchDocument, SearchError, SearchHit, SearchIndex, SearchQuery, SearchResults,
};
use tantivy::aggregation::AggregationCollector;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TEXT, TextFieldIndexing, TextOptions,
    Value,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    doc_type: Field,
    status: Field,
    currency: Field,
    owner: Field,
    body: Field,
    fields: Field,
    version: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let keyword = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic),
        )
        .set_fast(Some("raw"))
        .set_stored();
    let fields = Fields {
        id: b.add_text_field("id", keyword.clone()),
        doc_type: b.add_text_field("type", keyword.clone()),
        status: b.add_text_field("status", keyword.clone()),
        currency: b.add_text_field("currency", keyword.clone()),
        owner: b.add_text_field("owner", keyword),
        body: b.add_text_field("body", TEXT),
        fields: b.add_text_field("fields", STORED),
        version: b.add_i64_field("version", INDEXED | STORED | FAST),
    };
    (b.build(), fields)
}

struct Inner {
    index: Index,
    reader: IndexReader,
    dir: std::path::PathBuf,
    writer: Mutex<Option<IndexWriter>>,
    f: Fields,
}

/// A Tantivy index in one directory.
#[derive(Clone)]
pub struct TantivyIndex {
    inner: Arc<Inner>,
}

fn other(e: impl std::fmt::Display) -> SearchError {
    SearchError::Other(e.to_string())
}

impl TantivyIndex {
    /// Opens (creating when missing) the index in `dir`. Writing needs the directory's writer
    /// lock, taken at the first write: while another process holds it, writes are refused as
    /// unavailable and reads still work.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| other(format!("cannot create {}: {e}", dir.display())))?;
        let (schema, f) = schema();
        let directory = MmapDirectory::open(dir).map_err(other)?;
        let index = Index::open_or_create(directory, schema).map_err(other)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(other)?;
        Ok(TantivyIndex {
            inner: Arc::new(Inner {
                index,
                reader,
                dir: dir.to_path_buf(),
                writer: Mutex::new(None),
                f,
            }),
        })
    }

    /// Runs blocking Tantivy work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, SearchError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(other)?
    }
}

impl Inner {
    /// The writer, created at the first write: one indexing thread with Tantivy's smallest
    /// budget. The projection commits small batches, so a larger arena only added resident
    /// memory (the default of one thread per core with 50 MB between them).
    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Option<IndexWriter>>, SearchError> {
        let mut guard = self.writer.lock().map_err(|_| other("poisoned"))?;
        if guard.is_none() {
            *guard = Some(
                self.index
                    .writer_with_num_threads(1, 15_000_000)
                    .map_err(|e| {
                        SearchError::Unavailable(format!(
                            "the index in {} is written by another process ({e})",
                            self.dir.display()
                        ))
                    })?,
            );
        }
        Ok(guard)
    }

    fn find(
        &self,
        searcher: &Searcher,
        id: &str,
    ) -> Result<Option<(DocAddress, TantivyDocument)>, SearchError> {
        let query = TermQuery::new(
            Term::from_field_text(self.f.id, id),
            IndexRecordOption::Basic,
        );
        let top = searcher
            .search(&query, &TopDocs::with_limit(1))
            .map_err(other)?;
        match top.first() {
            Some((_, addr)) => Ok(Some((*addr, searcher.doc(*addr).map_err(other)?))),
            None => Ok(None),
        }
    }

    fn to_document(&self, doc: &TantivyDocument) -> SearchDocument {
        let text = |f: Field| doc.get_first(f).and_then(|v| v.as_str()).map(str::to_owned);
        SearchDocument {
            id: text(self.f.id).unwrap_or_default(),
            doc_type: text(self.f.doc_type).unwrap_or_default(),
            owner: text(self.f.owner),
            version: doc
                .get_first(self.f.version)
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
            fields: text(self.f.fields)
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default(),
        }
    }

    fn to_tantivy(&self, d: &SearchDocument) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.f.id, &d.id);
        doc.add_text(self.f.doc_type, &d.doc_type);
        if let Some(o) = &d.owner {
            doc.add_text(self.f.owner, o);
        }
        if let Some(s) = d.fields.get("status") {
            doc.add_text(self.f.status, s);
        }
        if let Some(c) = d.fields.get("currency") {
            doc.add_text(self.f.currency, c);
        }
        doc.add_i64(self.f.version, d.version);
        let body: Vec<&str> = std::iter::once(d.doc_type.as_str())
            .chain(d.fields.values().map(String::as_str))
            .collect();
        doc.add_text(self.f.body, body.join(" "));
        doc.add_text(
            self.f.fields,
            serde_json::to_string(&d.fields).unwrap_or_default(),
        );
        doc
    }

    fn keyword(&self, name: &str) -> Option<Field> {
        match name {
            "type" => Some(self.f.doc_type),
            "status" => Some(self.f.status),
            "currency" => Some(self.f.currency),
            "owner" => Some(self.f.owner),
            _ => None,
        }
    }
}

#[async_trait]
impl SearchIndex for TantivyIndex {
    async fn upsert(&self, documents: &[SearchDocument]) -> Result<usize, SearchError> {
        let documents = documents.to_vec();
        self.blocking(move |inner| {
            let mut guard = inner.writer()?;
            let writer = guard.as_mut().ok_or_else(|| other("no writer"))?;
            let searcher = inner.reader.searcher();
            // The highest version per id wins, within the batch and against the index.
            let mut newest: BTreeMap<String, SearchDocument> = BTreeMap::new();
            for d in documents {
                if newest
                    .get(&d.id)
                    .is_none_or(|have| have.version <= d.version)
                {
                    newest.insert(d.id.clone(), d);
                }
            }
            let mut written = 0;
            for (id, d) in newest {
                if let Some((_, old)) = inner.find(&searcher, &id)?
                    && inner.to_document(&old).version > d.version
                {
                    continue;
                }
                writer.delete_term(Term::from_field_text(inner.f.id, &id));
                writer.add_document(inner.to_tantivy(&d)).map_err(other)?;
                written += 1;
            }
            if written > 0 {
                writer.commit().map_err(other)?;
                inner.reader.reload().map_err(other)?;
            }
            Ok(written)
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<bool, SearchError> {
        let id = id.to_owned();
        self.blocking(move |inner| {
            let mut guard = inner.writer()?;
            let writer = guard.as_mut().ok_or_else(|| other("no writer"))?;
            if inner.find(&inner.reader.searcher(), &id)?.is_none() {
                return Ok(false);
            }
            writer.delete_term(Term::from_field_text(inner.f.id, &id));
            writer.commit().map_err(other)?;
            inner.reader.reload().map_err(other)?;
            Ok(true)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<SearchDocument>, SearchError> {
        let id = id.to_owned();
        self.blocking(move |inner| {
            Ok(inner
                .find(&inner.reader.searcher(), &id)?
                .map(|(_, d)| inner.to_document(&d)))
        })
        .await
    }

    async fn search(&self, q: &SearchQuery) -> Result<SearchResults, SearchError> {
        let q = q.clone();
        self.blocking(move |inner| {
            let mut parser = QueryParser::for_index(&inner.index, vec![inner.f.body]);
            parser.set_conjunction_by_default();
            let text = parser
                .parse_query(&q.text)
                .map_err(|e| SearchError::Invalid(format!("query syntax: {e}")))?;
            let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
            let mut filters = q.filters.clone();
            if let Some(t) = &q.doc_type {
                filters.insert("type".into(), t.clone());
            }
            for (name, value) in &filters {
                let field = inner
                    .keyword(name)
                    .ok_or_else(|| SearchError::Invalid(format!("unknown filter {name:?}")))?;
                clauses.push((
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, value),
                        IndexRecordOption::Basic,
                    )),
                ));
            }
            let query = BooleanQuery::new(clauses);
            let searcher = inner.reader.searcher();
            let top = TopDocs::with_limit(q.limit as usize).and_offset(q.offset as usize);
            let aggs: serde_json::Map<String, serde_json::Value> = q
                .facets
                .iter()
                .map(|f| {
                    (
                        f.clone(),
                        serde_json::json!({"terms": {"field": f, "size": 100}}),
                    )
                })
                .collect();
            let aggs: Aggregations =
                serde_json::from_value(serde_json::Value::Object(aggs)).map_err(other)?;
            let collector = AggregationCollector::from_aggs(aggs, Default::default());
            let (hits, total, facets): (_, usize, AggregationResults) = searcher
                .search(&query, &(top, Count, collector))
                .map_err(other)?;
            let facet_json = serde_json::to_value(facets).map_err(other)?;
            let mut counts = BTreeMap::new();
            for f in &q.facets {
                let mut values = BTreeMap::new();
                for bucket in facet_json[f]["buckets"].as_array().into_iter().flatten() {
                    if let (Some(k), Some(n)) =
                        (bucket["key"].as_str(), bucket["doc_count"].as_u64())
                    {
                        values.insert(k.to_owned(), n);
                    }
                }
                counts.insert(f.clone(), values);
            }
            let mut out = Vec::with_capacity(hits.len());
            for (score, addr) in hits {
                let doc: TantivyDocument = searcher.doc(addr).map_err(other)?;
                out.push(SearchHit {
                    document: inner.to_document(&doc),
                    score,
                });
            }
            Ok(SearchResults {
                hits: out,
                total: total as u64,
                facets: counts,
            })
        })
        .await
    }
}
