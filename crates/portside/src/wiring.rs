//! The composition root: the one place that knows every adapter. Each process part opens what
//! it runs: the store and the event backbone always; the application (token secret, cache,
//! payment providers, search index) only where use cases run; the search use case alone for
//! the search service. So `portside relay` needs no token secret, cache or provider.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use portside_app::AppError;
use portside_app::application::{
    Application, Ports, SUBSCRIPTIONS, Settings as AppSettings, StorePorts,
};
use portside_app::orders::OrderStreamPorts;
use portside_app::payments::{PaymentProvider, PaymentSettings, Providers, WebhookVerifier};
use portside_app::routing::Routing;
use portside_app::search::{Search, SearchIndex};
use portside_app::webhooks::{DispatchSettings, WebhookSettings};
use portside_auth::{Argon2Hasher, JwtTokens};
use portside_bus::{InProcessBus, RabbitBus, RedisStreamSink, RedisStreamsBus};
use portside_cache::{MemoryCache, NoCache, RedisCache};
use portside_domain::routing::RouteRule;
use portside_domain::webhook::UrlPolicy;
use portside_domain::webhook::delivery::RetrySchedule;
use portside_domain::{AmountLimit, Currency, Money};
use portside_events::relay::{Relay, RelaySettings};
use portside_events::retention::Retention;
use portside_events::worker::{EventHandler, Worker, WorkerSettings, declare};
use portside_events::{DeadLetterStore, DeadLetters, EventBus, EventSource, Inbox, Outbox};
use portside_kernel::{Cache, Probe, SystemClock, UuidV7};
use portside_providers::{
    MockProvider, PayPalProvider, PayPalSettings, PayPalWebhooks, Resilience, StripeProvider,
    StripeSettings, StripeWebhooks,
};
use portside_search::{OpenSearchIndex, OpenSearchSettings, TantivyIndex};
use portside_sql::AnyStore;
use portside_webhooks::HttpWebhookSender;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::open_store;

/// The event backbone of a process: the bus through its three ports, the store's outbox and
/// inbox, and what readiness checks of them.
pub struct Backbone {
    /// Publishing.
    pub bus: Arc<dyn EventBus>,
    /// Consuming.
    pub source: Arc<dyn EventSource>,
    pub dead: Arc<dyn DeadLetters>,
    /// The outbox the relay reads.
    pub outbox: Arc<dyn Outbox>,
    /// The consumers' inbox.
    pub inbox: Arc<dyn Inbox>,
    /// What cleans the outbox, the inbox and provider notices.
    pub retention: Arc<dyn Retention>,
    /// True for the in-process bus: relay and worker must share the process.
    pub in_process: bool,
    /// The store and, unless in-process, the broker.
    pub probes: Vec<Arc<dyn Probe>>,
    max_attempts: u32,
    relay_batch: u32,
    worker_batch: usize,
}

impl Backbone {
    /// A relay named after this host and process.
    pub fn relay(&self) -> Relay {
        Relay::new(
            self.outbox.clone(),
            self.bus.clone(),
            Arc::new(SystemClock),
            process_name("relay"),
            RelaySettings {
                batch: self.relay_batch,
                ..RelaySettings::default()
            },
        )
    }

    /// Runs the relay until `stop`, but only once every consumer group's subscription is
    /// declared: RabbitMQ drops a message no queue is bound for, and a Redis Streams group
    /// created later starts after what was already added, so publishing first would lose events.
    pub async fn run_relay(&self, stop: CancellationToken) {
        if declare(self.source.as_ref(), SUBSCRIPTIONS, &stop).await {
            self.relay().run(stop).await;
        }
    }

    /// The worker of these consumers.
    pub fn worker(&self, consumers: Vec<Arc<dyn EventHandler>>) -> Arc<Worker> {
        Arc::new(Worker::new(
            self.source.clone(),
            self.inbox.clone(),
            Arc::new(SystemClock),
            consumers,
            WorkerSettings {
                max_attempts: self.max_attempts,
                batch: self.worker_batch,
                ..WorkerSettings::default()
            },
        ))
    }

