//! OpenSearch or Elasticsearch over their REST API (the same calls work on both): an index
//! template with the mapping is put at start, documents go through `_bulk` with external
//! versions (`version_type=external_gte`, so the cluster itself refuses an older version), and
//! queries are Lucene `query_string` with `term` filters and `terms` aggregations for facets.
//! Every call has a timeout; connection failures, timeouts, 429 and 502–504 are retried with
//! backoff and jitter; a circuit breaker stops calling a cluster that keeps failing.

mod body;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use portside_app::search::{SearchDocument, SearchError, SearchIndex, SearchQuery, SearchResults};
use portside_kernel::resilience::{CircuitBreaker, full_jitter};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

/// How to reach a cluster and how hard to try.
#[derive(Debug, Clone)]
pub struct OpenSearchSettings {
    /// `http(s)://[USER:PASSWORD@]HOST:PORT[/INDEX]`; the index defaults to `portside`.
    pub url: String,
    /// Limit for one HTTP call.
    pub timeout: Duration,
    /// Further attempts after a retryable failure.
    pub retries: u32,
    /// First pause between attempts (doubles, with jitter).
    pub backoff: Duration,
    /// Failed calls in a row that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses calls.
    pub breaker_cool_down: Duration,
}

impl OpenSearchSettings {
    /// Defaults for a URL: 5 s per call, 2 retries from 100 ms, circuit open after 5 failures
    /// for 30 s.
    pub fn new(url: impl Into<String>) -> Self {
        OpenSearchSettings {
            url: url.into(),
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(100),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(30),
        }
    }
}

/// One index on an OpenSearch or Elasticsearch cluster.
pub struct OpenSearchIndex {
    http: reqwest::Client,
    /// The cluster's base URL, without credentials (safe to log).
    base: Url,
    user: Option<(String, Option<String>)>,
    index: String,
    settings: OpenSearchSettings,
    breaker: CircuitBreaker,
    /// Set once the template and index are in place; cleared when the cluster says the index
    /// is gone, so the next call puts them again.
    prepared: AtomicBool,
    preparing: tokio::sync::Mutex<()>,
}

/// A cluster's answer.
struct Answer {
    status: StatusCode,
    body: Value,
}

fn other(e: impl std::fmt::Display) -> SearchError {
    SearchError::Other(e.to_string())
}

/// The most specific reason in an error answer (`error.caused_by...reason`).
fn reason(body: &Value) -> String {
    let mut at = &body["error"];
    let mut reason = at["reason"].as_str().unwrap_or("").to_owned();
    while at["caused_by"].is_object() {
        at = &at["caused_by"];
        if let Some(r) = at["reason"].as_str() {
            reason = r.to_owned();
        }
    }
    if reason.is_empty() {
        body.to_string().chars().take(300).collect()
    } else {
        reason
    }
}

