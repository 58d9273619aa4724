//! Request limits on every route: a rate per client IP, a rate per authenticated user, a
//! stricter rate per IP on the credential endpoints (login, registration, refresh), and a time
//! limit per request. Refusals are problem+json: 429 `rate_limited` with `Retry-After`, 503
//! `request_timeout`. Requests that change state run to completion whatever the client does.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portside_app::users::Users;
use portside_domain::Actor;

use crate::problem::Problem;

/// Rates in requests per second (credential endpoints: per minute); 0 turns a limit off.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Sustained requests per second from one client IP.
    pub per_ip_per_second: u32,
    /// Sustained requests per second by one user.
    pub per_user_per_second: u32,
    /// Login, registration and refresh attempts per minute from one client IP.
    pub credentials_per_minute: u32,
    /// Take the client IP from the first `X-Forwarded-For` address (only behind a proxy that
    /// sets it).
    pub trust_forwarded_for: bool,
    /// Longest a request may run.
    pub request_timeout: Duration,
}

/// The limiters of one process.
pub struct Limits {
    settings: LimitSettings,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_user: Option<DefaultKeyedRateLimiter<String>>,
    credentials: Option<DefaultKeyedRateLimiter<IpAddr>>,
    users: Arc<Users>,
}

/// A rate with a burst of twice the rate (at least 1).
fn quota(per: u32, period: Duration) -> Option<Quota> {
    let rate = NonZeroU32::new(per)?;
    let burst = NonZeroU32::new(per.saturating_mul(2)).unwrap_or(rate);
    let quota = if period == Duration::from_secs(60) {
        Quota::per_minute(rate)
    } else {
        Quota::per_second(rate)
    };
    Some(quota.allow_burst(burst))
}

impl Limits {
    /// Limiters for the settings; `users` tells who a bearer token belongs to.
    pub fn new(settings: LimitSettings, users: Arc<Users>) -> Self {
        let second = Duration::from_secs(1);
        Limits {
            settings,
            per_ip: quota(settings.per_ip_per_second, second).map(RateLimiter::keyed),
            per_user: quota(settings.per_user_per_second, second).map(RateLimiter::keyed),
            credentials: quota(settings.credentials_per_minute, Duration::from_secs(60))
                .map(RateLimiter::keyed),
            users,
        }
    }

    /// Forgets clients that have been quiet (called now and then, so memory stays bounded).
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
        if let Some(l) = &self.per_user {
            l.retain_recent();
        }
        if let Some(l) = &self.credentials {
            l.retain_recent();
        }
    }

    fn client_ip(&self, request: &Request) -> Option<IpAddr> {
        if self.settings.trust_forwarded_for
            && let Some(ip) = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    }

    /// The actor a valid bearer token names (an invalid one is the handler's to refuse).
    fn actor(&self, request: &Request) -> Option<Actor> {
        let text = request
            .headers()
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, token) = text.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.users.authenticate(token).ok()
    }

    /// `Err(retry_after)` when a limit is reached. A token verified for the per-user limit is
    /// left in the request's extensions, so that the handler does not verify it again.
    fn check(&self, request: &mut Request) -> Result<(), (Duration, &'static str)> {
        // Only a refusal needs the time; reading the clock costs a CPUID instruction, which is
        // slow on virtual machines (measured in docs/BENCHMARKS.md, "What the profile showed").
        let wait = |e: governor::NotUntil<_>| e.wait_time_from(DefaultClock::default().now());
        let ip = self.client_ip(request);
        if let (Some(l), Some(ip)) = (&self.per_ip, ip) {
            l.check_key(&ip).map_err(|e| (wait(e), "client IP"))?;
        }
        let path = request.uri().path();
        let credentials = request.method() == axum::http::Method::POST
            && matches!(
                path,
                "/api/v1/auth/login" | "/api/v1/auth/refresh" | "/api/v1/users"
            );
        if credentials && let (Some(l), Some(ip)) = (&self.credentials, ip) {
            l.check_key(&ip)
                .map_err(|e| (wait(e), "sign-in attempts"))?;
        }
        if let Some(l) = &self.per_user
            && let Some(actor) = self.actor(request)
        {
            l.check_key(&actor.user_id.to_string())
                .map_err(|e| (wait(e), "user"))?;
            request.extensions_mut().insert(VerifiedActor(actor));
        }
        Ok(())
    }
}

/// The actor of a bearer token the limits middleware has already verified.
#[derive(Clone)]
pub(crate) struct VerifiedActor(pub Actor);

/// The limits middleware.
pub async fn enforce(
    State(limits): State<Option<Arc<Limits>>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(limits) = limits else {
        return next.run(request).await;
    };
    if let Err((wait, which)) = limits.check(&mut request) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u32;
        metrics::counter!("portside_http_rate_limited_total", "limit" => which).increment(1);
        return Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests for this {which}; retry in {seconds} s"),
        )
        .retry_after(seconds)
        .into_response();
    }
    match tokio::time::timeout(limits.settings.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit = ?limits.settings.request_timeout, "request timed out");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                "the request took longer than the server allows; retry later",
            )
            .retry_after(1)
            .into_response()
        }
    }
}

/// Runs a request that may change state to its end even when the client hangs up or the
/// time limit answers first. Dropping a handler mid-transaction would leave a store write
/// half done on its connection; finished, it commits or rolls back cleanly, and a client
/// that retries with its idempotency key gets the stored outcome. Reads are left cancellable.
pub async fn run_to_completion(request: Request, next: Next) -> Response {
    use tracing::Instrument;
    if request.method().is_safe() {
        return next.run(request).await;
    }
    let task = tokio::spawn(next.run(request).instrument(tracing::Span::current()));
    match task.await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            crate::problem::internal_error().into_response()
        }
    }
}
