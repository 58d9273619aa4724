//! The rules of the domain that a request can break, each with a stable machine code.

use crate::money::{Currency, MoneyError};
use crate::payment::PaymentStatus;

/// A broken domain rule. `code()` is stable and part of the public API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// An amount that is not valid money (malformed, too precise, overflowing, unknown currency).
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// Zero or negative amount where a positive one is needed.
    #[error("amount must be greater than zero")]
    AmountNotPositive,
    /// Above the configured maximum for one payment.
    #[error("amount exceeds the maximum of {max} minor units per payment")]
    AmountTooLarge {
        /// The maximum, in minor units.
        max: i64,
    },
    /// A customer id that is empty, too long or has spaces or control characters.
    #[error("customer_id must be 1 to 64 visible ASCII characters without spaces")]
    InvalidCustomerId,
    /// Metadata outside Stripe's limits (50 keys, keys up to 40 chars, values up to 500).
    #[error("metadata: {0}")]
    InvalidMetadata(String),
    /// A free text field that is too long.
    #[error("{field} must be at most {max} characters")]
    TextTooLong {
        /// Which field.
        field: &'static str,
        /// Its maximum length in characters.
        max: usize,
    },
    /// A state transition the status machine does not allow.
    #[error("a payment cannot go from {from} to {to}")]
    InvalidTransition {
        /// Current status.
        from: PaymentStatus,
        /// Wanted status.
        to: PaymentStatus,
    },
    /// A refund of a payment that never succeeded or is already fully refunded.
    #[error("payment is {0} and cannot be refunded")]
    NotRefundable(PaymentStatus),
    /// A refund larger than what remains refundable.
    #[error("refund of {requested} exceeds the refundable amount of {refundable}")]
    RefundExceedsRefundable {
        /// Asked amount, as decimal text.
        requested: String,
        /// What is left to refund, as decimal text.
        refundable: String,
    },
    /// A refund in another currency than the payment's.
    #[error("refund currency {given} differs from the payment currency {expected}")]
    CurrencyMismatch {
        /// The payment's currency.
        expected: Currency,
        /// The currency asked for.
        given: Currency,
    },
    /// Not a usable email address.
    #[error("not a valid email address")]
    InvalidEmail,
    /// A name that is empty, too long or has control characters.
    #[error("name must be 1 to 100 characters without control characters")]
    InvalidName,
    /// A password that fails the policy.
    #[error("password {0}")]
    WeakPassword(&'static str),
    /// A message body that is empty or too long.
    #[error("message {0}")]
    InvalidMessage(&'static str),
    /// An order line or item list that breaks the order rules.
    #[error("{0}")]
    InvalidItems(String),
    /// An order status change the order machine does not allow.
    #[error("an order cannot go from {from} to {to}")]
    InvalidOrderTransition {
        /// Current status.
        from: &'static str,
        /// Wanted status.
        to: &'static str,
    },
    /// The order is not in a state that allows this.
    #[error("{0}")]
    OrderLocked(&'static str),
    /// A shipped order cannot be cancelled (return it instead).
    #[error("the order is shipped and can no longer be cancelled")]
    OrderShipped,
    /// A transaction that is already settled cannot be settled again.
    #[error("transaction is already {0}")]
    AlreadySettled(&'static str),
    /// Not a SKU, even after trimming and lower-casing.
    #[error(
        "sku must be 1 to 64 of a-z, 0-9, '-', '_' and '.' (case and surrounding spaces are ignored)"
    )]
    InvalidSku,
    /// A product's fields break the catalog rules.
    #[error("{0}")]
    InvalidProduct(String),
    /// No product has this SKU.
    #[error("no product has the sku {0:?}")]
    UnknownProduct(String),
    /// The product is archived and cannot be ordered.
    #[error("the product is archived and can no longer be ordered")]
    ProductArchived,
    /// The product has no price in the order's currency.
    #[error("the product has no price in {0}")]
    PriceUnavailable(Currency),
    /// The price the buyer expected is not the catalog's.
    #[error("the price is {current}, not {expected}")]
    PriceMismatch {
        /// The catalog's price, as decimal text.
        current: String,
        /// What the buyer sent, as decimal text.
        expected: String,
    },
    /// The same SKU on two lines of one order.
    #[error("the sku {0:?} is on two lines: put the whole quantity on one line")]
    DuplicateSku(String),
    /// A price was set by a customer: only administrators may override the catalog's price.
    #[error("only administrators may override a price")]
    PriceOverrideForbidden,
    /// More units asked than are available.
    #[error("{sku:?}: only {available} available")]
    InsufficientStock {
        /// The product.
        sku: String,
        /// What is left to reserve.
        available: i64,
    },
    /// An adjustment that would leave fewer units on hand than are reserved (or than zero).
    #[error(
        "{sku:?} has {on_hand} on hand of which {reserved} are reserved; on hand cannot go below that"
    )]
    StockBelowReserved {
        /// The product.
        sku: String,
        /// Units held by open orders.
        reserved: i64,
        /// Units on hand before the adjustment.
        on_hand: i64,
    },
    /// A stock quantity, threshold or reason breaks the stock rules.
    #[error("{0}")]
    InvalidStock(String),
    /// A ledger account name that names no account of the chart.
    #[error(
        "{0:?} is not a ledger account (platform:revenue, provider:{{name}}:clearing, customer:{{id}}:wallet)"
    )]
    InvalidAccount(String),
    /// A ledger transaction whose entries do not balance (or are not positive).
    #[error("{0}")]
    UnbalancedPosting(String),
    /// A payment method and provider that do not go together: the balance of a wallet is paid
    /// with only by the `wallet` method and provider, and a wallet is not topped up from itself.
    #[error("{0}")]
    WalletMethod(&'static str),
    /// A payment method other than the wallet without its provider's token.
    #[error("payment_method_token is required for this payment method")]
    MethodTokenRequired,
    /// A transfer whose sender and recipient are the same wallet.
    #[error("a transfer needs a recipient other than the sender")]
    TransferToSelf,
    /// A transfer to a user who does not exist.
    #[error("no user has this id")]
    UnknownRecipient,
    /// Not a Standard Webhooks secret (`whsec_` and the base64 of 24 to 64 bytes).
    #[error("a webhook secret is whsec_ and the base64 of 24 to 64 bytes")]
    InvalidWebhookSecret,
    /// A webhook endpoint's URL that is malformed, not https, or points where deliveries may
    /// not go.
    #[error("url {0}")]
    InvalidWebhookUrl(String),
    /// A list of event types that is empty, repeats one, or names one Portside does not send.
    #[error("{0}")]
    InvalidEventTypes(String),
    /// A refund of a top-up whose money the wallet no longer holds.
    #[error("the wallet no longer holds the amount of this top-up: it was spent or transferred")]
    TopUpSpent,
    /// A routing rule that cannot be used as written.
    #[error("{1}")]
    Route(crate::routing::RouteProblem, String),
}

