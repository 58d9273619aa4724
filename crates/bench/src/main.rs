//! Benchmarks that need more than an HTTP load generator:
//!
//! - `cargo run -p portside-bench --release -- relay [EVENTS] [BATCH]`: the relay beside the
//!   broker's raw publish rate.
//! - `cargo run -p portside-bench --release -- search [DOCUMENTS]`: bulk indexing rate and query
//!   latencies of the search index adapters.
//! - `cargo run -p portside-bench --release -- crash postgres|sqlite [KILLS] [split]`: the crash test
//!   (SIGKILL under load, then nothing lost or duplicated).
//! - `cargo run -p portside-bench --release -- outage rabbitmq|redis|postgres [SECONDS]`: a
//!   dependency stopped under load, then started again.
//! - `cargo run -p portside-bench --release -- provider-outage [SECONDS] [KILLS]`: Stripe down
//!   mid-load on a route of Stripe then PayPal; nothing charged twice or lost.
//!
//! - `cargo run -p portside-bench --release -- pipeline postgres|sqlite [inprocess|amqp|redis]
//!   [split]`, `… bursts …` and `… soak …`: the event pipeline under fixed-rate load, after
//!   bursts, and for half an hour with retention at work.
//!
//! - `cargo run -p portside-bench --release -- webhooks postgres|sqlite [BUS]`: the payment
//!   API with and without a webhook endpoint, and deliveries per second to a fast receiver
//!   (`webhook-receiver` serves that receiver alone, for `wrk`).
//!
//! `scripts/chaos.sh` runs `crash`, `outage` and `provider-outage`; `bench/pipeline.sh` runs `pipeline`, `bursts` and `soak`.

mod chaos;
mod pipeline;
mod relay;
mod search;
mod webhooks;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("relay") => relay::run(&args).await,
        Some("search") => search::run(&args).await,
        Some("crash") => chaos::crash(&args).await,
        Some("outage") => chaos::outage(&args).await,
        Some("provider-outage") => chaos::provider_outage(&args).await,
        Some("pipeline") => pipeline::run(&args).await,
        Some("bursts") => pipeline::bursts(&args).await,
        Some("soak") => pipeline::soak(&args).await,
        Some("webhooks") => webhooks::run(&args).await,
        Some("webhook-receiver") => webhooks::serve_receiver().await,
        _ => anyhow::bail!(
            "usage: portside-bench relay [EVENTS] [BATCH] | search [DOCUMENTS] | crash postgres|sqlite [KILLS] [split] | outage rabbitmq|redis|postgres [SECONDS] | provider-outage [SECONDS] [KILLS] | pipeline|bursts|soak postgres|sqlite [inprocess|amqp|redis] [split] | webhooks postgres|sqlite [inprocess|amqp|redis] | webhook-receiver"
        ),
    }
}
