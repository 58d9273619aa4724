//! Chaos scenarios against a real Portside process under load (see docs/RELIABILITY.md):
//!
//! - `crash postgres|sqlite [KILLS] [split]`: SIGKILL at random moments, KILLS times, each
//!   followed by a restart. `postgres` uses RabbitMQ (`BENCH_AMQP_URL`, which may also name
//!   Redis Streams: `redis://…`); `sqlite` is the embedded mode. `split` runs the API, relay,
//!   worker and search as processes of their own and kills the relay, the worker, both, or
//!   the API in turn.
//! - `outage rabbitmq|redis|postgres [SECONDS]`: the dependency is stopped for SECONDS (30)
//!   after 10 s of load, then started again; the load goes on 10 s more. Readiness is sampled
//!   every second of the outage and every request's answer is logged. `redis` runs with Redis
//!   as both the bus and the cache. The clients rest 80 ms between operations here, so that the
//!   consumers keep up with the load and what is measured is the outage's own backlog.
//!
//! - `provider-outage [SECONDS] [KILLS]`: card payments routed Stripe → PayPal, both fakes in
//!   this process; Stripe refuses connections for SECONDS (20), then charges and answers 500
//!   for 10 s, while the API is killed KILLS (4) times ([`failover`]).
//!
//! Afterwards the store is compared with what the clients were told ([`verify`]); the run
//! fails when anything was lost, duplicated, half-written or applied twice. `PORTSIDE_BIN`
//! names the server binary (default: the release build beside this one).

mod failover;
mod load;
mod providers;
pub(crate) mod rig;
mod verify;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;

pub use failover::provider_outage;
use load::{Attempt, Done, Load, Mix};
use rig::Rig;
use verify::Report;

/// Prints the store's verdict and fails the run on any defect.
async fn conclude(rig: Rig, done: &Done, report: &Report) -> anyhow::Result<()> {
    for line in &report.details {
        println!("- {line}");
    }
    for line in &done.ledger.unexpected {
        println!("- unexpected answer: {line}");
    }
    let l = &done.ledger;
    let sent = l.transfers.values().filter(|done| **done).count();
    println!(
        "- wallets: {} top-ups, {} payments from the wallet ({} refused: short), {} transfers ({} refused: short), all checked",
        l.top_ups.len(),
        l.wallet_payments,
        l.refused_payments.len(),
        sent,
        l.transfers.len() - sent
    );
    let leaks = rig.leaks()?;
    println!("- server log lines holding a secret or a token: {leaks}");
    let (books_hold, books) = rig.server.ledger_check().await?;
    for line in books.lines() {
        println!("- ledger check: {line}");
    }
    let defects = report.lost + report.duplicated + report.effects_twice + report.half_written;
    let failed = defects > 0
        || report.events_lost > 0
        || report.webhooks_missing > 0
        || report.webhooks_unverified > 0
        || !done.ledger.unexpected.is_empty()
        || leaks > 0
        || !books_hold;
    let log = rig.server.log.clone();
    rig.remove(failed).await?;
    if failed {
        bail!("the run found defects; the server log is {}", log.display());
    }
    Ok(())
}

fn finals(attempts: &[Attempt]) -> usize {
    attempts.iter().filter(|a| a.is_final()).count()
}

