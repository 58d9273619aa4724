//! Customers' wallets on top of the ledger: the balance (posted, held by pending payments, and
//! available), top-ups with a card (a payment whose charge credits the wallet when it
//! succeeds, however it comes to succeed), payments from the balance (`payment_method:
//! "wallet"`, the [`WalletProvider`]) and transfers between wallets. The money checks are the
//! ledger's guard on the wallet account, made under the store's lock where the money moves.

mod ports;
mod provider;
#[cfg(test)]
mod tests;

pub use ports::{Recorded, TransferStore};
pub use provider::WalletProvider;

use std::sync::Arc;

use portside_domain::{
    AccountName, Actor, AmountLimit, CustomerId, DomainError, Money, PaymentMethod, Purpose,
    Transfer, TransferId, TransferState, UserId,
};
use portside_kernel::{Clock, IdGenerator, PageRequest};

use crate::error::AppError;
use crate::ledger::{AccountFilter, LedgerStore};
use crate::payments::idempotency::IdempotentRequest;
use crate::payments::{PayCommand, Payments, Reply, customer_of, short_of_funds};
use crate::users::UserRepository;

/// A wallet's money in one currency, in minor units as the ledger keeps them.
#[derive(Clone, Debug, PartialEq)]
pub struct WalletBalance {
    /// Credited and final.
    pub balance: Money,
    /// Held by payments from the wallet that are not settled yet.
    pub held: Money,
    /// What can be spent: the balance less what is held.
    pub available: Money,
}

/// A top-up with a card (or any provider's method).
#[derive(Debug, Clone)]
pub struct TopUp {
    pub amount: Money,
    pub method: PaymentMethod,
    /// Provider token.
    pub method_token: String,
    /// Provider (default when `None`).
    pub provider: Option<String>,
    /// Required: a top-up must be safe to retry.
    pub idempotency: IdempotentRequest,
}

/// A transfer asked for.
#[derive(Debug, Clone)]
pub struct TransferCommand {
    /// The recipient's user id.
    pub recipient: UserId,
    pub amount: Money,
    pub description: Option<String>,
    /// Required: a transfer must be safe to retry.
    pub idempotency: IdempotentRequest,
}

/// A transfer and whether it was replayed from an idempotency key.
#[derive(Debug, Clone)]
pub struct TransferReply {
    pub transfer: TransferState,
    pub replayed: bool,
}

/// The wallets use cases.
pub struct Wallets {
    transfers: Arc<dyn TransferStore>,
    ledger: Arc<dyn LedgerStore>,
    users: Arc<dyn UserRepository>,
    payments: Arc<Payments>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    limit: AmountLimit,
}

impl Wallets {
    /// Wires the use cases; `limit` bounds a transfer as it bounds a payment.
    pub fn new(
        transfers: Arc<dyn TransferStore>,
        ledger: Arc<dyn LedgerStore>,
        users: Arc<dyn UserRepository>,
        payments: Arc<Payments>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        limit: AmountLimit,
    ) -> Self {
        Wallets {
            transfers,
            ledger,
            users,
            payments,
            clock,
            ids,
            limit,
        }
    }

    /// The actor's wallet, one balance per currency it ever held.
    pub async fn balances(&self, actor: &Actor) -> Result<Vec<WalletBalance>, AppError> {
        let account = AccountName::wallet(&customer_of(actor));
        let filter = AccountFilter {
            prefix: Some(account.to_string()),
            currency: None,
        };
        let page = PageRequest {
            limit: 200,
            after: None,
        };
        let found = self.ledger.accounts(&filter, page).await?;
        let normal = account.normal_side();
        Ok(found
            .into_iter()
            .filter(|a| a.account == account)
            .map(|a| {
                let money = |minor| Money::from_minor(minor, a.currency);
                WalletBalance {
                    balance: money(a.balance.posted(normal)),
                    held: money(a.balance.held(normal)),
                    available: money(a.balance.available(normal)),
                }
            })
            .collect())
    }

    /// Charges the actor's payment method and credits their wallet when the charge succeeds.
    pub async fn top_up(&self, actor: &Actor, t: TopUp) -> Result<Reply, AppError> {
        let metadata = Purpose::TopUp(actor.user_id)
            .metadata()
            .map_err(AppError::invalid("metadata"))?;
        self.payments
            .pay(
                actor,
                PayCommand {
                    payment_id: None,
                    customer_id: None,
                    amount: t.amount,
                    method: t.method,
                    method_token: t.method_token,
                    provider: t.provider,
                    description: Some("Wallet top-up".to_owned()),
                    metadata,
                    idempotency: Some(t.idempotency),
                },
            )
            .await
    }

    /// Moves money from the actor's wallet to another user's, at once; a retry with the same
    /// key returns the first transfer.
    pub async fn transfer(
        &self,
        actor: &Actor,
        cmd: TransferCommand,
    ) -> Result<TransferReply, AppError> {
        if self.users.user(cmd.recipient).await?.is_none() {
            return Err(AppError::Invalid {
                field: "recipient_id",
                error: DomainError::UnknownRecipient,
            });
        }
        let mut transfer = Transfer::create(
            TransferId(self.ids.new_id()),
            customer_of(actor),
            CustomerId::from(cmd.recipient),
            cmd.amount,
            cmd.description,
            self.limit,
            self.clock.now(),
        )
        .map_err(|error| {
            let field = match error {
                DomainError::TransferToSelf => "recipient_id",
                DomainError::TextTooLong { .. } => "description",
                _ => "amount",
            };
            AppError::Invalid { field, error }
        })?;
        let recorded = self
            .transfers
            .record_transfer(&mut transfer, Some(&cmd.idempotency))
            .await;
        match recorded {
            Ok(Recorded::New) => Ok(TransferReply {
                transfer: transfer.state().clone(),
                replayed: false,
            }),
            Ok(Recorded::Existing {
                transfer,
                fingerprint,
            }) => {
                if fingerprint != cmd.idempotency.fingerprint {
                    return Err(AppError::IdempotencyKeyReused);
                }
                Ok(TransferReply {
                    transfer: transfer.state().clone(),
                    replayed: true,
                })
            }
            Err(e) => Err(short_of_funds(e)),
        }
    }

    /// One transfer, for its sender, its recipient or an administrator.
    pub async fn get_transfer(
        &self,
        actor: &Actor,
        id: TransferId,
    ) -> Result<TransferState, AppError> {
        let me = customer_of(actor);
        match self.transfers.transfer(id).await? {
            Some(t) if actor.is_admin() || t.state().sender == me || t.state().recipient == me => {
                Ok(t.state().clone())
            }
            _ => Err(AppError::NotFound("transfer")),
        }
    }
}
