//! The `membership` consumer group: upgrades the buyer once their membership payment succeeded.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{Money, PaymentEvent, PaymentEventData, Purpose};
use portside_events::worker::{EventHandler, HandlerError, Subscription};
use portside_events::{Envelope, InboxMark};

use crate::error::AppError;
use crate::users::Users;

/// Upgrades the buyer of a membership once their payment succeeded.
pub struct MembershipUpgrade {
    users: Arc<Users>,
    price: Money,
}

impl MembershipUpgrade {
    /// Succeeded payments (those of a membership are acted on).
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "membership",
        event_types: &[PaymentEvent::SUCCEEDED],
    };

    /// Upgrades on payments of exactly `price` marked as membership purchases.
    pub fn new(users: Arc<Users>, price: Money) -> Self {
        MembershipUpgrade { users, price }
    }
}

#[async_trait]
impl EventHandler for MembershipUpgrade {
    fn subscription(&self) -> Subscription {
        Self::SUBSCRIPTION
    }

    async fn handle(&self, event: &Envelope, mark: &InboxMark) -> Result<(), HandlerError> {
        let PaymentEventData { payment } = event.decode().map_err(HandlerError)?;
        let invalid =
            |why: &str| HandlerError(format!("membership payment {}: {why}", event.aggregate_id));
        let user = match payment.purpose() {
            Ok(Some(Purpose::Membership(user))) => user,
            Ok(_) => return Ok(()),
            Err(e) => return Err(invalid(&e.to_string())),
        };
        if payment.customer_id != user.to_string() {
            return Err(invalid("paid by another customer than the one to upgrade"));
        }
        if (payment.amount_minor, payment.currency.as_str())
            != (self.price.minor(), self.price.currency().code())
        {
            return Err(invalid("amount differs from the membership price"));
        }
        match self.users.upgrade_membership(user, Some(mark)).await {
            Ok(_) => Ok(()),
            Err(AppError::NotFound(_)) => {
                tracing::warn!(%user, "membership paid by a user who no longer exists");
                Ok(())
            }
            Err(e) => Err(HandlerError(e.to_string())),
        }
    }
}
