//! The HTTP driving adapter: the axum router of Portside's REST API (payments, users and
//! sessions, messages, memberships, the catalog, orders, the ledger, wallets, webhook endpoints), bearer-token authentication, problem+json errors,
//! its middleware (request ids, tracing, CORS, body limit, panic recovery) and its OpenAPI
//! document with a UI served from the binary.

mod auth;
mod catalog;
mod dead_letters;
mod health;
mod history;
mod idempotency;
mod if_match;
mod json;
mod ledger;
mod limits;
mod memberships;
mod messages;
mod observe;
mod openapi;
mod orders;
mod page;
mod payments;
mod prefer;
mod problem;
mod routing;
mod search;
mod timestamp;
mod users;
mod wallets;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use portside_app::application::Application;
use portside_app::catalog::Catalog;
use portside_app::dead_letters::DeadLetterDesk;
use portside_app::history::EventLog;
use portside_app::ledger::Ledger;
use portside_app::memberships::Memberships;
use portside_app::messages::Messages;
use portside_app::orders::Orders;
use portside_app::payments::Payments;
use portside_app::payments::notices::Notices;
use portside_app::routing::Routing;
use portside_app::search::Search;
use portside_app::users::Users;
use portside_app::wallets::Wallets;
use portside_app::webhooks::WebhookEndpoints;
use portside_kernel::Probe;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa_swagger_ui::SwaggerUi;

pub use json::fingerprint;
pub use limits::{LimitSettings, Limits};
pub use observe::MetricsRenderer;
pub use openapi::{ApiDoc, document, unapplied_rules};
pub use problem::{FieldError, Problem};

/// An order exactly as `GET /api/v1/orders/{id}` shows it, as JSON text (what seed 003's
/// `orders:events` stream carries as `data`).
pub fn order_representation(order: &portside_domain::OrderState) -> String {
    serde_json::to_string(&orders::OrderView::from(order)).unwrap_or_default()
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The use cases.
    pub app: Arc<Application>,
    /// Dependencies `/health/ready` checks.
    pub probes: Arc<Vec<Arc<dyn Probe>>>,
    /// Renders `/metrics`; `None` when the process records none.
    pub metrics: Option<MetricsRenderer>,
    /// Rate and time limits; `None` for none.
    pub limits: Option<Arc<Limits>>,
}

/// Each handler takes the one use case it calls.
macro_rules! from_state {
    ($($field:ident: $t:ty),+) => {$(
        impl FromRef<ApiState> for Arc<$t> {
            fn from_ref(s: &ApiState) -> Self {
                s.app.$field.clone()
            }
        }
    )+};
}

from_state!(
    payments: Payments,
    users: Users,
    messages: Messages,
    memberships: Memberships,
    orders: Orders,
    catalog: Catalog,
    search: Search,
    notices: Notices,
    dead_letters: DeadLetterDesk,
    history: EventLog,
    ledger: Ledger,
    wallets: Wallets,
    webhook_endpoints: WebhookEndpoints,
    routing: Routing
);

impl FromRef<ApiState> for Option<Arc<Limits>> {
    fn from_ref(s: &ApiState) -> Self {
        s.limits.clone()
    }
}

impl FromRef<ApiState> for Option<MetricsRenderer> {
    fn from_ref(s: &ApiState) -> Self {
        s.metrics.clone()
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
        .merge(payments::router())
        .merge(users::router())
        .merge(messages::router())
        .merge(memberships::router())
        .merge(catalog::router())
        .merge(orders::router())
        .merge(search::router())
        .merge(dead_letters::router())
        .merge(history::router())
        .merge(ledger::router())
        .merge(wallets::router())
        .merge(webhooks::router())
        .merge(routing::router())
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(observe::scrape))
        .route_layer(axum::middleware::from_fn(limits::run_to_completion))
        .route_layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            limits::enforce,
        ))
        .with_state(state)
        .merge(
            Router::new()
                .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", openapi::document()))
                .layer(SetResponseHeaderLayer::overriding(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(DOCS_CSP),
                )),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(secure(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .layer(secure(header::X_FRAME_OPTIONS, "DENY"))
                .layer(secure(header::REFERRER_POLICY, "no-referrer"))
                .layer(secure(header::CONTENT_SECURITY_POLICY, API_CSP))
                .layer(secure(header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains"))
                .layer(secure(header::CACHE_CONTROL, "no-store"))
                .layer(axum::middleware::from_fn(observe::track))
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let id = req
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            let span = tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id);
                            if let Some(parent) = req.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
                                portside_events::trace_context::join(&span, parent);
                            }
                            span
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
                            HeaderName::from_static("etag"),
                            HeaderName::from_static("preference-applied"),
                        ]),
                )
                .layer(CatchPanicLayer::custom(|_| {
                    problem::internal_error().into_response()
                }))
                .layer(DefaultBodyLimit::max(json::BODY_LIMIT)),
        )
}

/// The API serves JSON only: nothing of it may run as a page, be framed, or be sniffed into
/// another type. The documentation UI needs its own scripts and styles.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/// A security header for every response that does not set its own.
fn secure(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
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
