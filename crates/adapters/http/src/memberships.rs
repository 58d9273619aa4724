//! `POST /api/v1/memberships/checkout`: buy the premium membership.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use portside_app::memberships::{Checkout, Memberships};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::dto::PaymentView;
use crate::json::JsonBody;
use crate::payments::{charge_response, method_or_card, required_idempotency};
use crate::problem::{Problem, ProblemBody};

/// The checkout request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// Provider token of the payment method, e.g. `tok_visa`.
    #[schema(example = "tok_visa")]
    pub payment_method_token: String,
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
    params(("Idempotency-Key" = String, Header, description = "Required: a checkout must be safe to retry")),
    responses(
        (status = 201, description = "Paid; the caller is premium", body = PaymentView),
        (status = 202, description = "Payment outcome pending; retry with the same key", body = PaymentView),
        (status = 400, description = "No idempotency key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 402, description = "Declined", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn checkout(
    State(memberships): State<Arc<Memberships>>,
    Authenticated(actor): Authenticated,
    headers: HeaderMap,
    body: JsonBody<CheckoutRequest>,
) -> Result<Response, Problem> {
    let JsonBody {
        value: req,
        fingerprint,
    } = body;
    let key = required_idempotency(
        &actor,
        &headers,
        req.idempotency_key.as_deref(),
        fingerprint,
        "a checkout",
    )?;
    let method = method_or_card(req.payment_method.as_deref())?;
    let reply = memberships
        .checkout(
            &actor,
            Checkout {
                method,
                method_token: req.payment_method_token,
                provider: req.provider,
                idempotency: key,
            },
        )
        .await?;
    Ok(charge_response(&reply))
}
