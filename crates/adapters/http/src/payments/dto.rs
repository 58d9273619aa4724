//! The JSON shapes of the payments API: requests parsed exactly, responses with amounts as
//! decimal strings and statuses as snake_case words.

use std::collections::BTreeMap;

use portside_app::payments::idempotency::IdempotentRequest;
use portside_app::payments::{Outcome, PayCommand, PaymentFilter, RefundCommand};
use portside_domain::{
    Currency, CustomerId, Failure, Metadata, Money, PaymentId, PaymentMethod, PaymentState,
    PaymentStatus, Transaction, TransactionKind, TransactionStatus,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::idempotency::BodyKey;
use crate::json::param;
use crate::problem::{FieldError, Problem, field, refusal};
use crate::routing::PaymentRouteView;
use crate::timestamp::Timestamp;

/// A decimal amount given as a JSON number (`99.99`) or string (`"99.99"`), kept as the exact
/// text the client sent so that no float ever touches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalText(pub String);

impl utoipa::PartialSchema for DecimalText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[0-9]+(\.[0-9]+)?$")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(0)),
            )
            .description(Some(
                "A decimal amount, as a string (\"12.50\") or a JSON number (12.50); read as the exact text sent",
            ))
            .examples([serde_json::json!("12.50")])
            .into()
    }
}

impl ToSchema for DecimalText {}

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        if text.starts_with('"') {
            serde_json::from_str::<String>(text)
                .map(DecimalText)
                .map_err(serde::de::Error::custom)
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Ok(DecimalText(
                without_exponent(text).unwrap_or_else(|| text.to_owned()),
            ))
        } else {
            Err(serde::de::Error::custom(
                "expected a decimal amount as a number or a string, e.g. 12.50 or \"12.50\"",
            ))
        }
    }
}

/// A JSON number in exponent form (`1.5e3`) as the plain decimal it denotes (`1500`), digits
/// kept as written, so that every number JSON allows reads as its exact value. `None` when
/// the text has no exponent, or one so large that no amount could come of it.
fn without_exponent(text: &str) -> Option<String> {
    let (mantissa, exponent) = text.split_once(['e', 'E'])?;
    let exponent: i64 = exponent.parse().ok().filter(|e: &i64| e.abs() <= 64)?;
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let point = i64::try_from(int.len()).ok()? + exponent;
    let plain = match usize::try_from(point) {
        Err(_) => format!("0.{}{digits}", "0".repeat(usize::try_from(-point).ok()?)),
        Ok(0) => format!("0.{digits}"),
        Ok(p) if p >= digits.len() => format!("{digits}{}", "0".repeat(p - digits.len())),
        Ok(p) => format!("{}.{}", &digits[..p], &digits[p..]),
    };
    Some(format!("{sign}{plain}"))
}

/// `POST /api/v1/payments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    /// Who pays: defaults to the caller's user id; another customer only for administrators.
    pub customer_id: Option<String>,
    /// Decimal amount, as a number or a string, with at most the currency's decimals.
    #[schema(inline)]
    pub amount: DecimalText,
    /// ISO-4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    /// `card`, `credit_card`, `debit_card`, `bank_transfer`, `wallet` or `paypal` (default `card`).
    #[schema(example = "credit_card")]
    pub payment_method: Option<String>,
    /// The provider's token for the payment method. Mock tokens: `tok_visa` succeeds,
    /// `tok_chargeDeclined` is declined, `tok_processing_error` fails, `tok_timeout` times out. Required unless `payment_method` is
    /// `wallet` (the balance of your wallet pays, through the `wallet` provider).
    #[schema(example = "tok_visa")]
    #[serde(default)]
    pub payment_method_token: Option<String>,
    /// Provider name (default: the configured default, `mock`).
    pub provider: Option<String>,
    /// Free text, at most 1000 characters.
    pub description: Option<String>,
    /// Up to 50 string key-value pairs.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Alternative to the `Idempotency-Key` header, for clients of older APIs.
    pub idempotency_key: Option<String>,
}