/// The crash test. With `split`, the API, the relay and the worker run as processes of their
/// own (on the broker of `BENCH_AMQP_URL`) and the kills take turns: the relay, the worker,
/// both at once, the API.
pub async fn crash(args: &[String]) -> anyhow::Result<()> {
    let engine = args.get(1).map(String::as_str).unwrap_or("postgres");
    let kills: u32 = args.get(2).map(|k| k.parse()).transpose()?.unwrap_or(20);
    let split = match args.get(3).map(String::as_str) {
        None => false,
        Some("split") => true,
        Some(other) => bail!("unknown mode {other:?}: leave it out or say split"),
    };
    // An endpoint that wants every event, at a receiver in this process that verifies each
    // request with the Standard Webhooks library and records its webhook-id.
    let (hook_url, hooks) = crate::webhooks::receiver().await?;
    let mut settings: Vec<(&str, String)> = crate::webhooks::LOCAL_DELIVERY
        .map(|(k, v)| (k, v.to_owned()))
        .to_vec();
    settings.push(("WEBHOOK_TIMEOUT", "5s".to_owned()));
    settings.push((
        "WEBHOOK_RETRY_SCHEDULE",
        "1s,2s,5s,10s,20s,30s,60s".to_owned(),
    ));
    let mut rig = Rig::start_in(engine, None, &settings, split).await?;
    let token = rig.sign_in().await?;
    rig.shelve().await?;
    let recipient = rig.recipient().await?;
    let secret = crate::webhooks::subscribe(&rig, &hook_url).await?;
    hooks.verify_with(&secret)?;
    let earlier: std::collections::HashSet<String> = rig
        .store
        .rows("SELECT CAST(id AS TEXT) FROM outbox")
        .await?
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let load = Load::start(
        &rig.http,
        &rig.server.base,
        &token,
        &recipient,
        Duration::ZERO,
        Mix::default(),
    );
    let mut recoveries = Vec::new();
    let mut killed = BTreeMap::<&str, u32>::new();
    for i in 0..kills {
        let pause = rand::rng().random_range(300..1500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let targets: &[&str] = if split {
            [&["relay"][..], &["worker"], &["relay", "worker"], &["api"]][i as usize % 4]
        } else {
            &["api"]
        };
        for &t in targets {
            *killed.entry(t).or_default() += 1;
            if t == "api" {
                rig.server.kill9().await;
                rig.server.spawn()?;
                let took = rig.server.ready(&rig.http).await?;
                recoveries.push(took);
            } else {
                let part = rig.part(t).context("no such process")?;
                part.kill9().await;
                part.spawn()?;
            }
        }
        eprintln!("kill {}/{kills}: {}", i + 1, targets.join(" + "));
    }
    let done = load.stop().await?;
    let drain = rig.drain().await?;
    let delivered = webhooks_delivered(&rig, &hooks, &earlier).await?;
    rig.server.terminate().await?;
    let mut report = verify::verify(&rig.store, &done.ledger).await?;
    report.details.push(delivered.line());
    report.webhooks_missing = delivered.missing;
    report.webhooks_unverified = delivered.unverified;
    let max_recovery = recoveries.iter().max().copied().unwrap_or_default();
    let mean_recovery = recoveries.iter().sum::<Duration>() / recoveries.len().max(1) as u32;
    let kills_of = killed
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "| store | kills | requests sent | acknowledged | payments stored | events | lost | duplicated | half-written | events lost | effects twice | API restart to ready (mean / max) | load | drain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {kills_of} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} ms | {:.0} s | {:.1} s |",
        rig.label,
        done.attempts.len(),
        finals(&done.attempts),
        report.payments,
        report.events,
        report.lost,
        report.duplicated,
        report.half_written,
        report.events_lost,
        report.effects_twice,
        mean_recovery.as_millis(),
        max_recovery.as_millis(),
        done.took.as_secs_f64(),
        drain.as_secs_f64(),
    );
    conclude(rig, &done, &report).await
}

/// What reached the chaos run's webhook receiver.
struct Delivered {
    expected: usize,
    missing: usize,
    requests: u64,
    /// Distinct webhook-ids verified.
    distinct: u64,
    unverified: u64,
    took: Duration,
}

impl Delivered {
    fn line(&self) -> String {
        format!(
            "webhooks: {} events recorded after the endpoint was registered, {} of them never delivered; {} requests ({} duplicates by webhook-id), {} failed verification; the last arrived {:.1} s after the drain",
            self.expected,
            self.missing,
            self.requests,
            self.requests
                .saturating_sub(self.distinct + self.unverified),
            self.unverified,
            self.took.as_secs_f64()
        )
    }
}