impl DomainError {
    /// Stable machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Money(MoneyError::UnknownCurrency(_)) => "currency_unknown",
            DomainError::Money(MoneyError::Malformed(_)) => "amount_invalid",
            DomainError::Money(MoneyError::TooManyDecimals { .. }) => "amount_too_precise",
            DomainError::Money(MoneyError::Overflow) => "amount_too_large",
            DomainError::Money(MoneyError::CurrencyMismatch(..)) => "currency_mismatch",
            DomainError::AmountNotPositive => "amount_too_small",
            DomainError::AmountTooLarge { .. } => "amount_too_large",
            DomainError::InvalidCustomerId => "customer_id_invalid",
            DomainError::InvalidMetadata(_) => "metadata_invalid",
            DomainError::TextTooLong { .. } => "text_too_long",
            DomainError::InvalidTransition { .. } => "invalid_state_transition",
            DomainError::NotRefundable(_) => "payment_not_refundable",
            DomainError::RefundExceedsRefundable { .. } => "refund_exceeds_refundable",
            DomainError::CurrencyMismatch { .. } => "currency_mismatch",
            DomainError::AlreadySettled(_) => "transaction_already_settled",
            DomainError::InvalidEmail => "email_invalid",
            DomainError::InvalidName => "name_invalid",
            DomainError::WeakPassword(_) => "password_weak",
            DomainError::InvalidMessage(_) => "message_invalid",
            DomainError::InvalidItems(_) => "items_invalid",
            DomainError::InvalidOrderTransition { .. } => "invalid_state_transition",
            DomainError::OrderLocked(_) => "order_not_modifiable",
            DomainError::OrderShipped => "order_shipped",
            DomainError::InvalidSku => "sku_invalid",
            DomainError::InvalidProduct(_) => "product_invalid",
            DomainError::UnknownProduct(_) => "product_unknown",
            DomainError::ProductArchived => "product_archived",
            DomainError::PriceUnavailable(_) => "price_unavailable",
            DomainError::PriceMismatch { .. } => "price_mismatch",
            DomainError::DuplicateSku(_) => "sku_duplicate",
            DomainError::PriceOverrideForbidden => "price_override_forbidden",
            DomainError::InsufficientStock { .. } => "insufficient_stock",
            DomainError::StockBelowReserved { .. } => "stock_below_reserved",
            DomainError::InvalidStock(_) => "stock_invalid",
            DomainError::InvalidAccount(_) => "account_invalid",
            DomainError::UnbalancedPosting(_) => "posting_unbalanced",
            DomainError::WalletMethod(_) => "payment_method_invalid",
            DomainError::MethodTokenRequired => "payment_method_token_required",
            DomainError::TransferToSelf => "transfer_to_self",
            DomainError::UnknownRecipient => "recipient_unknown",
            DomainError::TopUpSpent => "top_up_spent",
            DomainError::InvalidWebhookSecret => "webhook_secret_invalid",
            DomainError::InvalidWebhookUrl(_) => "webhook_url_invalid",
            DomainError::InvalidEventTypes(_) => "event_types_invalid",
            DomainError::Route(problem, _) => problem.code(),
        }
    }

    /// True for errors about the current state of a resource (HTTP 409), false for
    /// errors about the request's own values (HTTP 422).
    pub fn is_state_conflict(&self) -> bool {
        matches!(
            self,
            DomainError::InvalidTransition { .. }
                | DomainError::NotRefundable(_)
                | DomainError::AlreadySettled(_)
                | DomainError::InvalidOrderTransition { .. }
                | DomainError::OrderLocked(_)
                | DomainError::OrderShipped
                | DomainError::InsufficientStock { .. }
                | DomainError::StockBelowReserved { .. }
                | DomainError::TopUpSpent
        )
    }
}
