//! Outgoing webhooks under load (`webhooks ENGINE [BUS]`): the payment API's rate with no
//! endpoint and then with one endpoint that wants every event, and how fast deliveries reach
//! a receiver that answers at once. `webhook-receiver` serves that receiver alone, for `wrk`
//! to measure what a client can POST to it (the limit; bench/webhooks.sh runs both).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::pipeline::{closed_loop, drained, start};

/// Requests a receiver answered, and when the first and the last came; once it is given the
/// endpoint's secret, whether each verified (with the Standard Webhooks reference library for
/// Rust) and the `webhook-id`s of those that did.
#[derive(Default)]
pub struct Tally {
    requests: AtomicU64,
    first_us: AtomicU64,
    last_us: AtomicU64,
    verifier: OnceLock<standardwebhooks::Webhook>,
    pub unverified: AtomicU64,
    pub ids: Mutex<HashSet<String>>,
}

impl Tally {
    fn now_us() -> u64 {
        (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as u64
    }

    /// Verifies with `secret` from now on.
    pub fn verify_with(&self, secret: &str) -> anyhow::Result<()> {
        let webhook = standardwebhooks::Webhook::new(secret)
            .map_err(|e| anyhow::anyhow!("the endpoint's secret: {e}"))?;
        let _ = self.verifier.set(webhook);
        Ok(())
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn check(&self, headers: &axum::http::HeaderMap, body: &[u8]) {
        let Some(webhook) = self.verifier.get() else {
            return;
        };
        if webhook.verify(body, headers).is_err() {
            self.unverified.fetch_add(1, Ordering::Relaxed);
        } else if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok())
            && let Ok(mut ids) = self.ids.lock()
        {
            ids.insert(id.to_owned());
        }
    }

    fn record(&self) {
        let now = Self::now_us();
        let _ = self
            .first_us
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_us.fetch_max(now, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// A receiver written for speed: `POST /hook` answers 204 at once, counted (and verified,
/// once [`Tally::verify_with`] gave it a secret).
pub async fn receiver() -> anyhow::Result<(String, Arc<Tally>)> {
    let tally = Arc::new(Tally::default());
    let counted = tally.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                counted.check(&headers, &body);
                counted.record();
                async { axum::http::StatusCode::NO_CONTENT }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, tally))
}

/// `webhook-receiver`: the receiver alone until killed; prints its URL first.
pub async fn serve_receiver() -> anyhow::Result<()> {
    let (url, _tally) = receiver().await?;
    println!("{url}");
    std::future::pending::<anyhow::Result<()>>().await
}

/// Registers an endpoint at `url` that wants every event; its secret.
pub async fn subscribe(rig: &crate::chaos::rig::Rig, url: &str) -> anyhow::Result<String> {
    let admin = rig.admin_token().await?;
    let made: Value = rig
        .http
        .post(format!("{}/api/v1/webhook-endpoints", rig.server.base))
        .bearer_auth(&admin)
        .json(&json!({ "url": url }))
        .send()
        .await?
        .json()
        .await?;
    made["id"]
        .as_str()
        .context("the endpoint was not created")?;
    Ok(made["secret"].as_str().context("no secret")?.to_owned())
}

/// The settings a server needs to deliver to a receiver on this machine.
pub const LOCAL_DELIVERY: [(&str, &str); 2] = [
    ("WEBHOOK_ALLOW_HTTP", "true"),
    ("WEBHOOK_ALLOW_PRIVATE", "true"),
];

/// `webhooks ENGINE [BUS]`.
pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let clients: usize = crate::env("CONNECTIONS", "16").parse()?;
    let seconds: u64 = crate::env("MAX_SECONDS", "10").parse()?;
    let mut settings = vec![("RUST_LOG", "warn".to_owned())];
    settings.extend(LOCAL_DELIVERY.map(|(k, v)| (k, v.to_owned())));
    let rig = start(args, &settings).await?;
    let result = measure(&rig, clients, Duration::from_secs(seconds)).await;
    rig.remove(result.is_err()).await?;
    result
}

async fn measure(
    rig: &crate::chaos::rig::Rig,
    clients: usize,
    length: Duration,
) -> anyhow::Result<()> {
    let (url, tally) = receiver().await?;
    let token = rig.sign_in().await?;
    closed_loop(rig, &token, clients, Duration::from_secs(3)).await; // warm-up
    drained(&rig.store, OffsetDateTime::UNIX_EPOCH).await?;

    let off = closed_loop(rig, &token, clients, length).await;
    let (rate_off, p50_off, p99_off, _) = off.summary(length.as_secs_f64());
    drained(&rig.store, OffsetDateTime::UNIX_EPOCH).await?;

    subscribe(rig, &url).await?;

    let before = rig
        .store
        .count("SELECT CAST(count(*) AS TEXT) FROM outbox")
        .await?;
    let on = closed_loop(rig, &token, clients, length).await;
    let stopped_us = Tally::now_us();
    let (rate_on, p50_on, p99_on, _) = on.summary(length.as_secs_f64());
    drained(&rig.store, OffsetDateTime::UNIX_EPOCH).await?;
    let events = rig
        .store
        .count("SELECT CAST(count(*) AS TEXT) FROM outbox")
        .await?
        - before;
    // Every event of the load, one delivery each (the endpoint wants every type).
    let waited = Instant::now();
    while (tally.requests() as i64) < events {
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(600),
            "after 600 s, {} of {events} deliveries arrived",
            tally.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = tally.requests();
    let span_us = tally.last_us.load(Ordering::Relaxed) - tally.first_us.load(Ordering::Relaxed);
    let span = Duration::from_micros(span_us.max(1));
    println!(
        "## {}: webhooks off, then one endpoint wanting every event",
        rig.label
    );
    println!();
    println!(
        "| payments/s, no endpoint (p50 / p99 ms) | payments/s, one endpoint (p50 / p99 ms) | API cost | events of the load | deliveries | deliveries/s (first to last) | last delivery after the load stopped |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {rate_off:.0} ({p50_off:.1} / {p99_off:.1}) | {rate_on:.0} ({p50_on:.1} / {p99_on:.1}) | {:+.1} % | {events} | {delivered} | {:.0} | {:.1} s |",
        (rate_on / rate_off - 1.0) * 100.0,
        delivered as f64 / span.as_secs_f64(),
        tally
            .last_us
            .load(Ordering::Relaxed)
            .saturating_sub(stopped_us) as f64
            / 1e6,
    );
    Ok(())
}
