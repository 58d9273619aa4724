//! The JSON shapes of the orders API and their conversion into the use cases' commands.

use portside_app::orders::{OrderFilter, PayOrder, PlaceOrder};
use portside_app::payments::idempotency::IdempotentRequest;
use portside_domain::{Currency, CustomerId, Money, OrderItem, OrderState, OrderStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::idempotency::BodyKey;
use crate::payments::{DecimalText, method_or_card};
use crate::problem::{FieldError, Problem, field, refusal};

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

/// Query of `GET /api/v1/orders`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListOrders {
    customer_id: Option<String>,
    status: Option<String>,
    created_after: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl CreateOrder {
    /// The command this body asks for; a 422 naming every bad field at once.
    pub fn into_command(self) -> Result<PlaceOrder, Problem> {
        let mut errors = Vec::new();
        refuse_total(&self.total, &mut errors);
        let customer_id = match self.customer_id.as_deref() {
            None => Some(None),
            Some(c) => field(
                &mut errors,
                "customer_id",
                CustomerId::parse(c).map(Some).map_err(refusal),
            ),
        };
        let currency = field(
            &mut errors,
            "currency",
            Currency::from_code(&self.currency).map_err(|e| ("currency_unknown", e.to_string())),
        );
        let lines = currency.map(|c| items(self.items, c, &mut errors));
        let (Some(customer_id), Some(currency), Some(items), true) =
            (customer_id, currency, lines, errors.is_empty())
        else {
            return Err(Problem::invalid(errors));
        };
        Ok(PlaceOrder {
            customer_id,
            currency,
            items,
        })
    }
}

impl ReplaceItems {
    /// The new lines in the order's `currency`; a 422 naming every bad field at once.
    pub fn into_items(self, currency: Currency) -> Result<Vec<OrderItem>, Problem> {
        let mut errors = Vec::new();
        refuse_total(&self.total, &mut errors);
        let lines = items(self.items, currency, &mut errors);
        if errors.is_empty() {
            Ok(lines)
        } else {
            Err(Problem::invalid(errors))
        }
    }
}

impl BodyKey for PayOrderRequest {
    fn body_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

impl PayOrderRequest {
    /// The command this body asks for.
    pub fn into_command(self, idempotency: IdempotentRequest) -> Result<PayOrder, Problem> {
        Ok(PayOrder {
            method: method_or_card(self.payment_method.as_deref())?,
            method_token: self.payment_method_token,
            provider: self.provider,
            idempotency,
        })
    }
}

impl ListOrders {
    /// The filter these parameters name; a 400 naming the first bad one.
    pub fn filter(&self) -> Result<OrderFilter, Problem> {
        let customer_id = self
            .customer_id
            .as_deref()
            .map(CustomerId::parse)
            .transpose()
            .map_err(|e| {
                Problem::bad_parameter("customer_id", "invalid_parameter", e.to_string())
            })?;
        let status = self
            .status
            .as_deref()
            .map(str::parse::<OrderStatus>)
            .transpose()
            .map_err(|e| Problem::bad_parameter("status", "invalid_parameter", e))?;
        let created_after = self
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
        Ok(OrderFilter {
            customer_id,
            status,
            created_after,
        })
    }
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
            Err(e) => errors.push(FieldError::refused(
                format!("items[{i}].unit_price"),
                &e.into(),
            )),
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
