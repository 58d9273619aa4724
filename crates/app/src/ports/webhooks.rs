//! Provider webhooks: verifying a notice on its raw body, and remembering which notices were
//! processed so that a replay changes nothing.

use async_trait::async_trait;
use portside_domain::{Failure, PaymentId, TransactionId};
use time::OffsetDateTime;

use super::StoreError;

/// What a verified notice says happened to a charge or refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderChange {
    /// A charge succeeded (e.g. after 3-D Secure or a slow method).
    ChargeSucceeded {
        /// Our transaction, from the metadata we sent.
        transaction_id: Option<TransactionId>,
        /// The provider's id of the charge.
        reference: String,
    },
    /// A charge failed.
    ChargeFailed {
        /// Our transaction, from the metadata we sent.
        transaction_id: Option<TransactionId>,
        /// The provider's id of the charge.
        reference: String,
        /// Why.
        failure: Failure,
    },
    /// Money was refunded on a charge: pending refunds of its payment are asked again.
    Refunded {
        /// The provider's id of the charge.
        reference: String,
    },
}

/// A verified notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderNotice {
    /// The provider's event id (processed once).
    pub event_id: String,
    /// The provider's event type.
    pub event_type: String,
    /// What it changes; `None` for types Portside does not act on.
    pub change: Option<ProviderChange>,
}

/// Why a notice was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Missing or wrong signature.
    #[error("signature invalid: {0}")]
    BadSignature(String),
    /// Signed too long ago (or in the future): possibly a replay.
    #[error("timestamp outside the tolerance of {0} s")]
    Stale(u64),
    /// Verified, but not a notice we can read.
    #[error("payload invalid: {0}")]
    Malformed(String),
    /// The provider's verification service did not answer.
    #[error("verification unavailable: {0}")]
    Unavailable(String),
}

/// Verifies and reads a provider's notice from its raw body (before any parsing).
#[async_trait]
pub trait WebhookVerifier: Send + Sync {
    /// Headers (lower-case names) and the raw body.
    async fn verify(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ProviderNotice, WebhookError>;
}

/// What became of a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeOutcome {
    /// It moved a payment or refund on.
    Applied,
    /// The payment was already there (an out-of-order or late notice).
    NoChange,
    /// No payment of ours (stored, no effect).
    UnknownPayment,
    /// A type Portside does not act on.
    Ignored,
    /// Processed before: a replay.
    Duplicate,
}

impl NoticeOutcome {
    /// Stable name, stored and returned.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeOutcome::Applied => "applied",
            NoticeOutcome::NoChange => "no_change",
            NoticeOutcome::UnknownPayment => "unknown_payment",
            NoticeOutcome::Ignored => "ignored",
            NoticeOutcome::Duplicate => "duplicate",
        }
    }
}

/// A processed notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEventRecord {
    /// Provider name.
    pub provider: String,
    /// Provider's event id.
    pub event_id: String,
    /// Provider's event type.
    pub event_type: String,
    /// Our payment, when known.
    pub payment_id: Option<PaymentId>,
    /// What it did.
    pub outcome: NoticeOutcome,
    /// When received.
    pub received_at: OffsetDateTime,
}

/// The log of processed notices.
#[async_trait]
pub trait ProviderEvents: Send + Sync {
    /// Whether this notice was processed.
    async fn provider_event_seen(&self, provider: &str, event_id: &str)
    -> Result<bool, StoreError>;
    /// Records a processed notice; false when it already was.
    async fn record_provider_event(&self, record: &ProviderEventRecord)
    -> Result<bool, StoreError>;
}
