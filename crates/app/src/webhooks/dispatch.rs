//! The dispatcher: sends due deliveries, signed, and records each attempt. Each endpoint's due
//! deliveries are taken in batches, one batch per endpoint at a time, sent with at most
//! `concurrency` requests in flight and each within its timeout, so a slow or dead endpoint
//! holds up only its own deliveries; a batch's attempts are recorded in one transaction. A
//! batch is leased for as long as it may take; if the process dies before its attempts are
//! recorded, the lease runs out and its deliveries are sent again with the same `webhook-id`
//! (at least once).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portside_domain::webhook::WebhookEndpoint;
use portside_domain::webhook::delivery::{
    Attempt, DeliveryStatus, DisabledReason, RetrySchedule, WebhookDelivery, failed_too_long,
};
use portside_domain::webhook::{EndpointId, WebhookMessage};
use portside_kernel::{Clock, StoreError};
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{WebhookDeliveryStore, WebhookRequest, WebhookSender};

/// Tunables of delivery.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub schedule: RetrySchedule,
    /// Requests in flight per endpoint (per process).
    pub concurrency: u32,
    /// One request's limit.
    pub timeout: Duration,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after: Duration,
    /// How often due deliveries are looked for when nothing wakes the dispatcher.
    pub poll: Duration,
    /// Deliveries an endpoint's batch takes at most.
    pub batch: u32,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings {
            schedule: RetrySchedule::default(),
            concurrency: 4,
            timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * 86_400),
            poll: Duration::from_secs(1),
            batch: 64,
        }
    }
}

/// What a batch's lease allows, beyond its requests, for recording their attempts. Should the
/// store take longer, the batch may be sent again (at least once, never lost).
const RECORDING: Duration = Duration::from_secs(5);

/// How often the pending gauges are read.
const GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Sends deliveries.
pub struct WebhookDispatcher {
    store: Arc<dyn WebhookDeliveryStore>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
    settings: DispatchSettings,
    /// The endpoints whose batch is being sent.
    busy: Mutex<HashSet<EndpointId>>,
    wake: Arc<Notify>,
}

impl WebhookDispatcher {
    pub fn new(
        store: Arc<dyn WebhookDeliveryStore>,
        sender: Arc<dyn WebhookSender>,
        clock: Arc<dyn Clock>,
        settings: DispatchSettings,
        wake: Arc<Notify>,
    ) -> Self {
        WebhookDispatcher {
            store,
            sender,
            clock,
            settings,
            busy: Mutex::new(HashSet::new()),
            wake,
        }
    }