    /// The consumer groups of this version.
    pub fn groups() -> Vec<&'static str> {
        SUBSCRIPTIONS.iter().map(|s| s.group).collect()
    }
}

/// One bus adapter seen through its three ports.
struct BusPorts {
    bus: Arc<dyn EventBus>,
    source: Arc<dyn EventSource>,
    dead: Arc<dyn DeadLetters>,
}

impl BusPorts {
    fn of<B: EventBus + EventSource + DeadLetters + 'static>(b: Arc<B>) -> Self {
        BusPorts {
            bus: b.clone(),
            source: b.clone(),
            dead: b,
        }
    }
}

/// `<kind>-<host>-<pid>`: names a relay in the outbox and a consumer in Redis groups.
fn process_name(kind: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{kind}-{host}-{}", std::process::id())
}

fn duration(d: std::time::Duration) -> anyhow::Result<time::Duration> {
    time::Duration::try_from(d).context("duration out of range")
}

/// Opens and migrates the store.
pub async fn store(settings: &Settings) -> anyhow::Result<AnyStore> {
    let store = open_store(settings).await?;
    store
        .migrate()
        .await
        .context("DATABASE_URL: migrating the store failed")?;
    if store.autovacuum_is_off().await {
        tracing::warn!(
            "PostgreSQL runs with autovacuum off: the outbox, the inbox and the other tables \
             retention cleans will keep growing on disk; turn it on (PostgreSQL's default)"
        );
    }
    Ok(store)
}

/// Dead letters for a command that runs no consumer (`users create-admin`): none, and it
/// needs no broker.
pub fn no_bus() -> Arc<dyn DeadLetters> {
    Arc::new(InProcessBus::default())
}

/// The backbone over `store` and the bus EVENT_BUS names.
pub fn backbone(settings: &Settings, store: &AnyStore) -> anyhow::Result<Backbone> {
    #[allow(clippy::type_complexity)]
    let (outbox, inbox, retention, stored_dead, store_probe): (
        Arc<dyn Outbox>,
        Arc<dyn Inbox>,
        Arc<dyn Retention>,
        Arc<dyn DeadLetterStore>,
        Arc<dyn Probe>,
    ) = match store {
        AnyStore::Sqlite(s) => (
            Arc::new(s.clone()),
            Arc::new(s.clone()),
            Arc::new(s.clone()),
            Arc::new(s.clone()),
            Arc::new(s.clone()),
        ),
        AnyStore::Postgres(s) => (
            Arc::new(s.clone()),
            Arc::new(s.clone()),
            Arc::new(s.clone()),
            Arc::new(s.clone()),
            Arc::new(s.clone()),
        ),
    };
    let mut probes = vec![store_probe];
    let (bus, in_process) = match settings.event_bus.as_str() {
        "inprocess" => (
            BusPorts::of(Arc::new(
                InProcessBus::default().with_dead_letters(stored_dead),
            )),
            true,
        ),
        url if url.starts_with("redis://") => {
            let b = Arc::new(
                RedisStreamsBus::new(
                    url,
                    &settings.event_namespace,
                    &process_name("worker"),
                    Duration::from_secs(30),
                )
                .map_err(|e| anyhow::anyhow!("EVENT_BUS: {e}"))?,
            );
            probes.push(b.clone());
            (BusPorts::of(b), false)
        }
        url => {
            let b = Arc::new(RabbitBus::new(url, &settings.event_namespace));
            probes.push(b.clone());
            (BusPorts::of(b), false)
        }
    };
    Ok(Backbone {
        bus: bus.bus,
        source: bus.source,
        dead: bus.dead,
        outbox,
        inbox,
        retention,
        in_process,
        probes,
        max_attempts: settings.worker_max_attempts,
        relay_batch: settings.relay_batch,
        worker_batch: settings.worker_batch as usize,
    })
}

/// The secret that signs access tokens (see [`jwt_secret`]). A part that runs the use cases
/// asks for it before it opens anything, so that a missing secret is refused first.
pub fn token_secret(settings: &Settings) -> anyhow::Result<String> {
    jwt_secret(settings, settings.database_url().starts_with("postgres"))
}

