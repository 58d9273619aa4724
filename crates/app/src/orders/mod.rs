//! The ordering use cases: place, read, list, change lines, ship, cancel, and pay through the
//! payments use case. Writes take an optional expected version (the `If-Match` of HTTP);
//! the store's version check catches the races in between.

mod confirmation;
mod ports;
mod refunds;
mod stream;
#[cfg(test)]
mod tests;

pub use crate::precondition::IfMatch;
pub use confirmation::OrderConfirmation;
pub use ports::*;
pub use refunds::CancellationRefunds;
pub use stream::{OrderRenderer, OrderStreamFeed, OrderStreamPorts};

use std::sync::Arc;

use portside_domain::{
    Actor, Currency, CustomerId, DomainError, Money, Order, OrderId, OrderItem, OrderState,
    OrderStatus, PaymentId, PaymentMethod, PaymentStatus, Purpose, Sku,
};
use time::OffsetDateTime;

use crate::catalog::CatalogRepository;
use crate::error::AppError;
use crate::payments::idempotency::IdempotentRequest;
use crate::payments::{PayCommand, Payments, Reply, customer_of};
use portside_domain::order::{MAX_ITEMS, MAX_QUANTITY};
use portside_events::InboxMark;
use portside_kernel::{Clock, IdGenerator, Page, PageRequest, StoreError};

const MAX_ATTEMPTS: usize = 5;

/// A new order.
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    /// Who orders: the actor when `None`; another customer only for administrators.
    pub customer_id: Option<CustomerId>,
    /// The order's currency; every line is priced in it.
    pub currency: Currency,
    pub lines: Vec<LineRequest>,
    /// Makes placing safe to retry: the same key and request answer the order placed first,
    /// and reserve nothing again.
    pub idempotency: Option<IdempotentRequest>,
}

/// A placed order, and whether it was placed by an earlier request with the same key.
#[derive(Debug, Clone)]
pub struct Placed {
    pub order: OrderState,
    pub replayed: bool,
}

/// One line as a client asks for it: a product and a quantity. The price comes from the
/// catalog.
#[derive(Debug, Clone)]
pub struct LineRequest {
    pub sku: Sku,
    pub quantity: u32,
    /// The unit price the buyer saw: the line is refused (`price_mismatch`) unless it is the
    /// catalog's, so nobody is charged a price they did not see.
    pub expected_price: Option<Money>,
    /// An administrator's unit price instead of the catalog's, recorded on the line.
    pub price_override: Option<Money>,
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
    catalog: Arc<dyn CatalogRepository>,
    payments: Arc<Payments>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    default_currency: Currency,
}

fn under_way() -> AppError {
    AppError::State(DomainError::OrderLocked(
        "a payment for this order is under way or done",
    ))
}

