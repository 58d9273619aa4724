//! Liveness (the process answers) and readiness (its dependencies answer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portside_app::ports::Probe;
use serde::Serialize;
use utoipa::ToSchema;

/// A health report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
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

/// Every dependency answers within a second.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(probes): State<Arc<Vec<Arc<dyn Probe>>>>) -> (StatusCode, Json<Health>) {
    let mut checks = BTreeMap::new();
    let mut ok = true;
    for probe in probes.iter() {
        let result = tokio::time::timeout(Duration::from_secs(1), probe.check()).await;
        let line = match result {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => {
                ok = false;
                e
            }
            Err(_) => {
                ok = false;
                "no answer within 1 s".to_owned()
            }
        };
        checks.insert(probe.name(), line);
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if ok { "ready" } else { "unavailable" };
    (
        status,
        Json(Health {
            status: word,
            checks,
        }),
    )
}
