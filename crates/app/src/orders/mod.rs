//! The ordering use cases: place, read, list, change lines, ship, cancel, and pay through the
//! payments use case. Writes take an optional expected version (the `If-Match` of HTTP);
//! the store's version check catches the races in between.

mod confirmation;
mod ports;
#[cfg(test)]
mod tests;

pub use confirmation::OrderConfirmation;
pub use ports::*;

use std::sync::Arc;

use portside_domain::{
    Actor, Currency, CustomerId, DomainError, Money, Order, OrderId, OrderItem, OrderState,
    OrderStatus, PaymentId, PaymentMethod, PaymentStatus, Purpose,
};
use time::OffsetDateTime;

use crate::error::AppError;
use crate::payments::idempotency::IdempotentRequest;
use crate::payments::{PayCommand, Payments, Reply, customer_of};
use portside_events::InboxMark;
use portside_kernel::{Clock, IdGenerator, Page, PageRequest, StoreError};

/// The precondition of a write, from HTTP's `If-Match` (RFC 9110 §13.1.1). If-Match compares
/// entity tags strongly, so a weak tag, or a tag this API never issued, names no version: the
/// write then fails its precondition (412) rather than being a malformed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No precondition: no header, or `*` (the order exists, which every write checks anyway).
    Any,
    /// The versions the client's strong tags name; the write proceeds if one of them is current.
    Versions(Vec<i64>),
}

impl IfMatch {
    /// The precondition of a client that read `version`.
    pub fn version(version: i64) -> Self {
        IfMatch::Versions(vec![version])
    }

    fn holds(&self, current: i64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&current),
        }
    }
}

const MAX_ATTEMPTS: usize = 5;

/// A new order.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    /// Who orders: the actor when `None`; another customer only for administrators.
    pub customer_id: Option<CustomerId>,
    /// The order's currency; every line is priced in it.
    pub currency: Currency,
    pub items: Vec<OrderItem>,
}

/// Paying an order.
#[derive(Debug, Clone)]
pub struct PayOrder {
    pub method: PaymentMethod,
    /// Provider token.
    pub method_token: String,
    /// Provider (default when `None`).
    pub provider: Option<String>,
    /// Required: paying must be safe to retry.
    pub idempotency: IdempotentRequest,
}

/// The ordering use cases.
pub struct Orders {
    repo: Arc<dyn OrderRepository>,
    payments: Arc<Payments>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

fn state_error(e: DomainError) -> AppError {
    if e.is_state_conflict() {
        AppError::State(e)
    } else {
        let field = match e {
            DomainError::CurrencyMismatch { .. } => "currency",
            _ => "items",
        };
        AppError::Invalid { field, error: e }
    }
}

impl Orders {
    /// Wires the use cases.
    pub fn new(
        repo: Arc<dyn OrderRepository>,
        payments: Arc<Payments>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Orders {
            repo,
            payments,
            clock,
            ids,
        }
    }

    /// Places an order for the actor (or, for an administrator, any customer).
    pub async fn place(&self, actor: &Actor, cmd: PlaceOrder) -> Result<OrderState, AppError> {
        let own = customer_of(actor);
        let customer = match cmd.customer_id {
            Some(c) if c != own && !actor.is_admin() => {
                return Err(AppError::Forbidden("customer_id must be your own user id"));
            }
            Some(c) => c,
            None => own,
        };
        let mut order = Order::place(
            OrderId(self.ids.new_id()),
            customer,
            cmd.items,
            cmd.currency,
            self.clock.now(),
        )
        .map_err(state_error)?;
        self.repo.insert_order(&mut order).await?;
        Ok(order.state().clone())
    }

    /// One order; another customer's order does not exist for a customer.
    pub async fn get(&self, actor: &Actor, id: OrderId) -> Result<OrderState, AppError> {
        Ok(self.visible(actor, id).await?.state().clone())
    }

    async fn visible(&self, actor: &Actor, id: OrderId) -> Result<Order, AppError> {
        match self.repo.order(id).await? {
            Some(o) if actor.is_admin() || o.state().customer_id == customer_of(actor) => Ok(o),
            _ => Err(AppError::NotFound("order")),
        }
    }

    /// Orders, newest first: a customer's own, or anyone's for administrators.
    pub async fn list(
        &self,
        actor: &Actor,
        mut filter: OrderFilter,
        page: PageRequest<(OffsetDateTime, OrderId)>,
    ) -> Result<Page<OrderState, (OffsetDateTime, OrderId)>, AppError> {
        if !actor.is_admin() {
            let own = customer_of(actor);
            if filter.customer_id.as_ref().is_some_and(|c| *c != own) {
                return Err(AppError::Forbidden(
                    "only administrators list others' orders",
                ));
            }
            filter.customer_id = Some(own);
        }
        let found = self.repo.orders(&filter, page.probe()).await?;
        let states = found.iter().map(|o| o.state().clone()).collect();
        Ok(page.page(states, |o| (o.created_at, o.id)))
    }