impl OpenSearchIndex {
    /// A client for the URL's cluster and index; no call is made yet (see [`Self::prepare`]).
    pub fn new(settings: OpenSearchSettings) -> Result<Self, SearchError> {
        let invalid = |m: String| SearchError::Invalid(format!("search URL: {m}"));
        let mut base = Url::parse(&settings.url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid("must be http(s)://HOST:PORT[/INDEX]".into()));
        }
        let user = (!base.username().is_empty()).then(|| {
            (
                base.username().to_owned(),
                base.password().map(str::to_owned),
            )
        });
        let index = base
            .path_segments()
            .and_then(|mut s| s.find(|s| !s.is_empty()))
            .unwrap_or("portside")
            .to_owned();
        let valid = index
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
            && !index.starts_with(['-', '_', '.']);
        if !valid {
            return Err(invalid(format!(
                "index {index:?} must be lower case letters, digits, '-', '_' or '.'"
            )));
        }
        let _ = base.set_username("");
        let _ = base.set_password(None);
        base.set_path("/");
        base.set_query(None);
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(3)))
            .build()
            .map_err(other)?;
        let breaker = CircuitBreaker::new(
            "search",
            settings.breaker_threshold,
            settings.breaker_cool_down,
        );
        Ok(OpenSearchIndex {
            http,
            base,
            user,
            index,
            settings,
            breaker,
            prepared: AtomicBool::new(false),
            preparing: tokio::sync::Mutex::new(()),
        })
    }

    /// The index name.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// Puts the index template (settings and mapping) and creates the index when missing.
    /// Done at start and, if the cluster was down then or has lost the index since, before the
    /// next use.
    pub async fn prepare(&self) -> Result<(), SearchError> {
        if self.prepared.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_at_a_time = self.preparing.lock().await;
        if self.prepared.load(Ordering::Acquire) {
            return Ok(());
        }
        let template = json!({
            "index_patterns": [self.index],
            "priority": 100,
            "template": {
                "settings": {
                    "number_of_shards": 1,
                    "max_result_window": 10_100,
                    "refresh_interval": "1s",
                },
                "mappings": {
                    "dynamic": "strict",
                    "properties": {
                        "id": {"type": "keyword"},
                        "type": {"type": "keyword"},
                        "status": {"type": "keyword"},
                        "currency": {"type": "keyword"},
                        "owner": {"type": "keyword"},
                        "version": {"type": "long"},
                        "body": {"type": "text"},
                        "fields": {"type": "object", "enabled": false},
                    }
                }
            }
        });
        let a = self
            .call(
                Method::PUT,
                &["_index_template", &self.index],
                &[],
                Some(template.to_string().into_bytes()),
            )
            .await?;
        if !a.status.is_success() {
            return Err(other(format!("index template: {}", reason(&a.body))));
        }
        let a = self.call(Method::PUT, &[&self.index], &[], None).await?;
        let exists = a.body["error"]["type"] == "resource_already_exists_exception";
        if !a.status.is_success() && !exists {
            return Err(other(format!("create index: {}", reason(&a.body))));
        }
        tracing::info!(cluster = %self.base, index = %self.index, "search index ready");
        self.prepared.store(true, Ordering::Release);
        Ok(())
    }

    /// True when the cluster answered that the index does not exist (deleted, or a cluster that
    /// lost its data): it holds no documents, and the next call recreates it.
    fn index_missing(&self, a: &Answer) -> bool {
        let missing = a.status == StatusCode::NOT_FOUND
            && a.body["error"]["type"] == "index_not_found_exception";
        if missing {
            tracing::warn!(index = %self.index, "the search index is missing; it is recreated at the next call");
            self.prepared.store(false, Ordering::Release);
        }
        missing
    }

    /// Removes the whole index (tests, or an operator starting over before a rebuild).
    pub async fn delete_index(&self) -> Result<(), SearchError> {
        let a = self.call(Method::DELETE, &[&self.index], &[], None).await?;
        if a.status.is_success() || a.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(other(reason(&a.body)))
        }
    }

    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Url, SearchError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| other("base URL cannot have a path"))?
            .pop_if_empty()
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// One logical call: through the circuit breaker, with retries for failures that may pass.
    /// Any answer of the cluster (even 4xx) counts as a success for the breaker.
    async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, SearchError> {
        if let Err(wait) = self.breaker.acquire() {
            return Err(SearchError::Unavailable(format!(
                "the search cluster failed repeatedly; calls resume in {} s",
                wait.as_secs().max(1)
            )));
        }
        let url = self.url(path, query)?;
        let mut failures = 0;
        loop {
            let error = match self.once(method.clone(), url.clone(), body.clone()).await {
                Ok(a) if matches!(a.status.as_u16(), 429 | 502..=504) => SearchError::Unavailable(
                    format!("{} answered {}: {}", self.base, a.status, reason(&a.body)),
                ),
                Ok(a) => {
                    self.breaker.success();
                    return Ok(a);
                }
                Err(e) => e,
            };
            failures += 1;
            if failures > self.settings.retries {
                self.breaker.failure();
                return Err(error);
            }
            let pause = full_jitter(self.settings.backoff, Duration::from_secs(2), failures - 1);
            tracing::warn!(cluster = %self.base, %method, path = %url.path(), error = %error, retry_in = ?pause, "search call failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    async fn once(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, SearchError> {
        let ndjson = url.path().ends_with("/_bulk");
        let mut request = self.http.request(method, url);
        if let Some((user, password)) = &self.user {
            request = request.basic_auth(user, password.as_ref());
        }
        if let Some(body) = body {
            let content_type = if ndjson {
                "application/x-ndjson"
            } else {
                "application/json"
            };
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                json!({"error": {"reason": String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>()}})
            })
        };
        Ok(Answer { status, body })
    }

    fn transport(&self, e: reqwest::Error) -> SearchError {
        if e.is_timeout() {
            SearchError::Timeout
        } else {
            SearchError::Unavailable(format!("cannot reach {}: {}", self.base, e.without_url()))
        }
    }
}

