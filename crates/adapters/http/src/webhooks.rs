//! Outgoing webhooks (administrators): the endpoints (`/api/v1/webhook-endpoints`, with the
//! secret's reveal and rotation, recovery of failed deliveries and a test event) and the
//! deliveries with their attempts (`/api/v1/webhook-deliveries`, with a retry). The secret is
//! in the creation's answer and behind its own call, never in a list.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portside_app::AppError;
use portside_app::webhooks::{DeliveryFilter, DeliveryRecord, NewEndpoint, WebhookEndpoints};
use portside_domain::webhook::delivery::{Attempt, DeliveryId, DeliveryStatus};
use portside_domain::webhook::{EndpointChanges, EndpointId, WebhookEndpoint};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::json::{JsonBody, QueryParams, param};
use crate::page::{self, ListBody, PageQuery};
use crate::problem::{Problem, ProblemBody};
use crate::timestamp::Timestamp;

/// The routes of the webhooks context.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route(
            "/api/v1/webhook-endpoints",
            get(list_endpoints).post(create_endpoint),
        )
        .route(
            "/api/v1/webhook-endpoints/{id}",
            get(get_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route("/api/v1/webhook-endpoints/{id}/secret", get(reveal_secret))
        .route(
            "/api/v1/webhook-endpoints/{id}/secret/rotate",
            post(rotate_secret),
        )
        .route("/api/v1/webhook-endpoints/{id}/recover", post(recover))
        .route("/api/v1/webhook-endpoints/{id}/test", post(send_test))
        .route("/api/v1/webhook-deliveries", get(list_deliveries))
        .route("/api/v1/webhook-deliveries/{id}", get(get_delivery))
        .route(
            "/api/v1/webhook-deliveries/{id}/retry",
            post(retry_delivery),
        )
}

/// `POST /api/v1/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where to send: `https` (`http` only where the server allows it), not to a private,
    /// loopback or link-local address unless the server allows it.
    #[schema(example = "https://hooks.example.com/portside")]
    pub url: String,
    /// Free text, at most 500 characters.
    pub description: Option<String>,
    /// The event types to send (docs/EVENTS.md); left out or null: every type.
    pub event_types: Option<Vec<String>>,
}

/// `PATCH /api/v1/webhook-endpoints/{id}`: the fields sent change, the others stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// A new URL, under the same rules as at creation.
    pub url: Option<String>,
    /// A new description; null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New event types; null: every type again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    /// false stops deliveries to the endpoint; true resumes them.
    pub enabled: Option<bool>,
}

/// Tells a field sent as null (`Some(None)`) from a field left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: Uuid,
    /// Always `webhook_endpoint`.
    #[schema(example = "webhook_endpoint")]
    pub object: &'static str,
    pub url: String,
    pub description: Option<String>,
    /// The event types it gets; null: every type.
    pub event_types: Option<Vec<String>>,
    pub enabled: bool,
    /// Why Portside disabled it (`gone`: it answered 410; `failing`: every attempt failed for
    /// too long); null unless Portside did.
    pub disabled_reason: Option<&'static str>,
    /// Since when every attempt to it has failed; null while it is answering.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<&WebhookEndpoint> for EndpointView {
    fn from(e: &WebhookEndpoint) -> Self {
        EndpointView {
            id: e.id.0,
            object: "webhook_endpoint",
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: e.event_types.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.map(|r| r.as_str()),
            failing_since: e.failing_since.map(Timestamp),
            created_at: Timestamp(e.created_at),
            updated_at: Timestamp(e.updated_at),
        }
    }
}

/// A new endpoint with its signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret (`whsec_…`), for the receiver's Standard Webhooks library.
    pub secret: String,
}

/// An endpoint's signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointSecret {
    /// `whsec_…`
    pub secret: String,
}

fn endpoint_id(text: &str) -> Result<EndpointId, Problem> {
    Uuid::parse_str(text)
        .map(EndpointId)
        .map_err(|_| AppError::NotFound("webhook_endpoint").into())
}

