//! The HTTP driving adapter: the axum router of Portside's REST API, its problem+json errors,
//! its middleware (request ids, tracing, CORS, body limit, panic recovery) and its OpenAPI
//! document with a UI served from the binary.

mod dto;
mod health;
mod json;
mod openapi;
mod payments;
mod problem;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use portside_app::payments::Payments;
use portside_app::ports::Probe;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use json::fingerprint;
pub use openapi::ApiDoc;
pub use problem::{FieldError, Problem};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The payments use cases.
    pub payments: Arc<Payments>,
    /// Dependencies `/health/ready` checks.
    pub probes: Arc<Vec<Arc<dyn Probe>>>,
}

impl FromRef<ApiState> for Arc<Payments> {
    fn from_ref(s: &ApiState) -> Self {
        s.payments.clone()
    }
}

impl FromRef<ApiState> for Arc<Vec<Arc<dyn Probe>>> {
    fn from_ref(s: &ApiState) -> Self {
        s.probes.clone()
    }
}

/// The whole HTTP API with its middleware.
pub fn router(state: ApiState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route(
            "/api/v1/payments",
            post(payments::create_payment).get(payments::list_payments),
        )
        .route("/api/v1/payments/{id}", get(payments::get_payment))
        .route("/api/v1/payments/{id}/refunds", post(payments::create_refund))
        // Seed-compatible spelling of the same operation.
        .route("/api/v1/payments/{id}/refund", post(payments::create_refund))
        .route(
            "/api/v1/payments/{id}/transactions",
            get(payments::list_transactions),
        )
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(request_id.clone()))
                .layer(
                    CorsLayer::new()
                        .allow_origin(Any)
                        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
                        .allow_headers(Any)
                        .expose_headers([
                            request_id,
                            HeaderName::from_static(payments::REPLAYED),
                            HeaderName::from_static("location"),
                            HeaderName::from_static("retry-after"),
                        ]),
                )
                .layer(CatchPanicLayer::custom(|_| {
                    problem::internal_error().into_response()
                }))
                .layer(DefaultBodyLimit::max(json::BODY_LIMIT)),
        )
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
