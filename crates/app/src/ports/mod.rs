//! Driven ports: what the use cases need from the outside world, as object-safe traits.
//! Adapters implement them; the composition root picks one adapter per port.

use async_trait::async_trait;
use portside_domain::{
    CustomerId, Failure, Metadata, Money, Payment, PaymentId, PaymentMethod, PaymentStatus,
    Transaction, TransactionId,
};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

pub use crate::events::Envelope;
use crate::idempotency::{IdempotencyClaim, IdempotencyRecord};

mod bus;
mod cache;
mod identity;
mod messages;
mod orders;
mod search;
mod webhooks;

pub use bus::{BusError, DeadLetter, DeadLetters, Delivery, EventBus, EventSource};
pub use cache::{Cache, CacheError};
pub use identity::{
    AccessToken, HashError, PasswordHasher, Redeemed, RefreshToken, RefreshTokens, TokenError,
    TokenService, UserPage, UserRepository,
};
pub use messages::{MessageFilter, MessageOrder, MessagePage, MessageRepository};
pub use orders::{OrderFilter, OrderPage, OrderRepository};
pub use search::{
    FACETS, FILTERS, SearchDocument, SearchError, SearchHit, SearchIndex, SearchQuery,
    SearchResults,
};
pub use webhooks::{
    NoticeOutcome, ProviderChange, ProviderEventRecord, ProviderEvents, ProviderNotice,
    WebhookError, WebhookVerifier,
};

/// Why a store could not do what was asked. Adapters map their own errors into this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the row first (optimistic concurrency) or it was already settled.
    #[error("concurrent modification")]
    Conflict,
    /// A unique value (an email, ...) is already taken.
    #[error("duplicate value")]
    Duplicate,
    /// The inbox already holds this event for this group: the effect happened before.
    #[error("event already processed")]
    AlreadyProcessed,
    /// A row this write refers to does not exist (any more): a foreign key was refused.
    #[error("a referenced row does not exist")]
    MissingReference,
    /// The store cannot be reached right now (connection refused, pool timeout).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data. Details go to the log, not to the client.
    #[error("store failure: {0}")]
    Other(String),
}

/// The answer to phase 1 of a charge or refund.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// The key (if any) was claimed and the payment and transaction were written.
    Started,
    /// The key is taken by an earlier request; nothing was written.
    Existing(IdempotencyRecord),
}

/// Filters of the payment list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaymentFilter {
    /// Only this customer's payments.
    pub customer_id: Option<CustomerId>,
    /// Only payments in this status.
    pub status: Option<PaymentStatus>,
}

/// Keyset page: newest first, strictly older than `after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageRequest {
    /// How many items to return.
    pub limit: u32,
    /// The last id of the previous page.
    pub after: Option<PaymentId>,
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
        outcome: &Value,
    ) -> Result<(), StoreError>;

    /// One payment.
    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError>;

    /// Up to `page.limit` payments, newest first.
    async fn payments(
        &self,
        filter: &PaymentFilter,
        page: PageRequest,
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

/// How far the relay is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxLag {
    /// Rows not yet published.
    pub unpublished: u64,
    /// When the oldest of them was written.
    pub oldest: Option<OffsetDateTime>,
}

/// The outbox as the relay sees it. Rows are claimed with a lease (so several relays never
/// publish the same row at once, and a crashed relay's rows come back), published, then marked.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Unpublished events, oldest first (diagnostics and tests).
    async fn unpublished(&self, limit: u32) -> Result<Vec<Envelope>, StoreError>;

    /// Leases up to `limit` unpublished rows to `relay` until `lease_until`, oldest first,
    /// skipping rows leased by others and rows whose aggregate has an earlier row leased by
    /// another relay (per-aggregate order).
    async fn claim(
        &self,
        relay: &str,
        limit: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// Marks rows published (after the bus confirmed them).
    async fn mark_published(&self, ids: &[Uuid], now: OffsetDateTime) -> Result<(), StoreError>;

    /// Gives leased rows back (the bus refused them).
    async fn release(&self, ids: &[Uuid]) -> Result<(), StoreError>;

    /// Count and age of what is not yet published.
    async fn lag(&self) -> Result<OutboxLag, StoreError>;
}

/// Which consumer group processed which event: the inbox that makes at-least-once delivery
/// effectively-once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxMark {
    /// Consumer group.
    pub group: String,
    /// Event id.
    pub event_id: Uuid,
    /// When processed.
    pub at: OffsetDateTime,
}

/// The inbox of processed events.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Whether the group already processed the event.
    async fn processed(&self, group: &str, event_id: Uuid) -> Result<bool, StoreError>;
    /// Records the event as processed; false if it already was.
    async fn mark_processed(&self, mark: &InboxMark) -> Result<bool, StoreError>;
    /// Which of `event_ids` the group already processed (a store answers in one query).
    async fn processed_among(
        &self,
        group: &str,
        event_ids: &[Uuid],
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut done = Vec::new();
        for id in event_ids {
            if self.processed(group, *id).await? {
                done.push(*id);
            }
        }
        Ok(done)
    }
    /// Records several events as processed (a store commits them together).
    async fn mark_all_processed(&self, marks: &[InboxMark]) -> Result<(), StoreError> {
        for mark in marks {
            self.mark_processed(mark).await?;
        }
        Ok(())
    }
}

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
    /// How much.
    pub amount: Money,
    /// Why.
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

/// The outcome is unknown: the request may or may not have reached the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time.
    #[error("provider timed out")]
    Timeout,
    /// Network failure, 5xx, rate limited.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
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

/// Current time; a port so that tests control it.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// New identities; a port so that tests get predictable ids.
pub trait IdGenerator: Send + Sync {
    /// A fresh UUID (v7 in production: sortable by creation time).
    fn new_id(&self) -> Uuid;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Truncated to microseconds, the precision both SQL engines store, so that what a request
    /// returns equals what a later read returns.
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now)
    }
}

/// UUID v7 ids.
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// A dependency that `/health/ready` checks.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Short name shown in the readiness report (`store`, `bus`, ...).
    fn name(&self) -> &'static str;
    /// Whether requests fail without it. The store is essential; a broker (the outbox holds
    /// events while it is away) or a cache (reads go to the store) is not: without one of
    /// those the process is degraded but still serves.
    fn essential(&self) -> bool {
        true
    }
    /// Ok when usable.
    async fn check(&self) -> Result<(), String>;
}
