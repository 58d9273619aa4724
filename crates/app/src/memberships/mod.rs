//! Membership purchase: a checkout charges the configured price. The upgrade happens behind the
//! `payment.succeeded` event (`upgrade::MembershipUpgrade`, consumer group `membership`), so a
//! payment finished later by a retry or by the recovery task upgrades too. Replays never charge
//! or upgrade twice: the payment is idempotent on its key, the inbox records the event, and the
//! upgrade is a no-op for a premium user.

mod upgrade;

pub use upgrade::MembershipUpgrade;

use std::sync::Arc;

use portside_domain::{Actor, Money, PaymentMethod, Purpose};

use crate::error::AppError;
use crate::payments::idempotency::IdempotentRequest;
use crate::payments::{PayCommand, Payments, Reply};

/// A checkout request.
#[derive(Debug, Clone)]
pub struct Checkout {
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
    price: Money,
}

impl Memberships {
    /// Membership costs `price`.
    pub fn new(payments: Arc<Payments>, price: Money) -> Self {
        Memberships { payments, price }
    }

    /// What a membership costs.
    pub fn price(&self) -> Money {
        self.price
    }

    /// Charges the price to the actor; the upgrade follows the payment's success event.
    pub async fn checkout(&self, actor: &Actor, c: Checkout) -> Result<Reply, AppError> {
        let metadata = Purpose::Membership(actor.user_id)
            .metadata()
            .map_err(AppError::invalid("metadata"))?;
        let reply = self
            .payments
            .pay(
                actor,
                PayCommand {
                    payment_id: None,
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
        Ok(reply)
    }
}
