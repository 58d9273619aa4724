//! In-memory fakes of the driven ports. The store fake passes the same contract suite as the
//! SQL adapters, so use-case tests against it say something true about production.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use portside_domain::{
    Payment, PaymentId, PaymentState, Transaction, TransactionId, TransactionStatus,
};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::idempotency::{IdempotencyClaim, IdempotencyRecord};
use crate::ports::{
    Begin, ChargeRequest, Clock, IdGenerator, IdempotencyStore, Outbox, OutboxEvent, PageRequest,
    PaymentFilter, PaymentProvider, PaymentRepository, ProviderError, ProviderOutcome,
    RefundRequest, StoreError,
};

#[derive(Default)]
struct Tables {
    payments: BTreeMap<PaymentId, PaymentState>,
    transactions: BTreeMap<TransactionId, Transaction>,
    keys: HashMap<(String, String), IdempotencyRecord>,
    outbox: Vec<OutboxEvent>,
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

impl Tables {
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
                locked_until: Some(claim.locked_until),
                outcome: None,
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
            self.outbox
                .push(OutboxEvent::from_payment_event(Uuid::now_v7(), recorded)?);
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
            return Ok(Begin::Existing(existing));
        }
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
            return Ok(Begin::Existing(existing));
        }
        if let Err(e) = t.check_version(payment) {
            // Roll the claim back, as the SQL transaction would.
            if let Some(c) = claim {
                t.keys.remove(&(c.scope.clone(), c.key.clone()));
            }
            return Err(e);
        }
        t.transactions.insert(refund.id, refund.clone());
        t.save(payment)?;
        Ok(Begin::Started)
    }

    async fn settle(
        &self,
        payment: &mut Payment,
        transaction: &Transaction,
        outcome: &Value,
    ) -> Result<(), StoreError> {
        let mut t = self.lock()?;
        t.check_version(payment)?;
        match t.transactions.get(&transaction.id) {
            Some(stored) if stored.status == TransactionStatus::Pending => {}
            _ => return Err(StoreError::Conflict),
        }
        t.transactions.insert(transaction.id, transaction.clone());
        for record in t.keys.values_mut() {
            if record.transaction_id == transaction.id {
                record.outcome = Some(outcome.clone());
                record.locked_until = None;
            }
        }
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
        page: PageRequest,
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
    async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(self
            .lock()?
            .outbox
            .iter()
            .take(limit as usize)
            .cloned()
            .collect())
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
}

impl ScriptedProvider {
    /// A provider that will give these answers, in order, and then succeed.
    pub fn answering(answers: impl IntoIterator<Item = Scripted>) -> Self {
        ScriptedProvider {
            script: Mutex::new(answers.into_iter().collect()),
            calls: Mutex::new(Vec::new()),
        }
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
}
