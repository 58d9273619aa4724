//! One event on its way to one endpoint: attempted on a retry schedule until the endpoint
//! answers 2xx, the schedule runs out, or the endpoint says it is gone (410). The request's
//! `webhook-id` is the event's id, the same on every attempt and every manual resend, so a
//! receiver drops duplicates by it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::events::DomainEvent;

use super::EndpointId;

/// Identity of a delivery.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct DeliveryId(pub Uuid);

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a delivery is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or in one).
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// The schedule ran out, or the endpoint answered 410.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// The pauses between attempts: the first attempt is at once, the n-th retry waits the n-th
/// pause (scaled by a jitter the caller draws, so that the retries of many deliveries that
/// failed together do not all come back at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    pub fn new(pauses: Vec<Duration>) -> Self {
        RetrySchedule(pauses)
    }

    /// The pause after the `failed`-th failed attempt (1-based), times `jitter` (0.9–1.1 in
    /// practice); `None` once the schedule is spent.
    pub fn after(&self, failed: u32, jitter: f64) -> Option<Duration> {
        let pause = self.0.get(usize::try_from(failed).ok()?.checked_sub(1)?)?;
        Some(pause.mul_f64(jitter.clamp(0.5, 1.5)))
    }

    /// Attempts in all: the first and one per pause.
    pub fn attempts(&self) -> usize {
        self.0.len() + 1
    }
}

impl Default for RetrySchedule {
    /// At once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h: about a day and a half.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        RetrySchedule(vec![
            Duration::from_secs(5),
            minutes(5),
            minutes(30),
            minutes(120),
            minutes(300),
            minutes(600),
            minutes(600),
        ])
    }
}

/// Longest part of a response body an attempt keeps (1 KiB).
pub const RESPONSE_KEPT: usize = 1024;

/// What one attempt got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// 1, 2, 3, ... per delivery.
    pub number: u32,
    pub at: OffsetDateTime,
    /// The HTTP status, when the endpoint answered.
    pub status_code: Option<u16>,
    pub latency: Duration,
    /// The start of the response body (at most [`RESPONSE_KEPT`] bytes, cut at a character).
    pub response: Option<String>,
    /// Why there was no answer (timeout, connection refused, an address refused).
    pub error: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        matches!(self.status_code, Some(200..=299))
    }

    /// The endpoint answered `410 Gone`: it wants nothing more.
    pub fn gone(&self) -> bool {
        self.status_code == Some(410)
    }
}

/// Cuts a response body to what an attempt keeps.
pub fn kept_response(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(RESPONSE_KEPT)]);
    let mut end = text.len().min(RESPONSE_KEPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// One event for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    /// The event's id, and the request's `webhook-id`.
    pub event_id: Uuid,
    pub event_type: String,
    /// The JSON body sent: `{"type", "timestamp", "data"}`.
    pub body: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When pending: when it is due.
    pub next_attempt_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl WebhookDelivery {
    /// A delivery due at once.
    pub fn new(
        id: DeliveryId,
        endpoint_id: EndpointId,
        event_id: Uuid,
        event_type: &str,
        body: String,
        now: OffsetDateTime,
    ) -> Self {
        WebhookDelivery {
            id,
            endpoint_id,
            event_id,
            event_type: event_type.to_owned(),
            body,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(now),
            created_at: now,
            updated_at: now,
        }
    }

    /// The request's `webhook-id`.
    pub fn message_id(&self) -> String {
        self.event_id.to_string()
    }

    /// Records an attempt's result: succeeded on a 2xx, failed on a 410 or once the schedule
    /// is spent, otherwise due again after the schedule's pause.
    pub fn record(&mut self, attempt: &Attempt, schedule: &RetrySchedule, jitter: f64) {
        self.attempts = self.attempts.max(attempt.number);
        self.updated_at = attempt.at;
        let pause = schedule.after(self.attempts, jitter);
        (self.status, self.next_attempt_at) = match pause {
            _ if attempt.succeeded() => (DeliveryStatus::Succeeded, None),
            _ if attempt.gone() => (DeliveryStatus::Failed, None),
            Some(p) => (
                DeliveryStatus::Pending,
                Some(attempt.at + time::Duration::try_from(p).unwrap_or(time::Duration::MAX)),
            ),
            None => (DeliveryStatus::Failed, None),
        };
    }
}

/// Why an endpoint was disabled.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// It answered `410 Gone`.
    Gone,
    /// Every attempt failed for longer than the setting allows.
    Failing,
}