/// Waits (at most 180 s: a delivery leased by a killed process waits for its lease) until every
/// event recorded after the endpoint was registered reached the receiver, verified.
async fn webhooks_delivered(
    rig: &Rig,
    hooks: &crate::webhooks::Tally,
    earlier: &std::collections::HashSet<String>,
) -> anyhow::Result<Delivered> {
    let expected: Vec<String> = rig
        .store
        .rows("SELECT CAST(id AS TEXT) FROM outbox")
        .await?
        .into_iter()
        .map(|r| r[0].clone())
        .filter(|id| !earlier.contains(id))
        .collect();
    let started = Instant::now();
    let (missing, distinct) = loop {
        let (missing, distinct) = {
            let ids = hooks.ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let missing = expected.iter().filter(|id| !ids.contains(*id)).count();
            (missing, ids.len() as u64)
        };
        if missing == 0 || started.elapsed() > Duration::from_secs(180) {
            break (missing, distinct);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    Ok(Delivered {
        expected: expected.len(),
        missing,
        requests: hooks.requests(),
        distinct,
        unverified: hooks.unverified.load(std::sync::atomic::Ordering::Relaxed),
        took: started.elapsed(),
    })
}

/// How a dependency is stopped and started on this machine's local services; `OUTAGE_STOP`
/// and `OUTAGE_START` (shell commands) replace them.
fn commands(dependency: &str) -> anyhow::Result<(String, String)> {
    let cluster = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main";
    let (stop, start) = match dependency {
        "rabbitmq" => (
            "rabbitmqctl -q stop_app".to_owned(),
            "rabbitmqctl -q start_app".to_owned(),
        ),
        // A clean stop writes the data set to disk, as a Redis that carries a bus must keep it
        // (AOF or RDB); the restart reads it back from the same directory.
        "redis" => (
            "redis-cli -p 6379 shutdown save".to_owned(),
            format!(
                "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no --dir {} --logfile /dev/null",
                redis_dir()?
            ),
        ),
        "postgres" => (
            format!("{cluster} stop -m fast"),
            format!("{cluster} start"),
        ),
        other => bail!("unknown dependency {other:?}: use rabbitmq, redis or postgres"),
    };
    Ok((
        std::env::var("OUTAGE_STOP").unwrap_or(stop),
        std::env::var("OUTAGE_START").unwrap_or(start),
    ))
}

/// Where the running Redis keeps its data set.
fn redis_dir() -> anyhow::Result<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", "6379", "config", "get", "dir"])
        .output()?;
    String::from_utf8(out.stdout)?
        .lines()
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("redis-cli config get dir gave no directory"))
}

async fn shell(command: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .await?;
    if !status.success() {
        bail!("`{command}` failed with {status}");
    }
    Ok(())
}

/// What the clients saw between two instants.
struct Window {
    sent: usize,
    final_answers: usize,
    failed: usize,
    failed_problem: usize,
    no_answer: usize,
    slowest_failure: Duration,
    slowest_answer: Duration,
}

impl Window {
    fn of(attempts: &[Attempt], from: Instant, to: Instant) -> Window {
        let inside: Vec<&Attempt> = attempts
            .iter()
            .filter(|a| a.at >= from && a.at <= to)
            .collect();
        let failures: Vec<&&Attempt> = inside.iter().filter(|a| !a.is_final()).collect();
        Window {
            sent: inside.len(),
            final_answers: inside.iter().filter(|a| a.is_final()).count(),
            failed: failures.iter().filter(|a| a.status != 0).count(),
            failed_problem: failures.iter().filter(|a| a.problem).count(),
            no_answer: failures.iter().filter(|a| a.status == 0).count(),
            slowest_failure: failures.iter().map(|a| a.took).max().unwrap_or_default(),
            slowest_answer: inside.iter().map(|a| a.took).max().unwrap_or_default(),
        }
    }
}

