//! The dispatcher: sends due deliveries, signed, and records each attempt. Every endpoint has
//! its own bound on requests in flight, and every request its timeout, so a slow or dead
//! endpoint holds up only its own deliveries. A delivery is leased while its request runs; if
//! the process dies before the attempt is recorded, the lease runs out and it is sent again
//! with the same `webhook-id` (at least once).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portside_domain::webhook::WebhookEndpoint;
use portside_domain::webhook::delivery::{
    Attempt, DeliveryStatus, DisabledReason, RetrySchedule, WebhookDelivery, failed_too_long,
};
use portside_domain::webhook::{EndpointId, WebhookMessage};
use portside_kernel::{Clock, StoreError};
use rand::Rng;
use tokio::sync::Notify;
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
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings {
            schedule: RetrySchedule::default(),
            concurrency: 4,
            timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * 86_400),
            poll: Duration::from_secs(1),
        }
    }
}

/// How often the pending gauges are read.
const GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Sends deliveries.
pub struct WebhookDispatcher {
    store: Arc<dyn WebhookDeliveryStore>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
    settings: DispatchSettings,
    in_flight: Mutex<HashMap<EndpointId, u32>>,
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
            in_flight: Mutex::new(HashMap::new()),
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

    /// Claims what is due, within each endpoint's free slots, and starts its requests in
    /// `running`; how many it started.
    pub async fn start_due(
        self: &Arc<Self>,
        running: &mut JoinSet<()>,
    ) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let lease = time::Duration::try_from(self.settings.timeout * 2 + Duration::from_secs(30))
            .unwrap_or(time::Duration::MINUTE);
        let mut started = 0;
        for endpoint in self.store.due_endpoints(now).await? {
            let busy = self.in_flight().get(&endpoint.id).copied().unwrap_or(0);
            let free = self.settings.concurrency.saturating_sub(busy);
            if free == 0 {
                continue;
            }
            let claimed = self
                .store
                .claim(endpoint.id, now, now + lease, free)
                .await?;
            *self.in_flight().entry(endpoint.id).or_default() += claimed.len() as u32;
            let endpoint = Arc::new(endpoint);
            for delivery in claimed {
                started += 1;
                let me = self.clone();
                let endpoint = endpoint.clone();
                running.spawn(async move {
                    me.attempt(&endpoint, delivery).await;
                    let mut in_flight = me.in_flight();
                    if let Some(n) = in_flight.get_mut(&endpoint.id) {
                        *n = n.saturating_sub(1);
                    }
                });
            }
        }
        Ok(started)
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, u32>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One signed request and its record; the endpoint disabled if it is gone or has failed
    /// for too long.
    async fn attempt(&self, endpoint: &WebhookEndpoint, mut delivery: WebhookDelivery) {
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
        if let Err(e) = self.store.record_attempt(&delivery, &attempt).await {
            // The lease runs out and the delivery is sent again.
            tracing::warn!(delivery = %delivery.id, error = %e, "cannot record a webhook attempt");
            return;
        }
        if delivery.status != DeliveryStatus::Pending {
            metrics::counter!("portside_webhook_deliveries_total", "outcome" => outcome)
                .increment(1);
        }
        if let Err(e) = self.endpoint_health(endpoint, &attempt).await {
            tracing::warn!(endpoint = %endpoint.id, error = %e, "cannot record an endpoint's health");
        }
    }

    async fn endpoint_health(
        &self,
        endpoint: &WebhookEndpoint,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
        if attempt.succeeded() {
            return self.store.endpoint_succeeded(endpoint.id).await;
        }
        let reason = if attempt.gone() {
            Some(DisabledReason::Gone)
        } else {
            let since = self.store.endpoint_failed(endpoint.id, attempt.at).await?;
            since
                .filter(|s| failed_too_long(*s, attempt.at, self.settings.disable_after))
                .map(|_| DisabledReason::Failing)
        };
        if let Some(reason) = reason
            && self
                .store
                .disable_endpoint(endpoint.id, reason, attempt.at)
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
