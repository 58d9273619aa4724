//! `/api/v1/products`: the catalog (administrators create, change, archive; everyone reads
//! the active products) and the stock of each product (administrators). Responses carry
//! `ETag: "<version>"`; a write with `If-Match` naming another version gets 412.

mod dto;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use portside_app::AppError;
use portside_app::catalog::{Catalog, CatalogEntry};
use portside_domain::{Actor, Sku};

pub(crate) use dto::{
    AdjustStock, CreateProduct, MovementView, ProductView, StockInput, StockView, UpdateProduct,
};

use crate::ApiState;
use crate::auth::Authenticated;
use crate::if_match::{self, if_match};
use crate::json::{JsonBody, QueryParams};
use crate::page::{self, ListBody};
use crate::problem::{Problem, ProblemBody};
use dto::ListProducts;

/// The routes of the catalog context.
pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/products", post(create_product).get(list_products))
        .route(
            "/api/v1/products/{sku}",
            get(get_product)
                .patch(update_product)
                .delete(archive_product),
        )
        .route(
            "/api/v1/products/{sku}/stock/adjustments",
            post(adjust_stock),
        )
        .route(
            "/api/v1/products/{sku}/stock/movements",
            get(list_movements),
        )
}

/// A SKU in a path; one that cannot be a SKU names no product.
fn sku(text: &str) -> Result<Sku, Problem> {
    Sku::parse(text).map_err(|_| AppError::NotFound("product").into())
}

fn with_etag(status: StatusCode, actor: &Actor, product: &CatalogEntry) -> Response {
    let p = &product.product;
    let view = ProductView::of(product, actor.is_admin());
    if_match::with_etag(status, view, p.version, || {
        format!("/api/v1/products/{}", p.sku)
    })
}

