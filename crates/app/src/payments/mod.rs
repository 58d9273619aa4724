//! The payments use cases: pay, refund, read, list, and the recovery of interrupted work.
//!
//! Paying and refunding run in three atomic phases (see "The request path of a payment" in
//! docs/ARCHITECTURE.md): (1) one store transaction claims the idempotency key and writes the
//! payment with a pending transaction; (2) the provider is called with a key derived from that
//! transaction; (3) one store transaction settles the transaction, saves the payment, writes
//! its events and the outcome to replay. A crash between phases leaves a pending transaction
//! that a retry or the recovery task finishes by asking the provider again with the same
//! provider key.

mod charges;
pub mod idempotency;
pub mod notices;
mod ports;
mod provider;
mod settlement;
#[cfg(test)]
mod tests;

pub use charges::SubmittedCharges;
pub use ports::*;
pub use provider::*;

use std::collections::HashMap;
use std::sync::Arc;

use portside_domain::{
    Actor, AmountLimit, Currency, CustomerId, DomainError, Failure, Metadata, Money, MoneyError,
    NewPayment, Payment, PaymentId, PaymentMethod, PaymentState, PaymentStatus, Purpose,
    Transaction, TransactionId, TransactionStatus, WALLET_PROVIDER,
};
use serde::{Deserialize, Serialize};
use time::Duration;

use crate::error::AppError;
use crate::payments::idempotency::{IdempotencyClaim, IdempotencyRecord, IdempotentRequest};
use crate::routing::Router;
use crate::wallets::WalletProvider;
use portside_domain::routing::{
    AttemptOutcome, PurposeKind, REQUESTED_RULE, Route, RouteAttempt, RouteFacts, Routing, choose,
};
use portside_kernel::{Clock, IdGenerator, Page, PageRequest, StoreError};
use time::OffsetDateTime;

/// How often phase 1 and phase 3 retry after losing an optimistic-concurrency race.
const MAX_ATTEMPTS: usize = 8;

/// Tunables of the payments context.
#[derive(Debug, Clone, Copy)]
pub struct PaymentSettings {
    /// Largest amount of one payment.
    pub amount_limit: AmountLimit,
    /// How long a key and its outcome are kept (24 h by default).
    pub idempotency_ttl: Duration,
    /// How long a running request holds its key; a retry after that may resume the work.
    pub key_lock: Duration,
    /// Age after which a pending transaction is considered abandoned and recovered.
    pub recovery_grace: Duration,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            amount_limit: AmountLimit::default(),
            idempotency_ttl: Duration::hours(24),
            key_lock: Duration::seconds(30),
            recovery_grace: Duration::seconds(60),
        }
    }
}

/// The configured providers, by name, and the one used when a request names none.
#[derive(Clone)]
pub struct Providers {
    by_name: HashMap<String, Arc<dyn PaymentProvider>>,
    default: String,
}

impl Providers {
    /// A registry holding one provider, which is also the default.
    pub fn new(name: &str, provider: Arc<dyn PaymentProvider>) -> Self {
        Providers {
            by_name: HashMap::from([(name.to_owned(), provider)]),
            default: name.to_owned(),
        }
    }

    /// Adds another provider.
    pub fn with(mut self, name: &str, provider: Arc<dyn PaymentProvider>) -> Self {
        self.by_name.insert(name.to_owned(), provider);
        self
    }

    /// The provider of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PaymentProvider>> {
        self.by_name.get(name)
    }

    /// The default provider's name.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// Every configured provider's name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }
}

/// The route of every payment when no routing is wired: the default provider alone.
struct DefaultOnly(String);

#[async_trait::async_trait]
impl Router for DefaultOnly {
    async fn route(&self, facts: &RouteFacts) -> Result<Route, StoreError> {
        Ok(choose(&[], facts, &self.0, 0))
    }
}