    /// Sends until `stop`, then waits (at most one request timeout) for the requests in flight.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut running = JoinSet::new();
        let mut gauges = Instant::now() - GAUGES_EVERY;
        let mut reported = HashSet::new();
        loop {
            while running.try_join_next().is_some() {}
            match self.start_due(&mut running).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "webhook dispatch: cannot read due deliveries")
                }
            }
            if gauges.elapsed() >= GAUGES_EVERY {
                gauges = Instant::now();
                self.report_pending(&mut reported).await;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        let _ = tokio::time::timeout(self.settings.timeout, async {
            while running.join_next().await.is_some() {}
        })
        .await;
    }

    /// Claims a batch of what is due for each endpoint without one in flight, and starts
    /// sending each batch in `running`; how many deliveries it started.
    pub async fn start_due(
        self: &Arc<Self>,
        running: &mut JoinSet<()>,
    ) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let s = &self.settings;
        let batch = s.batch.max(1);
        // Long enough for the batch's requests one after another in `concurrency` lanes, and
        // for recording them.
        let rounds = batch.div_ceil(s.concurrency.max(1));
        let lease = time::Duration::try_from(s.timeout * rounds + RECORDING)
            .unwrap_or(time::Duration::HOUR);
        let mut started = 0;
        for endpoint in self.store.due_endpoints(now).await? {
            if !self.busy().insert(endpoint.id) {
                continue;
            }
            let claimed = self.store.claim(endpoint.id, now, now + lease, batch).await;
            let claimed = match claimed {
                Ok(c) if !c.is_empty() => c,
                Ok(_) => {
                    self.busy().remove(&endpoint.id);
                    continue;
                }
                Err(e) => {
                    self.busy().remove(&endpoint.id);
                    return Err(e);
                }
            };
            started += claimed.len();
            let me = self.clone();
            running.spawn(async move {
                let id = endpoint.id;
                me.clone().send_batch(endpoint, claimed).await;
                me.busy().remove(&id);
            });
        }
        Ok(started)
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, HashSet<EndpointId>> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One endpoint's batch: its requests at most `concurrency` at a time, then every attempt
    /// recorded in one transaction, then the endpoint's health.
    async fn send_batch(
        self: Arc<Self>,
        endpoint: WebhookEndpoint,
        deliveries: Vec<WebhookDelivery>,
    ) {
        let endpoint = Arc::new(endpoint);
        let lanes = Arc::new(Semaphore::new(self.settings.concurrency.max(1) as usize));
        let mut requests = JoinSet::new();
        for delivery in deliveries {
            let (me, endpoint, lanes) = (self.clone(), endpoint.clone(), lanes.clone());
            requests.spawn(async move {
                let _lane = lanes.acquire_owned().await;
                me.attempt(&endpoint, delivery).await
            });
        }
        let mut done = Vec::new();
        while let Some(finished) = requests.join_next().await {
            if let Ok(attempted) = finished {
                done.push(attempted);
            }
        }
        if let Err(e) = self.store.record_attempts(&done).await {
            // The lease runs out and the deliveries are sent again.
            tracing::warn!(endpoint = %endpoint.id, error = %e, "cannot record webhook attempts");
            return;
        }
        for (delivery, _) in &done {
            let outcome = match delivery.status {
                DeliveryStatus::Succeeded => "succeeded",
                DeliveryStatus::Failed => "failed",
                DeliveryStatus::Pending => continue,
            };
            metrics::counter!("portside_webhook_deliveries_total", "outcome" => outcome)
                .increment(1);
        }
        let attempts: Vec<&Attempt> = done.iter().map(|(_, a)| a).collect();
        if let Err(e) = self.endpoint_health(&endpoint, &attempts).await {
            tracing::warn!(endpoint = %endpoint.id, error = %e, "cannot record an endpoint's health");
        }
    }

    /// One signed request; the delivery as it stands after it, with the attempt.
    async fn attempt(
        &self,
        endpoint: &WebhookEndpoint,
        mut delivery: WebhookDelivery,
    ) -> (WebhookDelivery, Attempt) {
        let now = self.clock.now();
        let id = delivery.message_id();
        let timestamp = now.unix_timestamp();
        let signature = WebhookMessage {
            id: &id,
            timestamp,
            body: delivery.body.as_bytes(),
        }
        .signature(&endpoint.signing_secrets(now));
        let started = Instant::now();
        let response = self
            .sender
            .send(
                WebhookRequest {
                    url: &endpoint.url,
                    id: &id,
                    timestamp,
                    signature: &signature,
                    body: &delivery.body,
                },
                self.settings.timeout,
            )
            .await;
        let attempt = Attempt {
            number: delivery.attempts + 1,
            at: now,
            status_code: response.status_code,
            latency: started.elapsed(),
            response: response.body,
            error: response.error,
        };
        let jitter = rand::rng().random_range(0.9..1.1);
        delivery.record(&attempt, &self.settings.schedule, jitter);
        let outcome = match delivery.status {
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Pending => "retrying",
            DeliveryStatus::Failed => "failed",
        };
        metrics::counter!("portside_webhook_attempts_total", "outcome" => outcome).increment(1);
        metrics::histogram!("portside_webhook_attempt_seconds")
            .record(attempt.latency.as_secs_f64());
        (delivery, attempt)
    }

    /// A batch's lesson for its endpoint: a 410 disables it; a success means it answers; a
    /// batch that failed throughout extends its failing, and disables it once that has lasted
    /// `disable_after`.
    async fn endpoint_health(
        &self,
        endpoint: &WebhookEndpoint,
        attempts: &[&Attempt],
    ) -> Result<(), StoreError> {
        let Some(first) = attempts.iter().map(|a| a.at).min() else {
            return Ok(());
        };
        let reason = if attempts.iter().any(|a| a.gone()) {
            Some(DisabledReason::Gone)
        } else if attempts.iter().any(|a| a.succeeded()) {
            if endpoint.failing_since.is_some() {
                self.store.endpoint_succeeded(endpoint.id).await?;
            }
            None
        } else {
            let now = self.clock.now();
            let since = self.store.endpoint_failed(endpoint.id, first).await?;
            since
                .filter(|s| failed_too_long(*s, now, self.settings.disable_after))
                .map(|_| DisabledReason::Failing)
        };
        if let Some(reason) = reason
            && self
                .store
                .disable_endpoint(endpoint.id, reason, self.clock.now())
                .await?
        {
            metrics::counter!("portside_webhook_endpoints_disabled_total", "reason" => reason.as_str())
                .increment(1);
            tracing::warn!(endpoint = %endpoint.id, reason = reason.as_str(), "webhook endpoint disabled");
        }
        Ok(())
    }

    /// `portside_webhook_pending{endpoint}` and `portside_webhook_oldest_pending_seconds{endpoint}`;
    /// an endpoint `reported` before with nothing pending now goes back to zero.
    async fn report_pending(&self, reported: &mut HashSet<String>) {
        match self.store.pending().await {
            Ok(figures) => {
                let now = self.clock.now();
                let current: HashSet<String> =
                    figures.iter().map(|f| f.endpoint.to_string()).collect();
                for gone in reported.difference(&current) {
                    metrics::gauge!("portside_webhook_pending", "endpoint" => gone.clone())
                        .set(0.0);
                    metrics::gauge!("portside_webhook_oldest_pending_seconds", "endpoint" => gone.clone())
                        .set(0.0);
                }
                *reported = current;
                for f in figures {
                    let endpoint = f.endpoint.to_string();
                    metrics::gauge!("portside_webhook_pending", "endpoint" => endpoint.clone())
                        .set(f.pending as f64);
                    metrics::gauge!("portside_webhook_oldest_pending_seconds", "endpoint" => endpoint)
                        .set((now - f.oldest).as_seconds_f64().max(0.0));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read pending webhook deliveries"),
        }
    }
}
