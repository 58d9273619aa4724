//! The JSON shapes of the orders API and their conversion into the use cases' commands.

use portside_app::orders::{LineRequest, OrderFilter, PayOrder, PlaceOrder};
use portside_app::payments::idempotency::IdempotentRequest;
use portside_domain::{
    Currency, CustomerId, Money, OrderRefund, OrderState, OrderStatus, OrderTransition,
    RefundStatus, Sku, TransitionCause,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::idempotency::BodyKey;
use crate::json::{instant, param, whole};
use crate::payments::{DecimalText, FailureView, method_or_card};
use crate::problem::{FieldError, Problem, field, refusal};
use crate::timestamp::Timestamp;

/// One line of an order request: a product of the catalog and a quantity. The unit price and
/// name are copied from the catalog when the order is placed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// The product's SKU (case and surrounding spaces ignored). One SKU per order: put the
    /// whole quantity on one line (a repeated SKU is refused with `sku_duplicate`).
    #[schema(example = "prod-1")]
    pub sku: Option<String>,
    /// The same as `sku` (seed 003's name for it); give one of the two.
    pub product_id: Option<String>,
    /// Ignored: the catalog's name is copied.
    #[allow(dead_code)] // accepted, as seed 003 sends it, and never used
    pub name: Option<String>,
    /// Units, 1 to 10 000.
    #[schema(example = 2, minimum = 1, maximum = 10_000)]
    #[serde(deserialize_with = "whole")]
    pub quantity: u32,
    /// The unit price you expect to pay, as the catalog lists it. It never sets the price:
    /// when it is not the current price the line is refused with `price_mismatch`, naming it.
    #[schema(inline)]
    pub price: Option<DecimalText>,
    /// The same as `price`.
    #[schema(inline)]
    pub unit_price: Option<DecimalText>,
    /// Administrators only: the unit price instead of the catalog's, recorded on the line.
    #[schema(inline)]
    pub price_override: Option<DecimalText>,
    /// Optional; when given it must be the order's currency.
    pub currency: Option<String>,
}

/// `POST /api/v1/orders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Who orders: defaults to the caller; another customer only for administrators.
    pub customer_id: Option<String>,
    /// ISO-4217 code of every price; the configured `ORDER_CURRENCY` (USD by default) when
    /// absent.
    #[schema(example = "USD")]
    pub currency: Option<String>,
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
    /// Provider token of the payment method, e.g. `tok_visa`; required unless
    /// `payment_method` is `wallet` (the balance of your wallet pays).
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

/// One line of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    /// The product's SKU.
    pub sku: String,
    /// The same as `sku`.
    pub product_id: String,
    pub name: String,
    /// Units.
    pub quantity: u32,
    /// Price of one unit.
    pub unit_price: String,
    /// quantity × unit price.
    pub line_total: String,
    /// True when an administrator set the price instead of the catalog.
    pub price_overridden: bool,
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
    /// Each status it reached, oldest first (empty for orders placed before it was kept).
    pub history: Vec<TransitionView>,
    /// The refund its cancellation owes, when it was cancelled with a payment.
    pub refund: Option<OrderRefundView>,
    /// The version (also the ETag).
    pub version: i64,
    /// When placed (RFC 3339).
    pub created_at: Timestamp,
    /// When last changed (RFC 3339).
    pub updated_at: Timestamp,
}

/// One status an order reached.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionView {
    #[schema(value_type = String, example = "cancelled")]
    pub status: OrderStatus,
    /// When (RFC 3339).
    pub at: Timestamp,
    /// `placed`, `paid`, `shipped`, `cancelled_by_customer`, `cancelled_by_administrator` or
    /// `expired`.
    #[schema(value_type = String, example = "cancelled_by_customer")]
    pub cause: TransitionCause,
}

impl From<&OrderTransition> for TransitionView {
    fn from(t: &OrderTransition) -> Self {
        TransitionView {
            status: t.status,
            at: t.at.into(),
            cause: t.cause,
        }
    }
}

/// The refund a cancelled order's payment owes: made by the `order-refunds` consumer group once
/// the payment has succeeded.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderRefundView {
    pub payment_id: Uuid,
    /// `due` (waiting for the payment to succeed, or about to be asked for), `pending` (asked
    /// for; the provider's outcome is not known yet), `succeeded` or `failed` (an administrator
    /// may retry it: `POST /api/v1/orders/{id}/refund-retries`).
    #[schema(value_type = String, example = "succeeded")]
    pub status: RefundStatus,
    /// The refund transaction, once asked for.
    pub refund_id: Option<Uuid>,
    /// What was refunded (or asked for), in the order's currency.
    #[schema(example = "59.98")]
    pub amount: Option<String>,
    /// Why the provider refused it.
    pub failure: Option<FailureView>,
    /// 1, and one more for each retry.
    pub attempt: u32,
    /// When it last changed (RFC 3339).
    pub updated_at: Timestamp,
}

