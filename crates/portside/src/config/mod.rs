//! Configuration: command-line flags, then environment variables (12-factor), then an optional
//! TOML file (`--config` / `PORTSIDE_CONFIG`, keys spelled like the flags with underscores),
//! then embedded defaults. A bad value stops start-up with a message naming the variable.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser};

mod commands;

pub use commands::{
    Cli, Command, Direction, DlqAction, EventsAction, LedgerAction, SearchAction, UsersAction,
};

/// Every setting, each with its environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// TOML file with settings (keys as below, lower case: http_addr = "…").
    #[arg(
        long,
        env = "PORTSIDE_CONFIG",
        value_name = "PORTSIDE_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// Address of the HTTP API.
    #[arg(
        long,
        env = "HTTP_ADDR",
        value_name = "HTTP_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub http_addr: SocketAddr,

    /// Address of the gRPC search service (internal: it trusts its callers).
    #[arg(
        long,
        env = "GRPC_ADDR",
        value_name = "GRPC_ADDR",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub grpc_addr: SocketAddr,

    /// Where `relay`, `worker` and `search` serve /metrics and /health/live (they have no HTTP API); unset: nowhere.
    #[arg(long, env = "METRICS_ADDR", value_name = "METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,

    /// Directory of the embedded store's files.
    #[arg(
        long,
        env = "DATA_DIR",
        value_name = "DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// sqlite://PATH or postgres://USER@HOST/DB (default: sqlite://DATA_DIR/portside.db).
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", value_parser = parse_database_url, global = true)]
    pub database_url: Option<String>,

    /// Connections per database pool: reads and (PostgreSQL) writes each have a pool this size.
    #[arg(long, env = "DB_MAX_CONNECTIONS", value_name = "DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,

    /// How long idempotency keys and their responses are kept.
    #[arg(long, env = "IDEMPOTENCY_TTL", value_name = "IDEMPOTENCY_TTL", default_value = "24h", value_parser = parse_duration, global = true)]
    pub idempotency_ttl: Duration,

    /// How long a running request holds its idempotency key; a retry after that resumes the work.
    #[arg(long, env = "IDEMPOTENCY_LOCK", value_name = "IDEMPOTENCY_LOCK", default_value = "30s", value_parser = parse_duration, global = true)]
    pub idempotency_lock: Duration,

    /// Largest amount of one payment, in minor units of its currency.
    #[arg(long, env = "PAYMENT_MAX_AMOUNT_MINOR", value_name = "PAYMENT_MAX_AMOUNT_MINOR", default_value_t = 99_999_999, value_parser = clap::value_parser!(i64).range(1..), global = true)]
    pub payment_max_amount_minor: i64,

    /// How often the recovery task looks for abandoned charges and refunds.
    #[arg(long, env = "RECOVERY_INTERVAL", value_name = "RECOVERY_INTERVAL", default_value = "15s", value_parser = parse_duration, global = true)]
    pub recovery_interval: Duration,

    /// Age after which a pending charge or refund counts as abandoned.
    #[arg(long, env = "RECOVERY_GRACE", value_name = "RECOVERY_GRACE", default_value = "60s", value_parser = parse_duration, global = true)]
    pub recovery_grace: Duration,

    /// How long an order may stay unpaid before it is cancelled and its stock released (never
    /// while its payment is processing or succeeded). Checked every RECOVERY_INTERVAL.
    #[arg(long, env = "ORDER_TTL", value_name = "ORDER_TTL", default_value = "30m", value_parser = parse_duration, global = true)]
    pub order_ttl: Duration,

    /// How long a published outbox row is kept (the outbox carries events; it is not their
    /// history). Unpublished rows are never deleted.
    #[arg(long, env = "OUTBOX_RETENTION", value_name = "OUTBOX_RETENTION", default_value = "1d", value_parser = parse_duration, global = true)]
    pub outbox_retention: Duration,

    /// How long a consumer group remembers that it handled an event: far longer than any
    /// redelivery (a lapsed lease, an unacknowledged delivery, a dead letter replayed days
    /// later), so that a redelivery inside it is still a duplicate.
    #[arg(long, env = "INBOX_RETENTION", value_name = "INBOX_RETENTION", default_value = "7d", value_parser = parse_duration, global = true)]
    pub inbox_retention: Duration,

    /// How long a provider's notice (webhook event) is remembered: longer than providers retry
    /// (Stripe: up to 3 days), so that a retry inside it is a no-op.
    #[arg(long, env = "PROVIDER_EVENT_RETENTION", value_name = "PROVIDER_EVENT_RETENTION", default_value = "7d", value_parser = parse_duration, global = true)]
    pub provider_event_retention: Duration,

    /// How long the event history (what `GET …/events` and support read) keeps an event:
    /// longer than a payment can be disputed (card networks allow up to about 540 days).
    #[arg(long, env = "EVENT_HISTORY_RETENTION", value_name = "EVENT_HISTORY_RETENTION", default_value = "730d", value_parser = parse_duration, global = true)]
    pub event_history_retention: Duration,

    /// How often retention deletes what is past those windows, in batches of RETENTION_BATCH.
    #[arg(long, env = "RETENTION_INTERVAL", value_name = "RETENTION_INTERVAL", default_value = "1m", value_parser = parse_duration, global = true)]
    pub retention_interval: Duration,

    /// Rows one retention statement deletes: small, so that each holds its locks briefly.
    #[arg(long, env = "RETENTION_BATCH", value_name = "RETENTION_BATCH", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub retention_batch: u32,

    /// How long shutdown may take to finish in-flight requests before giving up.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", value_name = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub shutdown_timeout: Duration,

    /// Secret that signs access tokens (at least 32 characters). Embedded mode generates one
    /// in DATA_DIR when unset; with PostgreSQL it is required.
    #[arg(long, env = "JWT_SECRET", value_name = "JWT_SECRET", hide_env_values = true, value_parser = parse_secret, global = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of access tokens.
    #[arg(long, env = "ACCESS_TOKEN_TTL", value_name = "ACCESS_TOKEN_TTL", default_value = "15m", value_parser = parse_duration, global = true)]
    pub access_token_ttl: Duration,

    /// Lifetime of refresh tokens.
    #[arg(long, env = "REFRESH_TOKEN_TTL", value_name = "REFRESH_TOKEN_TTL", default_value = "30d", value_parser = parse_duration, global = true)]
    pub refresh_token_ttl: Duration,

    /// `memory` (bounded, in-process), `redis://HOST:PORT/DB`, or `none`.
    #[arg(long, env = "CACHE_URL", value_name = "CACHE_URL", default_value = "memory", value_parser = parse_cache_url, global = true)]
    pub cache_url: String,

    /// How long a cached user profile may be served.
    #[arg(long, env = "USER_CACHE_TTL", value_name = "USER_CACHE_TTL", default_value = "60s", value_parser = parse_duration, global = true)]
    pub user_cache_ttl: Duration,

    /// Entries the in-memory cache holds at most.
    #[arg(long, env = "CACHE_CAPACITY", value_name = "CACHE_CAPACITY", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub cache_capacity: u64,

    /// Currency of an order placed without one (seed 003's order body names none).
    #[arg(long, env = "ORDER_CURRENCY", value_name = "ORDER_CURRENCY", default_value = "USD", value_parser = parse_currency, global = true)]
    pub order_currency: String,

    /// A Redis (`redis://…`) to append every order event to, in seed 003's stream format, for
    /// workers written to that contract; unset: no such stream.
    #[arg(long, env = "ORDER_STREAM_URL", value_name = "ORDER_STREAM_URL", value_parser = parse_redis_url, global = true)]
    pub order_stream_url: Option<String>,

    /// The stream ORDER_STREAM_URL writes to.
    #[arg(
        long,
        env = "ORDER_STREAM",
        value_name = "ORDER_STREAM",
        default_value = "orders:events",
        global = true
    )]
    pub order_stream: String,

    /// Price of the premium membership, decimal (in MEMBERSHIP_CURRENCY).
    #[arg(
        long,
        env = "MEMBERSHIP_PRICE",
        value_name = "MEMBERSHIP_PRICE",
        default_value = "9.99",
        global = true
    )]
    pub membership_price: String,

    /// Currency of the membership price.
    #[arg(
        long,
        env = "MEMBERSHIP_CURRENCY",
        value_name = "MEMBERSHIP_CURRENCY",
        default_value = "USD",
        global = true
    )]
    pub membership_currency: String,

    /// What one membership payment buys: premium for this long, from now or from the current end (a renewal). Checked every RECOVERY_INTERVAL; a membership whose end has passed becomes free.
    #[arg(long, env = "MEMBERSHIP_PERIOD", value_name = "MEMBERSHIP_PERIOD", default_value = "30d", value_parser = parse_duration, global = true)]
    pub membership_period: Duration,

    /// Provider of payments that name none: `mock`, `stripe` or `paypal` (default: the first configured of stripe and paypal, else `mock`). The mock is offered only when it is the default.
    #[arg(long, env = "PAYMENT_PROVIDER", value_name = "PAYMENT_PROVIDER", value_parser = ["mock", "stripe", "paypal"], global = true)]
    pub payment_provider: Option<String>,

    /// TOML file of payment routing rules (`[[rules]]`, see docs/ROUTING.md); they apply until an administrator replaces them through `PUT /api/v1/routing`. Unset: every payment that names no provider goes to PAYMENT_PROVIDER.
    #[arg(long, env = "ROUTING_FILE", value_name = "ROUTING_FILE", global = true)]
    pub routing_file: Option<PathBuf>,

    /// Stripe secret API key (sk_live_… or sk_test_…); enables the `stripe` provider.
    #[arg(
        long,
        env = "STRIPE_SECRET_KEY",
        value_name = "STRIPE_SECRET_KEY",
        hide_env_values = true,
        global = true
    )]
    pub stripe_secret_key: Option<String>,

    /// Signing secret of the Stripe webhook endpoint (whsec_…); enables POST /api/v1/webhooks/stripe.
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        value_name = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub stripe_webhook_secret: Option<String>,

    /// Base URL of Stripe's API (a test double's, in tests).
    #[arg(long, env = "STRIPE_API_BASE", value_name = "STRIPE_API_BASE", default_value = "https://api.stripe.com", value_parser = parse_http_url, global = true)]
    pub stripe_api_base: String,

    /// PayPal REST app client id; with PAYPAL_CLIENT_SECRET enables the `paypal` provider.
    #[arg(
        long,
        env = "PAYPAL_CLIENT_ID",
        value_name = "PAYPAL_CLIENT_ID",
        global = true
    )]
    pub paypal_client_id: Option<String>,

    /// PayPal REST app secret.
    #[arg(
        long,
        env = "PAYPAL_CLIENT_SECRET",
        value_name = "PAYPAL_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub paypal_client_secret: Option<String>,

    /// Base URL of PayPal's API (https://api-m.sandbox.paypal.com for the sandbox).
    #[arg(long, env = "PAYPAL_API_BASE", value_name = "PAYPAL_API_BASE", default_value = "https://api-m.paypal.com", value_parser = parse_http_url, global = true)]
    pub paypal_api_base: String,

    /// Id of the PayPal webhook (from the PayPal app); enables POST /api/v1/webhooks/paypal.
    #[arg(
        long,
        env = "PAYPAL_WEBHOOK_ID",
        value_name = "PAYPAL_WEBHOOK_ID",
        global = true
    )]
    pub paypal_webhook_id: Option<String>,

    /// Limit of one call to a payment provider (retried twice on timeouts, 409, 429 and 5xx; 5 failed calls open the provider's circuit for 30 s).
    #[arg(long, env = "PROVIDER_TIMEOUT", value_name = "PROVIDER_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub provider_timeout: Duration,

    /// `inprocess` (embedded), `amqp://USER:PASS@HOST:5672/%2f` (RabbitMQ) or `redis://HOST:6379` (Redis Streams).
    #[arg(long, env = "EVENT_BUS", value_name = "EVENT_BUS", default_value = "inprocess", value_parser = parse_event_bus, global = true)]
    pub event_bus: String,

    /// Prefix of the exchange, queue and stream names on the broker.
    #[arg(
        long,
        env = "EVENT_NAMESPACE",
        value_name = "EVENT_NAMESPACE",
        default_value = "portside",
        global = true
    )]
    pub event_namespace: String,

    /// Attempts a consumer makes before it dead-letters an event.
    #[arg(long, env = "WORKER_MAX_ATTEMPTS", value_name = "WORKER_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100), global = true)]
    pub worker_max_attempts: u32,

    /// Outbox rows the relay claims and publishes in one pass.
    #[arg(long, env = "RELAY_BATCH", value_name = "RELAY_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub relay_batch: u32,

    /// Deliveries a consumer group takes and handles at once: one inbox read, one inbox write
    /// and one search index commit per batch.
    #[arg(long, env = "WORKER_BATCH", value_name = "WORKER_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub worker_batch: u32,

    /// `tantivy://PATH` (embedded; default tantivy://DATA_DIR/search) or `http(s)://[USER:PASSWORD@]HOST:9200[/INDEX]` (OpenSearch/Elasticsearch; index `portside` by default).
    #[arg(long, env = "SEARCH_URL", value_name = "SEARCH_URL", value_parser = parse_search_url, global = true)]
    pub search_url: Option<String>,

    /// Limit for one call to an OpenSearch/Elasticsearch cluster (retried twice, then the circuit opens after 5 failed calls for 30 s).
    #[arg(long, env = "SEARCH_TIMEOUT", value_name = "SEARCH_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub search_timeout: Duration,

    /// Requests per second one client IP may make (bursts of twice that); 0 turns it off.
    #[arg(
        long,
        env = "RATE_LIMIT_PER_IP",
        value_name = "RATE_LIMIT_PER_IP",
        default_value_t = 1000,
        global = true
    )]
    pub rate_limit_per_ip: u32,

    /// Requests per second one signed-in user may make (bursts of twice that); 0 turns it off.
    #[arg(
        long,
        env = "RATE_LIMIT_PER_USER",
        value_name = "RATE_LIMIT_PER_USER",
        default_value_t = 200,
        global = true
    )]
    pub rate_limit_per_user: u32,

    /// Login, registration and refresh attempts per minute from one client IP (bursts of twice that); 0 turns it off.
    #[arg(
        long,
        env = "RATE_LIMIT_CREDENTIALS",
        value_name = "RATE_LIMIT_CREDENTIALS",
        default_value_t = 10,
        global = true
    )]
    pub rate_limit_credentials: u32,

    /// Let webhook endpoints use `http` URLs (default: `https` only).
    #[arg(long, env = "WEBHOOK_ALLOW_HTTP", value_name = "WEBHOOK_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_http: bool,

    /// Let webhook endpoints point at private, loopback and link-local addresses (tests, a
    /// private deployment; default: refused).
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", value_name = "WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_private: bool,

    /// The pauses between a webhook delivery's attempts, comma-separated (the first attempt is
    /// at once; each pause is scaled by a jitter of ±10 %). One attempt more than pauses.
    #[arg(long, env = "WEBHOOK_RETRY_SCHEDULE", value_name = "WEBHOOK_RETRY_SCHEDULE", default_value = "5s,5m,30m,2h,5h,10h,10h", value_parser = parse_schedule, global = true)]
    pub webhook_retry_schedule: Schedule,

    /// How long one webhook request may take before it counts as failed.
    #[arg(long, env = "WEBHOOK_TIMEOUT", value_name = "WEBHOOK_TIMEOUT", default_value = "15s", value_parser = parse_duration, global = true)]
    pub webhook_timeout: Duration,

    /// Webhook requests in flight per endpoint (per process that sends them).
    #[arg(long, env = "WEBHOOK_CONCURRENCY", value_name = "WEBHOOK_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64), global = true)]
    pub webhook_concurrency: u32,

    /// An endpoint whose every attempt failed for this long is disabled (with an event).
    #[arg(long, env = "WEBHOOK_DISABLE_AFTER", value_name = "WEBHOOK_DISABLE_AFTER", default_value = "5d", value_parser = parse_duration, global = true)]
    pub webhook_disable_after: Duration,

    /// How long a rotated signing secret keeps signing beside the new one.
    #[arg(long, env = "WEBHOOK_ROTATION_OVERLAP", value_name = "WEBHOOK_ROTATION_OVERLAP", default_value = "24h", value_parser = parse_duration, global = true)]
    pub webhook_rotation_overlap: Duration,

    /// How long webhook deliveries and their attempts are kept.
    #[arg(long, env = "WEBHOOK_DELIVERY_RETENTION", value_name = "WEBHOOK_DELIVERY_RETENTION", default_value = "30d", value_parser = parse_duration, global = true)]
    pub webhook_delivery_retention: Duration,

    /// Take the client IP from X-Forwarded-For (only behind a proxy that sets it, e.g. the nginx of deploy/).
    #[arg(long, env = "TRUST_FORWARDED_FOR", value_name = "TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub trust_forwarded_for: bool,

    /// Longest a request may run before it is answered 503 request_timeout.
    #[arg(long, env = "REQUEST_TIMEOUT", value_name = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,

    /// `json` (default) or `text`.
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", default_value = "json", value_parser = ["json", "text"], global = true)]
    pub log_format: String,
}

