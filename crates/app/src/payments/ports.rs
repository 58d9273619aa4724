//! Ports of the payments context: the store of payments, their transactions and events (each
//! write one database transaction, which is what makes the payment flow crash-safe), the
//! idempotency keys, and the log of processed provider notices.

use async_trait::async_trait;
use portside_domain::{CustomerId, Payment, PaymentId, PaymentStatus, Transaction, TransactionId};
use portside_kernel::{PageRequest, StoreError};
use time::OffsetDateTime;

use super::Outcome;
use super::idempotency::{IdempotencyClaim, IdempotencyRecord};

/// The answer to phase 1 of a charge or refund.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The key (if any) was claimed and the payment and transaction were written.
    Started,
    /// The key is taken by an earlier request; nothing was written.
    Existing(Box<IdempotencyRecord>),
}

/// Filters of the payment list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaymentFilter {
    /// Only this customer's payments.
    pub customer_id: Option<CustomerId>,
    /// Only payments in this status.
    pub status: Option<PaymentStatus>,
}

/// Payments, their transactions, and the outbox rows their changes produce. Each write method
/// is one database transaction, which is what makes the payment flow crash-safe.
#[async_trait]
pub trait PaymentRepository: Send + Sync {
    /// Phase 1 of a charge: claims the idempotency key (if any), inserts the payment, its pending
    /// charge and its events, atomically. Returns `Existing` and writes nothing if the key is taken.
    async fn begin_charge(
        &self,
        claim: Option<&IdempotencyClaim>,
        payment: &mut Payment,
        charge: &Transaction,
    ) -> Result<Begin, StoreError>;

    /// Phase 1 of a refund: claims the key (if any), saves the payment with its reservation
    /// (failing with `Conflict` if its version moved), inserts the pending refund.
    async fn begin_refund(
        &self,
        claim: Option<&IdempotencyClaim>,
        payment: &mut Payment,
        refund: &Transaction,
    ) -> Result<Begin, StoreError>;

    /// Phase 3: saves the payment (version-checked), settles the pending transaction, writes the
    /// events and stores `outcome` on the idempotency key that started the transaction.
    /// `Conflict` if the payment moved or the transaction is no longer pending.
    async fn settle(
        &self,
        payment: &mut Payment,
        transaction: &Transaction,
        outcome: &Outcome,
    ) -> Result<(), StoreError>;

    /// Saves a payment whose charge moved to the next provider of its route, or that a worker
    /// took for charging, with its events (version-checked, `Conflict` if it moved), before
    /// the provider is called, so a crash after it leaves the charge with the provider that
    /// may have it.
    async fn reroute(&self, payment: &mut Payment) -> Result<(), StoreError>;

    /// One payment.
    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError>;

    /// Up to `page.limit` payments, newest first.
    async fn payments(
        &self,
        filter: &PaymentFilter,
        page: PageRequest<PaymentId>,
    ) -> Result<Vec<Payment>, StoreError>;

    /// One transaction.
    async fn transaction(&self, id: TransactionId) -> Result<Option<Transaction>, StoreError>;

    /// A payment's transactions, oldest first.
    async fn transactions(&self, payment_id: PaymentId) -> Result<Vec<Transaction>, StoreError>;

    /// Transactions still pending that started before `started_before`: the recovery task's work.
    async fn stale_pending(
        &self,
        started_before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Transaction>, StoreError>;

    /// The payment a provider knows by `reference` (its id of the charge).
    async fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<Option<Payment>, StoreError>;
}

/// The idempotency keys' own operations (claiming happens inside the repository's phase 1).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The record of a key, if it exists and has not expired.
    async fn find(
        &self,
        scope: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Takes the lock of an unfinished key whose lock has lapsed; false if someone holds it.
    async fn relock(
        &self,
        scope: &str,
        key: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Gives up the lock of an unfinished key, so that a retry may resume at once.
    async fn release(&self, scope: &str, key: &str) -> Result<(), StoreError>;

    /// Deletes keys whose retention ended; returns how many.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
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
