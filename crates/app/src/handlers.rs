//! The event handlers of this version: the membership upgrade and the order confirmation on
//! `payment.succeeded`, and the audit log of every event.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{Currency, Money, OrderId, PaymentId, UserId};

use crate::accounts::Accounts;
use crate::error::AppError;
use crate::events::Envelope;
use crate::memberships::{PURPOSE_KEY, PURPOSE_MEMBERSHIP, USER_KEY};
use crate::orders::{ORDER_KEY, Orders, PURPOSE_ORDER};
use crate::ports::InboxMark;
use crate::worker::{EventHandler, HandlerError};

/// Upgrades the buyer of a membership once their payment succeeded.
pub struct MembershipUpgrade {
    accounts: Arc<Accounts>,
    price: Money,
}

impl MembershipUpgrade {
    /// Upgrades on payments of exactly `price` marked as membership purchases.
    pub fn new(accounts: Arc<Accounts>, price: Money) -> Self {
        MembershipUpgrade { accounts, price }
    }
}

#[async_trait]
impl EventHandler for MembershipUpgrade {
    fn group(&self) -> &'static str {
        "membership"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["payment.succeeded"]
    }

    async fn handle(&self, event: &Envelope, mark: &InboxMark) -> Result<(), HandlerError> {
        let payment = &event.data["payment"];
        if payment["metadata"][PURPOSE_KEY] != PURPOSE_MEMBERSHIP {
            return Ok(());
        }
        let invalid =
            |why: &str| HandlerError(format!("membership payment {}: {why}", event.aggregate_id));
        let user: UserId = payment["metadata"][USER_KEY]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no valid user id in its metadata"))?;
        if payment["customer_id"].as_str() != Some(user.to_string().as_str()) {
            return Err(invalid("paid by another customer than the one to upgrade"));
        }
        let paid = (
            payment["amount_minor"].as_i64(),
            payment["currency"].as_str(),
        );
        if paid != (Some(self.price.minor()), Some(self.price.currency().code())) {
            return Err(invalid("amount differs from the membership price"));
        }
        match self.accounts.upgrade_membership(user, Some(mark)).await {
            Ok(_) => Ok(()),
            Err(AppError::NotFound(_)) => {
                tracing::warn!(%user, "membership paid by a user who no longer exists");
                Ok(())
            }
            Err(e) => Err(HandlerError(e.to_string())),
        }
    }
}

/// Confirms the order a succeeded payment paid for.
pub struct OrderConfirmation {
    orders: Arc<Orders>,
}

impl OrderConfirmation {
    /// Confirms through the orders use cases.
    pub fn new(orders: Arc<Orders>) -> Self {
        OrderConfirmation { orders }
    }
}

#[async_trait]
impl EventHandler for OrderConfirmation {
    fn group(&self) -> &'static str {
        "orders"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["payment.succeeded"]
    }

    async fn handle(&self, event: &Envelope, mark: &InboxMark) -> Result<(), HandlerError> {
        let payment = &event.data["payment"];
        if payment["metadata"][PURPOSE_KEY] != PURPOSE_ORDER {
            return Ok(());
        }
        let invalid =
            |why: &str| HandlerError(format!("order payment {}: {why}", event.aggregate_id));
        let order: OrderId = payment["metadata"][ORDER_KEY]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no valid order id in its metadata"))?;
        let id: PaymentId = payment["payment_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no payment id"))?;
        let currency = payment["currency"]
            .as_str()
            .and_then(|c| Currency::from_code(c).ok())
            .ok_or_else(|| invalid("no currency"))?;
        let paid = Money::from_minor(
            payment["amount_minor"]
                .as_i64()
                .ok_or_else(|| invalid("no amount"))?,
            currency,
        );
        let payer = payment["customer_id"].as_str().unwrap_or_default();
        self.orders
            .confirm_paid(order, id, paid, payer, mark)
            .await
            .map_err(|e| HandlerError(e.to_string()))
    }
}

/// Writes every event to the log (target `audit`).
pub struct AuditLog;

#[async_trait]
impl EventHandler for AuditLog {
    fn group(&self) -> &'static str {
        "audit"
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["#"]
    }

    async fn handle(&self, event: &Envelope, _: &InboxMark) -> Result<(), HandlerError> {
        tracing::info!(
            target: "audit",
            event_id = %event.id,
            event_type = %event.event_type,
            aggregate = %event.aggregate_type,
            aggregate_id = %event.aggregate_id,
            sequence = event.sequence,
            "event"
        );
        Ok(())
    }
}
