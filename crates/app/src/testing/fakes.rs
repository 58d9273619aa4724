//! In-memory fakes of the driven ports. The store fake passes the same contract suite as the
//! SQL adapters, so use-case tests against it say something true about production.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use portside_domain::{
    AccountName, Actor, Aggregate, Balance, Currency, Email, LedgerTransactionId, Message,
    MessageId, Order, OrderId, OrderState, Payment, PaymentId, PaymentState, Posting, Product,
    ProductState, Sku, Stock, StockAdjustment, StockMovement, StockState, Transaction,
    TransactionId, TransactionStatus, Transfer, TransferId, TransferState, User, UserId, UserState,
    stock,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::catalog::{CatalogRepository, ProductFilter, stock_refused};
use crate::ledger::{
    AccountBalance, AccountCursor, AccountFilter, Difference, EntryCursor, EntryLine, LedgerStore,
};
use crate::messages::{MessageFilter, MessageOrder, MessageRepository};
use crate::orders::{OrderFilter, OrderRepository};
use crate::payments::idempotency::{IdempotencyClaim, IdempotencyRecord, IdempotentRequest};
use crate::payments::{
    Begin, ChargeRequest, IdempotencyStore, Outcome, PaymentFilter, PaymentProvider,
    PaymentRepository, ProviderError, ProviderEventRecord, ProviderEvents, ProviderOutcome,
    RefundRequest,
};
use crate::users::{
    AccessToken, HashError, PasswordHasher, Redeemed, RefreshToken, RefreshTokens, TokenError,
    TokenService, UserRepository,
};
use crate::wallets::{Recorded, TransferStore};
use crate::webhooks::{
    DeliveryFilter, DeliveryRecord, PendingFigures, WebhookDeliveryStore, WebhookEndpointStore,
};
use portside_domain::RecordedEvent;
use portside_domain::webhook::delivery::{
    Attempt, DeliveryId, DeliveryStatus, DisabledReason, WebhookDelivery, WebhookEndpointEvent,
};
use portside_domain::webhook::{EndpointId, WebhookEndpoint};
use portside_events::retention::{Retained, Retention};
use portside_events::{Envelope, EventHistory, Inbox, InboxMark, Outbox, OutboxLag};
use portside_kernel::{Cache, CacheError, Clock, IdGenerator, PageRequest, StoreError};

#[derive(Default)]
struct Tables {
    payments: BTreeMap<PaymentId, PaymentState>,
    transactions: BTreeMap<TransactionId, Transaction>,
    keys: HashMap<(String, String), IdempotencyRecord>,
    outbox: Vec<OutboxRow>,
    /// When each group processed each event.
    inbox: HashMap<(String, Uuid), OffsetDateTime>,
    provider_events: HashMap<(String, String), ProviderEventRecord>,
    /// The event history, with when each event was recorded.
    history: Vec<(Envelope, OffsetDateTime)>,
    users: BTreeMap<UserId, UserState>,
    /// Tokens with their used and revoked times.
    refresh: Vec<(RefreshToken, Option<OffsetDateTime>, Option<OffsetDateTime>)>,
    messages: BTreeMap<MessageId, Message>,
    orders: BTreeMap<OrderId, OrderState>,
    /// (scope, key) → the order placed with it and the request's fingerprint.
    order_keys: HashMap<(String, String), (OrderId, String)>,
    products: BTreeMap<Sku, ProductState>,
    stock: BTreeMap<Sku, StockState>,
    movements: Vec<StockMovement>,
    /// What each order holds, by SKU.
    reservations: HashMap<OrderId, BTreeMap<Sku, i64>>,
    /// The ledger's transactions in the order they were written.
    postings: Vec<Posting>,
    /// Transfers with the key that made them.
    transfers: BTreeMap<TransferId, (TransferState, Option<IdempotentRequest>)>,
    webhook_endpoints: BTreeMap<EndpointId, WebhookEndpoint>,
    /// Deliveries with their attempts.
    webhook_deliveries: BTreeMap<DeliveryId, DeliveryRecord>,
    /// Events recorded per endpoint (the sequence of its next one).
    webhook_endpoint_events: HashMap<EndpointId, i64>,
    routing: crate::routing::StoredRules,
}

/// An outbox row with its relay bookkeeping.
#[derive(Clone)]
struct OutboxRow {
    event: Envelope,
    published_at: Option<OffsetDateTime>,
    claimed_until: Option<OffsetDateTime>,
    claimed_by: Option<String>,
}

impl OutboxRow {
    fn new(event: Envelope) -> Self {
        OutboxRow {
            event,
            published_at: None,
            claimed_until: None,
            claimed_by: None,
        }
    }
}

/// Payments, transactions, keys and outbox in memory, with the same atomicity as the SQL store.
#[derive(Default)]
pub struct InMemoryStore {
    tables: Mutex<Tables>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Tables>, StoreError> {
        self.tables
            .lock()
            .map_err(|_| StoreError::Other("poisoned".into()))
    }
}

/// The posting of a charge or refund at its status, as the SQL store writes it.
fn movement(payment: &Payment, txn: &Transaction) -> Result<Posting, StoreError> {
    let at = txn.settled_at.unwrap_or(txn.created_at);
    Posting::of_movement(payment.state(), txn, at).map_err(|e| StoreError::Other(e.to_string()))
}

impl Tables {
    /// Every account's balance from the postings.
    fn balances(&self) -> BTreeMap<(AccountName, Currency), Balance> {
        let mut balances: BTreeMap<(AccountName, Currency), Balance> = BTreeMap::new();
        for p in &self.postings {
            for e in &p.entries {
                let b = balances.entry((e.account.clone(), e.currency)).or_default();
                *b = b.plus(Balance::delta(e.side, e.amount_minor, p.phase));
            }
        }
        balances
    }

    /// Appends a posting unless it would settle a pending one twice, repeat a cause or take a
    /// guarded account below zero, as the SQL store's keys and guard refuse it.
    fn post(&mut self, p: Posting) -> Result<(), StoreError> {
        let taken = self.postings.iter().any(|q| {
            q.id == p.id
                || q.cause == p.cause
                || (p.phase.refers_to().is_some() && q.phase.refers_to() == p.phase.refers_to())
        });
        if taken {
            return Err(StoreError::Duplicate);
        }
        self.postings.push(p);
        let broken = self
            .balances()
            .into_iter()
            .find(|((account, _), b)| b.breaks_guard(account));
        if let Some(((account, currency), _)) = broken {
            self.postings.pop();
            return Err(StoreError::Refused {
                code: "insufficient_funds".into(),
                subject: account.to_string(),
                detail: format!("the available balance of {account} in {currency} is too low"),
            });
        }
        Ok(())
    }