impl Settings {
    /// The search index URL, derived from the data directory when not given.
    pub fn search_url(&self) -> String {
        self.search_url
            .clone()
            .unwrap_or_else(|| format!("tantivy://{}/search", self.data_dir.display()))
    }

    /// The store URL, derived from the data directory when not given.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/portside.db", self.data_dir.display()))
    }
}

/// A retry schedule: the pauses between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(pub Vec<Duration>);

fn parse_schedule(text: &str) -> Result<Schedule, String> {
    let pauses = text
        .split(',')
        .map(|p| parse_duration(p.trim()).map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if pauses.len() > 20 {
        return Err("at most 20 pauses".into());
    }
    Ok(Schedule(pauses))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 30s, 15m, 24h)"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn parse_currency(text: &str) -> Result<String, String> {
    portside_domain::Currency::from_code(text)
        .map(|c| c.code().to_owned())
        .map_err(|e| e.to_string())
}

fn parse_redis_url(text: &str) -> Result<String, String> {
    if text.starts_with("redis://") || text.starts_with("rediss://") {
        Ok(text.to_owned())
    } else {
        Err("must be a redis:// or rediss:// URL".into())
    }
}

fn parse_secret(text: &str) -> Result<String, String> {
    if text.len() < 32 {
        return Err("must be at least 32 characters (e.g. `openssl rand -hex 32`)".into());
    }
    Ok(text.to_owned())
}

