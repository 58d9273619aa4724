//! The outbox relay: claims unpublished rows with a lease, publishes them (in order per
//! aggregate) and marks them published only after the bus confirmed them. While the bus is
//! down it backs off exponentially with jitter; the rows wait in the outbox, nothing is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use portside_kernel::{Clock, StoreError};

use crate::{BusError, EventBus, Outbox, OutboxLag};

/// Tunables of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// Rows per batch.
    pub batch: u32,
    /// How long a claimed batch is this relay's before others may take it over.
    pub lease: time::Duration,
    /// Pause when the outbox is empty.
    pub idle: Duration,
    /// First pause after a failure; doubles up to `max_backoff`.
    pub backoff: Duration,
    /// Longest pause after failures.
    pub max_backoff: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            batch: 500,
            lease: time::Duration::seconds(30),
            idle: Duration::from_millis(100),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Why a pass failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// One relay process (several may run against one PostgreSQL).
pub struct Relay {
    outbox: Arc<dyn Outbox>,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    name: String,
    settings: RelaySettings,
}

impl Relay {
    /// A relay named `name` (shown in the outbox's `claimed_by`).
    pub fn new(
        outbox: Arc<dyn Outbox>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        name: String,
        settings: RelaySettings,
    ) -> Self {
        Relay {
            outbox,
            bus,
            clock,
            name,
            settings,
        }
    }

    /// Claims, publishes and marks one batch; returns how many events were published.
    pub async fn pass(&self) -> Result<usize, RelayError> {
        let now = self.clock.now();
        let started = std::time::Instant::now();
        let mut batch = self
            .outbox
            .claim(
                &self.name,
                self.settings.batch,
                now,
                now + self.settings.lease,
            )
            .await?;
        if batch.is_empty() {
            return Ok(0);
        }
        // In order per aggregate, whatever order the rows were claimed in.
        batch.sort_by(|a, b| {
            (&a.aggregate_type, &a.aggregate_id, a.sequence).cmp(&(
                &b.aggregate_type,
                &b.aggregate_id,
                b.sequence,
            ))
        });
        let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
        let claimed = stage("claim", started);
        let published = self.bus.publish(&batch).await;
        let sent = stage("publish", claimed);
        match published {
            Ok(()) => {
                self.outbox.mark_published(&ids, self.clock.now()).await?;
                stage("mark", sent);
                metrics::counter!("portside_relay_published_total").increment(ids.len() as u64);
                Ok(ids.len())
            }
            Err(e) => {
                metrics::counter!("portside_relay_failed_total").increment(ids.len() as u64);
                if let Err(release) = self.outbox.release(&ids).await {
                    tracing::warn!(error = %release, "could not release the claimed rows; their lease will lapse");
                }
                Err(e.into())
            }
        }
    }

    /// Count and age of the unpublished rows.
    pub async fn lag(&self) -> Result<OutboxLag, StoreError> {
        self.outbox.lag().await
    }

    /// Relays until `stop`; a pass in progress finishes first.
    pub async fn run(&self, stop: CancellationToken) {
        let mut failures: u32 = 0;
        tracing::info!(relay = %self.name, "relay started");
        while !stop.is_cancelled() {
            let pause = match self.pass().await {
                Ok(n) if n as u32 == self.settings.batch => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.report_lag().await;
                    self.settings.idle
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = portside_kernel::resilience::full_jitter(
                        self.settings.backoff,
                        self.settings.max_backoff,
                        failures,
                    );
                    tracing::warn!(relay = %self.name, error = %e, retry_in = ?pause, "relay pass failed; events stay in the outbox");
                    pause
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!(relay = %self.name, "relay stopped");
    }

    /// Publishes the outbox lag as gauges (and a warning when events wait for long).
    async fn report_lag(&self) {
        let Ok(lag) = self.outbox.lag().await else {
            return;
        };
        let age = lag
            .oldest
            .map(|t| (self.clock.now() - t).as_seconds_f64().max(0.0))
            .unwrap_or(0.0);
        metrics::gauge!("portside_outbox_unpublished").set(lag.unpublished as f64);
        metrics::gauge!("portside_outbox_oldest_age_seconds").set(age);
        if age > 60.0 {
            tracing::warn!(
                unpublished = lag.unpublished,
                oldest_age_s = age,
                "events wait in the outbox"
            );
        }
    }
}

/// Records how long a stage of a pass took (`portside_relay_stage_seconds{stage}`: where a
/// pass spends its time) and returns when the next one starts.
fn stage(name: &'static str, since: std::time::Instant) -> std::time::Instant {
    let now = std::time::Instant::now();
    metrics::histogram!("portside_relay_stage_seconds", "stage" => name)
        .record((now - since).as_secs_f64());
    now
}