    /// Claims a key unless a live one exists; expired keys are replaced.
    fn claim(&mut self, claim: &IdempotencyClaim) -> Option<IdempotencyRecord> {
        let id = (claim.scope.clone(), claim.key.clone());
        if let Some(existing) = self.keys.get(&id)
            && existing.expires_at > claim.created_at
        {
            return Some(existing.clone());
        }
        self.keys.insert(
            id,
            IdempotencyRecord {
                scope: claim.scope.clone(),
                key: claim.key.clone(),
                fingerprint: claim.fingerprint.clone(),
                transaction_id: claim.transaction_id,
                locked_until: claim.outcome.is_none().then_some(claim.locked_until),
                outcome: claim.outcome.clone(),
                created_at: claim.created_at,
                expires_at: claim.expires_at,
            },
        );
        None
    }

    fn check_version(&self, payment: &Payment) -> Result<(), StoreError> {
        let stored = self.payments.get(&payment.id()).map(|p| p.version);
        if stored == payment.loaded_version() {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    fn save(&mut self, payment: &mut Payment) -> Result<(), StoreError> {
        for recorded in payment.pending_events() {
            self.outbox.push(OutboxRow::new(Envelope::of(
                Uuid::now_v7(),
                payment.id().to_string(),
                recorded,
            )?));
        }
        self.payments.insert(payment.id(), payment.state().clone());
        payment.mark_saved();
        Ok(())
    }
}

#[async_trait]
impl PaymentRepository for InMemoryStore {
    async fn begin_charge(
        &self,
        claim: Option<&IdempotencyClaim>,
        payment: &mut Payment,
        charge: &Transaction,
    ) -> Result<Begin, StoreError> {
        let mut t = self.lock()?;
        t.check_version(payment)?;
        if let Some(existing) = claim.and_then(|c| t.claim(c)) {
            return Ok(Begin::Existing(Box::new(existing)));
        }
        t.post(movement(payment, charge)?)?;
        t.transactions.insert(charge.id, charge.clone());
        t.save(payment)?;
        Ok(Begin::Started)
    }

    async fn begin_refund(
        &self,
        claim: Option<&IdempotencyClaim>,
        payment: &mut Payment,
        refund: &Transaction,
    ) -> Result<Begin, StoreError> {
        let mut t = self.lock()?;
        if let Some(existing) = claim.and_then(|c| t.claim(c)) {
            return Ok(Begin::Existing(Box::new(existing)));
        }
        if let Err(e) = t.check_version(payment) {
            // Roll the claim back, as the SQL transaction would.
            if let Some(c) = claim {
                t.keys.remove(&(c.scope.clone(), c.key.clone()));
            }
            return Err(e);
        }
        t.post(movement(payment, refund)?)?;
        t.transactions.insert(refund.id, refund.clone());
        t.save(payment)?;
        Ok(Begin::Started)
    }

    async fn settle(
        &self,
        payment: &mut Payment,
        transaction: &Transaction,
        outcome: &Outcome,
    ) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        t.check_version(payment)?;
        match t.transactions.get(&transaction.id) {
            Some(stored) if stored.status == TransactionStatus::Pending => {}
            _ => return Err(StoreError::Conflict),
        }
        t.post(movement(payment, transaction)?)?;
        t.transactions.insert(transaction.id, transaction.clone());
        for record in t.keys.values_mut() {
            if record.transaction_id == transaction.id && record.outcome.is_none() {
                record.outcome = Some(outcome.clone());
                record.locked_until = None;
            }
        }
        t.save(payment)
    }

    async fn reroute(&self, payment: &mut Payment) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        t.check_version(payment)?;
        t.save(payment)
    }

