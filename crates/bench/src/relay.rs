//! Relay throughput into RabbitMQ and into Redis Streams, each beside the raw publish rate of
//! the same broker through the same adapter (batches of the same size, with confirms), in one
//! run. The ratio relay / raw is the figure: what the outbox costs on top of the broker.
//! Needs PostgreSQL (BENCH_DATABASE_URL), RabbitMQ (BENCH_AMQP_URL) and Redis (BENCH_REDIS_URL).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use portside_bus::{RabbitBus, RedisStreamsBus};
use portside_events::relay::{Relay, RelaySettings};
use portside_events::{Envelope, EventBus, EventSource};
use portside_kernel::SystemClock;
use portside_sql::{AnyStore, PoolSettings};
use sqlx::{Connection, Executor};

use crate::env;

fn envelope(n: i64) -> Envelope {
    Envelope {
        id: uuid::Uuid::now_v7(),
        event_type: "bench.event".into(),
        version: 1,
        aggregate_type: "bench".into(),
        aggregate_id: format!("agg-{}", n % 1000),
        sequence: n,
        occurred_at: time::OffsetDateTime::now_utc(),
        traceparent: None,
        data: serde_json::json!({"n": n, "padding": "x".repeat(500)}),
    }
}

/// Events per second through `bus.publish` alone, in batches.
async fn raw_rate(bus: &dyn EventBus, events: i64, batch: i64) -> anyhow::Result<f64> {
    let all: Vec<Envelope> = (1..=events).map(envelope).collect();
    let started = Instant::now();
    for chunk in all.chunks(batch as usize) {
        bus.publish(chunk)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// Events per second through the relay: outbox rows claimed, published, marked.
async fn relay_rate(
    db: &str,
    bus: Arc<dyn EventBus>,
    events: i64,
    batch: i64,
) -> anyhow::Result<f64> {
    let schema = format!("bench_relay_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(db)
        .await
        .context("BENCH_DATABASE_URL")?;
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await?;
    let sep = if db.contains('?') { '&' } else { '?' };
    let url = format!("{db}{sep}options=-c%20search_path%3D{schema}");
    let store = AnyStore::open(&url, PoolSettings::default()).await?;
    store.migrate().await?;
    admin
        .execute(
            sqlx::query(&format!(
                "INSERT INTO {schema}.outbox (id, aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, data, occurred_at) \
                 SELECT gen_random_uuid(), 'bench', 'agg-' || (g % 1000), g, 'bench.event', 1, \
                 jsonb_build_object('n', g, 'padding', repeat('x', 500)), now() \
                 FROM generate_series(1, $1) g"
            ))
            .bind(events),
        )
        .await?;
    let AnyStore::Postgres(pg) = &store else {
        anyhow::bail!("not PostgreSQL")
    };
    let relay = Relay::new(
        Arc::new(pg.clone()),
        bus,
        Arc::new(SystemClock),
        "bench-relay".into(),
        RelaySettings {
            batch: batch as u32,
            ..RelaySettings::default()
        },
    );
    let started = Instant::now();
    let mut published = 0;
    while published < events as usize {
        let n = relay.pass().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(
            n > 0 || published == events as usize,
            "the relay stalled at {published}"
        );
        published += n;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(relay.lag().await?.unpublished == 0, "rows left unpublished");
    store.close().await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await?;
    Ok(rate)
}

/// `relay [EVENTS] [BATCH]`: prints the Markdown table.
pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let events: i64 = args
        .get(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let batch: i64 = args.get(2).map(|a| a.parse()).transpose()?.unwrap_or(200);
    let db = env(
        "BENCH_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let amqp = env("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let redis = env("BENCH_REDIS_URL", "redis://127.0.0.1:6379");

    let mut rows = Vec::new();
    {
        let ns = format!("bench{}", uuid::Uuid::now_v7().simple());
        let bus = Arc::new(RabbitBus::new(&amqp, &ns));
        // A bound durable queue, so the broker stores what it confirms.
        bus.subscribe("sink", &["#"])
            .await
            .map_err(|e| anyhow::anyhow!("RabbitMQ: {e}"))?;
        let raw = raw_rate(bus.as_ref(), events, batch).await?;
        let relayed = relay_rate(&db, bus.clone(), events, batch).await?;
        bus.retire(&["sink"], true)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        rows.push(("RabbitMQ (publisher confirms, persistent)", raw, relayed));
    }
    {
        let ns = format!("bench{}", uuid::Uuid::now_v7().simple());
        let bus = Arc::new(
            RedisStreamsBus::new(&redis, &ns, "bench", Duration::from_secs(30))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        let raw = raw_rate(bus.as_ref(), events, batch).await?;
        let relayed = relay_rate(&db, bus.clone(), events, batch).await?;
        bus.retire(&[]).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        rows.push(("Redis Streams (pipelined XADD)", raw, relayed));
    }
    println!(
        "| broker | raw publish (events/s) | relay from the PostgreSQL outbox (events/s) | relay / raw |"
    );
    println!("|---|---|---|---|");
    for (name, raw, relayed) in rows {
        println!(
            "| {name} | {raw:.0} | {relayed:.0} | {:.0} % |",
            100.0 * relayed / raw
        );
    }
    println!("\n{events} events of about 600 bytes, batches of {batch}, one relay, same machine.");
    Ok(())
}
