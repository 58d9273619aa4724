//! The idempotency key of a request (IETF `Idempotency-Key` draft, Stripe's semantics): from the
//! header or, for clients of older APIs, the body's `idempotency_key`; scoped to the caller and
//! bound to the request's fingerprint. One extractor serves every operation that takes a key.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use portside_app::payments::idempotency::{IdempotencyKey, IdempotentRequest};
use portside_domain::Actor;
use serde::de::DeserializeOwned;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::json::JsonBody;
use crate::problem::Problem;

/// A request body that may carry the idempotency key itself.
pub trait BodyKey {
    /// The body's `idempotency_key`, if it has one.
    fn body_key(&self) -> Option<&str>;
}

/// A JSON body from an authenticated caller, with the request's idempotency key if it has one.
pub struct Keyed<T> {
    /// Who asks.
    pub actor: Actor,
    /// The parsed body.
    pub body: T,
    /// The key, scoped to the caller and bound to this request's fingerprint.
    pub key: Option<IdempotentRequest>,
}

impl<T> Keyed<T> {
    /// For an operation that must be safe to retry: refuses a request without a key, naming
    /// the operation (`what`).
    pub fn required(self, what: &str) -> Result<(Actor, T, IdempotentRequest), Problem> {
        let key = self.key.ok_or_else(|| {
            Problem::bad_parameter(
                "Idempotency-Key",
                "idempotency_key_required",
                format!("{what} needs an Idempotency-Key header"),
            )
        })?;
        Ok((self.actor, self.body, key))
    }
}

impl<T: DeserializeOwned + BodyKey + Send> FromRequest<ApiState> for Keyed<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, Problem> {
        let (mut parts, body) = request.into_parts();
        let Authenticated(actor) = Authenticated::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let JsonBody { value, fingerprint } =
            JsonBody::<T>::from_request(Request::from_parts(parts, body), state).await?;
        let key = key_of(&actor, &headers, value.body_key(), fingerprint)?;
        Ok(Keyed {
            actor,
            body: value,
            key,
        })
    }
}

fn key_of(
    actor: &Actor,
    headers: &HeaderMap,
    body_key: Option<&str>,
    fingerprint: String,
) -> Result<Option<IdempotentRequest>, Problem> {
    let header_key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            Problem::bad_parameter(
                "Idempotency-Key",
                "idempotency_key_invalid",
                "must be visible ASCII",
            )
        })?),
    };
    let text = match (header_key, body_key) {
        (Some(h), Some(b)) if h != b => {
            return Err(Problem::bad_parameter(
                "Idempotency-Key",
                "idempotency_key_mismatch",
                "the header and the body's idempotency_key differ",
            ));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => return Ok(None),
    };
    let key = IdempotencyKey::parse(text).map_err(|e| {
        Problem::bad_parameter("Idempotency-Key", "idempotency_key_invalid", e.to_string())
    })?;
    Ok(Some(IdempotentRequest {
        scope: actor.user_id.to_string(),
        key,
        fingerprint,
    }))
}
