//! `/api/v1/orders`: place, read, list, replace lines, ship (admin), cancel, pay, retry a
//! cancellation's refused refund (admin). Responses
//! carry `ETag: "<version>"`; a write with `If-Match` naming another version gets 412.

mod dto;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use portside_app::AppError;
use portside_app::orders::Orders;
use portside_domain::{OrderId, OrderState};
use uuid::Uuid;

pub(crate) use dto::{
    CreateOrder, ItemInput, ItemView, OrderRefundView, OrderView, PayOrderRequest, ReplaceItems,
    TransitionView,
};

use crate::ApiState;
use crate::auth::Authenticated;
use crate::idempotency::Keyed;
use crate::if_match::{self, if_match};
use crate::json::{JsonBody, QueryParams};
use crate::page::{self, ListBody};
use crate::payments::{REPLAYED, charge_response};
use crate::problem::{Problem, ProblemBody};
use dto::ListOrders;

/// The routes of the orders context.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/orders", post(place_order).get(list_orders))
        .route(
            "/api/v1/orders/{id}",
            get(get_order).put(replace_items).delete(cancel_order),
        )
        .route("/api/v1/orders/{id}/ship", post(ship_order))
        .route("/api/v1/orders/{id}/pay", post(pay_order))
        .route("/api/v1/orders/{id}/refund-retries", post(retry_refund))
}

/// A malformed id cannot name an existing order: it is a 404 like any unknown id.
pub(crate) fn order_id(text: &str) -> Result<OrderId, Problem> {
    Uuid::parse_str(text)
        .map(OrderId)
        .map_err(|_| AppError::NotFound("order").into())
}

fn with_etag(status: StatusCode, order: &OrderState) -> Response {
    if_match::with_etag(status, OrderView::from(order), order.version, || {
        format!("/api/v1/orders/{}", order.id)
    })
}

/// Places an order. With an `Idempotency-Key`, a retry of the same request answers the order
/// placed first (`Idempotent-Replayed: true`, as it stands now) and reserves nothing again; the
/// key stays with the order.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes placing safe to retry; 1 to 255 visible ASCII characters")),
    responses(
        (status = 201, description = "Placed (ETag: the version), or replayed", body = OrderView),
        (status = 403, description = "customer_id is not yours", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not enough stock for a line (`insufficient_stock`, naming `items[i].quantity`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "No items, a bad quantity, an unknown (`product_unknown`) or archived (`product_archived`) product, no price in the currency (`price_unavailable`), an expected price that is not the catalog's (`price_mismatch`), a repeated SKU (`sku_duplicate`), mixed currencies, a total sent", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn place_order(
    State(orders): State<Arc<Orders>>,
    keyed: Keyed<CreateOrder>,
) -> Result<Response, Problem> {
    let command = keyed
        .body
        .into_command(keyed.key, orders.default_currency())?;
    let placed = orders.place_keyed(&keyed.actor, command).await?;
    let mut response = with_etag(StatusCode::CREATED, &placed.order);
    if placed.replayed {
        response
            .headers_mut()
            .insert(REPLAYED, axum::http::HeaderValue::from_static("true"));
    }
    Ok(response)
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
        ("customer_id" = Option<String>, Query, min_length = 1, max_length = 64, pattern = r"^[!-~]+$", description = "Another customer's id for administrators only"),
        ("status" = Option<String>, Query, description = "pending, confirmed, shipped or cancelled"),
        ("created_after" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = ListBody<OrderView>), (status = 400, body = ProblemBody, content_type = "application/problem+json"), (status = 403, description = "customer_id is not yours", body = ProblemBody, content_type = "application/problem+json")))]
pub async fn list_orders(
    State(orders): State<Arc<Orders>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<ListOrders>,
) -> Result<Json<ListBody<OrderView>>, Problem> {
    let filter = q.filter()?;
    let request = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        page::decode_position('o', c).map(|(at, id)| (at, OrderId(id)))
    })?;
    let found = orders.list(&actor, filter, request).await?;
    Ok(Json(ListBody::of(
        found,
        |o| OrderView::from(o),
        |(at, id)| page::encode_position('o', at, id.0),
    )))
}

/// Replaces the lines of a pending, unpaid order.
#[utoipa::path(put, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, nullable = false, description = "The ETag you read; 412 when the order changed since")),
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
    let lines = body.value.into_lines(current.total.currency())?;
    let order = orders.replace_items(&actor, id, lines, expected).await?;
    Ok(with_etag(StatusCode::OK, &order))
}

/// Ships a confirmed order (administrators only).
#[utoipa::path(post, path = "/api/v1/orders/{id}/ship", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, nullable = false)),
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

/// Cancels a pending or confirmed order; 409 `order_shipped` once shipped. A payment it has
/// (succeeded, or still under way) is refunded in full afterwards, by the `order-refunds`
/// consumer group: `refund` on the order follows it.
#[utoipa::path(delete, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, nullable = false)),
    responses(
        (status = 200, description = "Cancelled", body = OrderView),
        (status = 409, description = "Shipped (`order_shipped`) or already cancelled", body = ProblemBody, content_type = "application/problem+json"),
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

/// Asks again for the refund of a cancelled order that the provider refused (administrators
/// only): a new attempt with an idempotency key of its own, made by the `order-refunds` group.
#[utoipa::path(post, path = "/api/v1/orders/{id}/refund-retries", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, nullable = false)),
    responses(
        (status = 202, description = "The refund is due again", body = OrderView),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The order has no refused refund (`order_not_modifiable`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn retry_refund(
    State(orders): State<Arc<Orders>>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let order = orders
        .retry_refund(&actor, order_id(&id)?, if_match(&headers)?)
        .await?;
    Ok(with_etag(StatusCode::ACCEPTED, &order))
}

/// Pays the order's total; the order becomes confirmed when the payment's success event is
/// handled.
#[utoipa::path(post, path = "/api/v1/orders/{id}/pay", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "Required, here or as `idempotency_key` in the body (400 `idempotency_key_required` without one)"), ("If-Match" = Option<String>, Header, nullable = false)),
    request_body = PayOrderRequest,
    responses(
        (status = 201, description = "Charged; confirmation follows", body = crate::payments::PaymentView),
        (status = 202, description = "Outcome pending; retry with the same key", body = crate::payments::PaymentView),
        (status = 402, description = "Declined; the order stays pending and payable", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Cancelled, already paid, or a payment under way", body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "The order changed since the ETag sent in If-Match", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn pay_order(
    State(orders): State<Arc<Orders>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    keyed: Keyed<PayOrderRequest>,
) -> Result<Response, Problem> {
    let id = order_id(&id)?;
    let expected = if_match(&headers)?;
    let (actor, body, key) = keyed.required("paying an order")?;
    let reply = orders
        .pay(&actor, id, body.into_command(key)?, expected)
        .await?;
    Ok(charge_response(&reply))
}
