//! The values a payment is made of: its status, how it is paid, the client's metadata and why
//! a provider refused it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// Where a payment is in its life. Serialized as snake_case words.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Created, not yet sent to the provider.
    Pending,
    /// Sent to the provider; the outcome is not known yet.
    Processing,
    /// Captured by the provider.
    Succeeded,
    /// Refused or failed at the provider; no money moved.
    Failed,
    /// Some but not all of the amount was refunded.
    PartiallyRefunded,
    /// The whole amount was refunded.
    Refunded,
}

impl PaymentStatus {
    /// Every status, for exhaustive tests and documentation.
    pub const ALL: [PaymentStatus; 6] = [
        PaymentStatus::Pending,
        PaymentStatus::Processing,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Refunded,
    ];

    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
        }
    }

    /// The status machine: Pending → Processing → Succeeded | Failed;
    /// Succeeded → PartiallyRefunded | Refunded; PartiallyRefunded → PartiallyRefunded | Refunded.
    pub fn can_become(self, to: PaymentStatus) -> bool {
        use PaymentStatus::*;
        matches!(
            (self, to),
            (Pending, Processing)
                | (Processing, Succeeded)
                | (Processing, Failed)
                | (Succeeded, PartiallyRefunded)
                | (Succeeded, Refunded)
                | (PartiallyRefunded, PartiallyRefunded)
                | (PartiallyRefunded, Refunded)
        )
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown payment status {s:?}"))
    }
}

/// How the customer pays. `credit_card` and friends keep seed clients working unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// A card, credit or debit.
    Card,
    CreditCard,
    DebitCard,
    BankTransfer,
    /// A digital wallet.
    Wallet,
    /// A PayPal account.
    Paypal,
}

impl PaymentMethod {
    /// Every method.
    pub const ALL: [PaymentMethod; 6] = [
        PaymentMethod::Card,
        PaymentMethod::CreditCard,
        PaymentMethod::DebitCard,
        PaymentMethod::BankTransfer,
        PaymentMethod::Wallet,
        PaymentMethod::Paypal,
    ];

    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Card => "card",
            PaymentMethod::CreditCard => "credit_card",
            PaymentMethod::DebitCard => "debit_card",
            PaymentMethod::BankTransfer => "bank_transfer",
            PaymentMethod::Wallet => "wallet",
            PaymentMethod::Paypal => "paypal",
        }
    }
}

impl FromStr for PaymentMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown payment method {s:?}"))
    }
}

/// Key-value strings a client attaches to a payment; Stripe's limits apply
/// (at most 50 keys, keys up to 40 characters, values up to 500).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// Validates a map against the limits.
    pub fn new(map: BTreeMap<String, String>) -> Result<Self, DomainError> {
        if map.len() > 50 {
            return Err(DomainError::InvalidMetadata(
                "at most 50 keys are allowed".into(),
            ));
        }
        for (k, v) in &map {
            if k.is_empty() || k.chars().count() > 40 {
                return Err(DomainError::InvalidMetadata(format!(
                    "key {k:?} must be 1 to 40 characters"
                )));
            }
            if v.chars().count() > 500 {
                return Err(DomainError::InvalidMetadata(format!(
                    "value of {k:?} must be at most 500 characters"
                )));
            }
        }
        Ok(Metadata(map))
    }

    /// Validates a client's map: on top of the limits, keys starting with `portside_` are
    /// reserved for Portside's own markers (a client must not pose as a membership purchase).
    pub fn from_client(map: BTreeMap<String, String>) -> Result<Self, DomainError> {
        if let Some(k) = map.keys().find(|k| k.starts_with("portside_")) {
            return Err(DomainError::InvalidMetadata(format!(
                "key {k:?} is reserved (keys starting with portside_ are Portside's own)"
            )));
        }
        Metadata::new(map)
    }

    /// The entries.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// Why a provider did not move the money (Stripe's shape: a code, for declines a decline code).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Failure {
    /// Machine code, e.g. `card_declined`, `processing_error`.
    pub code: String,
    /// For declines, the issuer's reason, e.g. `insufficient_funds`, `generic_decline`.
    pub decline_code: Option<String>,
    /// Human-readable explanation from the provider.
    pub message: String,
}

impl Failure {
    /// A failure without a decline code.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            code: code.into(),
            decline_code: None,
            message: message.into(),
        }
    }

    /// A card decline with the issuer's reason.
    pub fn declined(decline_code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            code: "card_declined".into(),
            decline_code: Some(decline_code.into()),
            message: message.into(),
        }
    }
}