impl OrderRefundView {
    fn of(r: &OrderRefund, currency: Currency) -> Self {
        OrderRefundView {
            payment_id: r.payment_id.0,
            status: r.status,
            refund_id: r.transaction_id.map(|t| t.0),
            amount: r
                .amount_minor
                .map(|m| Money::from_minor(m, currency).to_decimal_string()),
            failure: r.failure.as_ref().map(FailureView::from),
            attempt: r.attempt,
            updated_at: r.updated_at.into(),
        }
    }
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
                    sku: i.product_id.clone(),
                    product_id: i.product_id.clone(),
                    name: i.name.clone(),
                    quantity: i.quantity,
                    unit_price: i.unit_price.to_decimal_string(),
                    line_total: i
                        .line_total()
                        .map(Money::to_decimal_string)
                        .unwrap_or_default(),
                    price_overridden: i.price_overridden,
                })
                .collect(),
            currency: o.total.currency().code().to_owned(),
            total: o.total.to_decimal_string(),
            status: o.status,
            payment_id: o.payment_id.map(|p| p.0),
            history: o.history.iter().map(TransitionView::from).collect(),
            refund: o
                .refund
                .as_ref()
                .map(|r| OrderRefundView::of(r, o.total.currency())),
            version: o.version,
            created_at: o.created_at.into(),
            updated_at: o.updated_at.into(),
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

/// Placing takes its key from the `Idempotency-Key` header only.
impl BodyKey for CreateOrder {
    fn body_key(&self) -> Option<&str> {
        None
    }
}

impl CreateOrder {
    /// The command this body asks for; a 422 naming every bad field at once.
    pub fn into_command(
        self,
        idempotency: Option<IdempotentRequest>,
        default_currency: Currency,
    ) -> Result<PlaceOrder, Problem> {
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
        let currency = match self.currency.as_deref() {
            None => Some(default_currency),
            Some(code) => field(
                &mut errors,
                "currency",
                Currency::from_code(code).map_err(|e| ("currency_unknown", e.to_string())),
            ),
        };
        let lines = currency.map(|c| lines(self.items, c, &mut errors));
        let (Some(customer_id), Some(currency), Some(lines), true) =
            (customer_id, currency, lines, errors.is_empty())
        else {
            return Err(Problem::invalid(errors));
        };
        Ok(PlaceOrder {
            customer_id,
            currency,
            lines,
            idempotency,
        })
    }
}

impl ReplaceItems {
    /// The new lines in the order's `currency`; a 422 naming every bad field at once.
    pub fn into_lines(self, currency: Currency) -> Result<Vec<LineRequest>, Problem> {
        let mut errors = Vec::new();
        refuse_total(&self.total, &mut errors);
        let lines = lines(self.items, currency, &mut errors);
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
            method_token: self.payment_method_token.unwrap_or_default(),
            provider: self.provider,
            idempotency,
        })
    }
}

impl ListOrders {
    /// The filter these parameters name; a 400 naming the first bad one.
    pub fn filter(&self) -> Result<OrderFilter, Problem> {
        let customer_id = param(
            "customer_id",
            self.customer_id.as_deref(),
            CustomerId::parse,
        )?;
        let status = param("status", self.status.as_deref(), str::parse::<OrderStatus>)?;
        let created_after = instant("created_after", self.created_after.as_deref())?;
        Ok(OrderFilter {
            customer_id,
            status,
            created_after,
            created_before: None,
        })
    }
}

/// Parses request lines in the order's currency, naming each bad field.
fn lines(
    input: Vec<ItemInput>,
    currency: Currency,
    errors: &mut Vec<FieldError>,
) -> Vec<LineRequest> {
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
        let sku = match (item.sku.as_deref(), item.product_id.as_deref()) {
            (Some(a), Some(b)) if Sku::parse(a).ok() != Sku::parse(b).ok() => Err((
                "sku_invalid",
                "sku and product_id name the same product; give one of them".to_owned(),
            )),
            (Some(text), _) | (None, Some(text)) => Sku::parse(text).map_err(refusal),
            (None, None) => Err(("sku_invalid", "sku (or product_id) is required".to_owned())),
        };
        let sku = field(errors, &format!("items[{i}].sku"), sku);
        let mut money = |name: &str, text: Option<DecimalText>| {
            text.and_then(|t| {
                let parsed = Money::parse(&t.0, currency).map_err(refusal);
                field(errors, &format!("items[{i}].{name}"), parsed)
            })
        };
        let expected_price = match (item.price, item.unit_price) {
            (Some(p), _) => money("price", Some(p)),
            (None, u) => money("unit_price", u),
        };
        let price_override = money("price_override", item.price_override);
        if let Some(sku) = sku {
            out.push(LineRequest {
                sku,
                quantity: item.quantity,
                expected_price,
                price_override,
            });
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