/// Stock that ran out under the store's lock, named by the line that asked for it.
fn stock_refusal(e: StoreError, order: &OrderState) -> AppError {
    match e {
        StoreError::Refused {
            code,
            subject,
            detail,
        } => {
            let line = order.items.iter().position(|i| i.product_id == subject);
            AppError::Refused {
                conflict: true,
                refusals: vec![crate::Refusal {
                    field: line.map_or(subject, |i| format!("items[{i}].quantity")),
                    code,
                    message: detail,
                }],
            }
        }
        e => e.into(),
    }
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
        catalog: Arc<dyn CatalogRepository>,
        payments: Arc<Payments>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        default_currency: Currency,
    ) -> Self {
        Orders {
            repo,
            catalog,
            payments,
            clock,
            ids,
            default_currency,
        }
    }

    /// The currency of an order placed without one (seed 003's body names none).
    pub fn default_currency(&self) -> Currency {
        self.default_currency
    }

    /// Places an order for the actor (or, for an administrator, any customer).
    pub async fn place(&self, actor: &Actor, cmd: PlaceOrder) -> Result<OrderState, AppError> {
        Ok(self.place_keyed(actor, cmd).await?.order)
    }

    /// The order a request with this key placed before: replayed when it is the same request,
    /// refused when the key was used for another one.
    async fn placed_before(&self, key: &IdempotentRequest) -> Result<Option<Placed>, AppError> {
        match self.repo.order_by_key(&key.scope, key.key.as_str()).await? {
            Some((order, fingerprint)) if fingerprint == key.fingerprint => Ok(Some(Placed {
                order: order.state().clone(),
                replayed: true,
            })),
            Some(_) => Err(AppError::IdempotencyKeyReused),
            None => Ok(None),
        }
    }

    /// [`place`](Self::place), saying whether an earlier request with the same idempotency key
    /// placed the order.
    pub async fn place_keyed(&self, actor: &Actor, cmd: PlaceOrder) -> Result<Placed, AppError> {
        if let Some(key) = &cmd.idempotency
            && let Some(placed) = self.placed_before(key).await?
        {
            return Ok(placed);
        }
        let own = customer_of(actor);
        let customer = match cmd.customer_id {
            Some(c) if c != own && !actor.is_admin() => {
                return Err(AppError::Forbidden("customer_id must be your own user id"));
            }
            Some(c) => c,
            None => own,
        };
        let items = self.price(actor, cmd.currency, &cmd.lines).await?;
        let mut order = Order::place(
            OrderId(self.ids.new_id()),
            customer,
            items,
            cmd.currency,
            self.clock.now(),
        )
        .map_err(state_error)?;
        match self
            .repo
            .insert_keyed_order(&mut order, cmd.idempotency.as_ref())
            .await
        {
            Ok(()) => Ok(Placed {
                order: order.state().clone(),
                replayed: false,
            }),
            Err(StoreError::Duplicate) => match &cmd.idempotency {
                // A concurrent request with the same key placed it first.
                Some(key) => self.placed_before(key).await?.ok_or(AppError::Conflict),
                None => Err(AppError::Conflict),
            },
            Err(e) => Err(stock_refusal(e, order.state())),
        }
    }

    /// Prices the lines from the catalog in `currency`: the catalog's name and unit price, or
    /// an administrator's override. Names every refused line: a SKU twice, an unknown or
    /// archived product, no price in the currency, a price the buyer expected that is not the
    /// catalog's.
    async fn price(
        &self,
        actor: &Actor,
        currency: Currency,
        lines: &[LineRequest],
    ) -> Result<Vec<OrderItem>, AppError> {
        if lines.len() > MAX_ITEMS {
            return Err(state_error(DomainError::InvalidItems(format!(
                "an order has at most {} items, got {}",
                MAX_ITEMS,
                lines.len()
            ))));
        }
        if lines.iter().any(|l| l.price_override.is_some()) && !actor.is_admin() {
            return Err(AppError::Forbidden("only administrators override prices"));
        }
        let mut refused = Vec::new();
        let mut items = Vec::with_capacity(lines.len());
        let mut seen = std::collections::HashSet::new();
        for (i, line) in lines.iter().enumerate() {
            if line.quantity == 0 || line.quantity > MAX_QUANTITY {
                refused.push((
                    format!("items[{i}].quantity"),
                    DomainError::InvalidItems(format!("quantity must be 1 to {MAX_QUANTITY}")),
                ));
                continue;
            }
            if !seen.insert(&line.sku) {
                refused.push((
                    format!("items[{i}].sku"),
                    DomainError::DuplicateSku(line.sku.to_string()),
                ));
                continue;
            }
            let Some(product) = self.catalog.product(&line.sku).await? else {
                refused.push((
                    format!("items[{i}].sku"),
                    DomainError::UnknownProduct(line.sku.to_string()),
                ));
                continue;
            };
            let catalog_price = match product.price_for_order(currency) {
                Ok(price) => price,
                Err(e) if line.price_override.is_none() => {
                    refused.push((format!("items[{i}].sku"), e));
                    continue;
                }
                Err(_) => Money::zero(currency),
            };
            let unit_price = line.price_override.unwrap_or(catalog_price);
            if let Some(expected) = line.expected_price
                && expected != unit_price
            {
                refused.push((
                    format!("items[{i}].price"),
                    DomainError::PriceMismatch {
                        current: unit_price.to_decimal_string(),
                        expected: expected.to_decimal_string(),
                    },
                ));
                continue;
            }
            items.push(OrderItem {
                product_id: line.sku.to_string(),
                name: product.state().details.name.clone(),
                quantity: line.quantity,
                unit_price,
                price_overridden: line.price_override.is_some(),
            });
        }
        if refused.is_empty() {
            Ok(items)
        } else {
            Err(AppError::refused(refused))
        }
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

    /// Loads, applies `change`, checks the expected version, saves; retried on races, which
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
            // RFC 9110 §13.2.1: a request refused without its precondition is refused the same
            // way with it; the precondition decides only between success and 412.
            let current = order.state().version;
            change(&mut order, self.clock.now()).map_err(state_error)?;
            if !expected.holds(current) {
                return Err(AppError::PreconditionFailed);
            }
            match self.repo.update_order(&mut order, None).await {
                Ok(()) => return Ok(order.state().clone()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(stock_refusal(e, order.state())),
            }
        }
        Err(AppError::Conflict)
    }

    /// Replaces the lines of a pending, unpaid order, priced from the catalog again and
    /// reserved again.
    pub async fn replace_items(
        &self,
        actor: &Actor,
        id: OrderId,
        lines: Vec<LineRequest>,
        expected: IfMatch,
    ) -> Result<OrderState, AppError> {
        let currency = self.visible(actor, id).await?.state().total.currency();
        let items = self.price(actor, currency, &lines).await?;
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

    /// Cancels a pending or confirmed order (a shipped one cannot be: 409 `order_shipped`).
    /// A payment it has (succeeded, or still under way) is refunded by the `order-refunds`
    /// group, not here.
    pub async fn cancel(
        &self,
        actor: &Actor,
        id: OrderId,
        expected: IfMatch,
    ) -> Result<OrderState, AppError> {
        let by_admin = actor.is_admin();
        self.mutate(actor, id, &expected, |o, now| o.cancel(by_admin, now))
            .await
    }

    /// Pays the order's total through the payments use case. The order notes the payment
    /// before the provider is called (so it is neither changed nor expired while the payment
    /// runs) and is confirmed by the `payment.succeeded` event (see
    /// `confirmation::OrderConfirmation`); a failed payment leaves it pending and payable again.
    /// A retry with the same key replays; a new key for an order whose payment is under way or
    /// done is refused.
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
        if let Some(noted) = order.state().payment_id {
            if let Some(reply) = self.payments.replay(&cmd.idempotency).await? {
                return if reply.outcome.payment.id == noted {
                    Ok(reply)
                } else {
                    Err(under_way())
                };
            }
            // A payment noted but failed, or never made (a crash before it was), is abandoned.
            if !matches!(
                self.payments.status_of(noted).await?,
                None | Some(PaymentStatus::Failed)
            ) {
                return Err(under_way());
            }
        }
        let pid = PaymentId(self.ids.new_id());
        let noted = self
            .mutate(
                actor,
                id,
                &IfMatch::version(order.state().version),
                |o, now| o.start_payment(pid, now),
            )
            .await;
        let s = match noted {
            Ok(s) => s,
            Err(AppError::PreconditionFailed) => return Err(AppError::Conflict),
            Err(e) => return Err(e),
        };
        let metadata = Purpose::Order(s.id)
            .metadata()
            .map_err(AppError::invalid("metadata"))?;
        let paid = self
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
                    payment_id: Some(pid),
                },
            )
            .await;
        let failed = match &paid {
            Ok(reply) => reply.outcome.payment.status == PaymentStatus::Failed,
            // Refused before a payment was made (provider unavailable, a reused key, ...).
            Err(_) => self.payments.status_of(pid).await.ok().flatten().is_none(),
        };
        if failed {
            let reopened = self
                .mutate(actor, id, &IfMatch::Any, |o, now| {
                    o.payment_failed(pid, now);
                    Ok(())
                })
                .await;
            if let Err(e) = reopened {
                tracing::warn!(order = %id, payment = %pid, error = %e, "could not reopen the order after its payment failed; paying it again will");
            }
        }
        paid
    }

    /// Cancels the unpaid orders placed more than `ttl` ago, giving their units back: those
    /// without a payment, or whose payment failed or never came to be (then only once the
    /// order is also `ttl` past its last change, so a payment being made right now is never
    /// cut short). An order whose payment is processing or succeeded is left alone. Returns how
    /// many expired.
    pub async fn expire_unpaid(&self, ttl: time::Duration) -> Result<usize, AppError> {
        let cutoff = self.clock.now() - ttl;
        let filter = OrderFilter {
            status: Some(OrderStatus::Pending),
            created_before: Some(cutoff),
            ..OrderFilter::default()
        };
        let candidates = self
            .repo
            .orders(
                &filter,
                PageRequest {
                    limit: 200,
                    after: None,
                },
            )
            .await?;
        let mut expired = 0;
        for order in candidates {
            if self.expire_one(order.id(), cutoff).await? {
                expired += 1;
            }
        }
        Ok(expired)
    }

    async fn expire_one(&self, id: OrderId, cutoff: OffsetDateTime) -> Result<bool, AppError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(mut order) = self.repo.order(id).await? else {
                return Ok(false);
            };
            let s = order.state();
            if s.status != OrderStatus::Pending || s.created_at > cutoff {
                return Ok(false);
            }
            if let Some(payment) = s.payment_id {
                let abandoned = matches!(
                    self.payments.status_of(payment).await?,
                    None | Some(PaymentStatus::Failed)
                );
                if !abandoned || s.updated_at > cutoff {
                    return Ok(false);
                }
            }
            order.expire(self.clock.now()).map_err(AppError::State)?;
            match self.repo.update_order(&mut order, None).await {
                Ok(()) => return Ok(true),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
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
            // Cancelled while its payment was under way: the `order-refunds` group refunds it.
            if s.status == OrderStatus::Cancelled && s.payment_id == Some(payment) {
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
