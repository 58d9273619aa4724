//! `/api/v1/users`: registration (public), and reading, changing, deleting and listing users
//! (self or admin).

use portside_kernel::PageRequest;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use portside_app::AppError;
use portside_app::users::cache::UserProfile;
use portside_app::users::{Registration, UserChanges, Users};
use portside_domain::{Role, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::cursor;
use crate::json::{JsonBody, QueryParams};
use crate::problem::{Problem, ProblemBody};

/// `POST /api/v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Email address (unique, case-insensitive).
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 10 to 128 characters, at least 5 different ones, not containing the email's name.
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// Display name, 1 to 100 characters.
    #[schema(example = "Ada Lovelace")]
    pub name: String,
}

/// `PATCH /api/v1/users/{id}`: only the fields given change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// New name.
    pub name: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New password (ends every session of the user).
    pub password: Option<String>,
    /// `customer` or `admin` (administrators only).
    pub role: Option<String>,
}

/// A user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Identity; also the `customer_id` of the user's payments.
    pub id: Uuid,
    /// Always `user`.
    pub object: String,
    /// Email (lower case).
    pub email: String,
    /// Display name.
    pub name: String,
    /// `customer` or `admin`.
    pub role: String,
    /// `free` or `premium`.
    pub membership: String,
    /// Registration time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last change (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&UserProfile> for UserView {
    fn from(p: &UserProfile) -> Self {
        UserView {
            id: p.id.0,
            object: "user".into(),
            email: p.email.clone(),
            name: p.name.clone(),
            role: p.role.as_str().into(),
            membership: p.membership.as_str().into(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// Oldest first.
    pub data: Vec<UserView>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/users`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsers {
    limit: Option<String>,
    cursor: Option<String>,
}

/// A malformed id names no user: 404 like any unknown id.
fn user_id(text: &str) -> Result<UserId, Problem> {
    Uuid::parse_str(text)
        .map(UserId)
        .map_err(|_| AppError::NotFound("user").into())
}

/// Registers a customer account.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = Register,
    responses(
        (status = 201, body = UserView),
        (status = 409, description = "Email already registered", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, weak password or bad name", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(accounts): State<Arc<Users>>,
    body: JsonBody<Register>,
) -> Result<Response, Problem> {
    let r = body.value;
    let profile = accounts
        .register(Registration {
            email: r.email,
            password: r.password,
            name: r.name,
        })
        .await?;
    let location = format!("/api/v1/users/{}", profile.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserView::from(&profile)),
    )
        .into_response())
}

/// A user (yourself, or anyone for administrators).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn get_user(
    State(accounts): State<Arc<Users>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<UserView>, Problem> {
    Ok(Json((&accounts.get(&actor, user_id(&id)?).await?).into()))
}

/// Changes a user (yourself, or anyone for administrators; roles by administrators only).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateUser,
    responses(
        (status = 200, body = UserView),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update_user(
    State(accounts): State<Arc<Users>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    body: JsonBody<UpdateUser>,
) -> Result<Json<UserView>, Problem> {
    let id = user_id(&id)?;
    let u = body.value;
    let role = u
        .role
        .as_deref()
        .map(|r| r.parse::<Role>())
        .transpose()
        .map_err(|message| {
            Problem::invalid(vec![crate::problem::FieldError {
                field: "role".into(),
                code: "role_unknown".into(),
                message,
            }])
        })?;
    let changes = UserChanges {
        name: u.name,
        email: u.email,
        password: u.password,
        role,
    };
    Ok(Json((&accounts.update(&actor, id, changes).await?).into()))
}

/// Deletes a user with their sessions and messages (their payments stay, as records).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn delete_user(
    State(accounts): State<Arc<Users>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    accounts.delete(&actor, user_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// All users (administrators only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = UserList), (status = 403, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn list_users(
    State(accounts): State<Arc<Users>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<ListUsers>,
) -> Result<Json<UserList>, Problem> {
    let limit = cursor::limit(q.limit.as_deref())?;
    let after = q
        .cursor
        .as_deref()
        .map(cursor::decode_id)
        .transpose()?
        .map(UserId);
    let page = accounts.list(&actor, PageRequest { limit, after }).await?;
    Ok(Json(UserList {
        data: page.items.iter().map(UserView::from).collect(),
        has_more: page.next.is_some(),
        next_cursor: page.next.map(|id| cursor::encode_id(id.0)),
    }))
}
