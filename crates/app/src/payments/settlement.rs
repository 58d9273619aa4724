//! Phases 2 and 3 of a charge or refund (call the provider, settle), and the work that finishes
//! what a crash or an unanswered provider call left pending: a retry with the same key, the
//! recovery task, a provider's notice. Every path settles through the same phase-3 code, so a
//! transaction already final is never settled again.

use portside_domain::{DomainError, Payment, Transaction, TransactionKind};
use time::OffsetDateTime;

use super::*;

impl Payments {
    /// Finishes transactions left pending by a crash or an unanswered provider call, by asking
    /// the provider again with the same provider key. Returns how many were settled.
    pub async fn recover_stale(&self) -> Result<usize, AppError> {
        let before = self.clock.now() - self.settings.recovery_grace;
        let mut settled = 0;
        for txn in self.repo.stale_pending(before, 100).await? {
            let Some(payment) = self.repo.payment(txn.payment_id).await? else {
                tracing::error!(transaction = %txn.id, "pending transaction without its payment");
                continue;
            };
            if payment.status() == PaymentStatus::Pending {
                // Submitted and not taken yet (the `charges` group is behind or failing).
                match self.charge_submitted(payment.id()).await {
                    Ok(()) => settled += 1,
                    Err(e) => {
                        tracing::warn!(payment = %payment.id(), error = %e, "could not charge a submitted payment")
                    }
                }
                continue;
            }
            let id = txn.id;
            match self.run(payment, txn, None).await {
                Ok(o) if o.transaction.status != TransactionStatus::Pending => {
                    tracing::info!(transaction = %id, status = o.transaction.status.as_str(), "recovered pending transaction");
                    settled += 1;
                }
                Ok(_) => {
                    tracing::warn!(transaction = %id, "transaction still pending at the provider")
                }
                Err(e) => tracing::warn!(transaction = %id, error = %e, "recovery attempt failed"),
            }
        }
        Ok(settled)
    }

    /// Forgets idempotency keys whose retention ended. Returns how many.
    pub async fn purge_expired_keys(&self) -> Result<u64, AppError> {
        Ok(self.keys.purge_expired(self.clock.now()).await?)
    }

    /// Applies what a provider's verified notice says: settles the pending charge it names, or
    /// asks the provider again about the pending refunds of the payment it names. A transaction
    /// already settled is left alone, so late, repeated or out-of-order notices change nothing.
    pub async fn apply_provider_change(
        &self,
        provider: &str,
        change: &ProviderChange,
    ) -> Result<(NoticeOutcome, Option<PaymentId>), AppError> {
        let (transaction_id, reference) = match change {
            ProviderChange::ChargeSucceeded {
                transaction_id,
                reference,
            }
            | ProviderChange::ChargeFailed {
                transaction_id,
                reference,
                ..
            } => (*transaction_id, reference),
            ProviderChange::Refunded { reference } => {
                return self.refresh_refunds(provider, reference).await;
            }
        };
        let by_id = match transaction_id {
            Some(id) => self.repo.transaction(id).await?,
            None => None,
        };
        let txn = match by_id {
            Some(t) => Some(t),
            None => match self.repo.payment_by_reference(provider, reference).await? {
                Some(p) => self
                    .repo
                    .transactions(p.id())
                    .await?
                    .into_iter()
                    .find(|t| t.kind == TransactionKind::Charge),
                None => None,
            },
        };
        let Some(txn) = txn.filter(|t| t.kind == TransactionKind::Charge) else {
            return Ok((NoticeOutcome::UnknownPayment, None));
        };
        let Some(payment) = self.repo.payment(txn.payment_id).await? else {
            return Ok((NoticeOutcome::UnknownPayment, None));
        };
        let id = payment.id();
        if payment.state().provider != provider {
            return Ok((NoticeOutcome::UnknownPayment, None));
        }
        if txn.status != TransactionStatus::Pending {
            return Ok((NoticeOutcome::NoChange, Some(id)));
        }
        let settlement = match change {
            ProviderChange::ChargeFailed { failure, .. } => Settlement::Failed(failure.clone()),
            _ => Settlement::Succeeded(reference.clone()),
        };
        // Settled now (or by a request that won the race: the same final state either way).
        self.settle(payment, txn, settlement).await?;
        Ok((NoticeOutcome::Applied, Some(id)))
    }

