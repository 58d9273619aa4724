//! Calls to a provider's HTTP API with a timeout, retries of retryable failures (with
//! exponential backoff and full jitter, the same provider idempotency key on every attempt) and
//! a circuit breaker per provider. Counted in `portside_provider_calls_total{provider, op,
//! outcome}`; request headers (which carry secrets) are never logged.

use std::time::{Duration, Instant};

use portside_app::payments::{ProviderError, ProviderOutcome};
use portside_kernel::resilience::{CircuitBreaker, full_jitter};
use reqwest::StatusCode;
use serde_json::Value;

/// Timeout, retries and circuit breaker of one provider.
#[derive(Debug, Clone)]
pub struct Resilience {
    /// Limit of one HTTP call.
    pub timeout: Duration,
    /// Further attempts after a retryable failure.
    pub retries: u32,
    /// First pause between attempts (doubles, with jitter, up to 5 s).
    pub backoff: Duration,
    /// Failed calls in a row that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses calls.
    pub breaker_cool_down: Duration,
}

impl Default for Resilience {
    /// 10 s per call, 2 retries from 250 ms, the circuit opens after 5 failed calls for 30 s.
    fn default() -> Self {
        Resilience {
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(250),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(30),
        }
    }
}

/// A provider's answer: status and JSON body (`Null` when empty or not JSON).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// Maps an answer that is not a 2xx: a status in `definite` is the provider's refusal
    /// (`failure` reads it from the body); credentials and the unexpected leave the outcome
    /// unknown, so nothing is marked failed for our own misconfiguration.
    pub fn refusal(
        &self,
        provider: &str,
        op: &str,
        definite: &[u16],
        failure: impl FnOnce(&Value) -> portside_domain::Failure,
    ) -> Result<ProviderOutcome, ProviderError> {
        match self.status.as_u16() {
            s if definite.contains(&s) => Ok(ProviderOutcome::Failed(failure(&self.body))),
            401 | 403 => Err(ProviderError::Unavailable(format!(
                "{provider} refused our credentials ({}) on {op}",
                self.status
            ))),
            _ => Err(ProviderError::Unavailable(format!(
                "{provider} answered {} on {op}",
                self.status
            ))),
        }
    }
}

/// The HTTP client of one provider.
pub(crate) struct Caller {
    pub http: reqwest::Client,
    provider: &'static str,
    settings: Resilience,
    breaker: CircuitBreaker,
}

impl Caller {
    pub fn new(provider: &'static str, settings: Resilience) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| e.to_string())?;
        let breaker = CircuitBreaker::new(
            format!("provider:{provider}"),
            settings.breaker_threshold,
            settings.breaker_cool_down,
        );
        Ok(Caller {
            http,
            provider,
            settings,
            breaker,
        })
    }

    /// `Err(retry_after)` while the circuit is open.
    pub fn availability(&self) -> Result<(), Duration> {
        self.breaker.retry_after().map_or(Ok(()), Err)
    }

