//! The event pipeline under load (docs/BENCHMARKS.md, "The event pipeline"), against a real
//! Portside process (or the processes of split mode) started here:
//!
//! - `pipeline postgres|sqlite [inprocess|amqp|redis] [split]`: first the API's maximum
//!   payment rate with the pipeline running, as a user runs it (a closed loop of CONNECTIONS
//!   clients for MAX_SECONDS); then payments at fixed rates, LOADS percent of that maximum
//!   (default `50 80 100`), for LOAD_SECONDS each, open loop: a request every 1/rate seconds
//!   whatever the answers, as independent customers send them.
//! - `bursts postgres|sqlite [inprocess|amqp|redis]`: four back-to-back bursts of MAX_SECONDS at
//!   CONNECTIONS clients, each followed by the wait until every group handled every event:
//!   the catch-up time must stay flat as history grows.
//!
//! After each load the run waits until every consumer group handled every event, then reads,
//! per event and group, when the event was committed (`outbox.occurred_at`, written in the
//! transaction of the change) and when the group handled it (`inbox.processed_at`). The
//! end-to-end latencies and the backlog at every second (events committed and not yet
//! handled, per group) come from those two times, exactly, on every bus and in every mode.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use time::OffsetDateTime;

use crate::chaos::rig::{Rig, Store};
use crate::env;

/// What the clients saw during one load.
#[derive(Default)]
pub(crate) struct Sent {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Response times of the successful requests, in microseconds.
    took: std::sync::Mutex<Vec<u64>>,
}