/// Registers an endpoint; the answer holds its signing secret.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints", tag = "webhook-endpoints", security(("bearer" = [])),
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "Registered, with its secret", body = CreatedEndpoint),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The limit of endpoints is reached (`webhook_endpoints_limit`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A URL that is malformed, not https, or private (`webhook_url_invalid`); an unknown, repeated or empty list of event types (`event_types_invalid`); a description over 500 characters", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create_endpoint(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    body: JsonBody<CreateEndpoint>,
) -> Result<Response, Problem> {
    let b = body.value;
    let created = endpoints
        .create(
            &actor,
            NewEndpoint {
                url: b.url,
                description: b.description,
                event_types: b.event_types,
            },
        )
        .await?;
    let location = format!("/api/v1/webhook-endpoints/{}", created.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(CreatedEndpoint {
            endpoint: EndpointView::from(&created),
            secret: created.secret.reveal(),
        }),
    )
        .into_response())
}

/// Endpoints, oldest first.
#[utoipa::path(get, path = "/api/v1/webhook-endpoints", tag = "webhook-endpoints", security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = ListBody<EndpointView>),
        (status = 400, description = "A cursor this API did not issue", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_endpoints(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Json<ListBody<EndpointView>>, Problem> {
    let page = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        page::decode_id(c).map(EndpointId)
    })?;
    let found = endpoints.list(&actor, page).await?;
    Ok(Json(ListBody::of(
        found,
        |e| EndpointView::from(e),
        |id| page::encode_id(id.0),
    )))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}", tag = "webhook-endpoints", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = EndpointView),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_endpoint(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, Problem> {
    let found = endpoints.get(&actor, endpoint_id(&id)?).await?;
    Ok(Json(EndpointView::from(&found)))
}

/// An endpoint's signing secret.
#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}/secret", tag = "webhook-endpoints", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = EndpointSecret),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn reveal_secret(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<EndpointSecret>, Problem> {
    let secret = endpoints.reveal_secret(&actor, endpoint_id(&id)?).await?;
    Ok(Json(EndpointSecret { secret }))
}

/// Changes an endpoint: its URL, description, event types, or whether it is enabled.
#[utoipa::path(patch, path = "/api/v1/webhook-endpoints/{id}", tag = "webhook-endpoints", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = UpdateEndpoint,
    responses(
        (status = 200, body = EndpointView),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "As at creation: `webhook_url_invalid`, `event_types_invalid`, a description over 500 characters; nothing changed", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update_endpoint(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    body: JsonBody<UpdateEndpoint>,
) -> Result<Json<EndpointView>, Problem> {
    let id = endpoint_id(&id)?;
    let b = body.value;
    let changes = EndpointChanges {
        url: b.url,
        description: b.description,
        event_types: b.event_types,
        enabled: b.enabled,
    };
    let changed = endpoints.update(&actor, id, changes).await?;
    Ok(Json(EndpointView::from(&changed)))
}

/// Gives the endpoint a new signing secret. The old one keeps signing beside it for a day
/// (both signatures in `webhook-signature`), so the receiver can switch without losing a
/// delivery.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/secret/rotate", tag = "webhook-endpoints", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The new secret", body = EndpointSecret),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn rotate_secret(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<EndpointSecret>, Problem> {
    let rotated = endpoints.rotate_secret(&actor, endpoint_id(&id)?).await?;
    Ok(Json(EndpointSecret {
        secret: rotated.secret.reveal(),
    }))
}

/// Removes an endpoint.
#[utoipa::path(delete, path = "/api/v1/webhook-endpoints/{id}", tag = "webhook-endpoints", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn delete_endpoint(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    endpoints.delete(&actor, endpoint_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// 1, 2, 3, ...
    pub number: u32,
    pub attempted_at: Timestamp,
    /// The endpoint's HTTP status; null when it did not answer.
    pub status_code: Option<u16>,
    pub latency_ms: f64,
    /// The first KiB of the response body.
    pub response: Option<String>,
    /// Why there was no answer (timed out, cannot connect, an address refused).
    pub error: Option<String>,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        AttemptView {
            number: a.number,
            attempted_at: Timestamp(a.at),
            status_code: a.status_code,
            latency_ms: (a.latency.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            response: a.response.clone(),
            error: a.error.clone(),
        }
    }
}

/// One event on its way to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    /// Always `webhook_delivery`.
    #[schema(example = "webhook_delivery")]
    pub object: &'static str,
    pub endpoint_id: Uuid,
    /// The event's id: the request's `webhook-id`, the same on every attempt.
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    #[schema(example = "pending")]
    pub status: &'static str,
    /// When it is due next, while pending.
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptView>,
}