/// A request to pay, with values already parsed into domain types.
#[derive(Debug, Clone)]
pub struct PayCommand {
    /// Who pays: the actor when `None`; another customer only for administrators.
    pub customer_id: Option<CustomerId>,
    /// What.
    pub amount: Money,
    pub method: PaymentMethod,
    /// Provider token of the payment method.
    pub method_token: String,
    /// Provider name; the default when `None`.
    pub provider: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Client metadata.
    pub metadata: Metadata,
    /// Present when the client sent an idempotency key.
    pub idempotency: Option<IdempotentRequest>,
    /// The id the new payment gets; a new one when `None`. An order names it before paying,
    /// so that it records the payment before the provider is called.
    pub payment_id: Option<PaymentId>,
}

/// A request to refund. The amount stays text until the payment's currency is known.
#[derive(Debug, Clone)]
pub struct RefundCommand {
    /// Which payment.
    pub payment_id: PaymentId,
    /// Decimal text; `None` refunds all that remains.
    pub amount: Option<String>,
    /// Must equal the payment's currency when given.
    pub currency: Option<Currency>,
    pub reason: Option<String>,
    /// Client metadata of the refund.
    pub metadata: Metadata,
    /// Present when the client sent an idempotency key.
    pub idempotency: Option<IdempotentRequest>,
}

/// The result of a charge or refund: the payment and the transaction as they stood when the
/// request finished. This is what an idempotency key stores and replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub payment: PaymentState,
    /// The charge or refund.
    pub transaction: Transaction,
    /// An asynchronous submission's answer (202 with the payment's location), not a charge's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accepted: bool,
}

/// An outcome and whether it was replayed from an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub outcome: Outcome,
    /// True when this is the stored outcome of an earlier request with the same key.
    pub replayed: bool,
}

enum Settlement {
    Succeeded(String),
    Failed(Failure),
}

/// The payments use cases over their ports.
pub struct Payments {
    repo: Arc<dyn PaymentRepository>,
    keys: Arc<dyn IdempotencyStore>,
    providers: Providers,
    router: Arc<dyn Router>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: PaymentSettings,
}

impl Payments {
    /// Wires the use cases to their ports; the `wallet` provider (the balance of the payer's
    /// wallet) is always there beside the configured ones.
    pub fn new(
        repo: Arc<dyn PaymentRepository>,
        keys: Arc<dyn IdempotencyStore>,
        providers: Providers,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: PaymentSettings,
    ) -> Self {
        Payments {
            repo,
            keys,
            router: Arc::new(DefaultOnly(providers.default_name().to_owned())),
            providers: providers.with(WALLET_PROVIDER, Arc::new(WalletProvider)),
            clock,
            ids,
            settings,
        }
    }

    /// Routes the payments that name no provider by `router`'s rules.
    pub fn with_router(mut self, router: Arc<dyn Router>) -> Self {
        self.router = router;
        self
    }

    /// Charges a payment method for the actor (or, for an administrator, for any customer).
    pub async fn pay(&self, actor: &Actor, cmd: PayCommand) -> Result<Reply, AppError> {
        self.begin(actor, cmd, false).await
    }

    /// Accepts a payment to be charged later by the `charges` consumer group: it is stored
    /// `pending` and answered at once (`accepted`), and a key's replays give that same answer.
    pub async fn submit(&self, actor: &Actor, cmd: PayCommand) -> Result<Reply, AppError> {
        self.begin(actor, cmd, true).await
    }

