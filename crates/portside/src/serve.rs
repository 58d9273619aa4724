//! `portside serve`: the all-in-one server. Migrates the store, serves the HTTP API, runs the
//! outbox relay, the event consumers, the recovery, retention and key-purge tasks, and shuts down
//! gracefully on SIGINT or SIGTERM: HTTP first, then the relay (its last batch still reaches the
//! consumers), then the consumers (finishing and acknowledging what they hold).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portside_http::{ApiState, LimitSettings, Limits};
use tokio_util::sync::CancellationToken;

use portside_app::search::{PROJECTION_GROUP, Search, SearchProjection};
use portside_events::retention::{Windows, sweep};

use crate::config::Settings;
use crate::redact;
use crate::wiring;

/// How often expired idempotency keys are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// How often the connection pool gauges are sampled.
const POOL_GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process's Prometheus recorder (latency histograms with fixed buckets) and
/// returns what renders `/metrics`.
fn install_metrics() -> anyhow::Result<portside_http::MetricsRenderer> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
        .context("metric buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(Arc::new(move || handle.render()))
}

/// What `run` serves: everything in one process, or the HTTP API alone (split mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `portside serve`: API, gRPC search, relay and consumers.
    AllInOne,
    /// `portside api`: the HTTP API (with payment recovery); relay, worker and search run apart.
    Api,
}