    /// Loads, checks the expected version, applies `change`, saves; retried on races, which
    /// become 412 when the client named a version.
    async fn mutate(
        &self,
        actor: &Actor,
        id: OrderId,
        expected: &IfMatch,
        change: impl Fn(&mut Order, OffsetDateTime) -> Result<(), DomainError>,
    ) -> Result<OrderState, AppError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut order = self.visible(actor, id).await?;
            if !expected.holds(order.state().version) {
                return Err(AppError::PreconditionFailed);
            }
            change(&mut order, self.clock.now()).map_err(state_error)?;
            match self.repo.update_order(&mut order, None).await {
                Ok(()) => return Ok(order.state().clone()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }

    /// Replaces the lines of a pending, unpaid order.
    pub async fn replace_items(
        &self,
        actor: &Actor,
        id: OrderId,
        items: Vec<OrderItem>,
        expected: IfMatch,
    ) -> Result<OrderState, AppError> {
        self.mutate(actor, id, &expected, |o, now| {
            o.replace_items(items.clone(), now)
        })
        .await
    }

    /// Ships a confirmed order (administrators only).
    pub async fn ship(
        &self,
        actor: &Actor,
        id: OrderId,
        expected: IfMatch,
    ) -> Result<OrderState, AppError> {
        if !actor.is_admin() {
            return Err(AppError::Forbidden("only administrators ship orders"));
        }
        self.mutate(actor, id, &expected, |o, now| o.ship(now))
            .await
    }

    /// Cancels a pending or confirmed order (a shipped one cannot be).
    pub async fn cancel(
        &self,
        actor: &Actor,
        id: OrderId,
        expected: IfMatch,
    ) -> Result<OrderState, AppError> {
        self.mutate(actor, id, &expected, |o, now| o.cancel(now))
            .await
    }

    /// Pays the order's total through the payments use case. The order is confirmed by the
    /// `payment.succeeded` event (see `confirmation::OrderConfirmation`); a declined payment leaves
    /// it pending and payable again. A retry with the same key replays; a new key for an order
    /// already being paid is refused.
    pub async fn pay(
        &self,
        actor: &Actor,
        id: OrderId,
        cmd: PayOrder,
        expected: IfMatch,
    ) -> Result<Reply, AppError> {
        let order = self.visible(actor, id).await?;
        if !expected.holds(order.state().version) {
            return Err(AppError::PreconditionFailed);
        }
        if let Some(paying) = order.state().payment_id {
            return match self.payments.replay(&cmd.idempotency).await? {
                Some(reply) if reply.outcome.payment.id == paying => Ok(reply),
                _ => Err(AppError::State(DomainError::OrderLocked(
                    "a payment for this order is under way or done",
                ))),
            };
        }
        order.require_open().map_err(AppError::State)?;
        let s = order.state();
        let metadata = Purpose::Order(s.id)
            .metadata()
            .map_err(AppError::invalid("metadata"))?;
        let reply = self
            .payments
            .pay(
                actor,
                PayCommand {
                    customer_id: Some(s.customer_id.clone()),
                    amount: s.total,
                    method: cmd.method,
                    method_token: cmd.method_token,
                    provider: cmd.provider,
                    description: Some(format!("Order {}", s.id)),
                    metadata,
                    idempotency: Some(cmd.idempotency),
                },
            )
            .await?;
        let payment = &reply.outcome.payment;
        if matches!(
            payment.status,
            PaymentStatus::Succeeded | PaymentStatus::Processing
        ) {
            let pid = payment.id;
            let noted = self
                .mutate(actor, id, &IfMatch::Any, |o, now| o.start_payment(pid, now))
                .await;
            if let Err(e) = noted {
                tracing::warn!(order = %id, payment = %pid, error = %e, "order changed while it was being paid; the confirmation will sort it out");
            }
        }
        Ok(reply)
    }

    /// Confirms an order paid by a succeeded payment (the event handler's use case). Refuses,
    /// for an operator to look at, a payment that does not match the order or pays an order
    /// that can no longer be confirmed.
    pub async fn confirm_paid(
        &self,
        id: OrderId,
        payment: PaymentId,
        paid: Money,
        payer: &str,
        mark: &InboxMark,
    ) -> Result<(), AppError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut order = self
                .repo
                .order(id)
                .await?
                .ok_or(AppError::NotFound("order"))?;
            let s = order.state();
            if s.status == OrderStatus::Confirmed && s.payment_id == Some(payment)
                || s.status == OrderStatus::Shipped
            {
                return Ok(());
            }
            if s.total != paid || s.customer_id.as_str() != payer {
                return Err(AppError::Internal(format!(
                    "payment {payment} of {paid} by {payer} does not match order {id} ({} by {})",
                    s.total, s.customer_id
                )));
            }
            order.confirm(payment, self.clock.now()).map_err(|e| {
                AppError::Internal(format!("order {id} was paid by {payment} but cannot be confirmed ({e}); refund the payment"))
            })?;
            match self.repo.update_order(&mut order, Some(mark)).await {
                Ok(()) | Err(StoreError::AlreadyProcessed) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }
}
