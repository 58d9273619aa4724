//! Webhook endpoints (administrators): `POST/GET /api/v1/webhook-endpoints`,
//! `GET/DELETE /api/v1/webhook-endpoints/{id}` and `GET /api/v1/webhook-endpoints/{id}/secret`.
//! The secret is in the creation's answer and behind its own call, never in a list.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portside_app::AppError;
use portside_app::webhooks::{NewEndpoint, WebhookEndpoints};
use portside_domain::webhook::{EndpointChanges, EndpointId, WebhookEndpoint};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::json::{JsonBody, QueryParams};
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