/// `POST /api/v1/payments/{id}/refunds`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// Decimal amount; omitted, the refund is whatever remains refundable.
    #[schema(inline)]
    pub amount: Option<DecimalText>,
    /// Must be the payment's currency when given.
    pub currency: Option<String>,
    /// Why, at most 500 characters.
    pub reason: Option<String>,
    /// Up to 50 string key-value pairs.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Alternative to the `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// Why a charge or refund failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureView {
    /// `card_declined`, `processing_error`, ...
    pub code: String,
    /// For declines: `insufficient_funds`, `generic_decline`, ...
    pub decline_code: Option<String>,
    /// For humans.
    pub message: String,
}

impl From<&Failure> for FailureView {
    fn from(f: &Failure) -> Self {
        FailureView {
            code: f.code.clone(),
            decline_code: f.decline_code.clone(),
            message: f.message.clone(),
        }
    }
}

/// A payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    /// Always `payment`.
    #[schema(example = "payment")]
    pub object: &'static str,
    /// Who pays.
    pub customer_id: String,
    /// Decimal amount.
    #[schema(example = "99.99")]
    pub amount: String,
    /// ISO-4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    /// `pending`, `processing`, `succeeded`, `failed`, `partially_refunded` or `refunded`.
    #[schema(value_type = String, example = "succeeded")]
    pub status: PaymentStatus,
    /// Payment method kind.
    pub payment_method: String,
    /// Provider adapter.
    pub provider: String,
    /// The provider's charge id.
    pub provider_reference: Option<String>,
    /// Refunded so far.
    #[schema(example = "0.00")]
    pub refunded_amount: String,
    /// What may still be refunded.
    #[schema(example = "99.99")]
    pub refundable_amount: String,
    /// Why it failed.
    pub failure: Option<FailureView>,
    /// Free text.
    pub description: Option<String>,
    /// Client metadata.
    pub metadata: BTreeMap<String, String>,
    /// Creation time (RFC 3339).
    pub created_at: Timestamp,
    /// Last change (RFC 3339).
    pub updated_at: Timestamp,
    /// The route it took (absent on payments made before routing existed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<PaymentRouteView>,
}

impl From<&PaymentState> for PaymentView {
    fn from(p: &PaymentState) -> Self {
        PaymentView {
            id: p.id.0,
            object: "payment",
            customer_id: p.customer_id.as_str().to_owned(),
            amount: p.amount.to_decimal_string(),
            currency: p.amount.currency().code().to_owned(),
            status: p.status,
            payment_method: p.method.as_str().to_owned(),
            provider: p.provider.clone(),
            provider_reference: p.provider_reference.clone(),
            refunded_amount: p.refunded().to_decimal_string(),
            refundable_amount: p.refundable().to_decimal_string(),
            failure: p.failure.as_ref().map(FailureView::from),
            description: p.description.clone(),
            metadata: p.metadata.as_map().clone(),
            created_at: p.created_at.into(),
            updated_at: p.updated_at.into(),
            routing: p.routing.as_ref().map(PaymentRouteView::from),
        }
    }
}

/// A charge or a refund of a payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionView {
    pub id: Uuid,
    /// `charge` or `refund`.
    #[schema(value_type = String, example = "refund")]
    pub object: TransactionKind,
    pub payment_id: Uuid,
    /// Decimal amount.
    pub amount: String,
    /// ISO-4217 code.
    pub currency: String,
    /// `pending`, `succeeded` or `failed`.
    #[schema(value_type = String, example = "succeeded")]
    pub status: TransactionStatus,
    /// The provider's id.
    pub provider_reference: Option<String>,
    /// Why it failed.
    pub failure: Option<FailureView>,
    /// Why a refund was asked for.
    pub reason: Option<String>,
    /// Client metadata.
    pub metadata: BTreeMap<String, String>,
    /// Creation time (RFC 3339).
    pub created_at: Timestamp,
    /// Settlement time (RFC 3339), once settled.
    pub settled_at: Option<Timestamp>,
}