    async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        Ok(self
            .lock()?
            .payments
            .get(&id)
            .cloned()
            .map(Payment::restore))
    }

    async fn payments(
        &self,
        filter: &PaymentFilter,
        page: PageRequest<PaymentId>,
    ) -> Result<Vec<Payment>, StoreError> {
        let t = self.lock()?;
        Ok(t.payments
            .values()
            .rev()
            .filter(|p| page.after.is_none_or(|after| p.id < after))
            .filter(|p| {
                filter
                    .customer_id
                    .as_ref()
                    .is_none_or(|c| &p.customer_id == c)
            })
            .filter(|p| filter.status.is_none_or(|s| p.status == s))
            .take(page.limit as usize)
            .cloned()
            .map(Payment::restore)
            .collect())
    }

    async fn transaction(&self, id: TransactionId) -> Result<Option<Transaction>, StoreError> {
        Ok(self.lock()?.transactions.get(&id).cloned())
    }

    async fn transactions(&self, payment_id: PaymentId) -> Result<Vec<Transaction>, StoreError> {
        Ok(self
            .lock()?
            .transactions
            .values()
            .filter(|t| t.payment_id == payment_id)
            .cloned()
            .collect())
    }

    async fn stale_pending(
        &self,
        started_before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Transaction>, StoreError> {
        Ok(self
            .lock()?
            .transactions
            .values()
            .filter(|t| t.status == TransactionStatus::Pending && t.created_at < started_before)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<Option<Payment>, StoreError> {
        Ok(self
            .lock()?
            .payments
            .values()
            .find(|p| p.provider == provider && p.provider_reference.as_deref() == Some(reference))
            .cloned()
            .map(Payment::restore))
    }
}

#[async_trait]
impl ProviderEvents for InMemoryStore {
    async fn provider_event_seen(
        &self,
        provider: &str,
        event_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .lock()?
            .provider_events
            .contains_key(&(provider.to_owned(), event_id.to_owned())))
    }

    async fn record_provider_event(
        &self,
        record: &ProviderEventRecord,
    ) -> Result<bool, StoreError> {
        let key = (record.provider.clone(), record.event_id.clone());
        let mut tables = self.lock()?;
        if tables.provider_events.contains_key(&key) {
            return Ok(false);
        }
        tables.provider_events.insert(key, record.clone());
        Ok(true)
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryStore {
    async fn find(
        &self,
        scope: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .lock()?
            .keys
            .get(&(scope.to_owned(), key.to_owned()))
            .filter(|r| r.expires_at > now)
            .cloned())
    }

    async fn relock(
        &self,
        scope: &str,
        key: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut t = self.lock()?;
        match t.keys.get_mut(&(scope.to_owned(), key.to_owned())) {
            Some(r) if r.outcome.is_none() && r.locked_until.is_none_or(|l| l <= now) => {
                r.locked_until = Some(until);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        if let Some(r) = self
            .lock()?
            .keys
            .get_mut(&(scope.to_owned(), key.to_owned()))
        {
            r.locked_until = None;
        }
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut t = self.lock()?;
        let before = t.keys.len();
        t.keys.retain(|_, r| r.expires_at > now);
        Ok((before - t.keys.len()) as u64)
    }
}

#[async_trait]
impl Outbox for InMemoryStore {
    async fn unpublished(&self, limit: u32) -> Result<Vec<Envelope>, StoreError> {
        Ok(self
            .lock()?
            .outbox
            .iter()
            .filter(|r| r.published_at.is_none())
            .take(limit as usize)
            .map(|r| r.event.clone())
            .collect())
    }

    async fn claim(
        &self,
        relay: &str,
        limit: u32,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Envelope>, StoreError> {
        let mut t = self.lock()?;
        let leased_elsewhere: Vec<(String, String, i64)> = t
            .outbox
            .iter()
            .filter(|r| {
                r.published_at.is_none()
                    && r.claimed_until.is_some_and(|u| u >= now)
                    && r.claimed_by.as_deref() != Some(relay)
            })
            .map(|r| {
                (
                    r.event.aggregate_type.clone(),
                    r.event.aggregate_id.clone(),
                    r.event.sequence,
                )
            })
            .collect();
        let mut claimed = Vec::new();
        for row in t.outbox.iter_mut() {
            if claimed.len() == limit as usize {
                break;
            }
            let free = row.published_at.is_none() && row.claimed_until.is_none_or(|u| u < now);
            let blocked = leased_elsewhere.iter().any(|(ty, id, seq)| {
                *ty == row.event.aggregate_type
                    && *id == row.event.aggregate_id
                    && *seq < row.event.sequence
            });
            if free && !blocked {
                row.claimed_until = Some(lease_until);
                row.claimed_by = Some(relay.to_owned());
                claimed.push(row.event.clone());
            }
        }
        Ok(claimed)
    }

    async fn mark_published(&self, ids: &[Uuid], now: OffsetDateTime) -> Result<(), StoreError> {
        for row in self.lock()?.outbox.iter_mut() {
            if ids.contains(&row.event.id) {
                row.published_at = Some(now);
            }
        }
        Ok(())
    }

    async fn release(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        for row in self.lock()?.outbox.iter_mut() {
            if ids.contains(&row.event.id) && row.published_at.is_none() {
                row.claimed_until = None;
                row.claimed_by = None;
            }
        }
        Ok(())
    }

    async fn lag(&self) -> Result<OutboxLag, StoreError> {
        let t = self.lock()?;
        let waiting: Vec<_> = t
            .outbox
            .iter()
            .filter(|r| r.published_at.is_none())
            .collect();
        Ok(OutboxLag {
            unpublished: waiting.len() as u64,
            oldest: waiting.iter().map(|r| r.event.occurred_at).min(),
        })
    }
}

#[async_trait]
impl Inbox for InMemoryStore {
    async fn processed(&self, group: &str, event_id: Uuid) -> Result<bool, StoreError> {
        Ok(self
            .lock()?
            .inbox
            .contains_key(&(group.to_owned(), event_id)))
    }

    async fn mark_processed(&self, mark: &InboxMark) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        let key = (mark.group.clone(), mark.event_id);
        if tables.inbox.contains_key(&key) {
            return Ok(false);
        }
        tables.inbox.insert(key, mark.at);
        Ok(true)
    }
}

#[async_trait]
impl Retention for InMemoryStore {
    async fn purge(
        &self,
        table: Retained,
        before: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let mut tables = self.lock()?;
        let mut left = batch as usize;
        let mut take = |old: bool| {
            let purge = old && left > 0;
            left -= usize::from(purge);
            !purge
        };
        let t = &mut *tables;
        let before_len = match table {
            Retained::Outbox => t.outbox.len(),
            Retained::Inbox => t.inbox.len(),
            Retained::ProviderEvents => t.provider_events.len(),
            Retained::EventHistory => t.history.len(),
            Retained::WebhookDeliveries => t.webhook_deliveries.len(),
        };
        match table {
            Retained::Outbox => t
                .outbox
                .retain(|r| take(r.published_at.is_some_and(|p| p < before))),
            Retained::Inbox => t.inbox.retain(|_, at| take(*at < before)),
            Retained::ProviderEvents => t
                .provider_events
                .retain(|_, e| take(e.received_at < before)),
            Retained::EventHistory => t.history.retain(|(_, at)| take(*at < before)),
            Retained::WebhookDeliveries => t
                .webhook_deliveries
                .retain(|_, r| take(r.delivery.created_at < before)),
        }
        let after_len = match table {
            Retained::Outbox => t.outbox.len(),
            Retained::Inbox => t.inbox.len(),
            Retained::ProviderEvents => t.provider_events.len(),
            Retained::EventHistory => t.history.len(),
            Retained::WebhookDeliveries => t.webhook_deliveries.len(),
        };
        Ok((before_len - after_len) as u64)
    }
}

#[async_trait]
impl EventHistory for InMemoryStore {
    async fn append(&self, events: &[&Envelope], at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        for e in events {
            if !tables.history.iter().any(|(h, _)| h.id == e.id) {
                tables.history.push(((*e).clone(), at));
            }
        }
        Ok(())
    }

    async fn of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        limit: u32,
    ) -> Result<Vec<Envelope>, StoreError> {
        let tables = self.lock()?;
        let mut found: Vec<Envelope> = tables
            .history
            .iter()
            .map(|(e, _)| e)
            .filter(|e| e.aggregate_type == aggregate_type && e.aggregate_id == aggregate_id)
            .cloned()
            .collect();
        found.sort_by_key(|e| (e.sequence, e.id));
        found.truncate(limit as usize);
        Ok(found)
    }
}

impl Tables {
    fn save_user(&mut self, user: &mut User) -> Result<(), StoreError> {
        for recorded in user.pending_events() {
            self.outbox.push(OutboxRow::new(Envelope::of(
                Uuid::now_v7(),
                user.id().to_string(),
                recorded,
            )?));
        }
        self.users.insert(user.id(), user.state().clone());
        user.mark_saved();
        Ok(())
    }

    fn email_taken(&self, user: &User) -> bool {
        self.users
            .values()
            .any(|u| u.email == user.state().email && u.id != user.id())
    }
}

#[async_trait]
impl UserRepository for InMemoryStore {
    async fn insert_user(&self, user: &mut User) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        if t.email_taken(user) || t.users.contains_key(&user.id()) {
            return Err(StoreError::Duplicate);
        }
        t.save_user(user)
    }

    async fn update_user(
        &self,
        user: &mut User,
        mark: Option<&InboxMark>,
    ) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        if let Some(m) = mark
            && t.inbox.contains_key(&(m.group.clone(), m.event_id))
        {
            return Err(StoreError::AlreadyProcessed);
        }
        if t.users.get(&user.id()).map(|u| u.version) != user.loaded_version() {
            return Err(StoreError::Conflict);
        }
        if t.email_taken(user) {
            return Err(StoreError::Duplicate);
        }
        if let Some(m) = mark {
            t.inbox.insert((m.group.clone(), m.event_id), m.at);
        }
        t.save_user(user)
    }

    async fn delete_user(&self, user: &mut User) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        if t.users.get(&user.id()).map(|u| u.version) != user.loaded_version() {
            return Err(StoreError::Conflict);
        }
        let id = user.id();
        t.save_user(user)?;
        t.users.remove(&id);
        t.refresh.retain(|(r, _, _)| r.user_id != id);
        t.messages.retain(|_, m| m.owner_id != id);
        Ok(())
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.lock()?.users.get(&id).cloned().map(User::restore))
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        Ok(self
            .lock()?
            .users
            .values()
            .find(|u| &u.email == email)
            .cloned()
            .map(User::restore))
    }

    async fn users(&self, page: PageRequest<UserId>) -> Result<Vec<User>, StoreError> {
        Ok(self
            .lock()?
            .users
            .values()
            .filter(|u| page.after.is_none_or(|a| u.id > a))
            .take(page.limit as usize)
            .cloned()
            .map(User::restore)
            .collect())
    }

    async fn memberships_ended_by(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let mut ended: Vec<_> = self
            .lock()?
            .users
            .values()
            .filter_map(|u| {
                u.membership_until
                    .filter(|end| *end <= now)
                    .map(|end| (end, u.id))
            })
            .collect();
        ended.sort();
        Ok(ended
            .into_iter()
            .take(limit as usize)
            .map(|(_, id)| id)
            .collect())
    }
}

