//! Rows as the tables hold them, and their conversion to and from the domain.

use portside_app::payments::idempotency::IdempotencyRecord;
use portside_app::users::RefreshToken;
use std::collections::BTreeMap;

use portside_domain::routing::Routing;
use portside_domain::{
    Currency, CustomerId, Email, Failure, Message, MessageBody, MessageId, Metadata, Money,
    MovementKind, OrderId, OrderItem, OrderState, PaymentId, PaymentState, Prices, ProductDetails,
    ProductState, Sku, StockMovement, StockState, Transaction, TransactionId, TransactionKind,
    TransactionStatus, UserId, UserName, UserState,
};
use portside_domain::{OrderRefund, OrderTransition};
use portside_events::Envelope;
use portside_kernel::StoreError;
use serde_json::Value;
use sqlx::types::Json;

use crate::types::{DbId, DbTime};

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("stored {what} is invalid: {detail}"))
}

fn failure(
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
) -> Option<Failure> {
    code.map(|code| Failure {
        code,
        decline_code,
        message: message.unwrap_or_default(),
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct PaymentRow {
    id: DbId,
    customer_id: String,
    amount_minor: i64,
    currency: String,
    payment_method: String,
    payment_method_token: String,
    provider: String,
    status: String,
    refunded_minor: i64,
    refund_pending_minor: i64,
    provider_reference: Option<String>,
    failure_code: Option<String>,
    failure_decline_code: Option<String>,
    failure_message: Option<String>,
    description: Option<String>,
    metadata: Json<Metadata>,
    version: i64,
    event_sequence: i64,
    created_at: DbTime,
    updated_at: DbTime,
    routing: Option<Json<Routing>>,
}

impl TryFrom<PaymentRow> for PaymentState {
    type Error = StoreError;
    fn try_from(r: PaymentRow) -> Result<Self, StoreError> {
        let currency = Currency::from_code(&r.currency).map_err(|e| corrupt("currency", e))?;
        Ok(PaymentState {
            id: PaymentId(r.id.0),
            customer_id: CustomerId::parse(&r.customer_id)
                .map_err(|e| corrupt("customer_id", e))?,
            amount: Money::from_minor(r.amount_minor, currency),
            method: r
                .payment_method
                .parse()
                .map_err(|e| corrupt("payment_method", e))?,
            method_token: r.payment_method_token,
            provider: r.provider,
            status: r.status.parse().map_err(|e| corrupt("status", e))?,
            refunded_minor: r.refunded_minor,
            refund_pending_minor: r.refund_pending_minor,
            provider_reference: r.provider_reference,
            failure: failure(r.failure_code, r.failure_decline_code, r.failure_message),
            description: r.description,
            metadata: r.metadata.0,
            routing: r.routing.map(|r| r.0),
            version: r.version,
            event_sequence: r.event_sequence,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TransactionRow {
    id: DbId,
    payment_id: DbId,
    kind: String,
    amount_minor: i64,
    currency: String,
    status: String,
    provider_key: String,
    provider_reference: Option<String>,
    failure_code: Option<String>,
    failure_decline_code: Option<String>,
    failure_message: Option<String>,
    reason: Option<String>,
    metadata: Json<Metadata>,
    created_at: DbTime,
    settled_at: Option<DbTime>,
}

pub(crate) fn kind_from_str(s: &str) -> Result<TransactionKind, StoreError> {
    match s {
        "charge" => Ok(TransactionKind::Charge),
        "refund" => Ok(TransactionKind::Refund),
        other => Err(corrupt("transaction kind", other)),
    }
}

pub(crate) fn status_from_str(s: &str) -> Result<TransactionStatus, StoreError> {
    match s {
        "pending" => Ok(TransactionStatus::Pending),
        "succeeded" => Ok(TransactionStatus::Succeeded),
        "failed" => Ok(TransactionStatus::Failed),
        other => Err(corrupt("transaction status", other)),
    }
}

impl TryFrom<TransactionRow> for Transaction {
    type Error = StoreError;
    fn try_from(r: TransactionRow) -> Result<Self, StoreError> {
        let currency = Currency::from_code(&r.currency).map_err(|e| corrupt("currency", e))?;
        Ok(Transaction {
            id: TransactionId(r.id.0),
            payment_id: PaymentId(r.payment_id.0),
            kind: kind_from_str(&r.kind)?,
            amount: Money::from_minor(r.amount_minor, currency),
            status: status_from_str(&r.status)?,
            provider_key: r.provider_key,
            provider_reference: r.provider_reference,
            failure: failure(r.failure_code, r.failure_decline_code, r.failure_message),
            reason: r.reason,
            metadata: r.metadata.0,
            created_at: r.created_at.0,
            settled_at: r.settled_at.map(|t| t.0),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    scope: String,
    key: String,
    fingerprint: String,
    transaction_id: DbId,
    locked_until: Option<DbTime>,
    outcome: Option<Json<Value>>,
    created_at: DbTime,
    expires_at: DbTime,
}

impl TryFrom<KeyRow> for IdempotencyRecord {
    type Error = StoreError;

    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        let outcome = r
            .outcome
            .map(|j| serde_json::from_value(j.0))
            .transpose()
            .map_err(|e| corrupt("idempotency outcome", e))?;
        Ok(IdempotencyRecord {
            scope: r.scope,
            key: r.key,
            fingerprint: r.fingerprint,
            transaction_id: TransactionId(r.transaction_id.0),
            locked_until: r.locked_until.map(|t| t.0),
            outcome,
            created_at: r.created_at.0,
            expires_at: r.expires_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    pub(crate) id: DbId,
    pub(crate) aggregate_type: String,
    pub(crate) aggregate_id: String,
    pub(crate) sequence: i64,
    pub(crate) event_type: String,
    pub(crate) event_version: i32,
    pub(crate) data: Json<Value>,
    pub(crate) occurred_at: DbTime,
    pub(crate) traceparent: Option<String>,
}

impl From<OutboxRow> for Envelope {
    fn from(r: OutboxRow) -> Self {
        Envelope {
            id: r.id.0,
            event_type: r.event_type,
            version: r.event_version,
            aggregate_type: r.aggregate_type,
            aggregate_id: r.aggregate_id,
            sequence: r.sequence,
            occurred_at: r.occurred_at.0,
            traceparent: r.traceparent,
            data: r.data.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: DbId,
    email: String,
    name: String,
    password_hash: String,
    role: String,
    membership: String,
    version: i64,
    event_sequence: i64,
    created_at: DbTime,
    updated_at: DbTime,
    membership_until: Option<DbTime>,
}

impl TryFrom<UserRow> for UserState {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(UserState {
            id: UserId(r.id.0),
            email: Email::parse(&r.email).map_err(|e| corrupt("email", e))?,
            name: UserName::parse(&r.name).map_err(|e| corrupt("name", e))?,
            password_hash: r.password_hash,
            role: r.role.parse().map_err(|e| corrupt("role", e))?,
            membership: r.membership.parse().map_err(|e| corrupt("membership", e))?,
            membership_until: r.membership_until.map(|t| t.0),
            version: r.version,
            event_sequence: r.event_sequence,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RefreshRow {
    id: DbId,
    family_id: DbId,
    user_id: DbId,
    digest: String,
    created_at: DbTime,
    expires_at: DbTime,
    pub(crate) used_at: Option<DbTime>,
    pub(crate) revoked_at: Option<DbTime>,
}

impl From<&RefreshRow> for RefreshToken {
    fn from(r: &RefreshRow) -> Self {
        RefreshToken {
            id: r.id.0,
            family_id: r.family_id.0,
            user_id: UserId(r.user_id.0),
            digest: r.digest.clone(),
            created_at: r.created_at.0,
            expires_at: r.expires_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: DbId,
    owner_id: DbId,
    body: String,
    version: i64,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        Ok(Message {
            id: MessageId(r.id.0),
            owner_id: UserId(r.owner_id.0),
            body: MessageBody::parse(&r.body).map_err(|e| corrupt("message body", e))?,
            version: r.version,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

/// An order line as stored in the `items` JSON: price in minor units of the order currency.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ItemJson {
    product_id: String,
    name: String,
    quantity: u32,
    unit_price_minor: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    price_overridden: bool,
}

/// The `items` column of an order.
pub(crate) fn items_json(items: &[OrderItem]) -> Vec<ItemJson> {
    items
        .iter()
        .map(|i| ItemJson {
            product_id: i.product_id.clone(),
            name: i.name.clone(),
            quantity: i.quantity,
            unit_price_minor: i.unit_price.minor(),
            price_overridden: i.price_overridden,
        })
        .collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrderRow {
    id: DbId,
    customer_id: String,
    items: Json<Vec<ItemJson>>,
    currency: String,
    total_minor: i64,
    status: String,
    payment_id: Option<DbId>,
    version: i64,
    event_sequence: i64,
    created_at: DbTime,
    updated_at: DbTime,
    history: Json<Vec<OrderTransition>>,
    refund: Option<Json<OrderRefund>>,
}

/// An order with the fingerprint of the request that placed it with an idempotency key.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyedOrderRow {
    #[sqlx(flatten)]
    pub order: OrderRow,
    pub request_fingerprint: Option<String>,
}

impl TryFrom<OrderRow> for OrderState {
    type Error = StoreError;
    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        let currency = Currency::from_code(&r.currency).map_err(|e| corrupt("currency", e))?;
        Ok(OrderState {
            id: OrderId(r.id.0),
            customer_id: CustomerId::parse(&r.customer_id)
                .map_err(|e| corrupt("customer_id", e))?,
            items: r
                .items
                .0
                .into_iter()
                .map(|i| OrderItem {
                    product_id: i.product_id,
                    name: i.name,
                    quantity: i.quantity,
                    unit_price: Money::from_minor(i.unit_price_minor, currency),
                    price_overridden: i.price_overridden,
                })
                .collect(),
            total: Money::from_minor(r.total_minor, currency),
            status: r.status.parse().map_err(|e| corrupt("order status", e))?,
            payment_id: r.payment_id.map(|p| PaymentId(p.0)),
            history: r.history.0,
            refund: r.refund.map(|r| r.0),
            version: r.version,
            event_sequence: r.event_sequence,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

/// The `prices` column of a product: minor units by ISO code.
pub(crate) fn prices_json(prices: &Prices) -> BTreeMap<String, i64> {
    prices
        .iter()
        .map(|p| (p.currency().code().to_owned(), p.minor()))
        .collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProductRow {
    sku: String,
    name: String,
    description: String,
    prices: Json<BTreeMap<String, i64>>,
    active: bool,
    version: i64,
    event_sequence: i64,
    created_at: DbTime,
    updated_at: DbTime,
}

impl TryFrom<ProductRow> for ProductState {
    type Error = StoreError;
    fn try_from(r: ProductRow) -> Result<Self, StoreError> {
        let prices = r
            .prices
            .0
            .into_iter()
            .map(|(code, minor)| {
                Currency::from_code(&code)
                    .map(|c| Money::from_minor(minor, c))
                    .map_err(|e| corrupt("price currency", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let prices = Prices::new(prices).map_err(|e| corrupt("prices", e))?;
        Ok(ProductState {
            sku: Sku::parse(&r.sku).map_err(|e| corrupt("sku", e))?,
            details: ProductDetails::new(&r.name, &r.description, prices)
                .map_err(|e| corrupt("product", e))?,
            active: r.active,
            version: r.version,
            event_sequence: r.event_sequence,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StockRow {
    sku: String,
    on_hand: i64,
    reserved: i64,
    low_stock_threshold: Option<i64>,
    low: bool,
    version: i64,
    event_sequence: i64,
    updated_at: DbTime,
}

impl TryFrom<StockRow> for StockState {
    type Error = StoreError;
    fn try_from(r: StockRow) -> Result<Self, StoreError> {
        Ok(StockState {
            sku: Sku::parse(&r.sku).map_err(|e| corrupt("sku", e))?,
            on_hand: r.on_hand,
            reserved: r.reserved,
            low_stock_threshold: r.low_stock_threshold,
            low: r.low,
            version: r.version,
            event_sequence: r.event_sequence,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MovementRow {
    sku: String,
    sequence: i64,
    kind: String,
    quantity: i64,
    order_id: Option<DbId>,
    reason: Option<String>,
    on_hand: i64,
    reserved: i64,
    at: DbTime,
}

impl TryFrom<MovementRow> for StockMovement {
    type Error = StoreError;
    fn try_from(r: MovementRow) -> Result<Self, StoreError> {
        Ok(StockMovement {
            sku: Sku::parse(&r.sku).map_err(|e| corrupt("sku", e))?,
            sequence: r.sequence,
            kind: MovementKind::parse(&r.kind).ok_or_else(|| corrupt("movement kind", &r.kind))?,
            quantity: r.quantity,
            order_id: r.order_id.map(|o| OrderId(o.0)),
            reason: r.reason,
            on_hand: r.on_hand,
            reserved: r.reserved,
            at: r.at.0,
        })
    }
}