    async fn begin(
        &self,
        actor: &Actor,
        cmd: PayCommand,
        asynchronous: bool,
    ) -> Result<Reply, AppError> {
        let (requested, method_token) = self.method_route(&cmd)?;
        let own = customer_of(actor);
        let customer_id = match cmd.customer_id {
            Some(c) if c != own && !actor.is_admin() => {
                return Err(AppError::Forbidden("customer_id must be your own user id"));
            }
            Some(c) => c,
            None => own,
        };
        let route = match requested {
            Some(provider) => {
                if self.providers.get(&provider).is_none() {
                    return Err(AppError::UnknownProvider(provider));
                }
                Route {
                    rule: REQUESTED_RULE.to_owned(),
                    providers: vec![provider],
                }
            }
            None => {
                let facts = RouteFacts {
                    amount: cmd.amount,
                    method: cmd.method,
                    purpose: PurposeKind::of(&cmd.metadata),
                };
                self.router.route(&facts).await?
            }
        };
        let now = self.clock.now();
        let (provider, rest, skipped) = self.first_available(&route, now)?;
        metrics::counter!("portside_routing_decisions_total", "rule" => route.rule.clone(), "provider" => provider.clone()).increment(1);
        let new = NewPayment {
            id: cmd
                .payment_id
                .unwrap_or_else(|| PaymentId(self.ids.new_id())),
            customer_id,
            amount: cmd.amount,
            method: cmd.method,
            method_token,
            provider: provider.clone(),
            description: cmd.description,
            metadata: cmd.metadata,
            routing: Some(Routing::start(
                route.rule,
                provider,
                skipped,
                if asynchronous {
                    rest.clone()
                } else {
                    Vec::new()
                },
            )),
        };
        let mut payment = if asynchronous {
            Payment::submit(new, self.settings.amount_limit, now)
        } else {
            Payment::create(new, self.settings.amount_limit, now)
        }
        .map_err(request_error)?;
        let charge = Transaction::charge(
            TransactionId(self.ids.new_id()),
            payment.id(),
            payment.state().amount,
            now,
        );
        let accepted = asynchronous.then(|| Outcome {
            payment: payment.state().clone(),
            transaction: charge.clone(),
            accepted: true,
        });
        let claim = cmd.idempotency.as_ref().map(|req| {
            let mut claim = self.claim(req, charge.id, now);
            claim.outcome = accepted.clone();
            claim
        });
        match self
            .repo
            .begin_charge(claim.as_ref(), &mut payment, &charge)
            .await
            .map_err(short_of_funds)?
        {
            Begin::Started => {}
            Begin::Existing(record) => {
                return self.resume(*record, cmd.idempotency.as_ref()).await;
            }
        }
        if let Some(outcome) = accepted {
            return Ok(Reply {
                outcome,
                replayed: false,
            });
        }
        let outcome = self
            .run_along(payment, charge, cmd.idempotency.as_ref(), rest)
            .await?;
        Ok(Reply {
            outcome,
            replayed: false,
        })
    }

    /// The first provider of a route whose circuit is closed, the providers after it, and the
    /// attempts of those passed over; refuses the payment, before anything is written, when
    /// every circuit of the route is open.
    #[allow(clippy::type_complexity)]
    fn first_available(
        &self,
        route: &Route,
        now: OffsetDateTime,
    ) -> Result<(String, Vec<String>, Vec<RouteAttempt>), AppError> {
        let mut skipped = Vec::new();
        let mut wait = None;
        for (i, name) in route.providers.iter().enumerate() {
            let Some(provider) = self.providers.get(name) else {
                tracing::warn!(provider = %name, "a route names a provider this process does not have");
                continue;
            };
            match provider.availability() {
                Ok(()) => {
                    return Ok((name.clone(), route.providers[i + 1..].to_vec(), skipped));
                }
                Err(retry) => {
                    count_attempt(name, AttemptOutcome::CircuitOpen);
                    wait = Some(wait.map_or(retry, |w: std::time::Duration| w.min(retry)));
                    skipped.push(RouteAttempt {
                        provider: name.clone(),
                        outcome: AttemptOutcome::CircuitOpen,
                        error: None,
                        at: now,
                    });
                }
            }
        }
        match wait {
            Some(wait) => Err(AppError::ProviderUnavailable {
                provider: route.providers.first().cloned().unwrap_or_default(),
                retry_after_secs: wait.as_secs().max(1),
            }),
            None => Err(AppError::Unavailable(format!(
                "no provider of route {:?} is configured in this process",
                route.rule
            ))),
        }
    }

    /// The stored reply of a finished request with this key, if there is one; refuses a key
    /// used for another request or still in flight. Never charges.
    pub async fn replay(&self, req: &IdempotentRequest) -> Result<Option<Reply>, AppError> {
        let now = self.clock.now();
        let Some(record) = self.keys.find(&req.scope, req.key.as_str(), now).await? else {
            return Ok(None);
        };
        if record.fingerprint != req.fingerprint {
            return Err(AppError::IdempotencyKeyReused);
        }
        match record.outcome {
            Some(outcome) => Ok(Some(Reply {
                outcome,
                replayed: true,
            })),
            None => Err(AppError::IdempotencyKeyInUse),
        }
    }

