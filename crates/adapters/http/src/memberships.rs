//! `POST /api/v1/memberships/checkout`: buy the premium membership.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use portside_app::memberships::{Checkout, Memberships};
use portside_app::payments::idempotency::IdempotentRequest;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::idempotency::{BodyKey, Keyed};
use crate::payments::{PaymentView, charge_response, method_or_card};
use crate::problem::{Problem, ProblemBody};

/// The routes of the memberships context.
pub(crate) fn router() -> Router<ApiState> {
    Router::new().route("/api/v1/memberships/checkout", post(checkout))
}

/// The checkout request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// Provider token of the payment method, e.g. `tok_visa`; required
    /// unless `payment_method` is `wallet` (the balance of your wallet pays).
    #[schema(example = "tok_visa")]
    #[serde(default)]
    pub payment_method_token: Option<String>,
    /// Payment method kind (default `card`).
    pub payment_method: Option<String>,
    /// Provider (default: the configured default).
    pub provider: Option<String>,
    /// Alternative to the `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// Charges the membership price to the caller; once the payment succeeds the caller is premium.
#[utoipa::path(post, path = "/api/v1/memberships/checkout", tag = "memberships", security(("bearer" = [])),
    request_body = CheckoutRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "Required, here or as `idempotency_key` in the body: a checkout must be safe to retry (400 `idempotency_key_required` without one)")),
    responses(
        (status = 201, description = "Paid; the caller is premium", body = PaymentView),
        (status = 202, description = "Payment outcome pending; retry with the same key", body = PaymentView),
        (status = 400, description = "No idempotency key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 402, description = "Declined", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn checkout(
    State(memberships): State<Arc<Memberships>>,
    keyed: Keyed<CheckoutRequest>,
) -> Result<Response, Problem> {
    let (actor, body, key) = keyed.required("a checkout")?;
    let reply = memberships
        .checkout(&actor, body.into_command(key)?)
        .await?;
    Ok(charge_response(&reply))
}

impl BodyKey for CheckoutRequest {
    fn body_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

impl CheckoutRequest {
    /// The command this body asks for.
    pub fn into_command(self, idempotency: IdempotentRequest) -> Result<Checkout, Problem> {
        Ok(Checkout {
            method: method_or_card(self.payment_method.as_deref())?,
            method_token: self.payment_method_token.unwrap_or_default(),
            provider: self.provider,
            idempotency,
        })
    }
}