/// The use cases over `store`, and the probe of the cache when it is Redis.
pub async fn application(
    settings: &Settings,
    store: &AnyStore,
    dead_letters: Arc<dyn DeadLetters>,
) -> anyhow::Result<(Application, Option<Arc<dyn Probe>>)> {
    let secret = token_secret(settings)?;
    let (cache, cache_probe) = cache(settings).await?;
    let real = real_providers(settings)?;
    let providers = providers(settings, &real)?;
    let routing_rules = routing_rules(settings, &providers)?;
    let app = Application::new(
        Ports {
            store: store_ports(store),
            index: search_index(settings).await?,
            cache,
            providers,
            verifiers: verifiers(settings, &real)?,
            hasher: Arc::new(Argon2Hasher::default()),
            tokens: Arc::new(JwtTokens::new(
                secret.as_bytes(),
                duration(settings.access_token_ttl)?,
            )),
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
            order_stream: order_stream(settings)?,
            dead_letters,
            webhook_sender: Arc::new(
                HttpWebhookSender::new(settings.webhook_allow_private)
                    .map_err(|e| anyhow::anyhow!(e))?,
            ),
        },
        AppSettings {
            payments: PaymentSettings {
                amount_limit: AmountLimit {
                    max_minor: settings.payment_max_amount_minor,
                },
                idempotency_ttl: duration(settings.idempotency_ttl)?,
                key_lock: duration(settings.idempotency_lock)?,
                recovery_grace: duration(settings.recovery_grace)?,
            },
            membership_price: membership_price(settings)?,
            membership_period: duration(settings.membership_period)?,
            order_currency: Currency::from_code(&settings.order_currency)
                .map_err(|e| anyhow::anyhow!("ORDER_CURRENCY: {e}"))?,
            user_cache_ttl: settings.user_cache_ttl,
            refresh_token_ttl: duration(settings.refresh_token_ttl)?,
            webhooks: WebhookSettings {
                urls: UrlPolicy {
                    allow_http: settings.webhook_allow_http,
                    allow_private: settings.webhook_allow_private,
                },
                rotation_overlap: duration(settings.webhook_rotation_overlap)?,
                ..WebhookSettings::default()
            },
            webhook_dispatch: DispatchSettings {
                schedule: RetrySchedule::new(settings.webhook_retry_schedule.0.clone()),
                concurrency: settings.webhook_concurrency,
                timeout: settings.webhook_timeout,
                disable_after: settings.webhook_disable_after,
                ..DispatchSettings::default()
            },
            routing_rules,
        },
    );
    Ok((app, cache_probe))
}

/// The routing rules of `ROUTING_FILE` (none when unset), refused with every problem named
/// when they cannot be used with the configured providers.
fn routing_rules(settings: &Settings, providers: &Providers) -> anyhow::Result<Vec<RouteRule>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RoutingFile {
        #[serde(default)]
        rules: Vec<RouteRule>,
    }
    let Some(path) = &settings.routing_file else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("ROUTING_FILE: cannot read {}", path.display()))?;
    let file: RoutingFile = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("ROUTING_FILE {}: {e}", path.display()))?;
    if let Err(e) = Routing::check(&file.rules, &providers.names()) {
        let problems = match e {
            AppError::Refused { refusals, .. } => refusals
                .iter()
                .map(|r| format!("{}: {} ({})", r.field, r.message, r.code))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        bail!("ROUTING_FILE {}: {problems}", path.display());
    }
    Ok(file.rules)
}

/// The search use case alone (the search service, `search reindex`): the index and the store's
/// orders, payments and products to rebuild it from.
pub async fn search(settings: &Settings, store: &AnyStore) -> anyhow::Result<Arc<Search>> {
    let ports = store_ports(store);
    Ok(Arc::new(Search::new(
        search_index(settings).await?,
        ports.orders,
        ports.payments,
        ports.catalog,
    )))
}

/// The books of `store`, for `portside ledger`.
pub fn ledger(store: &AnyStore) -> portside_app::ledger::Ledger {
    portside_app::ledger::Ledger::new(store_ports(store).ledger)
}