    /// The status of a payment, whoever owns it (for other use cases, never for a client).
    pub async fn status_of(&self, id: PaymentId) -> Result<Option<PaymentStatus>, AppError> {
        Ok(self.repo.payment(id).await?.map(|p| p.state().status))
    }

    /// Refunds all or part of a succeeded payment the actor may see.
    pub async fn refund(&self, actor: &Actor, cmd: RefundCommand) -> Result<Reply, AppError> {
        if let Some(req) = &cmd.idempotency {
            let now = self.clock.now();
            if let Some(record) = self.keys.find(&req.scope, req.key.as_str(), now).await? {
                return self.resume(record, Some(req)).await;
            }
        }
        for _ in 0..MAX_ATTEMPTS {
            let mut payment = self.visible(actor, cmd.payment_id).await?;
            let currency = payment.state().amount.currency();
            if let Some(given) = cmd.currency.filter(|c| *c != currency) {
                return Err(AppError::Invalid {
                    field: "currency",
                    error: DomainError::CurrencyMismatch {
                        expected: currency,
                        given,
                    },
                });
            }
            let amount = cmd
                .amount
                .as_deref()
                .map(|text| Money::parse(text, currency))
                .transpose()
                .map_err(|e| AppError::Invalid {
                    field: "amount",
                    error: e.into(),
                })?;
            if let Some(p) = self.providers.get(&payment.state().provider) {
                available(&payment.state().provider, p.as_ref())?;
            }
            let now = self.clock.now();
            let amount = payment.begin_refund(amount, now).map_err(request_error)?;
            let refund = Transaction::refund(
                TransactionId(self.ids.new_id()),
                payment.id(),
                amount,
                cmd.reason.clone(),
                now,
            )
            .map_err(request_error)?
            .with_metadata(cmd.metadata.clone());
            let claim = cmd
                .idempotency
                .as_ref()
                .map(|req| self.claim(req, refund.id, now));
            match self
                .repo
                .begin_refund(claim.as_ref(), &mut payment, &refund)
                .await
            {
                Ok(Begin::Started) => {
                    let outcome = self.run(payment, refund, cmd.idempotency.as_ref()).await?;
                    return Ok(Reply {
                        outcome,
                        replayed: false,
                    });
                }
                Ok(Begin::Existing(record)) => {
                    return self.resume(*record, cmd.idempotency.as_ref()).await;
                }
                Err(StoreError::Conflict) => continue,
                Err(StoreError::Refused { code, .. }) if code == INSUFFICIENT_FUNDS => {
                    return Err(AppError::State(DomainError::TopUpSpent));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }

    /// The provider a payment asks for (`None`: routing decides) and its method token: the
    /// balance of the payer's wallet pays only through the `wallet` provider, which asks for
    /// no token; every other method needs its provider's token.
    fn method_route(&self, cmd: &PayCommand) -> Result<(Option<String>, String), AppError> {
        let wrong = |field, why| {
            Err(AppError::Invalid {
                field,
                error: DomainError::WalletMethod(why),
            })
        };
        let named_wallet = cmd.provider.as_deref() == Some(WALLET_PROVIDER);
        if cmd.method != PaymentMethod::Wallet {
            if named_wallet {
                return wrong(
                    "payment_method",
                    "the wallet provider takes payment_method wallet",
                );
            }
            if cmd.method_token.is_empty() {
                return Err(AppError::Invalid {
                    field: "payment_method_token",
                    error: DomainError::MethodTokenRequired,
                });
            }
            return Ok((cmd.provider.clone(), cmd.method_token.clone()));
        }
        if cmd.provider.is_some() && !named_wallet {
            return wrong(
                "provider",
                "payment_method wallet pays from the wallet balance: name no provider, or wallet",
            );
        }
        if matches!(Purpose::of(&cmd.metadata), Ok(Some(Purpose::TopUp(_)))) {
            return wrong(
                "payment_method",
                "a wallet is not topped up from its own balance",
            );
        }
        let token = if cmd.method_token.is_empty() {
            WALLET_PROVIDER.to_owned()
        } else {
            cmd.method_token.clone()
        };
        Ok((Some(WALLET_PROVIDER.to_owned()), token))
    }

    /// One payment; another customer's payment does not exist for a customer.
    pub async fn get(&self, actor: &Actor, id: PaymentId) -> Result<PaymentState, AppError> {
        Ok(self.visible(actor, id).await?.state().clone())
    }

    async fn visible(&self, actor: &Actor, id: PaymentId) -> Result<Payment, AppError> {
        match self.repo.payment(id).await? {
            Some(p) if actor.is_admin() || p.state().customer_id == customer_of(actor) => Ok(p),
            _ => Err(AppError::NotFound("payment")),
        }
    }

    /// A page of payments, newest first: a customer's own, or anyone's for administrators.
    pub async fn list(
        &self,
        actor: &Actor,
        filter: &PaymentFilter,
        page: PageRequest<PaymentId>,
    ) -> Result<Page<PaymentState, PaymentId>, AppError> {
        let mut filter = filter.clone();
        if !actor.is_admin() {
            let own = customer_of(actor);
            if filter.customer_id.as_ref().is_some_and(|c| *c != own) {
                return Err(AppError::Forbidden(
                    "only administrators list others' payments",
                ));
            }
            filter.customer_id = Some(own);
        }
        let found = self.repo.payments(&filter, page.probe()).await?;
        let states = found.into_iter().map(|p| p.state().clone()).collect();
        Ok(page.page(states, |p| p.id))
    }

    /// A payment's charge and refunds, oldest first.
    pub async fn transactions(
        &self,
        actor: &Actor,
        id: PaymentId,
    ) -> Result<Vec<Transaction>, AppError> {
        self.visible(actor, id).await?;
        Ok(self.repo.transactions(id).await?)
    }
}

/// The code with which the store refuses a posting that would take a wallet below zero.
const INSUFFICIENT_FUNDS: &str = "insufficient_funds";

/// A charge or transfer the payer's wallet cannot cover is a 402, not a conflict.
pub(crate) fn short_of_funds(e: StoreError) -> AppError {
    match e {
        StoreError::Refused { code, detail, .. } if code == INSUFFICIENT_FUNDS => {
            AppError::InsufficientFunds(detail)
        }
        e => e.into(),
    }
}

/// Maps a domain error raised by a request's values to the field at fault.
fn request_error(error: DomainError) -> AppError {
    if error.is_state_conflict() {
        return AppError::State(error);
    }
    let field = match &error {
        DomainError::TextTooLong { field, .. } => field,
        DomainError::InvalidMetadata(_) => "metadata",
        DomainError::InvalidCustomerId => "customer_id",
        DomainError::CurrencyMismatch { .. }
        | DomainError::Money(MoneyError::UnknownCurrency(_))
        | DomainError::Money(MoneyError::CurrencyMismatch(..)) => "currency",
        _ => "amount",
    };
    AppError::Invalid { field, error }
}

/// Counts a provider a route passed over (`portside_routing_attempts_total`).
pub(crate) fn count_attempt(provider: &str, outcome: AttemptOutcome) {
    metrics::counter!("portside_routing_attempts_total", "provider" => provider.to_owned(), "outcome" => outcome.as_str())
        .increment(1);
}

/// Refuses work for a provider whose circuit is open, before anything is written.
fn available(name: &str, provider: &dyn PaymentProvider) -> Result<(), AppError> {
    provider
        .availability()
        .map_err(|wait| AppError::ProviderUnavailable {
            provider: name.to_owned(),
            retry_after_secs: wait.as_secs().max(1),
        })
}

/// A user's payments are recorded under their user id.
pub fn customer_of(actor: &Actor) -> CustomerId {
    CustomerId::from(actor.user_id)
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}