#[async_trait]
impl RefreshTokens for InMemoryStore {
    async fn issue(&self, token: &RefreshToken) -> Result<(), StoreError> {
        self.lock()?.refresh.push((token.clone(), None, None));
        Ok(())
    }

    async fn redeem(&self, digest: &str, now: OffsetDateTime) -> Result<Redeemed, StoreError> {
        let mut t = self.lock()?;
        let Some(entry) = t.refresh.iter_mut().find(|(r, _, _)| r.digest == digest) else {
            return Ok(Redeemed::Unknown);
        };
        match entry {
            (r, None, None) if r.expires_at > now => {
                entry.1 = Some(now);
                Ok(Redeemed::Fresh(entry.0.clone()))
            }
            (_, None, None) => Ok(Redeemed::Unknown),
            (r, _, _) => Ok(Redeemed::Reused(r.clone())),
        }
    }

    async fn revoke_family(&self, family_id: Uuid, now: OffsetDateTime) -> Result<(), StoreError> {
        for entry in self.lock()?.refresh.iter_mut() {
            if entry.0.family_id == family_id && entry.2.is_none() {
                entry.2 = Some(now);
            }
        }
        Ok(())
    }

    async fn revoke_family_of(
        &self,
        digest: &str,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let family = self
            .lock()?
            .refresh
            .iter()
            .find(|(r, _, _)| r.digest == digest && r.user_id == user_id)
            .map(|(r, _, _)| r.family_id);
        match family {
            Some(f) => self.revoke_family(f, now).await,
            None => Ok(()),
        }
    }