    /// Sends the request `build` makes (again for each attempt). An answer the provider gives
    /// deliberately (2xx, 4xx but 409 and 429) returns; timeouts, connection failures, 409, 429
    /// and 5xx are retried unless the provider says not to (`Stripe-Should-Retry: false`), then
    /// reported as an unknown outcome, or as `NotSent` when no attempt can have been acted on:
    /// each failed to connect or was rate limited (429: Stripe's rate limiter answers before
    /// its idempotency layer, so nothing was done; PayPal's is read the same way), or the
    /// circuit was open. A 5xx never counts as not sent: Stripe documents a server error's result as
    /// indeterminate.
    pub async fn send(
        &self,
        op: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer, ProviderError> {
        if let Err(wait) = self.breaker.acquire() {
            self.count(op, "rejected");
            return Err(ProviderError::NotSent(format!(
                "{} failed repeatedly; calls resume in {} s",
                self.provider,
                wait.as_secs().max(1)
            )));
        }
        let mut failures = 0;
        // Whether any attempt may have reached the provider and been acted on.
        let mut maybe_sent = false;
        loop {
            let started = Instant::now();
            let error = match build().send().await {
                Ok(response) => {
                    let status = response.status();
                    let should_retry = response
                        .headers()
                        .get("stripe-should-retry")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v == "true");
                    let bytes = response.bytes().await.unwrap_or_default();
                    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    metrics::histogram!("portside_provider_call_seconds", "provider" => self.provider, "op" => op)
                        .record(started.elapsed().as_secs_f64());
                    let retryable =
                        should_retry.unwrap_or(matches!(status.as_u16(), 409 | 429 | 500..=599));
                    if !retryable {
                        self.breaker.success();
                        self.count(op, "answered");
                        return Ok(Answer { status, body });
                    }
                    maybe_sent |= status != StatusCode::TOO_MANY_REQUESTS;
                    ProviderError::Unavailable(format!("{} answered {status}", self.provider))
                }
                Err(e) if e.is_connect() => ProviderError::NotSent(format!(
                    "cannot connect to {}: {}",
                    self.provider,
                    e.without_url()
                )),
                Err(e) if e.is_timeout() => {
                    maybe_sent = true;
                    ProviderError::Timeout
                }
                Err(e) => {
                    maybe_sent = true;
                    ProviderError::Unavailable(format!(
                        "cannot reach {}: {}",
                        self.provider,
                        e.without_url()
                    ))
                }
            };
            failures += 1;
            if failures > self.settings.retries {
                self.breaker.failure();
                self.count(op, "failed");
                return Err(match error {
                    ProviderError::Unavailable(why) | ProviderError::NotSent(why)
                        if !maybe_sent =>
                    {
                        ProviderError::NotSent(why)
                    }
                    ProviderError::NotSent(why) => ProviderError::Unavailable(why),
                    other => other,
                });
            }
            self.count(op, "retried");
            let pause = full_jitter(self.settings.backoff, Duration::from_secs(5), failures - 1);
            tracing::warn!(provider = self.provider, op, error = %error, retry_in = ?pause, "provider call failed; retrying with the same idempotency key");
            tokio::time::sleep(pause).await;
        }
    }

    fn count(&self, op: &'static str, outcome: &'static str) {
        metrics::counter!("portside_provider_calls_total", "provider" => self.provider, "op" => op, "outcome" => outcome)
            .increment(1);
    }
}

/// The outcome `classify` reads from a provider's object (a charge, a capture, a refund). A
/// provider replays the first answer to a repeated idempotency key, so an object that is not
/// final yet is read once more by `read` (given its id); `refuse` maps an error answer to that
/// read. Still not final: pending.
pub(crate) async fn final_or_again<Fut>(
    object: &Value,
    classify: fn(&Value) -> Option<ProviderOutcome>,
    read: impl FnOnce(String) -> Fut,
    refuse: impl FnOnce(&Answer) -> Result<ProviderOutcome, ProviderError>,
) -> Result<ProviderOutcome, ProviderError>
where
    Fut: std::future::Future<Output = Result<Answer, ProviderError>>,
{
    if let Some(outcome) = classify(object) {
        return Ok(outcome);
    }
    let Some(id) = object["id"].as_str() else {
        return Ok(ProviderOutcome::Pending);
    };
    let a = read(id.to_owned()).await.map_err(already_sent)?;
    if !a.status.is_success() {
        return refuse(&a);
    }
    Ok(classify(&a.body).unwrap_or(ProviderOutcome::Pending))
}

/// An error of a call made after the provider already took the charge or refund (a capture,
/// a read of its state): whatever it says of itself, the outcome is unknown, never "not sent",
/// so the payment does not move on to another provider.
pub(crate) fn already_sent(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::NotSent(why) => ProviderError::Unavailable(why),
        other => other,
    }
}
