//! Search index adapters under load: generated order and payment documents written in bulk
//! (documents/s), then a fixed mix of queries (full text, filters, facets, pages) at
//! concurrency 1 and 16 with p50/p99 latencies. Runs on Tantivy in a temporary directory, on
//! osmem-server when it is installed, and on a real cluster when BENCH_ELASTICSEARCH_URL is set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portside_app::search::{SearchDocument, SearchIndex, SearchQuery};
use portside_search::{OpenSearchIndex, OpenSearchSettings, TantivyIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WORDS: [&str; 40] = [
    "laptop", "stand", "coffee", "mug", "kite", "stunt", "desk", "lamp", "chair", "cable",
    "charger", "monitor", "keyboard", "mouse", "headset", "camera", "tripod", "bag", "bottle",
    "notebook", "pen", "marker", "poster", "frame", "plant", "pot", "speaker", "router", "adapter",
    "drive", "card", "sleeve", "case", "cover", "shelf", "hook", "rug", "clock", "mirror",
    "candle",
];
const STATUSES: [&str; 5] = ["pending", "paid", "confirmed", "shipped", "cancelled"];
const CURRENCIES: [&str; 4] = ["USD", "EUR", "GBP", "JPY"];
const BATCH: usize = 1000;

/// Documents like the read model's: about two thirds orders, one third payments.
fn documents(n: usize) -> Vec<SearchDocument> {
    let mut rng = StdRng::seed_from_u64(42);
    (0..n)
        .map(|i| {
            let order = i % 3 != 2;
            let mut fields = BTreeMap::new();
            fields.insert(
                "status".into(),
                STATUSES[rng.random_range(0..STATUSES.len())].into(),
            );
            fields.insert(
                "currency".into(),
                CURRENCIES[rng.random_range(0..CURRENCIES.len())].into(),
            );
            let items: Vec<String> = (0..rng.random_range(1..4))
                .map(|_| {
                    format!(
                        "{} × {} {}",
                        rng.random_range(1..5),
                        WORDS[rng.random_range(0..WORDS.len())],
                        WORDS[rng.random_range(0..WORDS.len())]
                    )
                })
                .collect();
            fields.insert(
                if order { "items" } else { "description" }.into(),
                items.join(", "),
            );
            fields.insert(
                "total".into(),
                format!(
                    "{}.{:02}",
                    rng.random_range(1..500),
                    rng.random_range(0..100)
                ),
            );
            SearchDocument {
                id: format!("{}:{i:08}", if order { "order" } else { "payment" }),
                doc_type: if order { "order" } else { "payment" }.into(),
                owner: Some(format!("customer-{}", rng.random_range(0..1000))),
                version: 1,
                fields,
            }
        })
        .collect()
}

/// The query mix: one term, two terms, a term with a status filter and all facets, an owner's
/// documents, and a deeper page.
fn queries(n: usize) -> Vec<SearchQuery> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..n)
        .map(|i| {
            let mut q = SearchQuery {
                text: pick(&mut rng, &WORDS).into(),
                limit: 20,
                ..SearchQuery::default()
            };
            match i % 5 {
                0 => {}
                1 => {
                    let (a, b) = (pick(&mut rng, &WORDS), pick(&mut rng, &WORDS));
                    q.text = format!("{a} {b}");
                }
                2 => {
                    q.filters
                        .insert("status".into(), pick(&mut rng, &STATUSES).into());
                    q.facets = vec!["type".into(), "status".into(), "currency".into()];
                }
                3 => {
                    q.text = "order OR payment".into();
                    q.filters.insert(
                        "owner".into(),
                        format!("customer-{}", rng.random_range(0..1000)),
                    );
                }
                _ => q.offset = 100,
            }
            q
        })
        .collect()
}