    /// A provider says money was refunded on a charge: its payment's pending refunds are asked
    /// again (with their own provider keys), which settles those that are done.
    async fn refresh_refunds(
        &self,
        provider: &str,
        reference: &str,
    ) -> Result<(NoticeOutcome, Option<PaymentId>), AppError> {
        let Some(payment) = self.repo.payment_by_reference(provider, reference).await? else {
            return Ok((NoticeOutcome::UnknownPayment, None));
        };
        let id = payment.id();
        let pending: Vec<Transaction> = self
            .repo
            .transactions(id)
            .await?
            .into_iter()
            .filter(|t| t.kind == TransactionKind::Refund && t.status == TransactionStatus::Pending)
            .collect();
        let mut settled = 0;
        for txn in pending {
            let Some(fresh) = self.repo.payment(id).await? else {
                break;
            };
            if self.run(fresh, txn, None).await?.transaction.status != TransactionStatus::Pending {
                settled += 1;
            }
        }
        Ok((
            if settled > 0 {
                NoticeOutcome::Applied
            } else {
                NoticeOutcome::NoChange
            },
            Some(id),
        ))
    }

    pub(super) fn claim(
        &self,
        req: &IdempotentRequest,
        transaction_id: TransactionId,
        now: OffsetDateTime,
    ) -> IdempotencyClaim {
        IdempotencyClaim {
            scope: req.scope.clone(),
            key: req.key.as_str().to_owned(),
            fingerprint: req.fingerprint.clone(),
            transaction_id,
            locked_until: now + self.settings.key_lock,
            created_at: now,
            expires_at: now + self.settings.idempotency_ttl,
            outcome: None,
        }
    }

    /// A key that is already taken: replay, refuse, or pick up abandoned work.
    pub(super) async fn resume(
        &self,
        record: IdempotencyRecord,
        req: Option<&IdempotentRequest>,
    ) -> Result<Reply, AppError> {
        let req = req.ok_or_else(|| internal("existing key reported without a key"))?;
        if record.fingerprint != req.fingerprint {
            return Err(AppError::IdempotencyKeyReused);
        }
        if let Some(outcome) = record.outcome {
            return Ok(Reply {
                outcome,
                replayed: true,
            });
        }
        let now = self.clock.now();
        if record.locked_until.is_some_and(|until| until > now)
            || !self
                .keys
                .relock(
                    &req.scope,
                    req.key.as_str(),
                    now,
                    now + self.settings.key_lock,
                )
                .await?
        {
            return Err(AppError::IdempotencyKeyInUse);
        }
        let txn = self
            .repo
            .transaction(record.transaction_id)
            .await?
            .ok_or_else(|| internal("idempotency key points at a missing transaction"))?;
        let payment = self
            .repo
            .payment(txn.payment_id)
            .await?
            .ok_or_else(|| internal("transaction points at a missing payment"))?;
        if txn.status != TransactionStatus::Pending {
            return Ok(Reply {
                outcome: Outcome {
                    payment: payment.state().clone(),
                    transaction: txn,
                    accepted: false,
                },
                replayed: true,
            });
        }
        let outcome = self.run(payment, txn, Some(req)).await?;
        Ok(Reply {
            outcome,
            replayed: false,
        })
    }