pub async fn run(settings: &Settings, mode: Mode) -> anyhow::Result<ExitCode> {
    // Before anything records a metric (the circuit breakers publish their state when built).
    let metrics = install_metrics()?;
    // Refused before anything opens when missing (the use cases sign tokens with it).
    wiring::token_secret(settings)?;
    let store = wiring::store(settings).await?;
    let backbone = Arc::new(wiring::backbone(settings, &store)?);
    if mode == Mode::Api && backbone.in_process {
        anyhow::bail!(
            "EVENT_BUS: `portside api` needs a broker (amqp://… or redis://…) shared with `portside relay`, `worker` and `search`; `portside serve` runs everything in one process"
        );
    }

    let (app, cache_probe) = wiring::application(settings, &store, backbone.dead.clone()).await?;
    let app = Arc::new(app);
    let mut probes = backbone.probes.clone();
    probes.extend(cache_probe);

    let listener = tokio::net::TcpListener::bind(settings.http_addr)
        .await
        .with_context(|| format!("HTTP_ADDR: cannot listen on {}", settings.http_addr))?;
    let addr = listener.local_addr()?;
    let grpc_listener = match mode {
        Mode::AllInOne => Some(grpc_listener(settings).await?),
        Mode::Api => None,
    };
    let limits = Arc::new(Limits::new(
        LimitSettings {
            per_ip_per_second: settings.rate_limit_per_ip,
            per_user_per_second: settings.rate_limit_per_user,
            credentials_per_minute: settings.rate_limit_credentials,
            trust_forwarded_for: settings.trust_forwarded_for,
            request_timeout: settings.request_timeout,
        },
        app.users.clone(),
    ));
    let router = portside_http::router(ApiState {
        app: app.clone(),
        probes: Arc::new(probes),
        metrics: Some(metrics),
        limits: Some(limits.clone()),
    });

    let stop_relay = CancellationToken::new();
    let stop_worker = CancellationToken::new();
    let relay_task = (mode == Mode::AllInOne).then(|| {
        let (backbone, stop) = (backbone.clone(), stop_relay.clone());
        tokio::spawn(async move { backbone.run_relay(stop).await })
    });
    let worker_task = (mode == Mode::AllInOne).then(|| {
        tokio::spawn(
            backbone
                .worker(app.consumers().to_vec())
                .run(stop_worker.clone()),
        )
    });
    // Outgoing webhooks are sent by the process that runs the consumer groups.
    let dispatcher_task = (mode == Mode::AllInOne)
        .then(|| tokio::spawn(app.webhook_dispatcher.clone().run(stop_worker.clone())));

    let stop = CancellationToken::new();
    let mut tasks = vec![
        tokio::spawn(every(settings.recovery_interval, stop.clone(), {
            let payments = app.payments.clone();
            move || {
                let payments = payments.clone();
                async move {
                    if let Err(e) = payments.recover_stale().await {
                        tracing::warn!(error = %e, "recovery pass failed");
                    }
                }
            }
        })),
        tokio::spawn(every(settings.recovery_interval, stop.clone(), {
            let orders = app.orders.clone();
            let ttl = time::Duration::try_from(settings.order_ttl).unwrap_or(time::Duration::MAX);
            move || {
                let orders = orders.clone();
                async move {
                    match orders.expire_unpaid(ttl).await {
                        Ok(0) => {}
                        Ok(n) => {
                            metrics::counter!("portside_orders_expired_total").increment(n as u64);
                            tracing::info!(
                                expired = n,
                                "unpaid orders expired, their stock released"
                            );
                        }
                        Err(e) => tracing::warn!(error = %e, "expiring unpaid orders failed"),
                    }
                }
            }
        })),
        tokio::spawn(every(settings.recovery_interval, stop.clone(), {
            let users = app.users.clone();
            move || {
                let users = users.clone();
                async move {
                    match users.expire_memberships().await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(ended = n, "memberships past their end became free")
                        }
                        Err(e) => tracing::warn!(error = %e, "expiring memberships failed"),
                    }
                }
            }
        })),
        tokio::spawn(every(POOL_GAUGE_INTERVAL, stop.clone(), {
            let store = store.clone();
            move || {
                let usage = store.pool_use();
                metrics::gauge!("portside_db_pool_connections", "state" => "idle")
                    .set(f64::from(usage.idle));
                metrics::gauge!("portside_db_pool_connections", "state" => "in_use")
                    .set(f64::from(usage.open.saturating_sub(usage.idle)));
                std::future::ready(())
            }
        })),
        tokio::spawn(every(Duration::from_secs(60), stop.clone(), {
            let limits = limits.clone();
            move || {
                limits.forget_idle();
                std::future::ready(())
            }
        })),
        tokio::spawn(every(settings.retention_interval, stop.clone(), {
            let retention = backbone.retention.clone();
            let windows = Windows {
                outbox: settings.outbox_retention,
                inbox: settings.inbox_retention,
                provider_events: settings.provider_event_retention,
                event_history: settings.event_history_retention,
                webhook_deliveries: settings.webhook_delivery_retention,
                batch: settings.retention_batch,
            };
            move || {
                let retention = retention.clone();
                async move {
                    let now = time::OffsetDateTime::now_utc();
                    match sweep(&*retention, &windows, now).await {
                        Ok(purged) => {
                            for (table, n) in purged.into_iter().filter(|(_, n)| *n > 0) {
                                tracing::info!(table = table.as_str(), purged = n, "retention");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "retention pass failed"),
                    }
                }
            }
        })),
        tokio::spawn(every(PURGE_INTERVAL, stop.clone(), {
            let payments = app.payments.clone();
            move || {
                let payments = payments.clone();
                async move {
                    match payments.purge_expired_keys().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(purged = n, "expired idempotency keys deleted"),
                        Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
                    }
                }
            }
        })),
    ];
    let grpc_addr = match grpc_listener {
        Some(listener) => {
            let at = listener.local_addr()?;
            tasks.push(tokio::spawn(grpc(
                listener,
                app.search.clone(),
                stop.clone(),
            )));
            Some(at)
        }
        None => None,
    };

    tracing::info!(%addr, ?mode, store = %redact(&settings.database_url()), "portside serving");
    println!("Portside is serving on http://{addr}");
    println!("  API      http://{addr}/api/v1/payments");
    println!("  docs     http://{addr}/docs");
    println!("  OpenAPI  http://{addr}/openapi.json");
    println!("  health   http://{addr}/health/live  http://{addr}/health/ready");
    match grpc_addr {
        Some(at) => {
            println!("  search   grpc://{at} (search.v1.SearchService, reflection, health)")
        }
        None => println!("  search   served by `portside search`; events by `relay` and `worker`"),
    }
    println!("  store    {}", redact(&settings.database_url()));

    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned())
    .into_future();
    let mut server = tokio::spawn(server);
    tokio::select! {
        () = shutdown_signal() => {}
        ended = &mut server => {
            // The server stopped on its own: that is a failure, not a shutdown.
            stop.cancel();
            stop_relay.cancel();
            stop_worker.cancel();
            store.close().await;
            return match ended {
                Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP server stopped unexpectedly")),
                Ok(Err(e)) => Err(e).context("the HTTP server failed"),
                Err(e) => Err(e).context("the HTTP server task panicked"),
            };
        }
    }
    tracing::info!(deadline = ?settings.shutdown_timeout, "shutting down: no new connections, finishing in-flight requests");
    stop.cancel();
    let finished = tokio::time::timeout(settings.shutdown_timeout, async {
        let served = server.await;
        for task in tasks {
            let _ = task.await;
        }
        stop_relay.cancel();
        if let Some(t) = relay_task {
            let _ = t.await;
        }
        stop_worker.cancel();
        if let Some(t) = worker_task {
            let _ = t.await;
        }
        if let Some(t) = dispatcher_task {
            let _ = t.await;
        }
        served
    })
    .await;
    store.close().await;
    match finished {
        Ok(Ok(Ok(()))) => {
            tracing::info!("shut down cleanly");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(Err(e))) => Err(e).context("the HTTP server failed"),
        Ok(Err(e)) => Err(e).context("the HTTP server task panicked"),
        Err(_) => {
            tracing::error!("in-flight work did not finish within SHUTDOWN_TIMEOUT");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `portside relay`, `portside worker` or `portside search`: one part alone, until a signal.
/// The worker runs every consumer group but the search projection, which belongs to the search
/// process: the embedded index has one writer.
pub async fn run_part(settings: &Settings, part: Part) -> anyhow::Result<ExitCode> {
    let metrics = install_metrics()?;
    // The worker runs the use cases, which sign tokens: their secret is checked before anything
    // opens, as in `serve`. The relay and the search service need none.
    if let Part::Worker = part {
        wiring::token_secret(settings)?;
    }
    let store = wiring::store(settings).await?;
    let backbone = Arc::new(wiring::backbone(settings, &store)?);
    if backbone.in_process {
        anyhow::bail!(
            "EVENT_BUS: `inprocess` only works inside `portside serve`; give a broker (amqp://… or redis://…) to run the relay, the worker or the search service alone"
        );
    }
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    if let Some(addr) = settings.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("METRICS_ADDR: cannot listen on {addr}"))?;
        println!("  metrics  http://{}/metrics", listener.local_addr()?);
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || std::future::ready(metrics())),
            )
            .route(
                "/health/live",
                axum::routing::get(|| std::future::ready("ok")),
            );
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        }));
    }
    match part {
        Part::Relay => {
            let (backbone, stop) = (backbone.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { backbone.run_relay(stop).await }));
        }
        Part::Worker => {
            let (app, _) = wiring::application(settings, &store, backbone.dead.clone()).await?;
            let consumers = app
                .consumers()
                .iter()
                .filter(|c| c.group() != PROJECTION_GROUP)
                .cloned()
                .collect();
            tasks.push(tokio::spawn(backbone.worker(consumers).run(stop.clone())));
            tasks.push(tokio::spawn(
                app.webhook_dispatcher.clone().run(stop.clone()),
            ));
        }
        Part::Search => {
            let search = wiring::search(settings, &store).await?;
            let listener = grpc_listener(settings).await?;
            println!("Portside search serving gRPC on {}", listener.local_addr()?);
            let projection = Arc::new(SearchProjection::new(search.index().clone()));
            tasks.push(tokio::spawn(grpc(listener, search, stop.clone())));
            tasks.push(tokio::spawn(
                backbone.worker(vec![projection]).run(stop.clone()),
            ));
        }
    }
    println!(
        "Portside {} running (EVENT_BUS {}); stop with Ctrl-C",
        part.name(),
        redact(&settings.event_bus)
    );
    shutdown_signal().await;
    stop.cancel();
    let finished = tokio::time::timeout(settings.shutdown_timeout, async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    store.close().await;
    Ok(if finished.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Binds GRPC_ADDR.
async fn grpc_listener(settings: &Settings) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(settings.grpc_addr)
        .await
        .with_context(|| format!("GRPC_ADDR: cannot listen on {}", settings.grpc_addr))
}

/// Serves the gRPC search service until `stop`; a failure is logged.
async fn grpc(listener: tokio::net::TcpListener, search: Arc<Search>, stop: CancellationToken) {
    if let Err(e) = portside_grpc::serve(listener, search, stop.cancelled_owned()).await {
        tracing::error!(error = %e, "the gRPC server failed");
    }
}

/// The parts that run alone in split mode.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    /// The outbox relay.
    Relay,
    /// The consumers (all but the search projection).
    Worker,
    /// The gRPC search service and the search projection.
    Search,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Relay => "relay",
            Part::Worker => "worker",
            Part::Search => "search",
        }
    }
}

/// Runs `work` every `period` until `stop` is cancelled (in-flight work finishes first).
async fn every<F, Fut>(period: Duration, stop: CancellationToken, work: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => work().await,
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
