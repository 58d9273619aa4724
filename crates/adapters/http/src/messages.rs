//! `/api/v1/messages`: post, read, edit and delete (owner or admin), and search with URL queries.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portside_app::AppError;
use portside_app::messages::Messages;
use portside_app::messages::{MessageFilter, MessageOrder};
use portside_domain::{Message, MessageBody, MessageId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::json::{JsonBody, QueryParams, instant};
use crate::page::{self, ListBody};
use crate::problem::{FieldError, Problem, ProblemBody};
use crate::timestamp::Timestamp;

/// The routes of the messages context.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/messages", get(list_messages).post(post_message))
        .route(
            "/api/v1/messages/{id}",
            get(get_message).patch(edit_message).delete(delete_message),
        )
}

/// `POST /api/v1/messages` and `PATCH /api/v1/messages/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    /// 1 to 10 000 characters.
    #[schema(example = "Hello, Portside!")]
    pub body: String,
}

/// A message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    /// Always `message`.
    pub object: &'static str,
    /// Its author.
    pub owner_id: Uuid,
    pub body: String,
    /// Incremented by every edit.
    pub version: i64,
    /// When posted (RFC 3339).
    pub created_at: Timestamp,
    /// When last edited (RFC 3339).
    pub updated_at: Timestamp,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        MessageView {
            id: m.id.0,
            object: "message",
            owner_id: m.owner_id.0,
            body: m.body.as_str().to_owned(),
            version: m.version,
            created_at: m.created_at.into(),
            updated_at: m.updated_at.into(),
        }
    }
}

/// Query of `GET /api/v1/messages`, all text, validated here so errors name the parameter.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMessages {
    owner_id: Option<String>,
    q: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    sort: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl ListMessages {
    /// The filter these parameters name, and the tag of their sort order that the cursors carry;
    /// a 400 naming the first bad parameter.
    pub fn filter(&self) -> Result<(MessageFilter, char), Problem> {
        let owner_id = self
            .owner_id
            .as_deref()
            .map(|o| Uuid::parse_str(o).map(UserId))
            .transpose()
            .map_err(|_| {
                Problem::bad_parameter(
                    "owner_id",
                    "invalid_parameter",
                    "owner_id must be a user id (UUID)",
                )
            })?;
        let text = match self.q.clone() {
            Some(t) if t.is_empty() || t.chars().count() > 200 => {
                return Err(Problem::bad_parameter(
                    "q",
                    "invalid_parameter",
                    "q must be 1 to 200 characters",
                ));
            }
            other => other,
        };
        let created_after = instant("created_after", self.created_after.as_deref())?;
        let created_before = instant("created_before", self.created_before.as_deref())?;
        let (order, tag) = match self.sort.as_deref() {
            None | Some("-created_at") => (MessageOrder::Newest, 'n'),
            Some("created_at") => (MessageOrder::Oldest, 'o'),
            Some(_) => {
                return Err(Problem::bad_parameter(
                    "sort",
                    "invalid_parameter",
                    "sort must be created_at or -created_at",
                ));
            }
        };
        Ok((
            MessageFilter {
                owner_id,
                text,
                created_after,
                created_before,
                order,
            },
            tag,
        ))
    }
}

impl MessageInput {
    /// The message's text; a 422 when it is empty or too long.
    pub fn into_body(self) -> Result<MessageBody, Problem> {
        MessageBody::parse(&self.body)
            .map_err(|e| Problem::invalid(vec![FieldError::refused("body", &e)]))
    }
}

fn message_id(text: &str) -> Result<MessageId, Problem> {
    Uuid::parse_str(text)
        .map(MessageId)
        .map_err(|_| AppError::NotFound("message").into())
}

fn created(view: MessageView) -> Response {
    let location = format!("/api/v1/messages/{}", view.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response()
}

/// Posts a message as the caller.
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", security(("bearer" = [])), request_body = MessageInput,
    responses((status = 201, body = MessageView), (status = 422, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn post_message(
    State(messages): State<Arc<Messages>>,
    Authenticated(actor): Authenticated,
    body: JsonBody<MessageInput>,
) -> Result<Response, Problem> {
    let m = messages.post(&actor, body.value.into_body()?).await?;
    Ok(created((&m).into()))
}

/// One message (your own, or anyone's for administrators).
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = MessageView), (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn get_message(
    State(messages): State<Arc<Messages>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, Problem> {
    Ok(Json(
        (&messages.get(&actor, message_id(&id)?).await?).into(),
    ))
}

/// Replaces a message's text.
#[utoipa::path(patch, path = "/api/v1/messages/{id}", tag = "messages", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = MessageInput,
    responses((status = 200, body = MessageView), (status = 404, body = ProblemBody, content_type = "application/problem+json"), (status = 422, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn edit_message(
    State(messages): State<Arc<Messages>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    body: JsonBody<MessageInput>,
) -> Result<Json<MessageView>, Problem> {
    let id = message_id(&id)?;
    Ok(Json(
        (&messages.edit(&actor, id, body.value.into_body()?).await?).into(),
    ))
}

/// Deletes a message.
#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "messages", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn delete_message(
    State(messages): State<Arc<Messages>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    messages.delete(&actor, message_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Searches messages: your own, or (administrators) anyone's.
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages", security(("bearer" = [])),
    params(
        ("owner_id" = Option<Uuid>, Query, description = "Author; another user's id for administrators only"),
        ("q" = Option<String>, Query, min_length = 1, max_length = 200, description = "Body contains this text, case-insensitively (1 to 200 characters)"),
        ("created_after" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive"),
        ("created_before" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive"),
        ("sort" = Option<String>, Query, description = "`created_at` (oldest first) or `-created_at` (newest first, default)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = ListBody<MessageView>), (status = 400, body = ProblemBody, content_type = "application/problem+json"), (status = 403, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn list_messages(
    State(messages): State<Arc<Messages>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<ListMessages>,
) -> Result<Json<ListBody<MessageView>>, Problem> {
    let (filter, tag) = q.filter()?;
    let request = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        page::decode_position(tag, c).map(|(at, id)| (at, MessageId(id)))
    })?;
    let found = messages.list(&actor, filter, request).await?;
    Ok(Json(ListBody::of(
        found,
        |m| MessageView::from(m),
        |(at, id)| page::encode_position(tag, at, id.0),
    )))
}
