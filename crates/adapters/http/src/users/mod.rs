//! `/api/v1/users`: registration (public), and reading, changing, deleting and listing users
//! (self or admin); the sessions are in `sessions`.

pub(crate) mod sessions;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portside_app::AppError;
use portside_app::users::cache::UserProfile;
use portside_app::users::{Registration, UserChanges, Users};
use portside_domain::{Email, Role, UserId, UserName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub(crate) use sessions::{Login, Logout, Refresh, TokenPair};

use crate::ApiState;
use crate::auth::Authenticated;
use crate::json::{JsonBody, QueryParams};
use crate::page::{self, ListBody};
use crate::problem::{Problem, ProblemBody, field, refusal};
use crate::timestamp::Timestamp;

/// The routes of the users context.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/users", post(register).get(list_users))
        .route(
            "/api/v1/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .merge(sessions::router())
}

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
    /// When the premium membership ends unless renewed (RFC 3339); null when free, and for a
    /// membership bought before memberships had periods, which does not end.
    pub membership_until: Option<Timestamp>,
    /// Registration time (RFC 3339).
    pub created_at: Timestamp,
    /// Last change (RFC 3339).
    pub updated_at: Timestamp,
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
            membership_until: p.membership_until.map(Timestamp::from),
            created_at: p.created_at.into(),
            updated_at: p.updated_at.into(),
        }
    }
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

impl Register {
    /// The command this body asks for; a 422 naming every bad field at once (the password
    /// policy, which depends on the email, is the use case's).
    pub fn into_command(self) -> Result<Registration, Problem> {
        let mut errors = Vec::new();
        let email = field(
            &mut errors,
            "email",
            Email::parse(&self.email).map_err(refusal),
        );
        let name = field(
            &mut errors,
            "name",
            UserName::parse(&self.name).map_err(refusal),
        );
        let (Some(email), Some(name)) = (email, name) else {
            return Err(Problem::invalid(errors));
        };
        Ok(Registration {
            email,
            password: self.password,
            name,
        })
    }
}

impl UpdateUser {
    /// The changes this body asks for; a 422 naming every bad field at once.
    pub fn into_changes(self) -> Result<UserChanges, Problem> {
        let mut errors = Vec::new();
        let name = match self.name.as_deref() {
            None => Some(None),
            Some(n) => field(
                &mut errors,
                "name",
                UserName::parse(n).map(Some).map_err(refusal),
            ),
        };
        let email = match self.email.as_deref() {
            None => Some(None),
            Some(e) => field(
                &mut errors,
                "email",
                Email::parse(e).map(Some).map_err(refusal),
            ),
        };
        let role = match self.role.as_deref() {
            None => Some(None),
            Some(r) => field(
                &mut errors,
                "role",
                r.parse::<Role>()
                    .map(Some)
                    .map_err(|message| ("role_unknown", message)),
            ),
        };
        let (Some(name), Some(email), Some(role)) = (name, email, role) else {
            return Err(Problem::invalid(errors));
        };
        Ok(UserChanges {
            name,
            email,
            password: self.password,
            role,
        })
    }
}

/// Registers a customer account.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = Register,
    responses(
        (status = 201, body = UserView),
        (status = 409, description = "Email already registered", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, weak password or bad name", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(users): State<Arc<Users>>,
    body: JsonBody<Register>,
) -> Result<Response, Problem> {
    let profile = users.register(body.value.into_command()?).await?;
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
    State(users): State<Arc<Users>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<UserView>, Problem> {
    Ok(Json((&users.get(&actor, user_id(&id)?).await?).into()))
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
    State(users): State<Arc<Users>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    body: JsonBody<UpdateUser>,
) -> Result<Json<UserView>, Problem> {
    let id = user_id(&id)?;
    let changes = body.value.into_changes()?;
    Ok(Json((&users.update(&actor, id, changes).await?).into()))
}

/// Deletes a user with their sessions and messages (their payments stay, as records).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn delete_user(
    State(users): State<Arc<Users>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    users.delete(&actor, user_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// All users (administrators only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 100), ("cursor" = Option<String>, Query, min_length = 1)),
    responses((status = 200, body = ListBody<UserView>), (status = 403, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn list_users(
    State(users): State<Arc<Users>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<ListUsers>,
) -> Result<Json<ListBody<UserView>>, Problem> {
    let request = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        page::decode_id(c).map(UserId)
    })?;
    let found = users.list(&actor, request).await?;
    Ok(Json(ListBody::of(
        found,
        |u| UserView::from(u),
        |id| page::encode_id(id.0),
    )))
}