/// Each client's rest between operations in the outage test.
const PACE: Duration = Duration::from_millis(80);

/// The outage test.
pub async fn outage(args: &[String]) -> anyhow::Result<()> {
    let dependency = args.get(1).map(String::as_str).unwrap_or("rabbitmq");
    let seconds: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(30);
    let (stop, start) = commands(dependency)?;
    let (bus, extra) = match dependency {
        "redis" => {
            let url = crate::env("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0");
            (Some(url.clone()), vec![("CACHE_URL", url)])
        }
        _ => (None, vec![]),
    };
    let mut rig = Rig::start("postgres", bus, &extra).await?;
    let token = rig.sign_in().await?;
    rig.shelve().await?;
    // A steady load the consumers keep up with (about 100 operations a second), so that
    // what the outage leaves behind is measured, not a backlog of the load itself.
    let recipient = rig.recipient().await?;
    let load = Load::start(
        &rig.http,
        &rig.server.base,
        &token,
        &recipient,
        PACE,
        Mix::default(),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;

    let down = Instant::now();
    shell(&stop).await?;
    let stopped_in = down.elapsed();
    eprintln!(
        "{dependency} stopped (in {:.1} s); holding it down for {seconds} s",
        stopped_in.as_secs_f64()
    );
    let mut readiness: BTreeMap<String, u32> = BTreeMap::new();
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(seconds) {
        let tick = Instant::now();
        let (code, word, failing) = rig.server.readiness(&rig.http).await;
        *readiness
            .entry(format!("{code} {word} ({failing})"))
            .or_default() += 1;
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed())).await;
    }
    let backlog = match rig.unpublished().await {
        Ok(n) => n.to_string(),
        Err(_) => "unreadable".to_owned(),
    };
    shell(&start).await?;
    let up = Instant::now();
    rig.mark_backlog().await;
    eprintln!(
        "{dependency} started (in {:.1} s)",
        up.duration_since(hold + Duration::from_secs(seconds))
            .as_secs_f64()
    );
    let recovered = rig.server.fully_ready(&rig.http).await?;
    let relay_caught_up = rig.backlog_published(up).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;

    let done = load.stop().await?;
    let drain = rig.drain().await?;
    rig.server.terminate().await?;
    let report = verify::verify(&rig.store, &done.ledger).await?;
    let during = Window::of(&done.attempts, down, up);
    let after = Window::of(&done.attempts, up, Instant::now());
    let seen: Vec<String> = readiness
        .iter()
        .map(|(what, n)| format!("{n}× {what}"))
        .collect();
    println!(
        "| stack | dependency down | requests during the outage | final answers | failed (problem+json) | no answer | slowest failure | slowest answer | readiness during the outage | ready again after start | outbox backlog at start → published | requests after | failed after | lost | duplicated | half-written | events lost | effects twice |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {dependency}, {:.1} s | {} | {} | {} ({}) | {} | {} ms | {} ms | {} | {:.1} s | {backlog} → {} | {} | {} | {} | {} | {} | {} | {} |",
        rig.label,
        up.duration_since(down).as_secs_f64(),
        during.sent,
        during.final_answers,
        during.failed,
        during.failed_problem,
        during.no_answer,
        during.slowest_failure.as_millis(),
        during.slowest_answer.as_millis(),
        seen.join("; "),
        recovered.as_secs_f64(),
        relay_caught_up.map_or("not within 120 s".to_owned(), |t| format!(
            "{:.1} s",
            t.as_secs_f64()
        )),
        after.sent,
        after.failed + after.no_answer,
        report.lost,
        report.duplicated,
        report.half_written,
        report.events_lost,
        report.effects_twice,
    );
    println!(
        "- whole run: {} requests, {} final answers, {} payments stored, {} events, drain {:.1} s",
        done.attempts.len(),
        finals(&done.attempts),
        report.payments,
        report.events,
        drain.as_secs_f64()
    );
    conclude(rig, &done, &report).await
}
