//! `/api/v1/payments` and the providers' webhooks: the handlers turn HTTP into use-case
//! commands (each request body converts itself, see `dto`) and outcomes back into HTTP.

mod dto;
pub(crate) mod notices;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portside_app::AppError;
use portside_app::payments::{Outcome, Payments, Reply};
use portside_domain::{PaymentId, PaymentStatus, TransactionStatus};
use uuid::Uuid;

pub(crate) use dto::{
    CreatePayment, CreateRefund, DecimalText, FailureView, PaymentView, RefundView,
    TransactionList, TransactionView, method_or_card,
};
pub(crate) use notices::Received;

use crate::ApiState;
use crate::auth::Authenticated;
use crate::idempotency::Keyed;
use crate::json::QueryParams;
use crate::page::{self, ListBody};
use crate::problem::{Problem, ProblemBody};
use dto::ListQuery;

/// The header a replayed response carries.
pub const REPLAYED: &str = "idempotent-replayed";

/// The routes of the payments context.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/payments", post(create_payment).get(list_payments))
        .route("/api/v1/payments/{id}", get(get_payment))
        .route("/api/v1/payments/{id}/refunds", post(create_refund))
        // Seed-compatible spelling of the same operation.
        .route("/api/v1/payments/{id}/refund", post(create_refund))
        .route("/api/v1/payments/{id}/transactions", get(list_transactions))
        .route("/api/v1/webhooks/{provider}", post(notices::receive))
}