#[async_trait]
impl SearchIndex for OpenSearchIndex {
    async fn upsert(&self, documents: &[SearchDocument]) -> Result<usize, SearchError> {
        self.prepare().await?;
        // The highest version per id, as the cluster would keep anyway.
        let mut newest: BTreeMap<&str, &SearchDocument> = BTreeMap::new();
        for d in documents {
            if newest
                .get(d.id.as_str())
                .is_none_or(|h| h.version <= d.version)
            {
                newest.insert(&d.id, d);
            }
        }
        if newest.is_empty() {
            return Ok(0);
        }
        let mut ndjson = Vec::with_capacity(newest.len() * 256);
        for d in newest.values() {
            if d.version < 0 {
                return Err(SearchError::Invalid(format!(
                    "document {:?}: version must not be negative",
                    d.id
                )));
            }
            let action = json!({"index": {"_index": self.index, "_id": d.id, "version": d.version, "version_type": "external_gte"}});
            serde_json::to_writer(&mut ndjson, &action).map_err(other)?;
            ndjson.push(b'\n');
            serde_json::to_writer(&mut ndjson, &body::source(d)).map_err(other)?;
            ndjson.push(b'\n');
        }
        let a = self
            .call(
                Method::POST,
                &["_bulk"],
                &[("refresh", "wait_for")],
                Some(ndjson),
            )
            .await?;
        if self.index_missing(&a) {
            return Err(SearchError::Unavailable(
                "the search index is missing; it is recreated at the next call".into(),
            ));
        }
        if !a.status.is_success() {
            return Err(other(format!("bulk: {}", reason(&a.body))));
        }
        let mut written = 0;
        for item in a.body["items"].as_array().into_iter().flatten() {
            let item = &item["index"];
            match item["status"].as_u64() {
                Some(200 | 201) => written += 1,
                Some(409) => {} // an equal or newer version is indexed
                Some(404) if item["error"]["type"] == "index_not_found_exception" => {
                    self.prepared.store(false, Ordering::Release);
                    return Err(SearchError::Unavailable(
                        "the search index is missing; it is recreated at the next call".into(),
                    ));
                }
                Some(429) => {
                    return Err(SearchError::Unavailable(
                        "the cluster refused part of a bulk request (429); retry".into(),
                    ));
                }
                Some(400) => {
                    return Err(SearchError::Invalid(format!(
                        "document {}: {}",
                        item["_id"],
                        reason(item)
                    )));
                }
                _ => {
                    return Err(other(format!("document {}: {}", item["_id"], reason(item))));
                }
            }
        }
        Ok(written)
    }

    async fn delete(&self, id: &str) -> Result<bool, SearchError> {
        self.prepare().await?;
        let a = self
            .call(
                Method::DELETE,
                &[&self.index, "_doc", id],
                &[("refresh", "wait_for")],
                None,
            )
            .await?;
        if self.index_missing(&a) {
            return Ok(false);
        }
        match (a.status.as_u16(), a.body["result"].as_str()) {
            (_, Some("deleted")) => Ok(true),
            (_, Some("not_found")) | (404, _) => Ok(false),
            _ => Err(other(format!("delete: {}", reason(&a.body)))),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<SearchDocument>, SearchError> {
        self.prepare().await?;
        let a = self
            .call(Method::GET, &[&self.index, "_doc", id], &[], None)
            .await?;
        if self.index_missing(&a) {
            return Ok(None);
        }
        if a.body["found"] == true {
            Ok(Some(body::document(&a.body["_source"])))
        } else if a.status == StatusCode::NOT_FOUND || a.body["found"] == false {
            Ok(None)
        } else {
            Err(other(format!("get: {}", reason(&a.body))))
        }
    }

    async fn search(&self, q: &SearchQuery) -> Result<SearchResults, SearchError> {
        self.prepare().await?;
        let request = body::search_request(q)?;
        let a = self
            .call(
                Method::POST,
                &[&self.index, "_search"],
                &[],
                Some(request.to_string().into_bytes()),
            )
            .await?;
        if self.index_missing(&a) {
            return Ok(SearchResults {
                facets: q
                    .facets
                    .iter()
                    .map(|f| (f.clone(), BTreeMap::new()))
                    .collect(),
                ..SearchResults::default()
            });
        }
        if a.status == StatusCode::BAD_REQUEST {
            return Err(SearchError::Invalid(format!(
                "query syntax: {}",
                reason(&a.body)
            )));
        }
        if !a.status.is_success() {
            return Err(other(format!("search: {}", reason(&a.body))));
        }
        Ok(body::search_results(&a.body, &q.facets))
    }
}
