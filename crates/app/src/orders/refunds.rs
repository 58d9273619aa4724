//! The refund a cancelled order owes. Cancelling never calls a provider: the `order-refunds`
//! consumer group refunds the order's payment in full once the order is cancelled and its
//! payment has succeeded (whichever comes last), and follows a refund whose outcome the
//! provider left unknown until it settles. Every attempt has an idempotency key of the order
//! and the attempt, so redelivered events, retries and crashes refund once; an operator's
//! retry after a refusal is a new attempt.

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::{
    Actor, DomainError, Failure, OrderEvent, OrderEventData, OrderId, OrderRefund, PaymentEvent,
    PaymentEventData, PaymentStatus, Purpose, RefundOutcome, RefundStatus, Role, TransactionId,
    TransactionStatus, UserId,
};
use portside_events::worker::{EventHandler, HandlerError, Subscription};
use portside_events::{Envelope, InboxMark};
use portside_kernel::StoreError;
use uuid::Uuid;

use super::{IfMatch, MAX_ATTEMPTS, Orders};
use crate::error::AppError;
use crate::payments::RefundCommand;
use crate::payments::idempotency::{IdempotencyKey, IdempotentRequest};

/// Whom the refunds are made as: the system, with an administrator's reach.
fn system() -> Actor {
    Actor {
        user_id: UserId(Uuid::nil()),
        role: Role::Admin,
    }
}

impl Orders {
    /// Moves the refund a cancelled order owes one step on: refunds the payment once it has
    /// succeeded, drops the refund when the payment failed, records the refund's outcome. Does
    /// nothing for an order that owes no refund or whose refund is settled.
    pub async fn settle_refund(
        &self,
        id: OrderId,
        mark: Option<&InboxMark>,
    ) -> Result<(), AppError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(mut order) = self.repo.order(id).await? else {
                return Ok(());
            };
            let Some(refund) = order.state().refund.clone() else {
                return Ok(());
            };
            if !matches!(refund.status, RefundStatus::Due | RefundStatus::Pending) {
                return Ok(());
            }
            let now = self.clock.now();
            match self.payments.status_of(refund.payment_id).await? {
                // Not settled yet: its `payment.succeeded` or `payment.failed` comes back here.
                Some(PaymentStatus::Pending | PaymentStatus::Processing) => return Ok(()),
                None | Some(PaymentStatus::Failed) => order.refund_not_owed(now),
                Some(_) => match self.ask_for_refund(id, &refund).await? {
                    Some((txn, minor, outcome)) => order
                        .refund_made(txn, minor, outcome, now)
                        .map_err(AppError::State)?,
                    None => order.refund_not_owed(now),
                },
            }
            match self.repo.update_order(&mut order, mark).await {
                Ok(()) | Err(StoreError::AlreadyProcessed) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }

    /// Refunds all that remains of the payment under this attempt's key: the refund
    /// transaction, its amount and outcome; `None` when nothing remains (refunded in full by
    /// someone else meanwhile).
    async fn ask_for_refund(
        &self,
        id: OrderId,
        refund: &OrderRefund,
    ) -> Result<Option<(TransactionId, i64, RefundOutcome)>, AppError> {
        let made = self
            .payments
            .refund(
                &system(),
                RefundCommand {
                    payment_id: refund.payment_id,
                    amount: None,
                    currency: None,
                    reason: Some(format!("order {id} cancelled")),
                    metadata: Purpose::Order(id)
                        .metadata()
                        .map_err(AppError::invalid("metadata"))?,
                    idempotency: Some(IdempotentRequest {
                        scope: "system:order-refunds".to_owned(),
                        key: IdempotencyKey::parse(&refund.key(id))
                            .map_err(|e| AppError::Internal(e.to_string()))?,
                        fingerprint: format!("refund {}", refund.payment_id),
                    }),
                },
            )
            .await;
        let txn = match made {
            Ok(reply) => reply.outcome.transaction,
            Err(AppError::State(DomainError::NotRefundable(_))) => {
                tracing::warn!(order = %id, payment = %refund.payment_id, "a cancelled order's payment has nothing left to refund");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let outcome = match txn.status {
            TransactionStatus::Succeeded => RefundOutcome::Succeeded,
            TransactionStatus::Pending => RefundOutcome::Pending,
            TransactionStatus::Failed => RefundOutcome::Failed(
                txn.failure
                    .clone()
                    .unwrap_or_else(|| Failure::new("refund_failed", "the refund failed")),
            ),
        };
        Ok(Some((txn.id, txn.amount.minor(), outcome)))
    }

    /// An administrator asks again for a refund the provider refused (a new attempt, made by
    /// the `order-refunds` group).
    pub async fn retry_refund(
        &self,
        actor: &Actor,
        id: OrderId,
        expected: IfMatch,
    ) -> Result<portside_domain::OrderState, AppError> {
        if !actor.is_admin() {
            return Err(AppError::Forbidden("only administrators retry refunds"));
        }
        self.mutate(actor, id, &expected, |o, now| o.retry_refund(now))
            .await
    }
}

/// The `order-refunds` consumer group.
pub struct CancellationRefunds {
    orders: Arc<Orders>,
}

impl CancellationRefunds {
    /// An order cancelled or changed (an operator's retry), and an order's payment settling or
    /// its refund settling.
    pub const SUBSCRIPTION: Subscription = Subscription {
        group: "order-refunds",
        event_types: &[
            OrderEvent::CANCELLED,
            OrderEvent::UPDATED,
            PaymentEvent::SUCCEEDED,
            PaymentEvent::FAILED,
            PaymentEvent::REFUNDED,
            PaymentEvent::REFUND_FAILED,
        ],
    };

    pub fn new(orders: Arc<Orders>) -> Self {
        CancellationRefunds { orders }
    }
}

#[async_trait]
impl EventHandler for CancellationRefunds {
    fn subscription(&self) -> Subscription {
        Self::SUBSCRIPTION
    }

    async fn handle(&self, event: &Envelope, mark: &InboxMark) -> Result<(), HandlerError> {
        let invalid = |why: String| {
            HandlerError(format!(
                "{} {}: {why}",
                event.event_type, event.aggregate_id
            ))
        };
        let order = if event.event_type.starts_with("order.") {
            let OrderEventData { order } = event.decode().map_err(HandlerError)?;
            if order.status != portside_domain::OrderStatus::Cancelled {
                return Ok(());
            }
            order.order_id
        } else {
            let PaymentEventData { payment } = event.decode().map_err(HandlerError)?;
            match payment.purpose() {
                Ok(Some(Purpose::Order(order))) => order,
                Ok(_) => return Ok(()),
                Err(e) => return Err(invalid(e.to_string())),
            }
        };
        self.orders
            .settle_refund(order, Some(mark))
            .await
            .map_err(|e| HandlerError(e.to_string()))
    }
}