/// Creates a payment and charges it through its provider; with `Prefer: respond-async`,
/// accepts it at once (202, status `pending`, `Location` to poll, `Preference-Applied`) and a
/// worker charges it.
#[utoipa::path(
    post, path = "/api/v1/payments", tag = "payments", security(("bearer" = [])),
    request_body = CreatePayment,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the same key and body replay the first outcome"),
        ("Prefer" = Option<String>, Header, description = "RFC 7240 preferences; `respond-async` answers 202 at once and charges later (the outcome then reaches the client by polling `Location`, the payment's events and outgoing webhooks). Other preferences are ignored; a header that is not a list of preferences is 400 `prefer_invalid`"),
    ),
    responses(
        (status = 201, description = "Charged", body = PaymentView),
        (status = 202, description = "Accepted: with `Prefer: respond-async`, submitted (status `pending`, `Preference-Applied: respond-async`); otherwise sent, outcome not known yet (status `processing`). `Location` names the payment", body = PaymentView),
        (status = 402, description = "Declined or failed at the provider; the failed payment is in `payment`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON or header", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or bad access token", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "customer_id is not yours", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "A request with this key is still running", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values, or the key was used with another request", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn create_payment(
    State(payments): State<Arc<Payments>>,
    headers: HeaderMap,
    keyed: Keyed<CreatePayment>,
) -> Result<Response, Problem> {
    let asynchronous = crate::prefer::respond_async(&headers)?;
    let command = keyed.body.into_command(keyed.key)?;
    let reply = if asynchronous {
        payments.submit(&keyed.actor, command).await?
    } else {
        payments.pay(&keyed.actor, command).await?
    };
    let mut response = charge_response(&reply);
    if reply.outcome.accepted {
        response.headers_mut().insert(
            HeaderName::from_static("preference-applied"),
            HeaderValue::from_static("respond-async"),
        );
    }
    Ok(response)
}

/// Refunds all or part of a payment.
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/refunds", tag = "payments", security(("bearer" = [])),
    request_body(content = Option<CreateRefund>, description = "Empty body or {} refunds what remains"),
    params(
        ("id" = Uuid, Path, description = "Payment id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry"),
    ),
    responses(
        (status = 201, description = "Refunded", body = RefundView),
        (status = 202, description = "Accepted, outcome not known yet", body = RefundView),
        (status = 402, description = "Refused by the provider; the amount stays refundable", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not refundable in its status, or key in use", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Amount above what remains, wrong currency, invalid values", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn create_refund(
    State(payments): State<Arc<Payments>>,
    Path(id): Path<String>,
    keyed: Keyed<CreateRefund>,
) -> Result<Response, Problem> {
    let command = keyed.body.into_command(payment_id(&id)?, keyed.key)?;
    let reply = payments.refund(&keyed.actor, command).await?;
    Ok(refund_response(&reply))
}

/// One payment.
#[utoipa::path(
    get, path = "/api/v1/payments/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Payment id")),
    responses(
        (status = 200, body = PaymentView),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn get_payment(
    State(payments): State<Arc<Payments>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, Problem> {
    let payment = payments.get(&actor, payment_id(&id)?).await?;
    Ok(Json((&payment).into()))
}

/// Payments, newest first, with filters and a cursor.
#[utoipa::path(
    get, path = "/api/v1/payments", tag = "payments", security(("bearer" = [])),
    params(
        ("customer_id" = Option<String>, Query, min_length = 1, max_length = 64, pattern = r"^[!-~]+$", description = "Only this customer's payments"),
        ("status" = Option<String>, Query, description = "Only payments in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = ListBody<PaymentView>),
        (status = 400, description = "Invalid or unknown parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "customer_id is not yours", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_payments(
    State(payments): State<Arc<Payments>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<ListBody<PaymentView>>, Problem> {
    let filter = q.filter()?;
    let request = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        page::decode_id(c).map(PaymentId)
    })?;
    let found = payments.list(&actor, &filter, request).await?;
    Ok(Json(ListBody::of(
        found,
        |p| PaymentView::from(p),
        |id| page::encode_id(id.0),
    )))
}

/// A payment's charge and refunds, oldest first.
#[utoipa::path(
    get, path = "/api/v1/payments/{id}/transactions", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Payment id")),
    responses(
        (status = 200, body = TransactionList),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_transactions(
    State(payments): State<Arc<Payments>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<TransactionList>, Problem> {
    let txns = payments.transactions(&actor, payment_id(&id)?).await?;
    Ok(Json(TransactionList {
        data: txns.iter().map(TransactionView::from).collect(),
    }))
}

/// A malformed id cannot name an existing payment: it is a 404 like any unknown id.
pub(crate) fn payment_id(text: &str) -> Result<PaymentId, Problem> {
    Uuid::parse_str(text)
        .map(PaymentId)
        .map_err(|_| AppError::NotFound("payment").into())
}

fn with_replay_header(mut response: Response, reply: &Reply) -> Response {
    if reply.replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

fn location(outcome: &Outcome) -> [(header::HeaderName, String); 1] {
    [(
        header::LOCATION,
        format!("/api/v1/payments/{}", outcome.payment.id),
    )]
}

/// 201 when charged, 202 while the outcome is unknown, 402 problem when refused.
pub(crate) fn charge_response(reply: &Reply) -> Response {
    let o = &reply.outcome;
    let view = PaymentView::from(&o.payment);
    let response = match o.payment.status {
        PaymentStatus::Processing | PaymentStatus::Pending => {
            (StatusCode::ACCEPTED, location(o), Json(view)).into_response()
        }
        PaymentStatus::Failed => {
            let failure = o.payment.failure.clone().unwrap_or_else(|| {
                portside_domain::Failure::new("payment_failed", "the payment failed")
            });
            refused(
                &failure,
                "payment",
                serde_json::to_value(&view).unwrap_or_default(),
            )
        }
        _ => (StatusCode::CREATED, location(o), Json(view)).into_response(),
    };
    with_replay_header(response, reply)
}

/// 201 when refunded, 202 while the outcome is unknown, 402 problem when refused.
fn refund_response(reply: &Reply) -> Response {
    let o = &reply.outcome;
    let view = RefundView::from(o);
    let response = match o.transaction.status {
        TransactionStatus::Pending => {
            (StatusCode::ACCEPTED, location(o), Json(view)).into_response()
        }
        TransactionStatus::Failed => {
            let failure = o.transaction.failure.clone().unwrap_or_else(|| {
                portside_domain::Failure::new("refund_failed", "the refund failed")
            });
            refused(
                &failure,
                "refund",
                serde_json::to_value(&view).unwrap_or_default(),
            )
        }
        TransactionStatus::Succeeded => {
            (StatusCode::CREATED, location(o), Json(view)).into_response()
        }
    };
    with_replay_header(response, reply)
}

fn refused(
    failure: &portside_domain::Failure,
    member: &str,
    resource: serde_json::Value,
) -> Response {
    let mut problem = Problem::new(
        StatusCode::PAYMENT_REQUIRED,
        &failure.code,
        failure.message.clone(),
    );
    if let Some(decline) = &failure.decline_code {
        problem = problem.with("decline_code", decline.clone().into());
    }
    problem.with(member, resource).into_response()
}
