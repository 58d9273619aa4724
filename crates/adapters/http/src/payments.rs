//! Handlers of `/api/v1/payments`: they turn HTTP into use-case commands and outcomes back
//! into HTTP, and nothing else.

use portside_kernel::PageRequest;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portside_app::AppError;
use portside_app::payments::PaymentFilter;
use portside_app::payments::idempotency::{IdempotencyKey, IdempotentRequest};
use portside_app::payments::{Outcome, PayCommand, Payments, RefundCommand, Reply};
use portside_domain::{
    Actor, Currency, CustomerId, Metadata, Money, PaymentId, PaymentMethod, PaymentStatus,
    TransactionStatus,
};
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::cursor;
use crate::dto::{
    CreatePayment, CreateRefund, ListQuery, PaymentList, PaymentView, RefundView, TransactionList,
    TransactionView,
};
use crate::json::{JsonBody, QueryParams};
use crate::problem::{FieldError, Problem, ProblemBody};

/// The header a replayed response carries.
pub const REPLAYED: &str = "idempotent-replayed";

/// Creates a payment and charges it through its provider.
#[utoipa::path(
    post, path = "/api/v1/payments", tag = "payments", security(("bearer" = [])),
    request_body = CreatePayment,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the same key and body replay the first outcome")),
    responses(
        (status = 201, description = "Charged", body = PaymentView),
        (status = 202, description = "Accepted, outcome not known yet (status `processing`)", body = PaymentView),
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
    Authenticated(actor): Authenticated,
    headers: HeaderMap,
    body: JsonBody<CreatePayment>,
) -> Result<Response, Problem> {
    let JsonBody {
        value: req,
        fingerprint,
    } = body;
    let idempotency = idempotency(
        &actor,
        &headers,
        req.idempotency_key.as_deref(),
        fingerprint,
    )?;
    let mut errors = Vec::new();
    let customer_id = match req.customer_id.as_deref() {
        None => Some(None),
        Some(c) => field(
            &mut errors,
            "customer_id",
            CustomerId::parse(c)
                .map(Some)
                .map_err(|e| (e.code(), e.to_string())),
        ),
    };
    let currency = field(
        &mut errors,
        "currency",
        Currency::from_code(&req.currency).map_err(|e| ("currency_unknown", e.to_string())),
    );
    let amount = currency.and_then(|c| {
        field(
            &mut errors,
            "amount",
            Money::parse(&req.amount.0, c).map_err(|e| {
                let e = portside_domain::DomainError::from(e);
                (e.code(), e.to_string())
            }),
        )
    });
    let method = match req.payment_method.as_deref() {
        None => Some(PaymentMethod::Card),
        Some(m) => field(
            &mut errors,
            "payment_method",
            m.parse::<PaymentMethod>().map_err(|_| {
                let allowed: Vec<_> = PaymentMethod::ALL.iter().map(|m| m.as_str()).collect();
                (
                    "payment_method_unknown",
                    format!(
                        "unknown payment method {m:?}; use one of {}",
                        allowed.join(", ")
                    ),
                )
            }),
        ),
    };
    let metadata = field(
        &mut errors,
        "metadata",
        Metadata::from_client(req.metadata.unwrap_or_default())
            .map_err(|e| (e.code(), e.to_string())),
    );
    let (Some(customer_id), Some(amount), Some(method), Some(metadata)) =
        (customer_id, amount, method, metadata)
    else {
        return Err(Problem::invalid(errors));
    };
    let reply = payments
        .pay(
            &actor,
            PayCommand {
                customer_id,
                amount,
                method,
                method_token: req.payment_method_token,
                provider: req.provider,
                description: req.description,
                metadata,
                idempotency,
            },
        )
        .await?;
    Ok(charge_response(&reply))
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
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<CreateRefund>,
) -> Result<Response, Problem> {
    let payment_id = payment_id(&id)?;
    let JsonBody {
        value: req,
        fingerprint,
    } = body;
    let idempotency = idempotency(
        &actor,
        &headers,
        req.idempotency_key.as_deref(),
        fingerprint,
    )?;
    let mut errors = Vec::new();
    let currency = match req.currency.as_deref() {
        None => Some(None),
        Some(c) => field(
            &mut errors,
            "currency",
            Currency::from_code(c)
                .map(Some)
                .map_err(|e| ("currency_unknown", e.to_string())),
        ),
    };
    let metadata = field(
        &mut errors,
        "metadata",
        Metadata::from_client(req.metadata.unwrap_or_default())
            .map_err(|e| (e.code(), e.to_string())),
    );
    let (Some(currency), Some(metadata)) = (currency, metadata) else {
        return Err(Problem::invalid(errors));
    };
    let reply = payments
        .refund(
            &actor,
            RefundCommand {
                payment_id,
                amount: req.amount.map(|a| a.0),
                currency,
                reason: req.reason,
                metadata,
                idempotency,
            },
        )
        .await?;
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
        ("customer_id" = Option<String>, Query, description = "Only this customer's payments"),
        ("status" = Option<String>, Query, description = "Only payments in this status"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = PaymentList),
        (status = 400, description = "Invalid or unknown parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "customer_id is not yours", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_payments(
    State(payments): State<Arc<Payments>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Json<PaymentList>, Problem> {
    let customer_id = q
        .customer_id
        .as_deref()
        .map(CustomerId::parse)
        .transpose()
        .map_err(|e| Problem::bad_parameter("customer_id", "invalid_parameter", e.to_string()))?;
    let status = q
        .status
        .as_deref()
        .map(|s| s.parse::<PaymentStatus>())
        .transpose()
        .map_err(|e| Problem::bad_parameter("status", "invalid_parameter", e))?;
    let limit = cursor::limit(q.limit.as_deref())?;
    let after = q
        .cursor
        .as_deref()
        .map(cursor::decode_id)
        .transpose()?
        .map(PaymentId);
    let page = payments
        .list(
            &actor,
            &PaymentFilter {
                customer_id,
                status,
            },
            PageRequest { limit, after },
        )
        .await?;
    Ok(Json(PaymentList {
        data: page.items.iter().map(PaymentView::from).collect(),
        has_more: page.next.is_some(),
        next_cursor: page.next.map(|id| cursor::encode_id(id.0)),
    }))
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

/// Records a field's error and returns its value when it is valid.
pub(crate) fn field<T>(
    errors: &mut Vec<FieldError>,
    name: &str,
    result: Result<T, (&str, String)>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err((code, message)) => {
            errors.push(FieldError {
                field: name.to_owned(),
                code: code.to_owned(),
                message,
            });
            None
        }
    }
}

/// A malformed id cannot name an existing payment: it is a 404 like any unknown id.
fn payment_id(text: &str) -> Result<PaymentId, Problem> {
    Uuid::parse_str(text)
        .map(PaymentId)
        .map_err(|_| AppError::NotFound("payment").into())
}

/// The key from the `Idempotency-Key` header or, for older clients, the body.
/// The idempotency key an operation cannot run without; `what` names the operation.
pub(crate) fn required_idempotency(
    actor: &Actor,
    headers: &HeaderMap,
    body_key: Option<&str>,
    fingerprint: String,
    what: &str,
) -> Result<IdempotentRequest, Problem> {
    idempotency(actor, headers, body_key, fingerprint)?.ok_or_else(|| {
        Problem::bad_parameter(
            "Idempotency-Key",
            "idempotency_key_required",
            format!("{what} needs an Idempotency-Key header"),
        )
    })
}

/// The payment method a body names; a card when it names none.
pub(crate) fn method_or_card(text: Option<&str>) -> Result<PaymentMethod, Problem> {
    match text {
        None => Ok(PaymentMethod::Card),
        Some(m) => m.parse().map_err(|message| {
            Problem::invalid(vec![FieldError {
                field: "payment_method".into(),
                code: "payment_method_unknown".into(),
                message,
            }])
        }),
    }
}

pub(crate) fn idempotency(
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