fn parse_event_bus(text: &str) -> Result<String, String> {
    if text == "inprocess"
        || text.starts_with("amqp://")
        || text.starts_with("amqps://")
        || text.starts_with("redis://")
    {
        Ok(text.to_owned())
    } else {
        Err("must be `inprocess`, amqp://… (RabbitMQ) or redis://… (Redis Streams)".into())
    }
}

fn parse_search_url(text: &str) -> Result<String, String> {
    if text.starts_with("tantivy://") || text.starts_with("http://") || text.starts_with("https://")
    {
        Ok(text.to_owned())
    } else {
        Err("must be tantivy://PATH or http(s)://HOST:PORT".into())
    }
}

fn parse_http_url(text: &str) -> Result<String, String> {
    if text.starts_with("http://") || text.starts_with("https://") {
        Ok(text.to_owned())
    } else {
        Err("must be http(s)://HOST[:PORT]".into())
    }
}

fn parse_cache_url(text: &str) -> Result<String, String> {
    if text == "memory"
        || text == "none"
        || text.starts_with("redis://")
        || text.starts_with("rediss://")
    {
        Ok(text.to_owned())
    } else {
        Err("must be `memory`, `none` or redis://HOST:PORT/DB".into())
    }
}

fn parse_database_url(text: &str) -> Result<String, String> {
    let supported = ["sqlite:", "postgres:", "postgresql:"];
    if supported.iter().any(|p| text.starts_with(p)) {
        Ok(text.to_owned())
    } else {
        Err("must start with sqlite:// or postgres://".into())
    }
}

