//! Membership purchase: a checkout charges the configured price; when that payment succeeds
//! the buyer becomes premium. The upgrade runs here, in the use case, until the event worker
//! exists (then it moves behind `payment.succeeded`). Replays never charge or upgrade twice:
//! the payment is idempotent on its key and the upgrade is a no-op for a premium user.

use std::collections::BTreeMap;
use std::sync::Arc;

use portside_domain::{Actor, Metadata, Money, PaymentMethod, PaymentStatus};

use crate::accounts::Accounts;
use crate::error::AppError;
use crate::idempotency::IdempotentRequest;
use crate::payments::{PayCommand, Payments, Reply};

/// Metadata marking a payment as a membership purchase.
pub const PURPOSE: (&str, &str) = ("purpose", "membership");

/// A checkout request.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// How.
    pub method: PaymentMethod,
    /// Provider token.
    pub method_token: String,
    /// Provider (default when `None`).
    pub provider: Option<String>,
    /// Required: a checkout must be safe to retry.
    pub idempotency: IdempotentRequest,
}

/// The membership use case.
pub struct Memberships {
    payments: Arc<Payments>,
    accounts: Arc<Accounts>,
    price: Money,
}

impl Memberships {
    /// Membership costs `price`.
    pub fn new(payments: Arc<Payments>, accounts: Arc<Accounts>, price: Money) -> Self {
        Memberships {
            payments,
            accounts,
            price,
        }
    }

    /// What a membership costs.
    pub fn price(&self) -> Money {
        self.price
    }

    /// Charges the price to the actor and upgrades them once the payment succeeded.
    pub async fn checkout(&self, actor: &Actor, c: Checkout) -> Result<Reply, AppError> {
        let metadata = Metadata::new(BTreeMap::from([
            (PURPOSE.0.to_owned(), PURPOSE.1.to_owned()),
            ("user_id".to_owned(), actor.user_id.to_string()),
        ]))
        .map_err(AppError::invalid("metadata"))?;
        let reply = self
            .payments
            .pay(
                actor,
                PayCommand {
                    customer_id: None,
                    amount: self.price,
                    method: c.method,
                    method_token: c.method_token,
                    provider: c.provider,
                    description: Some("Premium membership".to_owned()),
                    metadata,
                    idempotency: Some(c.idempotency),
                },
            )
            .await?;
        if reply.outcome.payment.status == PaymentStatus::Succeeded {
            self.accounts.upgrade_membership(actor.user_id).await?;
        }
        Ok(reply)
    }
}