/// Creates a product (administrators).
#[utoipa::path(post, path = "/api/v1/products", tag = "catalog", security(("bearer" = [])), request_body = CreateProduct,
    responses(
        (status = 201, description = "Created (ETag: the version)", body = ProductView),
        (status = 403, description = "Not an administrator", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The SKU exists (`sku_taken`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Bad SKU, name, price (`amount_too_precise`, `currency_unknown`) or stock", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create_product(
    State(catalog): State<Arc<Catalog>>,
    Authenticated(actor): Authenticated,
    body: JsonBody<CreateProduct>,
) -> Result<Response, Problem> {
    let made = catalog.create(&actor, body.value.into_command()?).await?;
    Ok(with_etag(StatusCode::CREATED, &actor, &made))
}

/// Products by SKU: the active ones; administrators may ask for archived ones.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", security(("bearer" = [])),
    params(
        ("active" = Option<bool>, Query, description = "Administrators: `false` lists archived products"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = ListBody<ProductView>), (status = 400, body = ProblemBody, content_type = "application/problem+json"), (status = 403, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn list_products(
    State(catalog): State<Arc<Catalog>>,
    Authenticated(actor): Authenticated,
    QueryParams(q): QueryParams<ListProducts>,
) -> Result<Json<ListBody<ProductView>>, Problem> {
    let filter = q.filter()?;
    let request = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        page::decode_key('p', c).and_then(|k| sku(&k))
    })?;
    let found = catalog.list(&actor, filter, request).await?;
    Ok(Json(ListBody::of(
        found,
        |p| {
            ProductView::of(
                &CatalogEntry {
                    product: p.clone(),
                    stock: None,
                },
                false,
            )
        },
        |k| page::encode_key('p', k.as_str()),
    )))
}

/// One product (archived ones for administrators only).
#[utoipa::path(get, path = "/api/v1/products/{sku}", tag = "catalog", security(("bearer" = [])), params(("sku" = String, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn get_product(
    State(catalog): State<Arc<Catalog>>,
    Authenticated(actor): Authenticated,
    Path(text): Path<String>,
) -> Result<Response, Problem> {
    let found = catalog.get(&actor, &sku(&text)?).await?;
    Ok(with_etag(StatusCode::OK, &actor, &found))
}

/// Changes a product (administrators); the SKU never changes.
#[utoipa::path(patch, path = "/api/v1/products/{sku}", tag = "catalog", security(("bearer" = [])),
    params(("sku" = String, Path), ("If-Match" = Option<String>, Header, nullable = false, description = "The ETag you read; 412 when the product changed since")),
    request_body = UpdateProduct,
    responses(
        (status = 200, body = ProductView),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update_product(
    State(catalog): State<Arc<Catalog>>,
    Authenticated(actor): Authenticated,
    Path(text): Path<String>,
    headers: HeaderMap,
    body: JsonBody<UpdateProduct>,
) -> Result<Response, Problem> {
    let expected = if_match(&headers)?;
    let changes = body.value.into_changes()?;
    let changed = catalog
        .update(&actor, &sku(&text)?, changes, expected)
        .await?;
    Ok(with_etag(StatusCode::OK, &actor, &changed))
}

/// Archives a product (administrators): no longer listed for customers nor orderable; orders
/// already placed keep it.
#[utoipa::path(delete, path = "/api/v1/products/{sku}", tag = "catalog", security(("bearer" = [])),
    params(("sku" = String, Path), ("If-Match" = Option<String>, Header, nullable = false)),
    responses(
        (status = 200, description = "Archived", body = ProductView),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 412, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn archive_product(
    State(catalog): State<Arc<Catalog>>,
    Authenticated(actor): Authenticated,
    Path(text): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let archived = catalog
        .archive(&actor, &sku(&text)?, if_match(&headers)?)
        .await?;
    Ok(with_etag(StatusCode::OK, &actor, &archived))
}

/// Adds or removes units with a reason, or sets the low-stock threshold (administrators). A
/// product not tracked yet starts being tracked.
#[utoipa::path(post, path = "/api/v1/products/{sku}/stock/adjustments", tag = "catalog", security(("bearer" = [])),
    params(("sku" = String, Path)),
    request_body = AdjustStock,
    responses(
        (status = 200, description = "The product with its stock after the adjustment", body = ProductView),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "On hand would fall below what is reserved (`stock_below_reserved`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Zero quantity, a missing reason, a bad threshold (`stock_invalid`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn adjust_stock(
    State(catalog): State<Arc<Catalog>>,
    Authenticated(actor): Authenticated,
    Path(text): Path<String>,
    body: JsonBody<AdjustStock>,
) -> Result<Response, Problem> {
    let adjusted = catalog
        .adjust_stock(&actor, &sku(&text)?, body.value.into_adjustment())
        .await?;
    Ok(with_etag(StatusCode::OK, &actor, &adjusted))
}

/// A product's stock movements, newest first (administrators).
#[utoipa::path(get, path = "/api/v1/products/{sku}/stock/movements", tag = "catalog", security(("bearer" = [])),
    params(
        ("sku" = String, Path),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = ListBody<MovementView>), (status = 403, body = ProblemBody, content_type = "application/problem+json"), (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn list_movements(
    State(catalog): State<Arc<Catalog>>,
    Authenticated(actor): Authenticated,
    Path(text): Path<String>,
    QueryParams(q): QueryParams<page::PageQuery>,
) -> Result<Json<ListBody<MovementView>>, Problem> {
    let request = page::request(q.limit.as_deref(), q.cursor.as_deref(), |c| {
        page::decode_key('m', c).and_then(|k| {
            k.parse::<i64>().map_err(|_| {
                Problem::bad_parameter(
                    "cursor",
                    "invalid_parameter",
                    "cursor is not a value this API returned as next_cursor",
                )
            })
        })
    })?;
    let found = catalog.movements(&actor, &sku(&text)?, request).await?;
    Ok(Json(ListBody::of(
        found,
        |m| MovementView::from(m),
        |n| page::encode_key('m', &n.to_string()),
    )))
}