fn pick(rng: &mut StdRng, from: &[&'static str]) -> &'static str {
    from[rng.random_range(0..from.len())]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

struct Row {
    engine: String,
    indexed_per_s: f64,
    latency: Vec<(usize, f64, Duration, Duration)>,
}

async fn measure(
    engine: &str,
    index: Arc<dyn SearchIndex>,
    docs: &[SearchDocument],
    queries: &[SearchQuery],
) -> anyhow::Result<Row> {
    let started = Instant::now();
    for chunk in docs.chunks(BATCH) {
        let written = index
            .upsert(chunk)
            .await
            .map_err(|e| anyhow::anyhow!("{engine}: {e}"))?;
        anyhow::ensure!(written == chunk.len(), "{engine}: wrote {written}");
    }
    let indexed_per_s = docs.len() as f64 / started.elapsed().as_secs_f64();
    let all = index
        .search(&SearchQuery {
            text: "order OR payment".into(),
            limit: 1,
            ..SearchQuery::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{engine}: {e}"))?;
    anyhow::ensure!(
        all.total == docs.len() as u64,
        "{engine}: {} documents found of {}",
        all.total,
        docs.len()
    );
    // Warm up, then measure at each concurrency.
    for q in queries.iter().take(200) {
        index.search(q).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mut latency = Vec::new();
    for concurrency in [1usize, 16] {
        let queries = Arc::new(queries.to_vec());
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (index, queries, next) = (index.clone(), queries.clone(), next.clone());
            tasks.spawn(async move {
                let mut times = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(q) = queries.get(i) else {
                        return Ok::<_, anyhow::Error>(times);
                    };
                    let t = Instant::now();
                    index.search(q).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    times.push(t.elapsed());
                }
            });
        }
        let mut times = Vec::new();
        while let Some(done) = tasks.join_next().await {
            times.extend(done??);
        }
        let per_s = times.len() as f64 / started.elapsed().as_secs_f64();
        times.sort();
        latency.push((
            concurrency,
            per_s,
            percentile(&times, 0.50),
            percentile(&times, 0.99),
        ));
    }
    Ok(Row {
        engine: engine.to_owned(),
        indexed_per_s,
        latency,
    })
}

/// `search [DOCUMENTS]`: prints the Markdown table.
pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let n: usize = args
        .get(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let docs = documents(n);
    let queries = queries(2000);
    let mut rows = Vec::new();

    let dir = std::env::temp_dir().join(format!("portside-bench-search-{}", std::process::id()));
    let tantivy = TantivyIndex::open(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    rows.push(
        measure(
            "Tantivy (embedded, on disk)",
            Arc::new(tantivy),
            &docs,
            &queries,
        )
        .await?,
    );
    let _ = std::fs::remove_dir_all(&dir);

    let osmem = portside_search::testing::Osmem::start();
    let mut clusters = Vec::new();
    if let Some(server) = &osmem {
        clusters.push((
            "osmem-server (in-memory OpenSearch API)",
            server.url.clone(),
        ));
    }
    if let Ok(url) = std::env::var("BENCH_ELASTICSEARCH_URL") {
        clusters.push(("BENCH_ELASTICSEARCH_URL", url));
    }
    for (engine, url) in clusters {
        let name = format!("bench-{}", uuid::Uuid::now_v7().simple());
        let mut settings = OpenSearchSettings::new(format!("{}/{name}", url.trim_end_matches('/')));
        settings.timeout = Duration::from_secs(60);
        let index = Arc::new(OpenSearchIndex::new(settings).map_err(|e| anyhow::anyhow!("{e}"))?);
        let row = measure(engine, index.clone(), &docs, &queries).await;
        let _ = index.delete_index().await;
        rows.push(row?);
    }

    println!("| index | bulk indexing (documents/s) | concurrency | queries/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        for (concurrency, per_s, p50, p99) in &row.latency {
            println!(
                "| {} | {:.0} | {concurrency} | {per_s:.0} | {:.2} ms | {:.2} ms |",
                row.engine,
                row.indexed_per_s,
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }
    println!(
        "\n{n} documents in bulks of {BATCH}, then {} queries per concurrency (one term, two terms, a status filter with three facets, an owner's documents, page 6), same machine.",
        queries.len()
    );
    Ok(())
}