    /// Charges a payment submitted for asynchronous charging, unless someone took it already:
    /// takes it (Pending → Processing, saved at the version read, so that of the `charges`
    /// group and the recovery task only one does) and runs it along its route. A payment taken
    /// before is left to its taker, and to the recovery task if the taker crashed.
    pub async fn charge_submitted(&self, id: PaymentId) -> Result<(), AppError> {
        let Some(mut payment) = self.repo.payment(id).await? else {
            tracing::error!(payment = %id, "a submitted payment that is not stored");
            return Ok(());
        };
        if payment.status() != PaymentStatus::Pending {
            return Ok(());
        }
        let Some(txn) =
            self.repo.transactions(id).await?.into_iter().find(|t| {
                t.kind == TransactionKind::Charge && t.status == TransactionStatus::Pending
            })
        else {
            return Err(internal("a submitted payment without its pending charge"));
        };
        payment.start(self.clock.now()).map_err(internal)?;
        match self.repo.reroute(&mut payment).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let rest = payment
            .state()
            .routing
            .as_ref()
            .map(|r| r.next.clone())
            .unwrap_or_default();
        self.run_along(payment, txn, None, rest).await?;
        Ok(())
    }

    /// Phases 2 and 3 for a pending transaction.
    pub(super) async fn run(
        &self,
        payment: Payment,
        txn: Transaction,
        key: Option<&IdempotentRequest>,
    ) -> Result<Outcome, AppError> {
        let answer = self.call(&payment, &txn).await?;
        self.conclude(payment, txn, answer, key).await
    }

    /// Phases 2 and 3 of a new charge along its route: while the provider certainly charged
    /// nothing (`NotSent`), the charge moves to the next provider whose circuit is closed,
    /// saved before that provider is called. Any other answer ends the route: an unknown
    /// outcome stays with the provider that may have charged, for a retry or the recovery.
    pub(super) async fn run_along(
        &self,
        mut payment: Payment,
        txn: Transaction,
        key: Option<&IdempotentRequest>,
        mut rest: Vec<String>,
    ) -> Result<Outcome, AppError> {
        rest.reverse();
        loop {
            let answer = self.call(&payment, &txn).await?;
            let Err(ProviderError::NotSent(why)) = &answer else {
                return self.conclude(payment, txn, answer, key).await;
            };
            let Some(next) = self.next_available(&mut payment, &mut rest) else {
                return self.conclude(payment, txn, answer, key).await;
            };
            let from = payment.state().provider.clone();
            payment
                .fail_over(&next, why.clone(), self.clock.now())
                .map_err(internal)?;
            // A concurrent change (a provider's notice) means the charge is no longer ours to move.
            if let Err(e) = self.repo.reroute(&mut payment).await {
                tracing::warn!(payment = %payment.id(), error = %e, "could not move the charge to the next provider");
                return self.conclude(payment, txn, answer, key).await;
            }
            count_attempt(&from, AttemptOutcome::Unavailable);
            tracing::warn!(payment = %payment.id(), from = %from, to = %next, error = %why, "provider not reached; the charge moves to the next provider of its route");
        }
    }

    /// The next provider of `rest` (reversed) whose circuit is closed; those skipped are
    /// recorded on the payment's route.
    fn next_available(&self, payment: &mut Payment, rest: &mut Vec<String>) -> Option<String> {
        while let Some(name) = rest.pop() {
            match self.providers.get(&name).map(|p| p.availability()) {
                Some(Ok(())) => return Some(name),
                Some(Err(_)) => {
                    payment.skip_provider(&name, self.clock.now());
                    count_attempt(&name, AttemptOutcome::CircuitOpen);
                }
                None => {
                    tracing::warn!(provider = %name, "a route names a provider this process does not have")
                }
            }
        }
        None
    }

    /// Phase 2: asks the payment's provider to charge or refund.
    async fn call(
        &self,
        payment: &Payment,
        txn: &Transaction,
    ) -> Result<Result<ProviderOutcome, ProviderError>, AppError> {
        let state = payment.state();
        let provider = self.providers.get(&state.provider).ok_or_else(|| {
            AppError::Unavailable(format!("provider {} is not configured", state.provider))
        })?;
        Ok(match txn.kind {
            TransactionKind::Charge => {
                provider
                    .charge(&ChargeRequest {
                        transaction_id: txn.id,
                        provider_key: txn.provider_key.clone(),
                        amount: txn.amount,
                        method: state.method,
                        method_token: state.method_token.clone(),
                        customer_id: state.customer_id.clone(),
                        description: state.description.clone(),
                        metadata: state.metadata.clone(),
                    })
                    .await
            }
            TransactionKind::Refund => {
                provider
                    .refund(&RefundRequest {
                        transaction_id: txn.id,
                        provider_key: txn.provider_key.clone(),
                        charge_reference: state.provider_reference.clone().unwrap_or_default(),
                        method_token: state.method_token.clone(),
                        amount: txn.amount,
                        reason: txn.reason.clone(),
                    })
                    .await
            }
        })
    }

