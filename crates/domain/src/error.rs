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
    /// A transaction that is already settled cannot be settled again.
    #[error("transaction is already {0}")]
    AlreadySettled(&'static str),
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
        )
    }
}
