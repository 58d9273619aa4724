//! The `membership` consumer group: a membership payment that succeeded adds a period to its
//! buyer's membership (premium from now, or a period more from the current end); one refunded
//! in full takes that period back, and the membership ends when nothing of it remains.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{Money, PaymentEvent, PaymentEventData, PaymentStatus, Purpose};
use portside_events::worker::{EventHandler, HandlerError, Subscription};
use portside_events::{Envelope, InboxMark};
use time::Duration;

use crate::error::AppError;
use crate::users::Users;

/// Follows membership payments: succeeded adds a period, refunded in full takes it back.
pub struct MembershipUpgrade {
    users: Arc<Users>,
    price: Money,
    period: Duration,
}

impl MembershipUpgrade {
    /// Succeeded and refunded payments (those of a membership are acted on).
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "membership",
        event_types: &[PaymentEvent::SUCCEEDED, PaymentEvent::REFUNDED],
    };

    /// Acts on payments of exactly `price` marked as membership purchases; each buys `period`.
    pub fn new(users: Arc<Users>, price: Money, period: Duration) -> Self {
        MembershipUpgrade {
            users,
            price,
            period,
        }
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
        let changed = if event.event_type == PaymentEvent::SUCCEEDED {
            self.users
                .add_membership_period(user, self.period, Some(mark))
                .await
        } else if payment.status == PaymentStatus::Refunded {
            self.users
                .take_back_membership_period(user, self.period, Some(mark))
                .await
        } else {
            // A partial refund leaves the membership as it is.
            return Ok(());
        };
        match changed {
            Ok(_) => Ok(()),
            Err(AppError::NotFound(_)) => {
                tracing::warn!(%user, "membership paid by a user who no longer exists");
                Ok(())
            }
            Err(e) => Err(HandlerError(e.to_string())),
        }
    }
}
