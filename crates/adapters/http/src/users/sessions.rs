//! Sessions of the users context: login, refresh-token rotation and logout.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use portside_app::users::{Tokens, Users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::json::JsonBody;
use crate::problem::{Problem, ProblemBody};

/// The routes of sessions.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Email address.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// Password.
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    /// The refresh token from login or the previous refresh.
    pub refresh_token: String,
}

/// `POST /api/v1/auth/logout`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    /// Ends this token's session; without it every session of the user ends.
    pub refresh_token: Option<String>,
}

/// A session's tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use token for `POST /api/v1/auth/refresh`.
    pub refresh_token: String,
}

impl From<Tokens> for TokenPair {
    fn from(t: Tokens) -> Self {
        TokenPair {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
        }
    }
}

/// Exchanges credentials for an access token and a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, body = TokenPair), (status = 401, description = "Wrong email or password", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn login(
    State(users): State<Arc<Users>>,
    body: JsonBody<Login>,
) -> Result<Json<TokenPair>, Problem> {
    let tokens = users.login(&body.value.email, &body.value.password).await?;
    Ok(Json(tokens.into()))
}

/// Trades a refresh token for a new pair (the old one is spent; replaying it revokes the session).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = Refresh,
    responses((status = 200, body = TokenPair), (status = 401, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn refresh(
    State(users): State<Arc<Users>>,
    body: JsonBody<Refresh>,
) -> Result<Json<TokenPair>, Problem> {
    let tokens = users.refresh(&body.value.refresh_token).await?;
    Ok(Json(tokens.into()))
}

/// Ends the session of a refresh token, or every session of the caller.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body(content = Option<Logout>),
    security(("bearer" = [])),
    responses((status = 204, description = "Logged out"), (status = 401, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn logout(
    State(users): State<Arc<Users>>,
    Authenticated(actor): Authenticated,
    body: JsonBody<Logout>,
) -> Result<StatusCode, Problem> {
    users
        .logout(&actor, body.value.refresh_token.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
