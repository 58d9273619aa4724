//! The JSON the cluster speaks: a document as it is stored (`_source`), a search request
//! (`query_string` with `term` filters and `terms` aggregations), and the answer read back.

use std::collections::BTreeMap;

use portside_app::search::{
    FACETS, FILTERS, SearchDocument, SearchError, SearchHit, SearchQuery, SearchResults,
};
use serde_json::{Value, json};

pub(super) fn source(d: &SearchDocument) -> Value {
    let body: Vec<&str> = std::iter::once(d.doc_type.as_str())
        .chain(d.fields.values().map(String::as_str))
        .collect();
    json!({
        "id": d.id,
        "type": d.doc_type,
        "owner": d.owner,
        "status": d.fields.get("status"),
        "currency": d.fields.get("currency"),
        "version": d.version,
        "body": body.join(" "),
        "fields": d.fields,
    })
}

pub(super) fn document(source: &Value) -> SearchDocument {
    SearchDocument {
        id: source["id"].as_str().unwrap_or_default().to_owned(),
        doc_type: source["type"].as_str().unwrap_or_default().to_owned(),
        owner: source["owner"].as_str().map(str::to_owned),
        version: source["version"].as_i64().unwrap_or(0),
        fields: serde_json::from_value(source["fields"].clone()).unwrap_or_default(),
    }
}

/// The `_search` request of a query; unknown filters and facets are refused.
pub(super) fn search_request(q: &SearchQuery) -> Result<Value, SearchError> {
    let mut filters = q.filters.clone();
    if let Some(t) = &q.doc_type {
        filters.insert("type".into(), t.clone());
    }
    let mut terms = Vec::with_capacity(filters.len());
    for (name, value) in &filters {
        if !FILTERS.contains(&name.as_str()) {
            return Err(SearchError::Invalid(format!("unknown filter {name:?}")));
        }
        terms.push(json!({"term": {name: value}}));
    }
    let mut aggs = serde_json::Map::new();
    for f in &q.facets {
        if !FACETS.contains(&f.as_str()) {
            return Err(SearchError::Invalid(format!("unknown facet {f:?}")));
        }
        aggs.insert(f.clone(), json!({"terms": {"field": f, "size": 100}}));
    }
    Ok(json!({
        "query": {"bool": {
            "must": [{"query_string": {
                "query": q.text,
                "default_field": "body",
                "default_operator": "AND",
                "allow_leading_wildcard": false,
            }}],
            "filter": terms,
        }},
        "from": q.offset,
        "size": q.limit,
        "track_total_hits": true,
        "aggs": aggs,
    }))
}

/// The hits, total and facet counts of a `_search` answer.
pub(super) fn search_results(answer: &Value, facet_names: &[String]) -> SearchResults {
    let hits = answer["hits"]["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| SearchHit {
            document: document(&h["_source"]),
            score: h["_score"].as_f64().unwrap_or(0.0) as f32,
        })
        .collect();
    let mut facets = BTreeMap::new();
    for f in facet_names {
        let counts = answer["aggregations"][f]["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| Some((b["key"].as_str()?.to_owned(), b["doc_count"].as_u64()?)))
            .collect();
        facets.insert(f.clone(), counts);
    }
    SearchResults {
        hits,
        total: answer["hits"]["total"]["value"].as_u64().unwrap_or(0),
        facets,
    }
}