    async fn revoke_user(&self, user_id: UserId, now: OffsetDateTime) -> Result<(), StoreError> {
        for entry in self.lock()?.refresh.iter_mut() {
            if entry.0.user_id == user_id && entry.2.is_none() {
                entry.2 = Some(now);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MessageRepository for InMemoryStore {
    async fn insert_message(&self, message: &Message) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        if !t.users.contains_key(&message.owner_id) {
            return Err(StoreError::Other("owner does not exist".into()));
        }
        t.messages.insert(message.id, message.clone());
        Ok(())
    }

    async fn update_message(&self, message: &Message) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        match t.messages.get(&message.id) {
            Some(m) if m.version == message.version - 1 => {
                t.messages.insert(message.id, message.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn delete_message(&self, id: MessageId) -> Result<bool, StoreError> {
        Ok(self.lock()?.messages.remove(&id).is_some())
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        Ok(self.lock()?.messages.get(&id).cloned())
    }

    async fn messages(
        &self,
        filter: &MessageFilter,
        page: PageRequest<(OffsetDateTime, MessageId)>,
    ) -> Result<Vec<Message>, StoreError> {
        let t = self.lock()?;
        let needle = filter.text.as_ref().map(|q| q.to_lowercase());
        let mut found: Vec<Message> = t
            .messages
            .values()
            .filter(|m| filter.owner_id.is_none_or(|o| m.owner_id == o))
            .filter(|m| {
                needle
                    .as_ref()
                    .is_none_or(|q| m.body.as_str().to_lowercase().contains(q))
            })
            .filter(|m| filter.created_after.is_none_or(|a| m.created_at > a))
            .filter(|m| filter.created_before.is_none_or(|b| m.created_at < b))
            .cloned()
            .collect();
        found.sort_by_key(|m| (m.created_at, m.id));
        if filter.order == MessageOrder::Newest {
            found.reverse();
        }
        Ok(found
            .into_iter()
            .filter(|m| match (page.after, filter.order) {
                (None, _) => true,
                (Some(after), MessageOrder::Oldest) => (m.created_at, m.id) > after,
                (Some(after), MessageOrder::Newest) => (m.created_at, m.id) < after,
            })
            .take(page.limit as usize)
            .collect())
    }
}

#[async_trait]
impl OrderRepository for InMemoryStore {
    async fn insert_keyed_order(
        &self,
        order: &mut Order,
        key: Option<&IdempotentRequest>,
    ) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        let slot = key.map(|k| (k.scope.clone(), k.key.as_str().to_owned()));
        if t.orders.contains_key(&order.id())
            || slot.as_ref().is_some_and(|s| t.order_keys.contains_key(s))
        {
            return Err(StoreError::Duplicate);
        }
        t.save_order(order)?;
        if let (Some(slot), Some(k)) = (slot, key) {
            t.order_keys
                .insert(slot, (order.id(), k.fingerprint.clone()));
        }
        Ok(())
    }

    async fn order_by_key(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<(Order, String)>, StoreError> {
        let t = self.lock()?;
        Ok(t.order_keys
            .get(&(scope.to_owned(), key.to_owned()))
            .and_then(|(id, fingerprint)| {
                t.orders
                    .get(id)
                    .map(|o| (Order::restore(o.clone()), fingerprint.clone()))
            }))
    }

    async fn update_order(
        &self,
        order: &mut Order,
        mark: Option<&InboxMark>,
    ) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        if let Some(m) = mark
            && t.inbox.contains_key(&(m.group.clone(), m.event_id))
        {
            return Err(StoreError::AlreadyProcessed);
        }
        if t.orders.get(&order.id()).map(|o| o.version) != order.loaded_version() {
            return Err(StoreError::Conflict);
        }
        if let Some(m) = mark {
            t.inbox.insert((m.group.clone(), m.event_id), m.at);
        }
        t.save_order(order)
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.lock()?.orders.get(&id).cloned().map(Order::restore))
    }

    async fn orders(
        &self,
        filter: &OrderFilter,
        page: PageRequest<(OffsetDateTime, OrderId)>,
    ) -> Result<Vec<Order>, StoreError> {
        let t = self.lock()?;
        let mut found: Vec<OrderState> = t
            .orders
            .values()
            .filter(|o| {
                filter
                    .customer_id
                    .as_ref()
                    .is_none_or(|c| &o.customer_id == c)
            })
            .filter(|o| filter.status.is_none_or(|s| o.status == s))
            .filter(|o| filter.created_after.is_none_or(|a| o.created_at > a))
            .filter(|o| filter.created_before.is_none_or(|b| o.created_at <= b))
            .filter(|o| page.after.is_none_or(|after| (o.created_at, o.id) < after))
            .cloned()
            .collect();
        found.sort_by_key(|o| std::cmp::Reverse((o.created_at, o.id)));
        Ok(found
            .into_iter()
            .take(page.limit as usize)
            .map(Order::restore)
            .collect())
    }
}

impl Tables {
    /// Saves an order with what its changes ask of stock, all or nothing.
    fn save_order(&mut self, order: &mut Order) -> Result<(), StoreError> {
        let held = self
            .reservations
            .get(&order.id())
            .cloned()
            .unwrap_or_default();
        let mut stocks: BTreeMap<Sku, Stock> = stock::skus_touched(order, &held)
            .into_iter()
            .filter_map(|sku| {
                self.stock
                    .get(&sku)
                    .cloned()
                    .map(|s| (sku, Stock::restore(s)))
            })
            .collect();
        let held = stock::apply_order(order, held, &mut stocks)
            .map_err(|(sku, e)| stock_refused(&sku, &e))?;
        for mut s in stocks.into_values() {
            self.save_stock(&mut s)?;
        }
        self.reservations.insert(order.id(), held);
        self.events(order)?;
        self.orders.insert(order.id(), order.state().clone());
        order.mark_saved();
        Ok(())
    }

    fn save_stock(&mut self, s: &mut Stock) -> Result<(), StoreError> {
        self.movements.extend(s.movements().cloned());
        self.events(s)?;
        self.stock.insert(s.state().sku.clone(), s.state().clone());
        s.mark_saved();
        Ok(())
    }

    /// Appends an aggregate's new events to the outbox.
    fn events<A: Aggregate>(&mut self, a: &A) -> Result<(), StoreError> {
        for recorded in a.pending_events() {
            self.outbox.push(OutboxRow::new(Envelope::of(
                Uuid::now_v7(),
                a.aggregate_id(),
                recorded,
            )?));
        }
        Ok(())
    }
}

#[async_trait]
impl CatalogRepository for InMemoryStore {
    async fn insert_product(
        &self,
        product: &mut Product,
        stock: Option<&mut Stock>,
    ) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        if t.products.contains_key(product.sku()) {
            return Err(StoreError::Duplicate);
        }
        t.events(product)?;
        t.products
            .insert(product.sku().clone(), product.state().clone());
        product.mark_saved();
        if let Some(s) = stock {
            t.save_stock(s)?;
        }
        Ok(())
    }

    async fn update_product(&self, product: &mut Product) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        if t.products.get(product.sku()).map(|p| p.version) != product.loaded_version() {
            return Err(StoreError::Conflict);
        }
        t.events(product)?;
        t.products
            .insert(product.sku().clone(), product.state().clone());
        product.mark_saved();
        Ok(())
    }

    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        Ok(self
            .lock()?
            .products
            .get(sku)
            .cloned()
            .map(Product::restore))
    }

    async fn products(
        &self,
        filter: &ProductFilter,
        page: PageRequest<Sku>,
    ) -> Result<Vec<Product>, StoreError> {
        let t = self.lock()?;
        Ok(t.products
            .values()
            .filter(|p| filter.active.is_none_or(|a| p.active == a))
            .filter(|p| page.after.as_ref().is_none_or(|after| &p.sku > after))
            .take(page.limit as usize)
            .cloned()
            .map(Product::restore)
            .collect())
    }

    async fn stock(&self, sku: &Sku) -> Result<Option<Stock>, StoreError> {
        Ok(self.lock()?.stock.get(sku).cloned().map(Stock::restore))
    }

    async fn adjust_stock(
        &self,
        sku: &Sku,
        adjustment: &StockAdjustment,
        at: OffsetDateTime,
    ) -> Result<Stock, StoreError> {
        let mut t = self.lock()?;
        let current = t.stock.get(sku).cloned().map(Stock::restore);
        let mut s =
            Stock::adjusted(current, sku, adjustment, at).map_err(|e| stock_refused(sku, &e))?;
        t.save_stock(&mut s)?;
        Ok(s)
    }

    async fn movements(
        &self,
        sku: &Sku,
        page: PageRequest<i64>,
    ) -> Result<Vec<StockMovement>, StoreError> {
        let t = self.lock()?;
        Ok(t.movements
            .iter()
            .rev()
            .filter(|m| &m.sku == sku && page.after.is_none_or(|a| m.sequence < a))
            .take(page.limit as usize)
            .cloned()
            .collect())
    }
}

/// A password "hasher" that only prefixes: fast, for use-case tests.
#[derive(Default)]
pub struct PlainHasher;

#[async_trait]
impl PasswordHasher for PlainHasher {
    async fn hash(&self, password: &str) -> Result<String, HashError> {
        Ok(format!("plain${password}"))
    }

    async fn verify(&self, password: &str, hash: &str) -> bool {
        hash.strip_prefix("plain$") == Some(password)
    }
}

/// Readable fake access tokens `user_id|role|expires_unix`, checked against a `ManualClock`.
pub struct FakeTokens {
    clock: std::sync::Arc<ManualClock>,
    ttl: Duration,
}

impl FakeTokens {
    /// Tokens that live `ttl` on `clock`.
    pub fn new(clock: std::sync::Arc<ManualClock>, ttl: Duration) -> Self {
        FakeTokens { clock, ttl }
    }
}

impl TokenService for FakeTokens {
    fn issue(&self, actor: &Actor, now: OffsetDateTime) -> Result<AccessToken, TokenError> {
        let exp = (now + self.ttl).unix_timestamp();
        Ok(AccessToken {
            token: format!("{}|{}|{exp}", actor.user_id, actor.role),
            expires_in: self.ttl.whole_seconds().unsigned_abs(),
        })
    }

