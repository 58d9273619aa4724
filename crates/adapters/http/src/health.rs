//! Liveness (the process answers) and readiness (its dependencies answer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portside_kernel::Probe;
use serde::Serialize;
use utoipa::ToSchema;

/// A health report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (live), `ready`, `degraded` (serving, but a dependency it can do without for a
    /// while, such as the broker or the cache, is not answering) or `unavailable`.
    pub status: &'static str,
    /// Per dependency: `ok` or what is wrong.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, String>,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health {
        status: "ok",
        checks: BTreeMap::new(),
    })
}

/// Every dependency answers within a second: 200 `ready`. An essential one (the store) does
/// not: 503 `unavailable`, take this process out of rotation. Only others (broker, cache) do
/// not: 200 `degraded`, since requests still succeed; the report names what is missing.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(probes): State<Arc<Vec<Arc<dyn Probe>>>>) -> (StatusCode, Json<Health>) {
    let mut checks = BTreeMap::new();
    let (mut essential_down, mut other_down) = (false, false);
    for probe in probes.iter() {
        let result = tokio::time::timeout(Duration::from_secs(1), probe.check()).await;
        let line = match result {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => e,
            Err(_) => "no answer within 1 s".to_owned(),
        };
        if line != "ok" {
            if probe.essential() {
                essential_down = true;
            } else {
                other_down = true;
            }
        }
        checks.insert(probe.name(), line);
    }
    let (status, word) = match (essential_down, other_down) {
        (true, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (false, true) => (StatusCode::OK, "degraded"),
        (false, false) => (StatusCode::OK, "ready"),
    };
    (
        status,
        Json(Health {
            status: word,
            checks,
        }),
    )
}