impl From<&Transaction> for TransactionView {
    fn from(t: &Transaction) -> Self {
        TransactionView {
            id: t.id.0,
            object: t.kind,
            payment_id: t.payment_id.0,
            amount: t.amount.to_decimal_string(),
            currency: t.amount.currency().code().to_owned(),
            status: t.status,
            provider_reference: t.provider_reference.clone(),
            failure: t.failure.as_ref().map(FailureView::from),
            reason: t.reason.clone(),
            metadata: t.metadata.as_map().clone(),
            created_at: t.created_at.into(),
            settled_at: t.settled_at.map(Timestamp),
        }
    }
}

/// A refund and the payment after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    /// The refund.
    #[serde(flatten)]
    pub refund: TransactionView,
    /// The refunded payment.
    pub payment: PaymentView,
}

impl From<&Outcome> for RefundView {
    fn from(o: &Outcome) -> Self {
        RefundView {
            refund: (&o.transaction).into(),
            payment: (&o.payment).into(),
        }
    }
}

/// A payment's transactions.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionList {
    /// Oldest first.
    pub data: Vec<TransactionView>,
}

/// Query of `GET /api/v1/payments`: all text, parsed by [`ListQuery::filter`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this customer's payments.
    pub customer_id: Option<String>,
    /// Only payments in this status.
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl BodyKey for CreatePayment {
    fn body_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

impl CreatePayment {
    /// The command this body asks for; a 422 naming every bad field at once.
    pub fn into_command(
        self,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<PayCommand, Problem> {
        let mut errors = Vec::new();
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
        let amount = currency.and_then(|c| {
            field(
                &mut errors,
                "amount",
                Money::parse(&self.amount.0, c).map_err(refusal),
            )
        });
        let method = match self.payment_method.as_deref() {
            None => Some(PaymentMethod::Card),
            Some(m) => field(
                &mut errors,
                "payment_method",
                m.parse::<PaymentMethod>()
                    .map_err(|_| ("payment_method_unknown", unknown_method(m))),
            ),
        };
        let metadata = field(
            &mut errors,
            "metadata",
            Metadata::from_client(self.metadata.unwrap_or_default()).map_err(refusal),
        );
        let (Some(customer_id), Some(amount), Some(method), Some(metadata)) =
            (customer_id, amount, method, metadata)
        else {
            return Err(Problem::invalid(errors));
        };
        Ok(PayCommand {
            payment_id: None,
            customer_id,
            amount,
            method,
            method_token: self.payment_method_token.unwrap_or_default(),
            provider: self.provider,
            description: self.description,
            metadata,
            idempotency,
        })
    }
}

impl BodyKey for CreateRefund {
    fn body_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

impl CreateRefund {
    /// The command this body asks for on `payment_id`; a 422 naming every bad field at once.
    pub fn into_command(
        self,
        payment_id: PaymentId,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<RefundCommand, Problem> {
        let mut errors = Vec::new();
        let currency = match self.currency.as_deref() {
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
            Metadata::from_client(self.metadata.unwrap_or_default()).map_err(refusal),
        );
        let (Some(currency), Some(metadata)) = (currency, metadata) else {
            return Err(Problem::invalid(errors));
        };
        Ok(RefundCommand {
            payment_id,
            amount: self.amount.map(|a| a.0),
            currency,
            reason: self.reason,
            metadata,
            idempotency,
        })
    }
}

impl ListQuery {
    /// The filter these parameters name; a 400 naming the first bad one.
    pub fn filter(&self) -> Result<PaymentFilter, Problem> {
        let customer_id = param(
            "customer_id",
            self.customer_id.as_deref(),
            CustomerId::parse,
        )?;
        let status = param(
            "status",
            self.status.as_deref(),
            str::parse::<PaymentStatus>,
        )?;
        Ok(PaymentFilter {
            customer_id,
            status,
        })
    }
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

fn unknown_method(m: &str) -> String {
    let allowed: Vec<_> = PaymentMethod::ALL.iter().map(|m| m.as_str()).collect();
    format!(
        "unknown payment method {m:?}; use one of {}",
        allowed.join(", ")
    )
}