    fn verify(&self, token: &str) -> Result<Actor, TokenError> {
        let mut parts = token.split('|');
        let (Some(id), Some(role), Some(exp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let user_id = id.parse().map_err(|_| TokenError::Invalid)?;
        let role = role.parse().map_err(|_| TokenError::Invalid)?;
        let exp: i64 = exp.parse().map_err(|_| TokenError::Invalid)?;
        if exp <= self.clock.now().unix_timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(Actor { user_id, role })
    }

    fn new_refresh_token(&self) -> String {
        Uuid::new_v4().simple().to_string()
    }

    fn digest(&self, refresh_token: &str) -> String {
        format!("digest:{refresh_token}")
    }
}

/// An in-memory cache that can be told to fail, to test degradation.
#[derive(Default)]
pub struct FlakyCache {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    failing: std::sync::atomic::AtomicBool,
}

impl FlakyCache {
    /// Makes every call fail (true) or work (false).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Whether a key is present.
    pub fn holds(&self, key: &str) -> bool {
        self.entries
            .lock()
            .map(|e| e.contains_key(key))
            .unwrap_or(false)
    }

    fn check(&self) -> Result<(), CacheError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(CacheError("down".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Cache for FlakyCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.check()?;
        Ok(self.entries.lock().ok().and_then(|e| e.get(key).cloned()))
    }

    async fn set(
        &self,
        key: &str,
        value: &[u8],
        _ttl: std::time::Duration,
    ) -> Result<(), CacheError> {
        self.check()?;
        if let Ok(mut e) = self.entries.lock() {
            e.insert(key.to_owned(), value.to_vec());
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.check()?;
        if let Ok(mut e) = self.entries.lock() {
            e.remove(key);
        }
        Ok(())
    }
}

/// A clock that only moves when told to.
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock at a fixed instant.
    pub fn at(now: OffsetDateTime) -> Self {
        ManualClock {
            now: Mutex::new(now),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.now.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.now
            .lock()
            .map(|n| *n)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Ids 1, 2, 3, ... as UUIDs that sort in creation order.
#[derive(Default)]
pub struct SequentialIds {
    next: AtomicU64,
}

impl IdGenerator for SequentialIds {
    fn new_id(&self) -> Uuid {
        Uuid::from_u128(u128::from(self.next.fetch_add(1, Ordering::SeqCst) + 1))
    }
}

/// What a scripted provider answers to one call.
pub type Scripted = Result<ProviderOutcome, ProviderError>;

/// A provider that answers from a script (then succeeds) and records every call's provider key.
#[derive(Default)]
pub struct ScriptedProvider {
    script: Mutex<VecDeque<Scripted>>,
    calls: Mutex<Vec<String>>,
    /// Whether its circuit is open (it then refuses before any call).
    open: std::sync::atomic::AtomicBool,
}

impl ScriptedProvider {
    /// A provider that will give these answers, in order, and then succeed.
    pub fn answering(answers: impl IntoIterator<Item = Scripted>) -> Self {
        ScriptedProvider {
            script: Mutex::new(answers.into_iter().collect()),
            calls: Mutex::new(Vec::new()),
            open: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Opens (true) or closes (false) its circuit.
    pub fn open_circuit(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }

    /// The provider keys of all calls so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn answer(&self, key: &str) -> Scripted {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(key.to_owned());
        }
        self.script
            .lock()
            .ok()
            .and_then(|mut s| s.pop_front())
            .unwrap_or_else(|| {
                Ok(ProviderOutcome::Succeeded {
                    reference: format!("ref_{key}"),
                })
            })
    }
}

#[async_trait]
impl PaymentProvider for ScriptedProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<ProviderOutcome, ProviderError> {
        self.answer(&request.provider_key)
    }

    async fn refund(&self, request: &RefundRequest) -> Result<ProviderOutcome, ProviderError> {
        self.answer(&request.provider_key)
    }

    fn availability(&self) -> Result<(), std::time::Duration> {
        if self.open.load(Ordering::SeqCst) {
            Err(std::time::Duration::from_secs(30))
        } else {
            Ok(())
        }
    }
}

/// A bus that records what it publishes and can be told to fail, for relay tests.
#[derive(Default)]
pub struct RecordingBus {
    published: Mutex<Vec<Envelope>>,
    failing: std::sync::atomic::AtomicBool,
}

impl RecordingBus {
    /// Makes publishing fail (true) or work (false).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Everything published so far, in order.
    pub fn published(&self) -> Vec<Envelope> {
        self.published.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl portside_events::EventBus for RecordingBus {
    async fn publish(&self, events: &[Envelope]) -> Result<(), portside_events::BusError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(portside_events::BusError::Unavailable("broker down".into()));
        }
        if let Ok(mut p) = self.published.lock() {
            p.extend_from_slice(events);
        }
        Ok(())
    }
}

/// Dead letters of a bus that has none: lists nothing, replays nothing.
pub struct NoDeadLetters;

#[async_trait]
impl portside_events::DeadLetters for NoDeadLetters {
    async fn dead_letters(
        &self,
        _: &str,
        _: usize,
    ) -> Result<Vec<portside_events::DeadLetter>, portside_events::BusError> {
        Ok(Vec::new())
    }
    async fn replay(&self, _: &str, _: &str) -> Result<bool, portside_events::BusError> {
        Ok(false)
    }
    async fn purge(&self, _: &str) -> Result<u64, portside_events::BusError> {
        Ok(0)
    }
}

#[async_trait]
impl WebhookEndpointStore for InMemoryStore {
    async fn insert_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        limit: u32,
    ) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        if t.webhook_endpoints.len() >= limit as usize {
            return Err(crate::webhooks::limit_reached(limit));
        }
        t.webhook_endpoints.insert(endpoint.id, endpoint.clone());
        Ok(())
    }

    async fn endpoint(&self, id: EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        Ok(self.lock()?.webhook_endpoints.get(&id).cloned())
    }

    async fn endpoints(
        &self,
        page: PageRequest<EndpointId>,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        Ok(self
            .lock()?
            .webhook_endpoints
            .values()
            .filter(|e| page.after.is_none_or(|after| e.id > after))
            .take(page.limit as usize)
            .cloned()
            .collect())
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
        let mut t = self.lock()?;
        Ok(match t.webhook_endpoints.get_mut(&endpoint.id) {
            Some(stored) => {
                *stored = endpoint.clone();
                true
            }
            None => false,
        })
    }

    async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError> {
        let mut t = self.lock()?;
        t.webhook_deliveries
            .retain(|_, r| r.delivery.endpoint_id != id);
        Ok(t.webhook_endpoints.remove(&id).is_some())
    }
}

#[async_trait]
impl WebhookDeliveryStore for InMemoryStore {
    async fn enabled_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let t = self.lock()?;
        Ok(t.webhook_endpoints
            .values()
            .filter(|e| e.enabled)
            .cloned()
            .collect())
    }

    async fn enqueue(&self, deliveries: &[WebhookDelivery]) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        for d in deliveries {
            let exists = t.webhook_deliveries.values().any(|r| {
                r.delivery.endpoint_id == d.endpoint_id && r.delivery.event_id == d.event_id
            });
            if !exists {
                t.webhook_deliveries.insert(
                    d.id,
                    DeliveryRecord {
                        delivery: d.clone(),
                        attempts: Vec::new(),
                    },
                );
            }
        }
        Ok(())
    }

    async fn due_endpoints(&self, now: OffsetDateTime) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let t = self.lock()?;
        Ok(t.webhook_endpoints
            .values()
            .filter(|e| {
                e.enabled
                    && t.webhook_deliveries.values().any(|r| {
                        r.delivery.endpoint_id == e.id
                            && r.delivery.status == DeliveryStatus::Pending
                            && r.delivery.next_attempt_at.is_some_and(|at| at <= now)
                    })
            })
            .cloned()
            .collect())
    }

