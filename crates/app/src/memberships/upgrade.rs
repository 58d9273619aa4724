//! The `membership` consumer group: upgrades the buyer once their membership payment succeeded.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{Money, UserId};
use portside_events::worker::{EventHandler, HandlerError, Subscription};
use portside_events::{Envelope, InboxMark};

use super::{PURPOSE_KEY, PURPOSE_MEMBERSHIP, USER_KEY};
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
        event_types: &["payment.succeeded"],
    };

    /// Upgrades on payments of exactly `price` marked as membership purchases.
    pub fn new(users: Arc<Users>, price: Money) -> Self {
        MembershipUpgrade { users, price }
    }
}

#[async_trait]
impl EventHandler for MembershipUpgrade {
    fn group(&self) -> &'static str {
        Self::SUBSCRIPTION.group
    }

    fn event_types(&self) -> &'static [&'static str] {
        Self::SUBSCRIPTION.event_types
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