impl From<&DeliveryRecord> for DeliveryView {
    fn from(r: &DeliveryRecord) -> Self {
        let d = &r.delivery;
        DeliveryView {
            id: d.id.0,
            object: "webhook_delivery",
            endpoint_id: d.endpoint_id.0,
            event_id: d.event_id,
            event_type: d.event_type.clone(),
            status: d.status.as_str(),
            next_attempt_at: d.next_attempt_at.map(Timestamp),
            created_at: Timestamp(d.created_at),
            updated_at: Timestamp(d.updated_at),
            attempts: r.attempts.iter().map(AttemptView::from).collect(),
        }
    }
}

/// Query of `GET /api/v1/webhook-deliveries`: all text, parsed by [`DeliveryQuery::filter`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveryQuery {
    endpoint_id: Option<String>,
    event_id: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl DeliveryQuery {
    fn filter(&self) -> Result<DeliveryFilter, Problem> {
        Ok(DeliveryFilter {
            endpoint: param("endpoint_id", self.endpoint_id.as_deref(), |t| {
                Uuid::parse_str(t).map(EndpointId).map_err(|_| "not a UUID")
            })?,
            event: param("event_id", self.event_id.as_deref(), |t| {
                Uuid::parse_str(t).map_err(|_| "not a UUID")
            })?,
            status: param("status", self.status.as_deref(), |t| {
                DeliveryStatus::parse(t).ok_or("pending, succeeded or failed")
            })?,
        })
    }
}

fn delivery_id(text: &str) -> Result<DeliveryId, Problem> {
    Uuid::parse_str(text)
        .map(DeliveryId)
        .map_err(|_| AppError::NotFound("webhook_delivery").into())
}

/// Deliveries with their attempts, oldest first: of one endpoint, of one event, in one status.
#[utoipa::path(get, path = "/api/v1/webhook-deliveries", tag = "webhook-endpoints", security(("bearer" = [])),
    params(
        ("endpoint_id" = Option<Uuid>, Query, description = "Only this endpoint's deliveries"),
        ("event_id" = Option<Uuid>, Query, description = "Only this event's deliveries"),
        ("status" = Option<String>, Query, description = "`pending`, `succeeded` or `failed`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = ListBody<DeliveryView>),
        (status = 400, description = "A filter that is not a UUID or a status (`invalid_parameter`), or a cursor this API did not issue", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_deliveries(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> Result<Json<ListBody<DeliveryView>>, Problem> {
    let filter = q.filter()?;
    let page = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        page::decode_id(c).map(DeliveryId)
    })?;
    let found = endpoints.deliveries(&actor, filter, page).await?;
    Ok(Json(ListBody::of(
        found,
        |d| DeliveryView::from(d),
        |id| page::encode_id(id.0),
    )))
}

/// One delivery with its attempts.
#[utoipa::path(get, path = "/api/v1/webhook-deliveries/{id}", tag = "webhook-endpoints", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = DeliveryView),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_delivery(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<DeliveryView>, Problem> {
    let found = endpoints.delivery(&actor, delivery_id(&id)?).await?;
    Ok(Json(DeliveryView::from(&found)))
}

/// Sends a delivery again now, whatever its status, with the same `webhook-id`.
#[utoipa::path(post, path = "/api/v1/webhook-deliveries/{id}/retry", tag = "webhook-endpoints", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 202, description = "Due now", body = DeliveryView),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn retry_delivery(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryView>), Problem> {
    let due = endpoints.retry(&actor, delivery_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&due))))
}

/// `POST /api/v1/webhook-endpoints/{id}/recover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// Failed deliveries created at or after this time are sent again.
    pub since: Timestamp,
}

/// How many deliveries a recovery made due.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    pub requeued: u64,
}

/// Sends again every failed delivery to the endpoint created since a time (after the receiver
/// was fixed). An endpoint Portside disabled is enabled with a PATCH first.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/recover", tag = "webhook-endpoints", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = Recover,
    responses(
        (status = 202, description = "Due now", body = Recovered),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`since` is not an RFC 3339 time", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn recover(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    body: JsonBody<Recover>,
) -> Result<(StatusCode, Json<Recovered>), Problem> {
    let requeued = endpoints
        .recover(&actor, endpoint_id(&id)?, body.value.since.0)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Recovered { requeued })))
}

/// Sends the endpoint a `webhook_endpoint.test` event, whatever event types it wants.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/test", tag = "webhook-endpoints", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 202, description = "The test delivery, due now", body = DeliveryView),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn send_test(
    State(endpoints): State<Arc<WebhookEndpoints>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryView>), Problem> {
    let sent = endpoints.send_test(&actor, endpoint_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&sent))))
}