impl DisabledReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisabledReason::Gone => "gone",
            DisabledReason::Failing => "failing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "gone" => Some(DisabledReason::Gone),
            "failing" => Some(DisabledReason::Failing),
            _ => None,
        }
    }
}

/// Whether an endpoint failing since `since` has failed long enough to be disabled.
pub fn failed_too_long(since: OffsetDateTime, now: OffsetDateTime, limit: Duration) -> bool {
    (now - since) >= time::Duration::try_from(limit).unwrap_or(time::Duration::MAX)
}

/// What happens to an endpoint that other systems should hear of.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WebhookEndpointEvent {
    /// `webhook_endpoint.disabled`: Portside stopped sending to it.
    Disabled {
        endpoint_id: Uuid,
        url: String,
        reason: DisabledReason,
    },
}

impl WebhookEndpointEvent {
    pub const DISABLED: &'static str = "webhook_endpoint.disabled";
    pub const TYPES: &'static [&'static str] = &[Self::DISABLED];
}

impl DomainEvent for WebhookEndpointEvent {
    const AGGREGATE: &'static str = "webhook_endpoint";

    fn event_type(&self) -> &'static str {
        match self {
            WebhookEndpointEvent::Disabled { .. } => Self::DISABLED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> WebhookDelivery {
        WebhookDelivery::new(
            DeliveryId(Uuid::from_u128(1)),
            EndpointId(Uuid::from_u128(2)),
            Uuid::from_u128(3),
            "payment.succeeded",
            "{}".into(),
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    fn attempt(number: u32, status: Option<u16>) -> Attempt {
        Attempt {
            number,
            at: OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(i64::from(number)),
            status_code: status,
            latency: Duration::from_millis(3),
            response: None,
            error: status.is_none().then(|| "connection refused".to_owned()),
        }
    }

    #[test]
    fn a_2xx_succeeds_and_anything_else_is_retried_on_the_schedule() {
        let schedule = RetrySchedule::new(vec![Duration::from_secs(5), Duration::from_secs(60)]);
        let mut d = delivery();
        d.record(&attempt(1, Some(500)), &schedule, 1.0);
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(
            d.next_attempt_at,
            Some(attempt(1, None).at + time::Duration::seconds(5))
        );
        d.record(&attempt(2, None), &schedule, 1.1);
        assert_eq!(
            d.next_attempt_at,
            Some(attempt(2, None).at + time::Duration::seconds(66))
        );
        d.record(&attempt(3, Some(204)), &schedule, 1.0);
        assert_eq!(
            (d.status, d.attempts, d.next_attempt_at),
            (DeliveryStatus::Succeeded, 3, None)
        );
    }

    #[test]
    fn the_schedule_spent_or_a_410_fails_the_delivery() {
        let schedule = RetrySchedule::new(vec![Duration::from_secs(5)]);
        let mut d = delivery();
        d.record(&attempt(1, Some(503)), &schedule, 1.0);
        d.record(&attempt(2, Some(503)), &schedule, 1.0);
        assert_eq!(
            (d.status, d.next_attempt_at),
            (DeliveryStatus::Failed, None)
        );
        let mut gone = delivery();
        gone.record(&attempt(1, Some(410)), &schedule, 1.0);
        assert_eq!(gone.status, DeliveryStatus::Failed);
    }

    #[test]
    fn the_default_schedule_spans_about_a_day_and_a_half() {
        let s = RetrySchedule::default();
        assert_eq!(s.attempts(), 8);
        let total: Duration = (1..8).filter_map(|n| s.after(n, 1.0)).sum();
        assert_eq!(
            total.as_secs(),
            5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000
        );
        assert_eq!(s.after(8, 1.0), None);
        assert_eq!(s.after(0, 1.0), None);
    }

    #[test]
    fn a_kept_response_is_cut_at_a_character() {
        let body = "é".repeat(1000);
        let kept = kept_response(body.as_bytes());
        assert!(kept.len() <= RESPONSE_KEPT && kept.chars().all(|c| c == 'é'));
        assert_eq!(kept_response(b"ok"), "ok");
    }

    #[test]
    fn an_endpoint_failing_past_the_limit_is_disabled() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let limit = Duration::from_secs(5 * 86_400);
        assert!(!failed_too_long(t, t + time::Duration::days(4), limit));
        assert!(failed_too_long(t, t + time::Duration::days(5), limit));
    }
}