/// Parses flags and environment, then fills what is still at its default from the TOML file.
pub fn load() -> anyhow::Result<Cli> {
    load_from(std::env::args_os().collect())
}

fn load_from(args: Vec<OsString>) -> anyhow::Result<Cli> {
    let matches = Cli::command().get_matches_from(args.clone());
    let cli = Cli::from_arg_matches(&matches)?;
    let Some(path) = cli.settings.config.clone() else {
        return Ok(cli);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("PORTSIDE_CONFIG: cannot read {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("PORTSIDE_CONFIG: {} is not valid TOML", path.display()))?;
    let known: Vec<String> = Cli::command()
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let mut extra = Vec::new();
    for (key, value) in table {
        if key == "config" || !known.contains(&key) {
            bail!(
                "PORTSIDE_CONFIG: unknown setting {key:?} in {}",
                path.display()
            );
        }
        if matches.value_source(&key) != Some(ValueSource::DefaultValue)
            && matches.value_source(&key).is_some()
        {
            continue; // a flag or the environment wins over the file
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!("PORTSIDE_CONFIG: {key} must be a string or a number, not {other}"),
        };
        extra.push(OsString::from(format!(
            "--{}={value}",
            key.replace('_', "-")
        )));
    }
    let mut all = args;
    all.extend(extra);
    Ok(Cli::try_parse_from(all)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn defaults_are_the_embedded_mode() {
        let cli = load_from(args(&["portside"])).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.settings.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(cli.settings.database_url(), "sqlite://./data/portside.db");
        assert_eq!(cli.settings.idempotency_ttl, Duration::from_secs(86_400));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = Cli::try_parse_from(args(&["portside", "--http-addr", "nonsense"])).unwrap_err();
        assert!(err.to_string().contains("HTTP_ADDR"), "{err}");
        let err =
            Cli::try_parse_from(args(&["portside", "--database-url", "mysql://x"])).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        let err =
            Cli::try_parse_from(args(&["portside", "--idempotency-ttl", "soon"])).unwrap_err();
        assert!(err.to_string().contains("IDEMPOTENCY_TTL"), "{err}");
    }

    #[test]
    fn the_file_fills_defaults_but_flags_win() {
        let path =
            std::env::temp_dir().join(format!("portside-config-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "http_addr = \"127.0.0.1:9999\"\nidempotency_ttl = \"1h\"\ndb_max_connections = 3\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let cli = load_from(args(&[
            "portside",
            "--config",
            file,
            "--idempotency-ttl",
            "2h",
        ]))
        .unwrap();
        assert_eq!(cli.settings.http_addr.to_string(), "127.0.0.1:9999");
        assert_eq!(cli.settings.idempotency_ttl, Duration::from_secs(7200));
        assert_eq!(cli.settings.db_max_connections, 3);
        std::fs::write(&path, "htp_addr = \"x\"\n").unwrap();
        let err = load_from(args(&["portside", "--config", file])).unwrap_err();
        assert!(err.to_string().contains("htp_addr"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