/// The store ports of every context, whichever engine `store` runs on.
fn store_ports(store: &AnyStore) -> StorePorts {
    match store {
        AnyStore::Sqlite(s) => StorePorts::of(Arc::new(s.clone())),
        AnyStore::Postgres(s) => StorePorts::of(Arc::new(s.clone())),
    }
}

/// The verifiers of the providers whose webhooks are configured.
fn verifiers(
    settings: &Settings,
    real: &RealProviders,
) -> anyhow::Result<Vec<(String, Arc<dyn WebhookVerifier>)>> {
    let mut verifiers: Vec<(String, Arc<dyn WebhookVerifier>)> = Vec::new();
    if let Some(secret) = &settings.stripe_webhook_secret {
        verifiers.push((
            "stripe".into(),
            Arc::new(StripeWebhooks::new(secret.clone())),
        ));
    }
    if let Some(id) = &settings.paypal_webhook_id {
        let Some(paypal) = &real.paypal else {
            bail!("PAYPAL_WEBHOOK_ID needs PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET");
        };
        verifiers.push((
            "paypal".into(),
            Arc::new(PayPalWebhooks::new(paypal.clone(), id.clone())),
        ));
    }
    Ok(verifiers)
}

async fn search_index(settings: &Settings) -> anyhow::Result<Arc<dyn SearchIndex>> {
    let url = settings.search_url();
    if let Some(path) = url.strip_prefix("tantivy://") {
        let index = TantivyIndex::open(std::path::Path::new(path))
            .map_err(|e| anyhow::anyhow!("SEARCH_URL ({url}): {e}"))?;
        return Ok(Arc::new(index));
    }
    let mut cluster = OpenSearchSettings::new(url.as_str());
    cluster.timeout = settings.search_timeout;
    // The message names the variable, never the URL: it may carry a password.
    let index = OpenSearchIndex::new(cluster).map_err(|e| anyhow::anyhow!("SEARCH_URL: {e}"))?;
    if let Err(e) = index.prepare().await {
        tracing::warn!(error = %e, "the search cluster is not ready; the index is prepared at its first use");
    }
    Ok(Arc::new(index))
}

/// The real providers configured (Stripe, PayPal), shared by payments and webhooks.
struct RealProviders {
    stripe: Option<Arc<StripeProvider>>,
    paypal: Option<Arc<PayPalProvider>>,
}

fn real_providers(settings: &Settings) -> anyhow::Result<RealProviders> {
    let resilience = Resilience {
        timeout: settings.provider_timeout,
        ..Resilience::default()
    };
    let stripe = match &settings.stripe_secret_key {
        Some(key) => Some(Arc::new(
            StripeProvider::new(StripeSettings {
                secret_key: key.clone(),
                api_base: settings.stripe_api_base.clone(),
                resilience: resilience.clone(),
            })
            .map_err(|e| anyhow::anyhow!("STRIPE_SECRET_KEY: {e}"))?,
        )),
        None => None,
    };
    let paypal = match (&settings.paypal_client_id, &settings.paypal_client_secret) {
        (Some(id), Some(secret)) => Some(Arc::new(
            PayPalProvider::new(PayPalSettings {
                client_id: id.clone(),
                client_secret: secret.clone(),
                api_base: settings.paypal_api_base.clone(),
                resilience,
            })
            .map_err(|e| anyhow::anyhow!("PAYPAL_CLIENT_ID / PAYPAL_CLIENT_SECRET: {e}"))?,
        )),
        (None, None) => None,
        _ => bail!("PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET must be set together"),
    };
    Ok(RealProviders { stripe, paypal })
}

