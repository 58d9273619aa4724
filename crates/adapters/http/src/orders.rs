//! `/api/v1/orders`: place, read, list, replace lines, ship (admin), cancel, pay. Responses
//! carry `ETag: "<version>"`; a write with `If-Match` naming an older version gets 412.

use portside_kernel::PageRequest;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portside_app::AppError;
use portside_app::orders::OrderFilter;
use portside_app::orders::{IfMatch, Orders, PayOrder, PlaceOrder};
use portside_domain::{Currency, CustomerId, Money, OrderId, OrderItem, OrderState, OrderStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::cursor;
use crate::dto::DecimalText;
use crate::json::{JsonBody, QueryParams};
use crate::payments::{charge_response, field, method_or_card, required_idempotency};
use crate::problem::{FieldError, Problem, ProblemBody};

/// One line of an order request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// The product (1 to 64 visible ASCII characters).
    #[schema(example = "prod-1")]
    pub product_id: String,
    /// Its name (1 to 200 characters).
    #[schema(example = "Laptop stand")]
    pub name: String,
    /// Units, 1 to 10 000.
    #[schema(example = 2)]
    pub quantity: u32,
    /// Price of one unit, decimal, zero or more.
    #[schema(inline)]
    pub unit_price: DecimalText,
    /// Optional; when given it must be the order's currency.
    pub currency: Option<String>,
}

/// `POST /api/v1/orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Who orders: defaults to the caller; another customer only for administrators.
    pub customer_id: Option<String>,
    /// ISO-4217 code of every price.
    #[schema(example = "USD")]
    pub currency: String,
    /// 1 to 100 lines.
    pub items: Vec<ItemInput>,
    /// Refused when present: the total is always computed from the items.
    #[schema(value_type = Option<String>)]
    pub total: Option<serde_json::Value>,
}

/// `PUT /api/v1/orders/{id}`: the new lines (the currency stays).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceItems {
    /// 1 to 100 lines.
    pub items: Vec<ItemInput>,
    /// Refused when present: the total is always computed from the items.
    #[schema(value_type = Option<String>)]
    pub total: Option<serde_json::Value>,
}

/// `POST /api/v1/orders/{id}/pay`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayOrderRequest {
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

/// One line of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    pub product_id: String,
    pub name: String,
    /// Units.
    pub quantity: u32,
    /// Price of one unit.
    pub unit_price: String,
    /// quantity × unit price.
    pub line_total: String,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// Always `order`.
    pub object: &'static str,
    /// Who ordered.
    pub customer_id: String,
    pub items: Vec<ItemView>,
    /// ISO-4217 code.
    pub currency: String,
    /// Sum of the lines, computed.
    #[schema(example = "59.98")]
    pub total: String,
    /// `pending`, `confirmed`, `shipped` or `cancelled`.
    #[schema(value_type = String, example = "pending")]
    pub status: OrderStatus,
    /// The payment started for it, if any.
    pub payment_id: Option<Uuid>,
    /// The version (also the ETag).
    pub version: i64,
    /// When placed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When last changed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&OrderState> for OrderView {
    fn from(o: &OrderState) -> Self {
        OrderView {
            id: o.id.0,
            object: "order",
            customer_id: o.customer_id.as_str().to_owned(),
            items: o
                .items
                .iter()
                .map(|i| ItemView {
                    product_id: i.product_id.clone(),
                    name: i.name.clone(),
                    quantity: i.quantity,
                    unit_price: i.unit_price.to_decimal_string(),
                    line_total: i
                        .line_total()
                        .map(Money::to_decimal_string)
                        .unwrap_or_default(),
                })
                .collect(),
            currency: o.total.currency().code().to_owned(),
            total: o.total.to_decimal_string(),
            status: o.status,
            payment_id: o.payment_id.map(|p| p.0),
            version: o.version,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    /// Newest first.
    pub data: Vec<OrderView>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/orders`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListOrders {
    customer_id: Option<String>,
    status: Option<String>,
    created_after: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn order_id(text: &str) -> Result<OrderId, Problem> {
    Uuid::parse_str(text)
        .map(OrderId)
        .map_err(|_| AppError::NotFound("order").into())
}

/// The precondition an `If-Match` header states (RFC 9110 §13.1.1): `*`, or a list of entity
/// tags. A malformed header is a bad request (400 `if_match_invalid`); a well-formed tag that
/// is not the current version (a weak tag, one from elsewhere, an older version) is not: the
/// use case answers 412.
fn if_match(headers: &HeaderMap) -> Result<IfMatch, Problem> {
    let invalid = || {
        Problem::bad_parameter(
            "If-Match",
            "if_match_invalid",
            "If-Match must be * or a list of entity tags, e.g. \"3\"",
        )
    };
    let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
    if values.peek().is_none() {
        return Ok(IfMatch::Any);
    }
    let mut versions = Vec::new();
    let mut tags = 0;
    for value in values {
        let text = value.to_str().map_err(|_| invalid())?;
        if text.trim() == "*" {
            return Ok(IfMatch::Any);
        }
        for (weak, opaque) in entity_tags(text).ok_or_else(invalid)? {
            tags += 1;
            if let (false, Ok(version)) = (weak, opaque.parse::<i64>()) {
                versions.push(version);
            }
        }
    }
    if tags == 0 {
        return Err(invalid());
    }
    Ok(IfMatch::Versions(versions))
}

/// The entity tags of a list (`#entity-tag`: `W/"x", "y"`), each with whether it is weak and
/// its opaque text; `None` when the list is not well-formed.
fn entity_tags(text: &str) -> Option<Vec<(bool, &str)>> {
    let mut tags = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let weak = rest.starts_with("W/");
        rest = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"')?;
        let end = rest.find('"')?;
        let opaque = &rest[..end];
        // etagc: %x21 / %x23-7E / obs-text; the closing quote is found above.
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        tags.push((weak, opaque));
        rest = rest[end + 1..].trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return None;
        }
    }
}

