//! `POST /api/v1/webhooks/{provider}`: a provider's notice. No bearer token: the provider's
//! signature is verified on the raw body before anything parses it.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use portside_app::payments::notices::Notices;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::{Problem, ProblemBody};

/// The answer to a provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// Always true: the notice was verified and processed (or was a replay).
    pub received: bool,
    /// `applied`, `no_change`, `unknown_payment`, `ignored` or `duplicate`.
    pub outcome: &'static str,
}

/// Receives a provider's signed notice (Stripe: `Stripe-Signature`).
#[utoipa::path(post, path = "/api/v1/webhooks/{provider}", tag = "webhooks",
    params(("provider" = String, Path, description = "stripe")),
    request_body(content = String, description = "The provider's event, exactly as sent", content_type = "application/json"),
    responses((status = 200, body = Received),
        (status = 400, description = "Bad signature, stale timestamp or unreadable payload", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No webhook for this provider", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn receive(
    State(webhooks): State<Arc<Notices>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Received>, Problem> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let outcome = webhooks.receive(&provider, &headers, &body).await?;
    Ok(Json(Received {
        received: true,
        outcome: outcome.as_str(),
    }))
}
