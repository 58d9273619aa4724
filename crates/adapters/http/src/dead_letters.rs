//! `/api/v1/dead-letters`: administrators list a consumer group's dead letters and replay one
//! to that group, as `portside events dlq` does from the command line.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use portside_app::dead_letters::DeadLetterDesk;
use portside_events::DeadLetter;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::json::QueryParams;
use crate::page;
use crate::problem::{Problem, ProblemBody};
use crate::timestamp::Timestamp;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/dead-letters/{group}", get(list_dead_letters))
        .route(
            "/api/v1/dead-letters/{group}/{id}/replay",
            post(replay_dead_letter),
        )
}

/// The event a dead letter holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadEventView {
    pub id: Uuid,
    /// e.g. `payment.succeeded`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub occurred_at: Timestamp,
    /// The event's data, as published.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// An event a consumer group could not handle after its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// Its id among the group's dead letters (what a replay names).
    pub id: String,
    /// Always `dead_letter`.
    pub object: &'static str,
    /// The consumer group whose handler failed.
    pub group: String,
    pub event: DeadEventView,
    /// The handler's last error.
    pub error: String,
    pub failed_at: Timestamp,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        DeadLetterView {
            id: d.id,
            object: "dead_letter",
            group: d.group,
            event: DeadEventView {
                id: d.envelope.id,
                event_type: d.envelope.event_type,
                aggregate_type: d.envelope.aggregate_type,
                aggregate_id: d.envelope.aggregate_id,
                occurred_at: d.envelope.occurred_at.into(),
                data: d.envelope.data,
            },
            error: d.error,
            failed_at: d.failed_at.into(),
        }
    }
}

/// A group's dead letters, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub data: Vec<DeadLetterView>,
    /// Whether more are waiting beyond `limit` (replay or purge these to reach them).
    pub has_more: bool,
}

/// The replay that was asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    pub id: String,
    pub group: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<String>,
}

/// A consumer group's dead letters, oldest first (administrators).
#[utoipa::path(get, path = "/api/v1/dead-letters/{group}", tag = "events", security(("bearer" = [])),
    params(
        ("group" = String, Path, description = "A consumer group: `membership`, `orders`, `order-stream`, `search`, `audit` (404 `consumer_group_not_found` otherwise)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
    ),
    responses(
        (status = 200, body = DeadLetterList),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_dead_letters(
    State(desk): State<Arc<DeadLetterDesk>>,
    Authenticated(actor): Authenticated,
    Path(group): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<DeadLetterList>, Problem> {
    let limit = page::limit(q.limit.as_deref())? as usize;
    let mut letters = desk.list(&actor, &group, limit + 1).await?;
    let has_more = letters.len() > limit;
    letters.truncate(limit);
    Ok(Json(DeadLetterList {
        data: letters.into_iter().map(Into::into).collect(),
        has_more,
    }))
}

/// Delivers a dead letter to its group again (administrators). The other groups, which handled
/// the event, never see it again. Accepted: the group's consumer handles it shortly; if it
/// fails again it is listed again.
#[utoipa::path(post, path = "/api/v1/dead-letters/{group}/{id}/replay", tag = "events", security(("bearer" = [])),
    params(
        ("group" = String, Path, description = "The consumer group"),
        ("id" = String, Path, description = "The dead letter's id, as listed"),
    ),
    responses(
        (status = 202, description = "The replay is asked for", body = Replayed),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn replay_dead_letter(
    State(desk): State<Arc<DeadLetterDesk>>,
    Authenticated(actor): Authenticated,
    Path((group, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Replayed>), Problem> {
    desk.replay(&actor, &group, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { id, group })))
}
