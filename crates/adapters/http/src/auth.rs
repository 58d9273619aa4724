//! Authentication: the bearer-token extractor every protected route uses.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use portside_domain::Actor;

use crate::ApiState;
use crate::limits::VerifiedActor;
use crate::problem::{Problem, unauthorized};

/// The actor of a request, from its `Authorization: Bearer <access token>` header.
pub struct Authenticated(pub Actor);

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Problem> {
        if let Some(VerifiedActor(actor)) = parts.extensions.remove::<VerifiedActor>() {
            return Ok(Authenticated(actor));
        }
        let malformed = || {
            unauthorized(
                "authorization_malformed",
                "the Authorization header must be `Bearer <access token>`",
            )
        };
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            unauthorized(
                "unauthenticated",
                "this endpoint needs Authorization: Bearer <access token>",
            )
        })?;
        let text = header.to_str().map_err(|_| malformed())?;
        let (scheme, token) = text.split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
            return Err(malformed());
        }
        state
            .app
            .users
            .authenticate(token)
            .map(Authenticated)
            .map_err(Problem::from)
    }
}