fn with_etag(status: StatusCode, order: &OrderState) -> Response {
    let mut response = (status, Json(OrderView::from(order))).into_response();
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", order.version)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/api/v1/orders/{}", order.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Parses request lines in the order's currency, naming each bad field.
fn items(
    input: Vec<ItemInput>,
    currency: Currency,
    errors: &mut Vec<FieldError>,
) -> Vec<OrderItem> {
    let mut out = Vec::with_capacity(input.len());
    for (i, item) in input.into_iter().enumerate() {
        if let Some(c) = item.currency.as_deref() {
            match Currency::from_code(c) {
                Ok(c) if c == currency => {}
                Ok(other) => errors.push(FieldError {
                    field: format!("items[{i}].currency"),
                    code: "currency_mismatch".into(),
                    message: format!(
                        "every line must be in the order currency {currency}, not {other}"
                    ),
                }),
                Err(e) => errors.push(FieldError {
                    field: format!("items[{i}].currency"),
                    code: "currency_unknown".into(),
                    message: e.to_string(),
                }),
            }
        }
        match Money::parse(&item.unit_price.0, currency) {
            Ok(price) => out.push(OrderItem {
                product_id: item.product_id,
                name: item.name,
                quantity: item.quantity,
                unit_price: price,
            }),
            Err(e) => {
                let e = portside_domain::DomainError::from(e);
                errors.push(FieldError {
                    field: format!("items[{i}].unit_price"),
                    code: e.code().into(),
                    message: e.to_string(),
                });
            }
        }
    }
    out
}

fn refuse_total(total: &Option<serde_json::Value>, errors: &mut Vec<FieldError>) {
    if total.is_some() {
        errors.push(FieldError {
            field: "total".into(),
            code: "total_not_accepted".into(),
            message: "the total is computed from the items; do not send it".into(),
        });
    }
}

/// Places an order.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), request_body = CreateOrder,
    responses(
        (status = 201, description = "Placed (ETag: the version)", body = OrderView),
        (status = 403, description = "customer_id is not yours", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "No items, bad quantity or price, mixed currencies, a total sent", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn place_order(
    State(orders): State<Arc<Orders>>,
    Authenticated(actor): Authenticated,
    body: JsonBody<CreateOrder>,
) -> Result<Response, Problem> {
    let req = body.value;
    let mut errors = Vec::new();
    refuse_total(&req.total, &mut errors);
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
    let lines = currency.map(|c| items(req.items, c, &mut errors));
    let (Some(customer_id), Some(currency), Some(lines), true) =
        (customer_id, currency, lines, errors.is_empty())
    else {
        return Err(Problem::invalid(errors));
    };
    let order = orders
        .place(
            &actor,
            PlaceOrder {
                customer_id,
                currency,
                items: lines,
            },
        )
        .await?;
    Ok(with_etag(StatusCode::CREATED, &order))
}

/// One order (yours, or anyone's for administrators).
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn get_order(
    State(orders): State<Arc<Orders>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let order = orders.get(&actor, order_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, &order))
}

/// Orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])),
    params(
        ("customer_id" = Option<String>, Query, description = "Another customer's id for administrators only"),
        ("status" = Option<String>, Query, description = "pending, confirmed, shipped or cancelled"),
        ("created_after" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("limit" = Option<u32>, Query, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = OrderList), (status = 400, body = ProblemBody, content_type = "application/problem+json"), (status = 403, description = "customer_id is not yours", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn list_orders(
    State(orders): State<Arc<Orders>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<ListOrders>,
) -> Result<Json<OrderList>, Problem> {
    let customer_id = q
        .customer_id
        .as_deref()
        .map(CustomerId::parse)
        .transpose()
        .map_err(|e| Problem::bad_parameter("customer_id", "invalid_parameter", e.to_string()))?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<OrderStatus>)
        .transpose()
        .map_err(|e| Problem::bad_parameter("status", "invalid_parameter", e))?;
    let created_after = q
        .created_after
        .as_deref()
        .map(|t| OffsetDateTime::parse(t, &Rfc3339))
        .transpose()
        .map_err(|_| {
            Problem::bad_parameter(
                "created_after",
                "invalid_parameter",
                "created_after must be an RFC 3339 time",
            )
        })?;
    let limit = cursor::limit(q.limit.as_deref())?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| cursor::decode_position('o', c))
        .transpose()?
        .map(|(at, id)| (at, OrderId(id)));
    let page = orders
        .list(
            &actor,
            OrderFilter {
                customer_id,
                status,
                created_after,
            },
            PageRequest { limit, after },
        )
        .await?;
    Ok(Json(OrderList {
        data: page.items.iter().map(OrderView::from).collect(),
        has_more: page.next.is_some(),
        next_cursor: page
            .next
            .map(|(at, id)| cursor::encode_position('o', at, id.0)),
    }))
}

/// Replaces the lines of a pending, unpaid order.
#[utoipa::path(put, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when the order changed since")),
    request_body = ReplaceItems,
    responses(
        (status = 200, body = OrderView),
        (status = 409, description = "Not pending, or being paid", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn replace_items(
    State(orders): State<Arc<Orders>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<ReplaceItems>,
) -> Result<Response, Problem> {
    let id = order_id(&id)?;
    let expected = if_match(&headers)?;
    let current = orders.get(&actor, id).await?;
    let req = body.value;
    let mut errors = Vec::new();
    refuse_total(&req.total, &mut errors);
    let lines = items(req.items, current.total.currency(), &mut errors);
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let order = orders.replace_items(&actor, id, lines, expected).await?;
    Ok(with_etag(StatusCode::OK, &order))
}

/// Ships a confirmed order (administrators only).
#[utoipa::path(post, path = "/api/v1/orders/{id}/ship", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, body = OrderView),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not confirmed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn ship_order(
    State(orders): State<Arc<Orders>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let order = orders
        .ship(&actor, order_id(&id)?, if_match(&headers)?)
        .await?;
    Ok(with_etag(StatusCode::OK, &order))
}

/// Cancels a pending or confirmed order; 409 once shipped.
#[utoipa::path(delete, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "Cancelled", body = OrderView),
        (status = 409, description = "Shipped or already cancelled", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn cancel_order(
    State(orders): State<Arc<Orders>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let order = orders
        .cancel(&actor, order_id(&id)?, if_match(&headers)?)
        .await?;
    Ok(with_etag(StatusCode::OK, &order))
}

/// Pays the order's total; the order becomes confirmed when the payment's success event is
/// handled.
#[utoipa::path(post, path = "/api/v1/orders/{id}/pay", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, description = "Required"), ("If-Match" = Option<String>, Header)),
    request_body = PayOrderRequest,
    responses(
        (status = 201, description = "Charged; confirmation follows", body = crate::dto::PaymentView),
        (status = 202, description = "Outcome pending; retry with the same key", body = crate::dto::PaymentView),
        (status = 402, description = "Declined; the order stays pending and payable", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Cancelled, already paid, or a payment under way", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn pay_order(
    State(orders): State<Arc<Orders>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<PayOrderRequest>,
) -> Result<Response, Problem> {
    let id = order_id(&id)?;
    let expected = if_match(&headers)?;
    let JsonBody {
        value: req,
        fingerprint,
    } = body;
    let key = required_idempotency(
        &actor,
        &headers,
        req.idempotency_key.as_deref(),
        fingerprint,
        "paying an order",
    )?;
    let method = method_or_card(req.payment_method.as_deref())?;
    let reply = orders
        .pay(
            &actor,
            id,
            PayOrder {
                method,
                method_token: req.payment_method_token,
                provider: req.provider,
                idempotency: key,
            },
            expected,
        )
        .await?;
    Ok(charge_response(&reply))
}
