//! Transactions: the ledger of a payment. A charge or a refund is written once when it starts
//! (pending, the recovery point) and settled once; after that it never changes.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::ids::{PaymentId, TransactionId};
use crate::money::Money;
use crate::payment::{Failure, Metadata};

/// Money moving in (charge) or back out (refund).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// The capture of a payment.
    Charge,
    /// Money given back.
    Refund,
}

impl TransactionKind {
    /// Wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Charge => "charge",
            TransactionKind::Refund => "refund",
        }
    }
}

/// Whether the provider confirmed the movement.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    /// Sent (or about to be sent) to the provider; outcome unknown.
    Pending,
    /// The provider confirmed it.
    Succeeded,
    /// The provider refused it; no money moved.
    Failed,
}

impl TransactionStatus {
    /// Wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionStatus::Pending => "pending",
            TransactionStatus::Succeeded => "succeeded",
            TransactionStatus::Failed => "failed",
        }
    }
}

/// One charge or refund of a payment.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Transaction {
    pub id: TransactionId,
    /// The payment it belongs to.
    pub payment_id: PaymentId,
    /// Charge or refund.
    pub kind: TransactionKind,
    pub amount: Money,
    /// Pending, then succeeded or failed, once.
    pub status: TransactionStatus,
    /// The idempotency key sent to the provider: the same on every retry and recovery.
    pub provider_key: String,
    /// The provider's id for it, once known.
    pub provider_reference: Option<String>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// Why a refund was asked for (free text from the client).
    pub reason: Option<String>,
    /// Client metadata of a refund.
    #[serde(default)]
    pub metadata: Metadata,
    /// When it was started.
    pub created_at: OffsetDateTime,
    /// When it was settled.
    pub settled_at: Option<OffsetDateTime>,
}

impl Transaction {
    /// A pending charge of a payment's full amount.
    pub fn charge(
        id: TransactionId,
        payment_id: PaymentId,
        amount: Money,
        now: OffsetDateTime,
    ) -> Self {
        Self::pending(id, payment_id, TransactionKind::Charge, amount, None, now)
    }

    /// A pending refund.
    pub fn refund(
        id: TransactionId,
        payment_id: PaymentId,
        amount: Money,
        reason: Option<String>,
        now: OffsetDateTime,
    ) -> Result<Self, DomainError> {
        if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
            return Err(DomainError::TextTooLong {
                field: "reason",
                max: 500,
            });
        }
        Ok(Self::pending(
            id,
            payment_id,
            TransactionKind::Refund,
            amount,
            reason,
            now,
        ))
    }

    fn pending(
        id: TransactionId,
        payment_id: PaymentId,
        kind: TransactionKind,
        amount: Money,
        reason: Option<String>,
        now: OffsetDateTime,
    ) -> Self {
        Transaction {
            id,
            payment_id,
            kind,
            amount,
            status: TransactionStatus::Pending,
            // Derived from the transaction, which exists once per idempotency key: every
            // retry of one request reaches the provider with the same key.
            provider_key: format!("portside-{}-{}", kind.as_str(), id),
            provider_reference: None,
            failure: None,
            reason,
            metadata: Metadata::default(),
            created_at: now,
            settled_at: None,
        }
    }

    /// The same transaction carrying the client's metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Records the provider's confirmation.
    pub fn succeed(&mut self, reference: String, now: OffsetDateTime) -> Result<(), DomainError> {
        self.settle(TransactionStatus::Succeeded, now)?;
        self.provider_reference = Some(reference);
        Ok(())
    }

    /// Records the provider's refusal.
    pub fn fail(&mut self, failure: Failure, now: OffsetDateTime) -> Result<(), DomainError> {
        self.settle(TransactionStatus::Failed, now)?;
        self.failure = Some(failure);
        Ok(())
    }

    fn settle(&mut self, to: TransactionStatus, now: OffsetDateTime) -> Result<(), DomainError> {
        if self.status != TransactionStatus::Pending {
            return Err(DomainError::AlreadySettled(self.status.as_str()));
        }
        self.status = to;
        self.settled_at = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use uuid::Uuid;

    #[test]
    fn settles_once_and_keeps_its_provider_key() {
        let usd = Currency::from_code("USD").unwrap();
        let id = TransactionId(Uuid::from_u128(7));
        let mut t = Transaction::charge(
            id,
            PaymentId(Uuid::nil()),
            Money::from_minor(5, usd),
            OffsetDateTime::UNIX_EPOCH,
        );
        let key = t.provider_key.clone();
        assert!(key.contains(&id.to_string()));
        t.succeed("ch_1".into(), OffsetDateTime::UNIX_EPOCH)
            .unwrap();
        let again = t.fail(Failure::new("x", "y"), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(again.unwrap_err().code(), "transaction_already_settled");
        assert_eq!(t.status, TransactionStatus::Succeeded);
        assert_eq!(t.provider_key, key);
    }

    #[test]
    fn refund_reason_is_bounded() {
        let usd = Currency::from_code("USD").unwrap();
        let long = "x".repeat(501);
        let r = Transaction::refund(
            TransactionId(Uuid::nil()),
            PaymentId(Uuid::nil()),
            Money::from_minor(5, usd),
            Some(long),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(r.unwrap_err().code(), "text_too_long");
    }
}
