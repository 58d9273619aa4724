//! Policies for calls to remote dependencies (brokers, search clusters, payment providers):
//! exponential backoff with full jitter, and a circuit breaker that stops calling a dependency
//! that keeps failing, so callers get an immediate "unavailable" instead of waiting on timeouts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Exponential backoff with full jitter: a pause uniform in `[0, min(max, base · 2^failures)]`,
/// at least 10 ms, so that many clients retrying together spread out.
pub fn full_jitter(base: Duration, max: Duration, failures: u32) -> Duration {
    let ceiling = base.saturating_mul(1u32 << failures.min(16)).min(max);
    ceiling
        .mul_f64(rand::random::<f64>())
        .max(Duration::from_millis(10))
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// The cool-down ended: one trial call goes through; its outcome closes or reopens.
    HalfOpen,
}

impl BreakerState {
    /// As a gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    open_until: Instant,
    trial_in_flight: bool,
}

/// A circuit breaker: `threshold` failures in a row open it for `cool_down`; then one trial call
/// decides. Its state is the gauge `portside_circuit_state{dependency}` and each change is logged.
#[derive(Debug)]
pub struct CircuitBreaker {
    dependency: String,
    threshold: u32,
    cool_down: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker for one dependency (its name labels logs and metrics).
    pub fn new(dependency: impl Into<String>, threshold: u32, cool_down: Duration) -> Self {
        let breaker = CircuitBreaker {
            dependency: dependency.into(),
            threshold: threshold.max(1),
            cool_down,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                open_until: Instant::now(),
                trial_in_flight: false,
            }),
        };
        breaker.publish(BreakerState::Closed);
        breaker
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// While open (cool-down not over): how long until a trial call may go. Changes nothing.
    pub fn retry_after(&self) -> Option<Duration> {
        let inner = self.lock();
        (inner.state == BreakerState::Open)
            .then(|| inner.open_until.saturating_duration_since(Instant::now()))
            .filter(|wait| !wait.is_zero())
    }

    /// Asks to make a call: `Err(retry_after)` while the breaker is open (or a half-open trial
    /// is already under way).
    pub fn acquire(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open if now >= inner.open_until => {
                inner.state = BreakerState::HalfOpen;
                inner.trial_in_flight = true;
                drop(inner);
                self.publish(BreakerState::HalfOpen);
                tracing::info!(dependency = %self.dependency, "circuit half-open: trying one call");
                Ok(())
            }
            BreakerState::Open => Err(inner.open_until.saturating_duration_since(now)),
            BreakerState::HalfOpen if !inner.trial_in_flight => {
                inner.trial_in_flight = true;
                Ok(())
            }
            BreakerState::HalfOpen => Err(Duration::from_secs(1)),
        }
    }

    /// The call succeeded (the dependency answered, even if it refused the request).
    pub fn success(&self) {
        let mut inner = self.lock();
        inner.failures = 0;
        inner.trial_in_flight = false;
        if inner.state != BreakerState::Closed {
            inner.state = BreakerState::Closed;
            drop(inner);
            self.publish(BreakerState::Closed);
            tracing::info!(dependency = %self.dependency, "circuit closed: the dependency answers again");
        }
    }

    /// The call failed (no answer, timeout, or the dependency says it is overloaded).
    pub fn failure(&self) {
        let mut inner = self.lock();
        inner.failures = inner.failures.saturating_add(1);
        inner.trial_in_flight = false;
        let trip = inner.state == BreakerState::HalfOpen
            || (inner.state == BreakerState::Closed && inner.failures >= self.threshold);
        if trip {
            inner.state = BreakerState::Open;
            inner.open_until = Instant::now() + self.cool_down;
            let failures = inner.failures;
            drop(inner);
            self.publish(BreakerState::Open);
            tracing::warn!(dependency = %self.dependency, failures, cool_down = ?self.cool_down, "circuit open: calls are refused until the cool-down ends");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!("portside_circuit_state", "dependency" => self.dependency.clone())
            .set(state.gauge());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_ceiling() {
        for failures in 0..40 {
            let d = full_jitter(Duration::from_millis(100), Duration::from_secs(2), failures);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_secs(2));
        }
        let first = full_jitter(Duration::from_millis(100), Duration::from_secs(30), 0);
        assert!(first <= Duration::from_millis(100));
    }

    #[test]
    fn a_breaker_opens_after_the_threshold_and_one_trial_closes_it() {
        let b = CircuitBreaker::new("test", 3, Duration::from_millis(50));
        for _ in 0..2 {
            assert!(b.acquire().is_ok());
            b.failure();
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "two failures are not enough"
        );
        b.success();
        for _ in 0..3 {
            assert!(b.acquire().is_ok());
            b.failure();
        }
        assert_eq!(b.state(), BreakerState::Open, "a success resets the count");
        assert!(b.retry_after().is_some());
        let wait = b.acquire().unwrap_err();
        assert!(wait <= Duration::from_millis(50) && wait > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.acquire().is_ok(), "after the cool-down one trial goes");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.acquire().is_err(), "only one trial at a time");
        b.failure();
        assert_eq!(b.state(), BreakerState::Open, "a failed trial reopens");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.acquire().is_ok());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.acquire().is_ok());
    }
}
