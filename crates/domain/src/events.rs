//! Domain events: facts an aggregate records as it changes. Stores write them to the outbox
//! in the same transaction as the aggregate, so none is lost and none is invented.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::ids::{PaymentId, TransactionId};
use crate::payment::{Failure, Metadata, PaymentState, PaymentStatus};
use crate::purpose::Purpose;

/// The state of a payment as a consumer of its events needs it (a read model, a membership
/// upgrade, an order confirmation), carried by every payment event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PaymentSnapshot {
    pub payment_id: PaymentId,
    /// Who pays.
    pub customer_id: String,
    /// Amount as decimal text.
    pub amount: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO code.
    pub currency: String,
    /// Status after the change.
    pub status: PaymentStatus,
    /// Refunded so far, decimal text.
    pub refunded_amount: String,
    /// Provider adapter.
    pub provider: String,
    /// Client metadata (e.g. an order id or a membership purchase marker).
    pub metadata: Metadata,
    /// Aggregate version after the change.
    pub version: i64,
}

impl PaymentSnapshot {
    /// Takes the snapshot of a payment's state.
    pub fn of(state: &PaymentState) -> Self {
        PaymentSnapshot {
            payment_id: state.id,
            customer_id: state.customer_id.as_str().to_owned(),
            amount: state.amount.to_decimal_string(),
            amount_minor: state.amount.minor(),
            currency: state.amount.currency().code().to_owned(),
            status: state.status,
            refunded_amount: state.refunded().to_decimal_string(),
            provider: state.provider.clone(),
            metadata: state.metadata.clone(),
            version: state.version,
        }
    }
}

/// What the data of every payment event holds, whatever the event: the payment as it stands
/// after the change. Consumers decode this rather than reading the data by key.
#[derive(Clone, PartialEq, Eq, Debug, Deserialize)]
pub struct PaymentEventData {
    pub payment: PaymentSnapshot,
}

impl PaymentSnapshot {
    /// What the payment pays for, when Portside started it for an order or a membership;
    /// `Err` when its reserved metadata is there but unreadable.
    pub fn purpose(&self) -> Result<Option<Purpose>, DomainError> {
        Purpose::of(&self.metadata)
    }
}

/// Everything that can happen to a payment. Serialized without a tag: the envelope's
/// `type` says which one it is.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PaymentEvent {
    /// `payment.submitted`: accepted for asynchronous charging (`Prefer: respond-async`); a
    /// worker sends it to its provider later. Never for a payment charged in its request.
    Submitted {
        /// State after the change.
        payment: PaymentSnapshot,
    },
    /// `payment.created`: accepted, about to be sent to the provider.
    Created {
        /// State after the change.
        payment: PaymentSnapshot,
    },
    /// `payment.succeeded`: the money was captured.
    Succeeded {
        /// State after the change.
        payment: PaymentSnapshot,
        /// The provider's charge id.
        provider_reference: String,
    },
    /// `payment.failed`: the provider refused or failed; nothing was charged.
    Failed {
        /// State after the change.
        payment: PaymentSnapshot,
        failure: Failure,
    },
    /// `payment.refunded`: a refund (partial or full) was settled.
    Refunded {
        /// State after the change.
        payment: PaymentSnapshot,
        /// The refund transaction.
        refund_id: TransactionId,
        /// This refund's amount, decimal text.
        refund_amount: String,
        /// This refund's amount, minor units.
        refund_minor: i64,
    },
    /// `payment.refund_failed`: the provider refused a refund; the amount is refundable again.
    RefundFailed {
        /// State after the change.
        payment: PaymentSnapshot,
        /// The refund transaction.
        refund_id: TransactionId,
        /// This refund's amount, decimal text.
        refund_amount: String,
        /// This refund's amount, minor units.
        refund_minor: i64,
        failure: Failure,
    },
}

impl PaymentEvent {
    /// `payment.submitted`.
    pub const SUBMITTED: &'static str = "payment.submitted";
    /// `payment.created`.
    pub const CREATED: &'static str = "payment.created";
    /// `payment.succeeded`.
    pub const SUCCEEDED: &'static str = "payment.succeeded";
    /// `payment.failed`.
    pub const FAILED: &'static str = "payment.failed";
    /// `payment.refunded`.
    pub const REFUNDED: &'static str = "payment.refunded";
    /// `payment.refund_failed`.
    pub const REFUND_FAILED: &'static str = "payment.refund_failed";
    /// Every payment event type.
    pub const TYPES: &'static [&'static str] = &[
        Self::SUBMITTED,
        Self::CREATED,
        Self::SUCCEEDED,
        Self::FAILED,
        Self::REFUNDED,
        Self::REFUND_FAILED,
    ];
}

impl DomainEvent for PaymentEvent {
    const AGGREGATE: &'static str = "payment";

    fn event_type(&self) -> &'static str {
        match self {
            PaymentEvent::Submitted { .. } => Self::SUBMITTED,
            PaymentEvent::Created { .. } => Self::CREATED,
            PaymentEvent::Succeeded { .. } => Self::SUCCEEDED,
            PaymentEvent::Failed { .. } => Self::FAILED,
            PaymentEvent::Refunded { .. } => Self::REFUNDED,
            PaymentEvent::RefundFailed { .. } => Self::REFUND_FAILED,
        }
    }
}

/// What every domain event tells the outbox: its aggregate kind, its catalog name and the
/// version of its data's schema.
pub trait DomainEvent: Serialize + Clone + Debug + PartialEq + Send + Sync {
    /// `payment`, `user`, `message`, ...
    const AGGREGATE: &'static str;
    /// The catalog name, e.g. `payment.succeeded`.
    fn event_type(&self) -> &'static str;
    /// Schema version of the event's data; bumped on incompatible changes.
    fn version(&self) -> i32 {
        1
    }
}

/// An event with its place in the aggregate's history.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecordedEvent<E> {
    /// 1, 2, 3, ... per aggregate.
    pub sequence: i64,
    /// When it happened.
    pub occurred_at: OffsetDateTime,
    pub event: E,
}