/// The payment providers by name. The default is PAYMENT_PROVIDER, else the first real one
/// configured, else the mock; the mock is offered only when it is the default, so a production
/// deployment never takes a payment with a test token.
fn providers(settings: &Settings, real: &RealProviders) -> anyhow::Result<Providers> {
    let default = match &settings.payment_provider {
        Some(p) => p.clone(),
        None if real.stripe.is_some() => "stripe".into(),
        None if real.paypal.is_some() => "paypal".into(),
        None => "mock".into(),
    };
    let mut named: Vec<(&str, Arc<dyn PaymentProvider>)> = Vec::new();
    if let Some(s) = &real.stripe {
        named.push(("stripe", s.clone()));
    }
    if let Some(p) = &real.paypal {
        named.push(("paypal", p.clone()));
    }
    if default == "mock" {
        named.push(("mock", Arc::new(MockProvider::new())));
    }
    let Some(first) = named.iter().position(|(n, _)| *n == default) else {
        bail!(
            "PAYMENT_PROVIDER={default} is not configured (set {})",
            if default == "stripe" {
                "STRIPE_SECRET_KEY"
            } else {
                "PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET"
            }
        );
    };
    let (name, provider) = named.remove(first);
    Ok(named
        .into_iter()
        .fold(Providers::new(name, provider), |all, (n, p)| all.with(n, p)))
}

/// Seed 003's order stream, when `ORDER_STREAM_URL` names a Redis.
fn order_stream(settings: &Settings) -> anyhow::Result<Option<OrderStreamPorts>> {
    let Some(url) = &settings.order_stream_url else {
        return Ok(None);
    };
    let sink = RedisStreamSink::new(url, &settings.order_stream)
        .map_err(|e| anyhow::anyhow!("ORDER_STREAM_URL: {e}"))?;
    Ok(Some(OrderStreamPorts {
        sink: Arc::new(sink),
        render: Arc::new(portside_http::order_representation),
    }))
}

fn membership_price(settings: &Settings) -> anyhow::Result<Money> {
    let currency = Currency::from_code(&settings.membership_currency)
        .map_err(|e| anyhow::anyhow!("MEMBERSHIP_CURRENCY: {e}"))?;
    let price = Money::parse(&settings.membership_price, currency)
        .map_err(|e| anyhow::anyhow!("MEMBERSHIP_PRICE: {e}"))?;
    if !price.is_positive() {
        bail!("MEMBERSHIP_PRICE: must be greater than zero");
    }
    Ok(price)
}

/// The cache, and for Redis its readiness probe.
async fn cache(settings: &Settings) -> anyhow::Result<(Arc<dyn Cache>, Option<Arc<dyn Probe>>)> {
    match settings.cache_url.as_str() {
        "memory" => {
            return Ok((Arc::new(MemoryCache::new(settings.cache_capacity)), None));
        }
        "none" => return Ok((Arc::new(NoCache), None)),
        _ => {}
    }
    let redis = RedisCache::connect(&settings.cache_url, "portside:")
        .map_err(|e| anyhow::anyhow!("CACHE_URL: {e}"))?;
    if let Err(e) = redis.ping().await {
        tracing::warn!(error = %e, "CACHE_URL: Redis is not answering; reads fall back to the store until it does");
    }
    let redis = Arc::new(redis);
    Ok((redis.clone(), Some(redis)))
}

/// `JWT_SECRET`, or in embedded mode a secret generated once and kept in DATA_DIR (0600).
/// Several processes on PostgreSQL must share one secret, so there it must be given.
fn jwt_secret(settings: &Settings, postgres: bool) -> anyhow::Result<String> {
    if let Some(secret) = &settings.jwt_secret {
        return Ok(secret.clone());
    }
    if postgres {
        bail!(
            "JWT_SECRET: required when DATABASE_URL is PostgreSQL (every process must share it); e.g. JWT_SECRET=$(openssl rand -hex 32)"
        );
    }
    let path = settings.data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(text.trim().to_owned()),
        Ok(_) => bail!(
            "JWT_SECRET: {} is shorter than 32 characters; delete it or set JWT_SECRET",
            path.display()
        ),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("JWT_SECRET: cannot read {}", path.display()));
        }
        Err(_) => {}
    }
    let secret = generate_secret();
    write_private(&path, &secret)
        .with_context(|| format!("JWT_SECRET: cannot write {}", path.display()))?;
    tracing::warn!(path = %path.display(), "JWT_SECRET is not set: generated one and kept it in the data directory (mode 0600); set JWT_SECRET in production");
    Ok(secret)
}

fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()
}