impl Sent {
    fn record(&self, ok: bool, took: Duration) {
        if ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut t) = self.took.lock() {
                t.push(took.as_micros() as u64);
            }
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Successful requests per second, p50 and p99 response time (ms), failures.
    pub(crate) fn summary(&self, seconds: f64) -> (f64, f64, f64, u64) {
        let mut took = self.took.lock().map(|t| t.clone()).unwrap_or_default();
        took.sort_unstable();
        let ms = |q: f64| quantile(&took, q) as f64 / 1000.0;
        (
            self.ok.load(Ordering::Relaxed) as f64 / seconds,
            ms(0.50),
            ms(0.99),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// The `q` quantile of sorted values (nearest rank); 0 when there are none.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One keyed card payment; true on 201.
async fn pay(http: &reqwest::Client, base: &str, token: &str) -> bool {
    let body = json!({
        "amount": "19.99",
        "currency": "USD",
        "payment_method": "credit_card",
        "payment_method_token": "tok_visa",
    });
    http.post(format!("{base}/api/v1/payments"))
        .bearer_auth(token)
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .json(&body)
        .send()
        .await
        .is_ok_and(|r| r.status() == 201)
}

/// A closed loop: `clients` clients, each sending its next payment when the last was answered.
pub(crate) async fn closed_loop(
    rig: &Rig,
    token: &str,
    clients: usize,
    length: Duration,
) -> Arc<Sent> {
    let sent = Arc::new(Sent::default());
    let until = Instant::now() + length;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, base, token, sent) = (
                rig.http.clone(),
                rig.server.base.clone(),
                token.to_owned(),
                sent.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < until {
                    let t0 = Instant::now();
                    let ok = pay(&http, &base, &token).await;
                    sent.record(ok, t0.elapsed());
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    sent
}

/// An open loop: a payment every 1/`rate` seconds for `length`, whatever the answers (at most
/// 2 000 in flight; beyond that a tick is counted as failed).
async fn open_loop(rig: &Rig, token: &str, rate: f64, length: Duration) -> Arc<Sent> {
    open_loop_at(
        rig.http.clone(),
        rig.server.base.clone(),
        token.to_owned(),
        rate,
        length,
    )
    .await
}

/// [`open_loop`] on owned handles, for running beside other work.
async fn open_loop_at(
    http: reqwest::Client,
    base: String,
    token: String,
    rate: f64,
    length: Duration,
) -> Arc<Sent> {
    let sent = Arc::new(Sent::default());
    let room = Arc::new(tokio::sync::Semaphore::new(2000));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let until = Instant::now() + length;
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < until {
        tick.tick().await;
        let Ok(permit) = room.clone().try_acquire_owned() else {
            sent.record(false, Duration::ZERO);
            continue;
        };
        let (http, base, token, sent) = (http.clone(), base.clone(), token.clone(), sent.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let ok = pay(&http, &base, &token).await;
            sent.record(ok, t0.elapsed());
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    sent
}

/// The event types each consumer group wants.
fn wanted() -> Vec<(&'static str, &'static [&'static str])> {
    portside_app::application::SUBSCRIPTIONS
        .iter()
        .map(|s| (s.group, s.event_types))
        .collect()
}

fn wants(types: &[&str], event_type: &str) -> bool {
    types.iter().any(|t| *t == "#" || *t == event_type)
}

/// `since` as the store compares it with `occurred_at`.
fn at(store: &Store, since: OffsetDateTime) -> String {
    let micros = since.unix_timestamp_nanos() / 1000;
    match store {
        Store::Postgres(_) => format!("to_timestamp({micros} / 1000000.0)"),
        Store::Sqlite(_) => micros.to_string(),
    }
}

/// Handlings still owed, for the events committed since `since`: (per group, events it
/// wants − events it handled), summed; and the unpublished outbox rows.
async fn owed(store: &Store, since: OffsetDateTime) -> anyhow::Result<(i64, i64)> {
    let since = at(store, since);
    let groups = wanted();
    let mut expected = 0;
    for row in store
        .rows(&format!(
            "SELECT event_type, CAST(count(*) AS TEXT) FROM outbox WHERE occurred_at >= {since} \
             GROUP BY event_type"
        ))
        .await?
    {
        let n: i64 = row[1].parse().unwrap_or(0);
        expected += n * groups.iter().filter(|(_, t)| wants(t, &row[0])).count() as i64;
    }
    let handled = store
        .count(&format!(
            "SELECT CAST(count(*) AS TEXT) FROM inbox i JOIN outbox o ON i.event_id = o.id \
             WHERE o.occurred_at >= {since}"
        ))
        .await?;
    let unpublished = store
        .count("SELECT CAST(count(*) AS TEXT) FROM outbox WHERE published_at IS NULL")
        .await?;
    Ok((expected - handled, unpublished))
}

/// Waits (at most 600 s) until every group handled every event committed since `since`.
pub(crate) async fn drained(store: &Store, since: OffsetDateTime) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let (owed, unpublished) = owed(store, since).await?;
        if owed <= 0 && unpublished == 0 {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("after 600 s, {owed} handlings are still owed ({unpublished} unpublished)");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `BACKLOG_TRACE` set: each second of a load on standard error, its UTC time and every
/// group's backlog, to lay beside the database's log (when a stall meets a checkpoint).
fn trace_backlog(start: OffsetDateTime, groups: &[GroupFigures]) {
    let seconds = groups.iter().map(|g| g.backlog.len()).max().unwrap_or(0);
    for s in 0..seconds {
        let at = start + time::Duration::seconds(s as i64);
        let counts: Vec<String> = groups
            .iter()
            .map(|g| format!("{} {}", g.group, g.backlog.get(s).copied().unwrap_or(0)))
            .collect();
        eprintln!(
            "backlog {:02}:{:02}:{:02} {}",
            at.hour(),
            at.minute(),
            at.second(),
            counts.join(", ")
        );
    }
}

/// The running totals of `portside_relay_stage_seconds` and `portside_consumer_stage_seconds`
/// (seconds spent in each stage of relay passes and delivery batches), read from `/metrics`
/// once a second until `stop`.
async fn sample_stages(
    http: reqwest::Client,
    base: String,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<HashMap<String, f64>> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let text = match http.get(format!("{base}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        samples.push(stage_sums(&text));
    }
    samples
}

/// `stage → seconds` from the `_sum` lines of the stage histograms, keyed `relay claim`,
/// `search handle` and so on.
fn stage_sums(metrics: &str) -> HashMap<String, f64> {
    let mut sums = HashMap::new();
    for line in metrics.lines() {
        let (relay, rest) = if let Some(r) = line.strip_prefix("portside_relay_stage_seconds_sum{")
        {
            (true, r)
        } else if let Some(r) = line.strip_prefix("portside_consumer_stage_seconds_sum{") {
            (false, r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let group = if relay {
            "relay".to_owned()
        } else {
            label("group")
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            sums.insert(format!("{group} {}", label("stage")), v);
        }
    }
    sums
}

/// With `BACKLOG_TRACE` set: for each second of a burst and its catch-up, the seconds each
/// stage took in it (the relay's claim, publish and mark; each group's inbox read, handling,
/// inbox write and acknowledgement), so a stall shows which stage held it.
fn trace_stages(start: OffsetDateTime, samples: &[HashMap<String, f64>]) {
    for (s, pair) in samples.windows(2).enumerate() {
        let at = start + time::Duration::seconds(s as i64 + 1);
        let mut spent: Vec<(String, f64)> = pair[1]
            .iter()
            .map(|(k, v)| (k.clone(), v - pair[0].get(k).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d >= 0.005)
            .collect();
        spent.sort_by(|a, b| a.0.cmp(&b.0));
        let spent: Vec<String> = spent.iter().map(|(k, d)| format!("{k} {d:.2}")).collect();
        eprintln!(
            "stages {:02}:{:02}:{:02} {}",
            at.hour(),
            at.minute(),
            at.second(),
            spent.join(", ")
        );
    }
}

/// Whether `BACKLOG_TRACE` is set.
fn tracing() -> bool {
    std::env::var_os("BACKLOG_TRACE").is_some()
}

/// What the store says about one group's handling of the events of a load.
struct GroupFigures {
    group: &'static str,
    events: usize,
    unhandled: usize,
    /// End-to-end latencies in microseconds, sorted.
    latencies: Vec<u64>,
    /// Backlog at each whole second from the load's start.
    backlog: Vec<i64>,
    /// When the group handled its last event, in µs after the load's end (0 if before).
    last_after_end: u64,
}

/// Reads commit and handling times of the events committed from `start` to `end` and turns
/// them into each group's figures.
async fn figures(
    store: &Store,
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> anyhow::Result<Vec<GroupFigures>> {
    let since = at(store, start);
    let until = at(store, end);
    let micros = |column: &str| match store {
        Store::Postgres(_) => {
            format!("CAST(CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT) AS TEXT)")
        }
        Store::Sqlite(_) => format!("CAST({column} AS TEXT)"),
    };
    let rows = store
        .rows(&format!(
            "SELECT CAST(o.id AS TEXT), o.event_type, {}, i.consumer_group, {} \
             FROM outbox o LEFT JOIN inbox i ON i.event_id = o.id \
             WHERE o.occurred_at >= {since} AND o.occurred_at < {until}",
            micros("o.occurred_at"),
            micros("i.processed_at"),
        ))
        .await?;
    // event id → (type, committed, group → handled)
    let mut events: HashMap<String, (String, i64, HashMap<String, i64>)> = HashMap::new();
    for r in rows {
        let e = events
            .entry(r[0].clone())
            .or_insert_with(|| (r[1].clone(), r[2].parse().unwrap_or(0), HashMap::new()));
        if !r[3].is_empty() {
            e.2.insert(r[3].clone(), r[4].parse().unwrap_or(0));
        }
    }
    let start_us = (start.unix_timestamp_nanos() / 1000) as i64;
    let end_us = (end.unix_timestamp_nanos() / 1000) as i64;
    let mut out = Vec::new();
    for (group, types) in wanted() {
        let mut committed = Vec::new();
        let mut handled = Vec::new();
        let mut latencies = Vec::new();
        let mut unhandled = 0;
        for (event_type, occurred, by) in events.values() {
            if !wants(types, event_type) {
                continue;
            }
            committed.push(*occurred);
            match by.get(group) {
                Some(done) => {
                    handled.push(*done);
                    latencies.push((done - occurred).max(0) as u64);
                }
                None => unhandled += 1,
            }
        }
        committed.sort_unstable();
        handled.sort_unstable();
        latencies.sort_unstable();
        let last = handled.last().copied().unwrap_or(start_us);
        let seconds = ((last.max(end_us) - start_us) / 1_000_000 + 1).max(1);
        let backlog = (0..=seconds)
            .map(|s| {
                let t = start_us + s * 1_000_000;
                committed.partition_point(|&c| c <= t) as i64
                    - handled.partition_point(|&h| h <= t) as i64
            })
            .collect();
        out.push(GroupFigures {
            group,
            events: committed.len(),
            unhandled,
            latencies,
            backlog,
            last_after_end: (last - end_us).max(0) as u64,
        });
    }
    Ok(out)
}

/// Starts the rig of `args` (`… ENGINE [BUS] [split]`): SQLite always with its in-process bus;
/// PostgreSQL with the in-process bus unless `amqp` or `redis` is named.
async fn rig(args: &[String]) -> anyhow::Result<Rig> {
    start(args, &[("RUST_LOG", "warn".to_owned())]).await
}

/// [`rig`] with `settings` for the server.
pub(crate) async fn start(args: &[String], settings: &[(&str, String)]) -> anyhow::Result<Rig> {
    let engine = args.get(1).map(String::as_str).unwrap_or("postgres");
    let split = args.iter().any(|a| a == "split");
    let bus = match (engine, args.get(2).map(String::as_str)) {
        ("sqlite", _) => None,
        (_, Some("amqp")) => Some(env(
            "BENCH_AMQP_URL",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        )),
        (_, Some("redis")) => Some(env("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")),
        _ => Some("inprocess".to_owned()),
    };
    Rig::start_in(engine, bus, settings, split).await
}

fn number<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<T> {
    env(name, default)
        .parse()
        .ok()
        .with_context(|| format!("{name} must be a number"))
}

/// The fixed-rate run.
pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let clients: usize = number("CONNECTIONS", "16")?;
    let max_seconds: u64 = number("MAX_SECONDS", "20")?;
    let seconds: u64 = number("LOAD_SECONDS", "120")?;
    let loads: Vec<u64> = env("LOADS", "50 80 100")
        .split_whitespace()
        .map(|l| l.parse().context("LOADS: percentages"))
        .collect::<anyhow::Result<_>>()?;
    let rig = rig(args).await?;
    let result = fixed_rates(&rig, clients, max_seconds, seconds, &loads).await;
    rig.remove(result.is_err()).await?;
    result
}

async fn fixed_rates(
    rig: &Rig,
    clients: usize,
    max_seconds: u64,
    seconds: u64,
    loads: &[u64],
) -> anyhow::Result<()> {
    let token = rig.sign_in().await?;
    println!("## {}", rig.label);
    closed_loop(rig, &token, clients, Duration::from_secs(3)).await; // warm-up
    drained(&rig.store, OffsetDateTime::UNIX_EPOCH).await?;
    let start = OffsetDateTime::now_utc();
    let max = closed_loop(rig, &token, clients, Duration::from_secs(max_seconds)).await;
    let (max_rate, p50, p99, failed) = max.summary(max_seconds as f64);
    let catch_up = drained(&rig.store, start).await?;
    println!(
        "maximum API rate with the pipeline running: {max_rate:.0} payments/s at {clients} \
         clients for {max_seconds} s (p50 {p50:.1} ms, p99 {p99:.1} ms, {failed} failed); \
         caught up {:.1} s after the burst",
        catch_up.as_secs_f64()
    );
    println!();
    println!(
        "| load | payments/s asked | answered 2xx/s | API p50 / p99 ms | failed | group | events | e2e p50 ms | e2e p99 ms | e2e max ms | backlog at 25/50/75/100 % of the load | backlog max | last handled after the load stopped |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for pct in loads {
        let rate = max_rate * *pct as f64 / 100.0;
        let start = OffsetDateTime::now_utc();
        let sent = open_loop(rig, &token, rate, Duration::from_secs(seconds)).await;
        let end = OffsetDateTime::now_utc();
        let (answered, p50, p99, failed) = sent.summary(seconds as f64);
        drained(&rig.store, start).await?;
        let groups = figures(&rig.store, start, end).await?;
        if tracing() {
            trace_backlog(start, &groups);
        }
        for g in groups {
            let ms = |q: f64| quantile(&g.latencies, q) as f64 / 1000.0;
            let backlog_at = |percent: u64| {
                let i = ((seconds * percent / 100) as usize).min(g.backlog.len() - 1);
                g.backlog[i].to_string()
            };
            let unhandled = if g.unhandled > 0 {
                format!(" ({} NOT HANDLED)", g.unhandled)
            } else {
                String::new()
            };
            println!(
                "| {pct} % | {rate:.0} | {answered:.0} | {p50:.1} / {p99:.1} | {failed} | {} | {}{unhandled} | {:.1} | {:.1} | {:.1} | {} / {} / {} / {} | {} | {:.2} s |",
                g.group,
                g.events,
                ms(0.50),
                ms(0.99),
                ms(1.0),
                backlog_at(25),
                backlog_at(50),
                backlog_at(75),
                backlog_at(100),
                g.backlog.iter().max().unwrap_or(&0),
                g.last_after_end as f64 / 1e6,
            );
        }
    }
    Ok(())
}

/// The four-burst run.
pub async fn bursts(args: &[String]) -> anyhow::Result<()> {
    let clients: usize = number("CONNECTIONS", "16")?;
    let seconds: u64 = number("MAX_SECONDS", "10")?;
    let rig = rig(args).await?;
    let result = four_bursts(&rig, clients, seconds).await;
    rig.remove(result.is_err()).await?;
    result
}

async fn four_bursts(rig: &Rig, clients: usize, seconds: u64) -> anyhow::Result<()> {
    let token = rig.sign_in().await?;
    println!(
        "## {}: four bursts of {seconds} s at {clients} clients",
        rig.label
    );
    println!();
    println!(
        "| burst | payments/s | events in the outbox (cumulative) | time to catch up after the burst |"
    );
    println!("|---|---|---|---|");
    for burst in 1..=4 {
        let start = OffsetDateTime::now_utc();
        let sent = closed_loop(rig, &token, clients, Duration::from_secs(seconds)).await;
        let catch_up = drained(&rig.store, start).await?;
        let (rate, ..) = sent.summary(seconds as f64);
        let events = rig
            .store
            .count("SELECT CAST(count(*) AS TEXT) FROM outbox")
            .await?;
        println!(
            "| {burst} | {rate:.0} | {events} | {:.1} s |",
            catch_up.as_secs_f64()
        );
    }
    Ok(())
}

/// The retention windows of the soak: short, so that the transport tables reach the size they
/// keep for good within minutes instead of a day.
const SOAK_SETTINGS: [(&str, &str); 6] = [
    ("OUTBOX_RETENTION", "2m"),
    ("INBOX_RETENTION", "5m"),
    ("PROVIDER_EVENT_RETENTION", "5m"),
    ("EVENT_HISTORY_RETENTION", "10m"),
    ("IDEMPOTENCY_TTL", "5m"),
    ("RETENTION_INTERVAL", "30s"),
];

/// The soak run (`soak ENGINE [BUS] [split]`): SOAK_RATE payments/s (300) for SOAK_MINUTES
/// (30), open loop, with the retention windows of [`SOAK_SETTINGS`]. For each minute: the
/// API's p50/p99, the end-to-end latency of the events committed in it (read 20 s after it
/// ended, while the load goes on; the worst group), and the rows each table holds then; after
/// the first, the middle and the last minute, a burst of MAX_SECONDS at CONNECTIONS clients
/// and the time to catch up after it (the fixed-rate load resumes afterwards).
pub async fn soak(args: &[String]) -> anyhow::Result<()> {
    let rate: f64 = number("SOAK_RATE", "300")?;
    let minutes: u64 = number("SOAK_MINUTES", "30")?;
    let clients: usize = number("CONNECTIONS", "16")?;
    let burst: u64 = number("MAX_SECONDS", "10")?;
    let retention: Vec<(&str, String)> =
        SOAK_SETTINGS.iter().map(|(k, v)| (*k, env(k, v))).collect();
    let described = retention
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut settings = retention;
    // Traced, the server also logs its retention passes, and its log is kept.
    let log = if tracing() {
        "warn,portside::serve=info"
    } else {
        "warn"
    };
    settings.push(("RUST_LOG", log.to_owned()));
    let rig = start(args, &settings).await?;
    if tracing() {
        eprintln!("server log: {}", rig.server.log.display());
    }
    let result = soak_on(&rig, &described, rate, minutes, clients, burst).await;
    rig.remove(result.is_err() || tracing()).await?;
    result
}

async fn soak_on(
    rig: &Rig,
    settings: &str,
    rate: f64,
    minutes: u64,
    clients: usize,
    burst: u64,
) -> anyhow::Result<()> {
    println!(
        "## {}: soak at {rate:.0} payments/s for {minutes} min ({settings})",
        rig.label
    );
    println!();
    println!(
        "| minute | answered 2xx/s | API p50 / p99 ms | failed | e2e p50 / p99 / max ms (worst group) | unhandled | outbox rows | inbox rows | history rows | idempotency keys | outbox + inbox on disk | catch-up after a {burst} s burst at {clients} clients |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let minute = Duration::from_secs(60);
    let checkpoints = [0, minutes / 2, minutes.saturating_sub(1)];
    let before = rig
        .store
        .count("SELECT CAST(count(*) AS TEXT) FROM payments")
        .await?;
    // Minute m's figures are read 20 s into minute m + 1, while the load goes on.
    let mut previous: Option<(OffsetDateTime, OffsetDateTime, Arc<Sent>, String)> = None;
    for m in 0..=minutes {
        // Signed in again each minute, as a client does before its token expires.
        let token = rig.sign_in().await?;
        let start = OffsetDateTime::now_utc();
        let load = (m < minutes).then(|| {
            tokio::spawn(open_loop_at(
                rig.http.clone(),
                rig.server.base.clone(),
                token.clone(),
                rate,
                minute,
            ))
        });
        if let Some((from, to, sent, catch_up)) = previous.take() {
            tokio::time::sleep(Duration::from_secs(20)).await;
            soak_row(rig, m, from, to, &sent, &catch_up).await?;
        }
        let Some(load) = load else { break };
        let sent = load.await?;
        let end = OffsetDateTime::now_utc();
        let catch_up = if checkpoints.contains(&m) {
            let start = OffsetDateTime::now_utc();
            let sampler = tracing().then(|| {
                let (stop, stopped) = tokio::sync::oneshot::channel();
                let samples = tokio::spawn(sample_stages(
                    rig.http.clone(),
                    rig.server.base.clone(),
                    stopped,
                ));
                (stop, samples)
            });
            closed_loop(rig, &token, clients, Duration::from_secs(burst)).await;
            let stopped = OffsetDateTime::now_utc();
            let took = drained(&rig.store, start).await?;
            if let Some((stop, samples)) = sampler {
                let _ = stop.send(());
                trace_backlog(start, &figures(&rig.store, start, stopped).await?);
                trace_stages(start, &samples.await?);
            }
            format!("{:.1} s", took.as_secs_f64())
        } else {
            String::new()
        };
        previous = Some((start, end, sent, catch_up));
    }
    let payments = rig
        .store
        .count("SELECT CAST(count(*) AS TEXT) FROM payments")
        .await?
        - before;
    println!();
    println!(
        "{payments} payments during the soak, two events each: {} events",
        payments * 2
    );
    Ok(())
}

/// One minute of the soak: what its clients saw, what the store says about its events, and
/// the size of each table now.
async fn soak_row(
    rig: &Rig,
    minute: u64,
    start: OffsetDateTime,
    end: OffsetDateTime,
    sent: &Sent,
    catch_up: &str,
) -> anyhow::Result<()> {
    let (answered, p50, p99, failed) = sent.summary((end - start).as_seconds_f64());
    let figures = figures(&rig.store, start, end).await?;
    let worst = figures
        .iter()
        .max_by_key(|g| quantile(&g.latencies, 0.99))
        .context("no consumer groups")?;
    let ms = |q: f64| quantile(&worst.latencies, q) as f64 / 1000.0;
    let unhandled: usize = figures.iter().map(|g| g.unhandled).sum();
    let mut rows = Vec::new();
    for table in ["outbox", "inbox", "event_history", "idempotency_keys"] {
        let sql = format!("SELECT CAST(count(*) AS TEXT) FROM {table}");
        rows.push(rig.store.count(&sql).await?);
    }
    let disk = match &rig.store {
        Store::Postgres(_) => {
            let sql = "SELECT CAST(pg_total_relation_size('outbox') \
                       + pg_total_relation_size('inbox') AS TEXT)";
            format!("{:.0} MB", rig.store.count(sql).await? as f64 / 1e6)
        }
        Store::Sqlite(_) => "–".to_owned(),
    };
    println!(
        "| {minute} | {answered:.0} | {p50:.1} / {p99:.1} | {failed} | {:.0} / {:.0} / {:.0} ({}) | {unhandled} | {} | {} | {} | {} | {disk} | {catch_up} |",
        ms(0.5),
        ms(0.99),
        ms(1.0),
        worst.group,
        rows[0],
        rows[1],
        rows[2],
        rows[3],
    );
    Ok(())
}