    /// Phase 3 for a definite answer; an unknown one leaves the transaction pending.
    async fn conclude(
        &self,
        payment: Payment,
        txn: Transaction,
        answer: Result<ProviderOutcome, ProviderError>,
        key: Option<&IdempotentRequest>,
    ) -> Result<Outcome, AppError> {
        let settlement = match answer {
            Ok(ProviderOutcome::Succeeded { reference }) => Settlement::Succeeded(reference),
            Ok(ProviderOutcome::Failed(failure)) => Settlement::Failed(failure),
            Ok(ProviderOutcome::Pending) | Err(_) => {
                match &answer {
                    Err(e) => {
                        tracing::warn!(transaction = %txn.id, error = %e, "provider outcome unknown; left pending for retry or recovery")
                    }
                    Ok(_) => {
                        tracing::info!(transaction = %txn.id, "provider reports the transaction pending")
                    }
                }
                if let Some(req) = key
                    && let Err(e) = self.keys.release(&req.scope, req.key.as_str()).await
                {
                    tracing::warn!(error = %e, "could not release idempotency key; it unlocks when its lock lapses");
                }
                return Ok(Outcome {
                    payment: payment.state().clone(),
                    transaction: txn,
                    accepted: false,
                });
            }
        };
        self.settle(payment, txn, settlement).await
    }

    /// Phase 3, retried against fresh state when a concurrent change wins the race.
    async fn settle(
        &self,
        mut payment: Payment,
        mut txn: Transaction,
        settlement: Settlement,
    ) -> Result<Outcome, AppError> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                txn = self
                    .repo
                    .transaction(txn.id)
                    .await?
                    .ok_or_else(|| internal("transaction vanished"))?;
                payment = self
                    .repo
                    .payment(txn.payment_id)
                    .await?
                    .ok_or_else(|| internal("payment vanished"))?;
            }
            if txn.status != TransactionStatus::Pending {
                return Ok(Outcome {
                    payment: payment.state().clone(),
                    transaction: txn,
                    accepted: false,
                });
            }
            let now = self.clock.now();
            apply(&mut payment, &mut txn, &settlement, now).map_err(internal)?;
            let outcome = Outcome {
                payment: payment.state().clone(),
                transaction: txn.clone(),
                accepted: false,
            };
            match self.repo.settle(&mut payment, &txn, &outcome).await {
                Ok(()) => return Ok(outcome),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }
}

fn apply(
    payment: &mut Payment,
    txn: &mut Transaction,
    settlement: &Settlement,
    now: OffsetDateTime,
) -> Result<(), DomainError> {
    match (txn.kind, settlement) {
        (TransactionKind::Charge, Settlement::Succeeded(reference)) => {
            payment.succeed(reference.clone(), now)?;
            txn.succeed(reference.clone(), now)
        }
        (TransactionKind::Charge, Settlement::Failed(failure)) => {
            payment.fail(failure.clone(), now)?;
            txn.fail(failure.clone(), now)
        }
        (TransactionKind::Refund, Settlement::Succeeded(reference)) => {
            payment.complete_refund(txn.id, txn.amount, now)?;
            txn.succeed(reference.clone(), now)
        }
        (TransactionKind::Refund, Settlement::Failed(failure)) => {
            payment.fail_refund(txn.id, txn.amount, failure.clone(), now)?;
            txn.fail(failure.clone(), now)
        }
    }
}