    async fn claim(
        &self,
        endpoint: EndpointId,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let mut t = self.lock()?;
        let mut due: Vec<&mut DeliveryRecord> = t
            .webhook_deliveries
            .values_mut()
            .filter(|r| {
                r.delivery.endpoint_id == endpoint
                    && r.delivery.status == DeliveryStatus::Pending
                    && r.delivery.next_attempt_at.is_some_and(|at| at <= now)
            })
            .collect();
        due.sort_by_key(|r| r.delivery.next_attempt_at);
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|r| {
                r.delivery.next_attempt_at = Some(lease_until);
                r.delivery.clone()
            })
            .collect())
    }

    async fn record_attempts(
        &self,
        attempts: &[(WebhookDelivery, Attempt)],
    ) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        for (delivery, attempt) in attempts {
            let record = t
                .webhook_deliveries
                .get_mut(&delivery.id)
                .ok_or_else(|| StoreError::Other("no such delivery".into()))?;
            record.delivery = delivery.clone();
            if !record.attempts.iter().any(|a| a.number == attempt.number) {
                record.attempts.push(attempt.clone());
            }
        }
        Ok(())
    }

    async fn endpoint_succeeded(&self, endpoint: EndpointId) -> Result<(), StoreError> {
        if let Some(e) = self.lock()?.webhook_endpoints.get_mut(&endpoint) {
            e.failing_since = None;
        }
        Ok(())
    }

    async fn endpoint_failed(
        &self,
        endpoint: EndpointId,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(self
            .lock()?
            .webhook_endpoints
            .get_mut(&endpoint)
            .map(|e| *e.failing_since.get_or_insert(now)))
    }

    async fn disable_endpoint(
        &self,
        endpoint: EndpointId,
        reason: DisabledReason,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut t = self.lock()?;
        let Some(e) = t.webhook_endpoints.get_mut(&endpoint).filter(|e| e.enabled) else {
            return Ok(false);
        };
        e.enabled = false;
        e.disabled_reason = Some(reason);
        e.failing_since = None;
        let url = e.url.clone();
        let sequence = t.webhook_endpoint_events.entry(endpoint).or_default();
        *sequence += 1;
        let recorded = RecordedEvent {
            sequence: *sequence,
            occurred_at: now,
            event: WebhookEndpointEvent::Disabled {
                endpoint_id: endpoint.0,
                url,
                reason,
            },
        };
        let event = Envelope::of(Uuid::now_v7(), endpoint.to_string(), &recorded)?;
        t.outbox.push(OutboxRow::new(event));
        Ok(true)
    }

    async fn delivery(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(self.lock()?.webhook_deliveries.get(&id).cloned())
    }

    async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        page: PageRequest<DeliveryId>,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(self
            .lock()?
            .webhook_deliveries
            .values()
            .filter(|r| {
                let d = &r.delivery;
                page.after.is_none_or(|after| d.id > after)
                    && filter.endpoint.is_none_or(|e| d.endpoint_id == e)
                    && filter.event.is_none_or(|e| d.event_id == e)
                    && filter.status.is_none_or(|s| d.status == s)
            })
            .take(page.limit as usize)
            .cloned()
            .collect())
    }

    async fn retry_now(&self, id: DeliveryId, now: OffsetDateTime) -> Result<bool, StoreError> {
        Ok(match self.lock()?.webhook_deliveries.get_mut(&id) {
            Some(r) => {
                r.delivery.status = DeliveryStatus::Pending;
                r.delivery.next_attempt_at = Some(now);
                true
            }
            None => false,
        })
    }

    async fn recover(
        &self,
        endpoint: EndpointId,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for r in self.lock()?.webhook_deliveries.values_mut() {
            let d = &mut r.delivery;
            if d.endpoint_id == endpoint
                && d.status == DeliveryStatus::Failed
                && d.created_at >= since
            {
                d.status = DeliveryStatus::Pending;
                d.next_attempt_at = Some(now);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn pending(&self) -> Result<Vec<PendingFigures>, StoreError> {
        let mut figures: BTreeMap<EndpointId, PendingFigures> = BTreeMap::new();
        for r in self.lock()?.webhook_deliveries.values() {
            let d = &r.delivery;
            if d.status != DeliveryStatus::Pending {
                continue;
            }
            let f = figures.entry(d.endpoint_id).or_insert(PendingFigures {
                endpoint: d.endpoint_id,
                pending: 0,
                oldest: d.created_at,
            });
            f.pending += 1;
            f.oldest = f.oldest.min(d.created_at);
        }
        Ok(figures.into_values().collect())
    }
}

#[async_trait]
impl TransferStore for InMemoryStore {
    async fn record_transfer(
        &self,
        transfer: &mut Transfer,
        key: Option<&IdempotentRequest>,
    ) -> Result<Recorded, StoreError> {
        let mut t = self.lock()?;
        if let Some(k) = key {
            let made = t
                .transfers
                .values()
                .find_map(|(state, made_by)| match made_by {
                    Some(m) if m.scope == k.scope && m.key == k.key => {
                        Some((state.clone(), m.fingerprint.clone()))
                    }
                    _ => None,
                });
            if let Some((state, fingerprint)) = made {
                return Ok(Recorded::Existing {
                    transfer: Box::new(Transfer::restore(state)),
                    fingerprint,
                });
            }
        }
        t.post(
            transfer
                .posting()
                .map_err(|e| StoreError::Other(e.to_string()))?,
        )?;
        t.events(transfer)?;
        t.transfers.insert(
            transfer.state().id,
            (transfer.state().clone(), key.cloned()),
        );
        transfer.mark_saved();
        Ok(Recorded::New)
    }

    async fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
        Ok(self
            .lock()?
            .transfers
            .get(&id)
            .map(|(state, _)| Transfer::restore(state.clone())))
    }
}

#[async_trait]
impl LedgerStore for InMemoryStore {
    async fn accounts(
        &self,
        filter: &AccountFilter,
        page: PageRequest<AccountCursor>,
    ) -> Result<Vec<AccountBalance>, StoreError> {
        let t = self.lock()?;
        let mut found: Vec<AccountBalance> = t
            .balances()
            .into_iter()
            .map(|((account, currency), balance)| AccountBalance {
                account,
                currency,
                balance,
            })
            .filter(|a| {
                filter
                    .prefix
                    .as_ref()
                    .is_none_or(|p| a.account.to_string().starts_with(p.as_str()))
            })
            .filter(|a| filter.currency.is_none_or(|c| a.currency == c))
            .collect();
        found.sort_by_key(|a| (a.account.to_string(), a.currency.code()));
        Ok(found
            .into_iter()
            .filter(|a| {
                page.after.as_ref().is_none_or(|(account, currency)| {
                    (a.account.to_string().as_str(), a.currency.code())
                        > (account.as_str(), currency.as_str())
                })
            })
            .take(page.limit as usize)
            .collect())
    }

    async fn entries(
        &self,
        account: &AccountName,
        currency: Option<Currency>,
        page: PageRequest<EntryCursor>,
    ) -> Result<Vec<EntryLine>, StoreError> {
        let t = self.lock()?;
        let mut lines: Vec<EntryLine> = t
            .postings
            .iter()
            .flat_map(|p| {
                p.entries.iter().zip(0..).map(|(e, line)| EntryLine {
                    transaction_id: p.id,
                    line,
                    phase: p.phase,
                    cause: p.cause.clone(),
                    entry: e.clone(),
                    created_at: p.created_at,
                })
            })
            .filter(|l| &l.entry.account == account)
            .filter(|l| currency.is_none_or(|c| l.entry.currency == c))
            .collect();
        lines.sort_by_key(|l| std::cmp::Reverse((l.created_at, l.transaction_id, l.line)));
        Ok(lines
            .into_iter()
            .filter(|l| {
                page.after
                    .is_none_or(|after| (l.created_at, l.transaction_id, l.line) < after)
            })
            .take(page.limit as usize)
            .collect())
    }

    async fn posting(&self, id: LedgerTransactionId) -> Result<Option<Posting>, StoreError> {
        Ok(self.lock()?.postings.iter().find(|p| p.id == id).cloned())
    }

    async fn trial_balance(&self) -> Result<Vec<(Currency, Balance)>, StoreError> {
        let mut sums: BTreeMap<&'static str, (Currency, Balance)> = BTreeMap::new();
        for ((_, currency), b) in self.lock()?.balances() {
            let sum = sums
                .entry(currency.code())
                .or_insert((currency, Balance::default()));
            sum.1 = sum.1.plus(b);
        }
        Ok(sums.into_values().collect())
    }

    async fn differences(&self, limit: u32) -> Result<Vec<Difference>, StoreError> {
        let t = self.lock()?;
        let mut found = Vec::new();
        for txn in t.transactions.values() {
            let pending = LedgerTransactionId(txn.id.0);
            let settled = t
                .postings
                .iter()
                .find(|p| p.phase.refers_to() == Some(pending))
                .map(|p| p.phase.as_str());
            let want = match txn.status {
                TransactionStatus::Pending => None,
                TransactionStatus::Succeeded => Some("post"),
                TransactionStatus::Failed => Some("void"),
            };
            if !t.postings.iter().any(|p| p.id == pending) {
                found.push(Difference {
                    code: "posting_missing",
                    subject: txn.id.to_string(),
                    detail: "no posting".into(),
                });
            } else if settled != want {
                found.push(Difference {
                    code: "settlement_differs",
                    subject: txn.id.to_string(),
                    detail: format!("settled by {settled:?}, expected {want:?}"),
                });
            }
        }
        found.truncate(limit as usize);
        Ok(found)
    }
}

/// One request a [`FakeReceiver`] got: (url, webhook-id, timestamp, signature, body).
pub type ReceivedRequest = (String, String, i64, String, String);

/// A webhook receiver in memory: records every request and answers the scripted statuses in
/// turn (200 once they run out; `None` is a connection error).
#[derive(Default)]
pub struct FakeReceiver {
    script: Mutex<std::collections::VecDeque<Option<u16>>>,
    received: Mutex<Vec<ReceivedRequest>>,
    /// How long each answer takes.
    delay: std::time::Duration,
    in_flight: std::sync::atomic::AtomicUsize,
    /// The most requests it was answering at once.
    pub max_in_flight: std::sync::atomic::AtomicUsize,
}

impl FakeReceiver {
    pub fn answering(script: impl IntoIterator<Item = Option<u16>>) -> Self {
        FakeReceiver {
            script: Mutex::new(script.into_iter().collect()),
            ..FakeReceiver::default()
        }
    }

    /// A receiver that takes `delay` to answer each request (200).
    pub fn slow(delay: std::time::Duration) -> Self {
        FakeReceiver {
            delay,
            ..FakeReceiver::default()
        }
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl crate::webhooks::WebhookSender for FakeReceiver {
    async fn send(
        &self,
        request: crate::webhooks::WebhookRequest<'_>,
        _timeout: std::time::Duration,
    ) -> crate::webhooks::WebhookResponse {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut r) = self.received.lock() {
            r.push((
                request.url.to_owned(),
                request.id.to_owned(),
                request.timestamp,
                request.signature.to_owned(),
                request.body.to_owned(),
            ));
        }
        let answer = self
            .script
            .lock()
            .ok()
            .and_then(|mut s| s.pop_front())
            .unwrap_or(Some(200));
        match answer {
            Some(status) => crate::webhooks::WebhookResponse {
                status_code: Some(status),
                body: Some(format!("answered {status}")),
                error: None,
            },
            None => crate::webhooks::WebhookResponse {
                status_code: None,
                body: None,
                error: Some("connection refused".into()),
            },
        }
    }
}

#[async_trait]
impl crate::routing::RoutingStore for InMemoryStore {
    async fn rules(&self) -> Result<crate::routing::StoredRules, StoreError> {
        Ok(self.lock()?.routing.clone())
    }

    async fn replace(
        &self,
        expected: i64,
        rules: Option<&[portside_domain::routing::RouteRule]>,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let mut t = self.lock()?;
        if t.routing.version != expected {
            return Err(StoreError::Conflict);
        }
        t.routing = crate::routing::StoredRules {
            version: expected + 1,
            rules: rules.map(<[_]>::to_vec),
            updated_at: Some(at),
            updated_by: Some(by.to_owned()),
        };
        Ok(expected + 1)
    }
}
