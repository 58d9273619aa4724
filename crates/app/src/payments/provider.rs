//! What Portside asks of a payment provider: charges and refunds under a provider idempotency
//! key, and the verification of the notices (webhooks) it sends.

use async_trait::async_trait;
use portside_domain::{CustomerId, Failure, Metadata, Money, PaymentMethod, TransactionId};

/// What a provider is asked to charge.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    /// Our charge transaction (providers store it as metadata, so webhooks find it).
    pub transaction_id: TransactionId,
    /// Same on every attempt for one transaction.
    pub provider_key: String,
    /// Amount and currency.
    pub amount: Money,
    /// Payment method kind.
    pub method: PaymentMethod,
    /// Provider token of the payment method.
    pub method_token: String,
    /// Who pays.
    pub customer_id: CustomerId,
    /// Free text.
    pub description: Option<String>,
    /// Client metadata.
    pub metadata: Metadata,
}

/// What a provider is asked to refund.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// Our refund transaction.
    pub transaction_id: TransactionId,
    /// Same on every attempt for one refund.
    pub provider_key: String,
    /// The provider's id of the charge.
    pub charge_reference: String,
    /// The provider token the charge used (some providers key test behaviour on it).
    pub method_token: String,
    pub amount: Money,
    pub reason: Option<String>,
}

/// A provider's definite answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// Money moved; the provider's id for it.
    Succeeded {
        /// Provider id of the charge or refund.
        reference: String,
    },
    /// Refused (declined card, processing error); no money moved.
    Failed(Failure),
    /// Accepted but not final yet (asynchronous methods, 3-D Secure).
    Pending,
}

/// No definite answer. `Timeout` and `Unavailable` leave the outcome unknown (the request may
/// have reached the provider); `NotSent` is certain that it did not, so nothing was charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time.
    #[error("provider timed out")]
    Timeout,
    /// Network failure, 5xx, rate limited.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The request never reached the provider (connection refused, no connection in time, the
    /// circuit open, an answer the provider documents as "nothing was done"): a payment may
    /// try the next provider of its route.
    #[error("provider not reached: {0}")]
    NotSent(String),
}

/// A payment provider (mock, Stripe, PayPal). Calls carry the provider idempotency key, so
/// repeating a call after a crash never moves money twice.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Charges a payment method.
    async fn charge(&self, request: &ChargeRequest) -> Result<ProviderOutcome, ProviderError>;
    /// Refunds (part of) a charge.
    async fn refund(&self, request: &RefundRequest) -> Result<ProviderOutcome, ProviderError>;
    /// Whether calls may be made now: `Err(retry_after)` while the provider's circuit breaker
    /// is open, so a payment is refused before anything is written.
    fn availability(&self) -> Result<(), std::time::Duration> {
        Ok(())
    }
}

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
    ChargeFailed {
        /// Our transaction, from the metadata we sent.
        transaction_id: Option<TransactionId>,
        /// The provider's id of the charge.
        reference: String,
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
