//! `/api/v1/payments/{id}/events` and `/api/v1/orders/{id}/events`: a payment's or an order's
//! events in order, from the event history, for its owner or an administrator.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use portside_app::history::EventLog;
use portside_events::Envelope;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::orders::order_id;
use crate::payments::payment_id;
use crate::problem::{Problem, ProblemBody};
use crate::timestamp::Timestamp;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/payments/{id}/events", get(payment_events))
        .route("/api/v1/orders/{id}/events", get(order_events))
}

/// One recorded event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: Uuid,
    /// Always `event`.
    pub object: &'static str,
    /// e.g. `payment.succeeded`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The version of the type's data.
    pub version: i32,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Its place among the aggregate's events, from 1.
    pub sequence: i64,
    /// When the change it records was committed.
    pub occurred_at: Timestamp,
    /// The event's data, as published (docs/EVENTS.md).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// An aggregate's events, oldest first (at most 1000).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub data: Vec<EventView>,
}

impl From<Envelope> for EventView {
    fn from(e: Envelope) -> Self {
        EventView {
            id: e.id,
            object: "event",
            event_type: e.event_type,
            version: e.version,
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: e.sequence,
            occurred_at: e.occurred_at.into(),
            data: e.data,
        }
    }
}

fn list(events: Vec<Envelope>) -> Json<EventList> {
    Json(EventList {
        data: events.into_iter().map(EventView::from).collect(),
    })
}

/// A payment's events, oldest first, as the `audit` group recorded them (an event appears
/// once it was handled, usually within a second of its commit).
#[utoipa::path(
    get, path = "/api/v1/payments/{id}/events", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Payment id")),
    responses(
        (status = 200, body = EventList),
        (status = 404, description = "No such payment, or not yours", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn payment_events(
    State(log): State<Arc<EventLog>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<EventList>, Problem> {
    Ok(list(log.of_payment(&actor, payment_id(&id)?).await?))
}

/// An order's events, oldest first, as the `audit` group recorded them (an event appears
/// once it was handled, usually within a second of its commit).
#[utoipa::path(
    get, path = "/api/v1/orders/{id}/events", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = EventList),
        (status = 404, description = "No such order, or not yours", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn order_events(
    State(log): State<Arc<EventLog>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<EventList>, Problem> {
    Ok(list(log.of_order(&actor, order_id(&id)?).await?))
}
