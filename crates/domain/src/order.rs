//! The ordering context: an order's lines, its total (always computed, never taken from a
//! client), its status machine Pending → Confirmed → Shipped, Pending | Confirmed → Cancelled
//! with each transition kept, and the refund a cancellation owes once its payment succeeded.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aggregate::{Aggregate, Changes};
use crate::error::DomainError;
use crate::events::{DomainEvent, RecordedEvent};
use crate::ids::{CustomerId, OrderId, PaymentId, TransactionId};
use crate::money::{Currency, Money};
use crate::payment::Failure;

/// Most lines in one order.
pub const MAX_ITEMS: usize = 100;
/// Most units of one line.
pub const MAX_QUANTITY: u32 = 10_000;
/// Longest product name, in characters.
pub const MAX_NAME: usize = 200;

/// Where an order is in its life. Serialized as snake_case words.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, not paid; lines may change.
    Pending,
    /// Paid.
    Confirmed,
    /// Sent to the customer; final.
    Shipped,
    /// Called off; final.
    Cancelled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Cancelled,
    ];

    /// The wire and storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// The machine: Pending → Confirmed → Shipped; Pending | Confirmed → Cancelled.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, Confirmed)
                | (Confirmed, Shipped)
                | (Pending, Cancelled)
                | (Confirmed, Cancelled)
        )
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown order status {s:?}; use pending, confirmed, shipped or cancelled")
            })
    }
}

/// One line of an order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OrderItem {
    /// The product (1 to 64 visible ASCII characters).
    pub product_id: String,
    /// Its name when ordered (1 to 200 characters).
    pub name: String,
    /// Units, 1 to 10 000.
    pub quantity: u32,
    /// Price of one unit, zero or more, in the order's currency: the catalog's when placed.
    pub unit_price: Money,
    /// True when an administrator set the price instead of the catalog.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub price_overridden: bool,
}

impl OrderItem {
    /// quantity × unit price.
    pub fn line_total(&self) -> Result<Money, DomainError> {
        let minor = self
            .unit_price
            .minor()
            .checked_mul(i64::from(self.quantity))
            .ok_or(DomainError::AmountTooLarge { max: i64::MAX })?;
        Ok(Money::from_minor(minor, self.unit_price.currency()))
    }
}

/// Validates lines and computes their total: 1 to 100 lines, one currency, quantities 1 to
/// 10 000, prices zero or more, bounded texts, no overflow.
pub fn total_of(items: &[OrderItem], currency: Currency) -> Result<Money, DomainError> {
    let bad = |why: String| DomainError::InvalidItems(why);
    if items.is_empty() {
        return Err(bad("an order needs at least one item".into()));
    }
    if items.len() > MAX_ITEMS {
        return Err(bad(format!(
            "an order has at most {MAX_ITEMS} items, got {}",
            items.len()
        )));
    }
    let mut total = Money::zero(currency);
    for (i, item) in items.iter().enumerate() {
        let valid_id = (1..=64).contains(&item.product_id.len())
            && item.product_id.bytes().all(|b| b.is_ascii_graphic());
        if !valid_id {
            return Err(bad(format!(
                "items[{i}].product_id must be 1 to 64 visible ASCII characters"
            )));
        }
        let name = item.name.chars().count();
        if name == 0 || name > MAX_NAME || item.name.trim().is_empty() {
            return Err(bad(format!(
                "items[{i}].name must be 1 to {MAX_NAME} characters"
            )));
        }
        if item.quantity == 0 || item.quantity > MAX_QUANTITY {
            return Err(bad(format!(
                "items[{i}].quantity must be 1 to {MAX_QUANTITY}"
            )));
        }
        if item.unit_price.currency() != currency {
            return Err(DomainError::CurrencyMismatch {
                expected: currency,
                given: item.unit_price.currency(),
            });
        }
        if item.unit_price.minor() < 0 {
            return Err(bad(format!("items[{i}].unit_price must not be negative")));
        }
        total = total
            .checked_add(item.line_total()?)
            .map_err(|_| DomainError::AmountTooLarge { max: i64::MAX })?;
    }
    Ok(total)
}

/// Why an order reached a status.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionCause {
    Placed,
    /// Its payment succeeded.
    Paid,
    Shipped,
    CancelledByCustomer,
    CancelledByAdministrator,
    /// Unpaid for too long.
    Expired,
}

/// One step of an order's life: the status it reached, when and why.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OrderTransition {
    pub status: OrderStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub cause: TransitionCause,
}

/// Where the refund a cancellation owes stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Owed once the payment has succeeded; not asked for yet.
    Due,
    /// Asked for; the provider's outcome is not known yet.
    Pending,
    Succeeded,
    /// The provider refused it; an operator may retry.
    Failed,
}

/// The refund a cancelled order's payment owes: everything that remains of it, made by the
/// `order-refunds` consumer group (never inside the cancelling request), with an idempotency
/// key of the order and the attempt, so that retries and crashes refund once per attempt.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OrderRefund {
    pub payment_id: PaymentId,
    pub status: RefundStatus,
    /// The refund transaction, once asked for.
    pub transaction_id: Option<TransactionId>,
    /// What was refunded (or asked for), in minor units.
    pub amount_minor: Option<i64>,
    pub failure: Option<Failure>,
    /// 1, and one more for each retry by an operator after a refusal.
    pub attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl OrderRefund {
    /// The idempotency key of this attempt.
    pub fn key(&self, order: OrderId) -> String {
        format!("order-{order}-refund-{}", self.attempt)
    }
}

/// What a refund attempt came to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RefundOutcome {
    Succeeded,
    Pending,
    Failed(Failure),
}

/// Everything stored about an order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OrderState {
    pub id: OrderId,
    /// Who ordered.
    pub customer_id: CustomerId,
    pub items: Vec<OrderItem>,
    /// Sum of the lines; computed, never taken from a client.
    pub total: Money,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// The payment started for it (set while it is in progress or succeeded).
    pub payment_id: Option<PaymentId>,
    /// Each status it reached, oldest first (empty for orders placed before it was kept).
    pub history: Vec<OrderTransition>,
    /// The refund its cancellation owes, when it was cancelled with a payment.
    pub refund: Option<OrderRefund>,
    /// Optimistic concurrency; the ETag.
    pub version: i64,
    /// Sequence of the last recorded event.
    pub event_sequence: i64,
    /// When placed.
    pub created_at: OffsetDateTime,
    /// When last changed.
    pub updated_at: OffsetDateTime,
}

/// What a read model needs of an order, carried by every order event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OrderSnapshot {
    pub order_id: OrderId,
    /// Who ordered.
    pub customer_id: String,
    pub items: Vec<OrderItem>,
    /// ISO code.
    pub currency: String,
    /// Total as decimal text.
    pub total: String,
    /// Total in minor units.
    pub total_minor: i64,
    /// Status after the change.
    pub status: OrderStatus,
    /// The payment, when there is one.
    pub payment_id: Option<PaymentId>,
    /// Version after the change.
    pub version: i64,
}

/// What the data of every order event holds, whatever the event: the order as it stands after
/// the change. Consumers decode this rather than reading the data by key.
#[derive(Clone, PartialEq, Eq, Debug, Deserialize)]
pub struct OrderEventData {
    pub order: OrderSnapshot,
}

impl OrderSnapshot {
    /// Takes the snapshot of an order's state.
    pub fn of(s: &OrderState) -> Self {
        OrderSnapshot {
            order_id: s.id,
            customer_id: s.customer_id.as_str().to_owned(),
            items: s.items.clone(),
            currency: s.total.currency().code().to_owned(),
            total: s.total.to_decimal_string(),
            total_minor: s.total.minor(),
            status: s.status,
            payment_id: s.payment_id,
            version: s.version,
        }
    }
}

/// Everything that happens to an order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OrderEvent {
    /// `order.created`.
    Created {
        /// State after the change.
        order: OrderSnapshot,
    },
    /// `order.updated`: lines replaced, or a payment started.
    Updated {
        /// State after the change.
        order: OrderSnapshot,
    },
    /// `order.confirmed`: paid.
    Confirmed {
        /// State after the change.
        order: OrderSnapshot,
    },
    /// `order.shipped`.
    Shipped {
        /// State after the change.
        order: OrderSnapshot,
    },
    /// `order.cancelled`.
    Cancelled {
        /// State after the change.
        order: OrderSnapshot,
    },
}

impl OrderEvent {
    /// `order.created`.
    pub const CREATED: &'static str = "order.created";
    /// `order.updated`.
    pub const UPDATED: &'static str = "order.updated";
    /// `order.confirmed`.
    pub const CONFIRMED: &'static str = "order.confirmed";
    /// `order.shipped`.
    pub const SHIPPED: &'static str = "order.shipped";
    /// `order.cancelled`.
    pub const CANCELLED: &'static str = "order.cancelled";
    /// Every order event type.
    pub const TYPES: &'static [&'static str] = &[
        Self::CREATED,
        Self::UPDATED,
        Self::CONFIRMED,
        Self::SHIPPED,
        Self::CANCELLED,
    ];
}

impl DomainEvent for OrderEvent {
    const AGGREGATE: &'static str = "order";

    fn event_type(&self) -> &'static str {
        match self {
            OrderEvent::Created { .. } => Self::CREATED,
            OrderEvent::Updated { .. } => Self::UPDATED,
            OrderEvent::Confirmed { .. } => Self::CONFIRMED,
            OrderEvent::Shipped { .. } => Self::SHIPPED,
            OrderEvent::Cancelled { .. } => Self::CANCELLED,
        }
    }
}

/// What a change of an order asks of the stock of its products. The store applies it in the
/// order's own transaction, so an order is never placed without its reservation nor cancelled
/// without giving its units back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StockIntent {
    /// Reserve every line's quantity (of the products whose stock is tracked).
    Reserve,
    /// Give back everything the order holds, saying why.
    ReleaseAll { cause: &'static str },
    /// Take what the order holds out of on hand.
    ShipAll,
}

/// An order and its new events.
#[derive(Clone, Debug)]
pub struct Order {
    state: OrderState,
    changes: Changes<OrderEvent>,
    stock: Vec<StockIntent>,
}

impl Order {
    /// Places an order; records `order.created`.
    pub fn place(
        id: OrderId,
        customer_id: CustomerId,
        items: Vec<OrderItem>,
        currency: Currency,
        now: OffsetDateTime,
    ) -> Result<Self, DomainError> {
        let total = total_of(&items, currency)?;
        let mut order = Order {
            state: OrderState {
                id,
                customer_id,
                items,
                total,
                status: OrderStatus::Pending,
                payment_id: None,
                history: vec![OrderTransition {
                    status: OrderStatus::Pending,
                    at: now,
                    cause: TransitionCause::Placed,
                }],
                refund: None,
                version: 1,
                event_sequence: 0,
                created_at: now,
                updated_at: now,
            },
            changes: Changes::new(),
            stock: vec![StockIntent::Reserve],
        };
        order.record(now, |order| OrderEvent::Created { order });
        Ok(order)
    }

    /// From storage.
    pub fn restore(state: OrderState) -> Self {
        Order {
            changes: Changes::loaded(state.version),
            state,
            stock: Vec::new(),
        }
    }

    /// What the changes since load ask of stock, in order.
    pub fn stock_intents(&self) -> &[StockIntent] {
        &self.stock
    }

    /// Stored data.
    pub fn state(&self) -> &OrderState {
        &self.state
    }

    /// Identity.
    pub fn id(&self) -> OrderId {
        self.state.id
    }

    /// Replaces the lines, only while Pending and no payment is under way; records `order.updated`.
    pub fn replace_items(
        &mut self,
        items: Vec<OrderItem>,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        self.require_open()?;
        let total = total_of(&items, self.state.total.currency())?;
        self.state.items = items;
        self.state.total = total;
        self.stock.push(StockIntent::ReleaseAll {
            cause: "lines replaced",
        });
        self.stock.push(StockIntent::Reserve);
        self.touch(now);
        self.record(now, |order| OrderEvent::Updated { order });
        Ok(())
    }

    /// Notes the payment started for this order, before the provider is called; its lines are
    /// frozen from now on and it does not expire. Replaces a payment noted earlier: the caller
    /// has made sure that one failed or never came to be.
    pub fn start_payment(
        &mut self,
        payment: PaymentId,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        if self.state.payment_id == Some(payment) {
            return Ok(());
        }
        match self.state.status {
            OrderStatus::Pending => {}
            OrderStatus::Cancelled => {
                return Err(DomainError::OrderLocked("the order is cancelled"));
            }
            _ => return Err(DomainError::OrderLocked("the order is already paid")),
        }
        self.state.payment_id = Some(payment);
        self.touch(now);
        self.record(now, |order| OrderEvent::Updated { order });
        Ok(())
    }

    /// The payment noted for this order failed: it is open again (lines, payment, expiry).
    pub fn payment_failed(&mut self, payment: PaymentId, now: OffsetDateTime) {
        if self.state.status == OrderStatus::Pending && self.state.payment_id == Some(payment) {
            self.state.payment_id = None;
            self.touch(now);
            self.record(now, |order| OrderEvent::Updated { order });
        }
    }

    /// An unpaid order placed too long ago: cancelled, its units given back with the cause
    /// `expired`; records `order.cancelled`.
    pub fn expire(&mut self, now: OffsetDateTime) -> Result<(), DomainError> {
        if self.state.status != OrderStatus::Pending {
            return Err(DomainError::InvalidOrderTransition {
                from: self.state.status.as_str(),
                to: OrderStatus::Cancelled.as_str(),
            });
        }
        self.transition(OrderStatus::Cancelled, TransitionCause::Expired, now)?;
        self.stock
            .push(StockIntent::ReleaseAll { cause: "expired" });
        self.record(now, |order| OrderEvent::Cancelled { order });
        Ok(())
    }

    /// Refuses changes to an order that is not Pending or whose payment is under way.
    pub fn require_open(&self) -> Result<(), DomainError> {
        match (self.state.status, self.state.payment_id) {
            (OrderStatus::Pending, None) => Ok(()),
            (OrderStatus::Pending, Some(_)) => Err(DomainError::OrderLocked(
                "a payment for this order is under way or done",
            )),
            (OrderStatus::Cancelled, _) => Err(DomainError::OrderLocked("the order is cancelled")),
            _ => Err(DomainError::OrderLocked("the order is already paid")),
        }
    }

    /// Pending → Confirmed by this payment; records `order.confirmed`.
    pub fn confirm(&mut self, payment: PaymentId, now: OffsetDateTime) -> Result<(), DomainError> {
        self.transition(OrderStatus::Confirmed, TransitionCause::Paid, now)?;
        self.state.payment_id = Some(payment);
        self.record(now, |order| OrderEvent::Confirmed { order });
        Ok(())
    }

    /// Confirmed → Shipped; records `order.shipped`.
    pub fn ship(&mut self, now: OffsetDateTime) -> Result<(), DomainError> {
        self.transition(OrderStatus::Shipped, TransitionCause::Shipped, now)?;
        self.stock.push(StockIntent::ShipAll);
        self.record(now, |order| OrderEvent::Shipped { order });
        Ok(())
    }

    /// Pending | Confirmed → Cancelled by a customer or an administrator (`by_admin`); records
    /// `order.cancelled` and gives its units back. With a payment noted (succeeded, or still
    /// under way), a refund of it is due; the `order-refunds` group makes it once the payment
    /// has succeeded.
    pub fn cancel(&mut self, by_admin: bool, now: OffsetDateTime) -> Result<(), DomainError> {
        if self.state.status == OrderStatus::Shipped {
            return Err(DomainError::OrderShipped);
        }
        let cause = if by_admin {
            TransitionCause::CancelledByAdministrator
        } else {
            TransitionCause::CancelledByCustomer
        };
        self.transition(OrderStatus::Cancelled, cause, now)?;
        self.stock
            .push(StockIntent::ReleaseAll { cause: "cancelled" });
        self.state.refund = self.state.payment_id.map(|payment_id| OrderRefund {
            payment_id,
            status: RefundStatus::Due,
            transaction_id: None,
            amount_minor: None,
            failure: None,
            attempt: 1,
            updated_at: now,
        });
        self.record(now, |order| OrderEvent::Cancelled { order });
        Ok(())
    }

    /// The refund of the cancelled order's payment was asked for: its transaction, amount and
    /// outcome so far; records `order.updated`. Also settles a pending one.
    pub fn refund_made(
        &mut self,
        transaction: TransactionId,
        amount_minor: i64,
        outcome: RefundOutcome,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        let Some(refund) = &mut self.state.refund else {
            return Err(DomainError::OrderLocked("the order owes no refund"));
        };
        let (status, failure) = match outcome {
            RefundOutcome::Succeeded => (RefundStatus::Succeeded, None),
            RefundOutcome::Pending => (RefundStatus::Pending, None),
            RefundOutcome::Failed(f) => (RefundStatus::Failed, Some(f)),
        };
        if refund.status == status && refund.transaction_id == Some(transaction) {
            return Ok(());
        }
        refund.status = status;
        refund.failure = failure;
        refund.transaction_id = Some(transaction);
        refund.amount_minor = Some(amount_minor);
        refund.updated_at = now;
        self.touch(now);
        self.record(now, |order| OrderEvent::Updated { order });
        Ok(())
    }

    /// The cancelled order's payment failed (or has nothing left to refund): no refund is owed;
    /// records `order.updated`.
    pub fn refund_not_owed(&mut self, now: OffsetDateTime) {
        if self.state.refund.take().is_some() {
            self.touch(now);
            self.record(now, |order| OrderEvent::Updated { order });
        }
    }

    /// An operator asks again for a refund the provider refused: a new attempt (a new
    /// idempotency key), due again; records `order.updated`.
    pub fn retry_refund(&mut self, now: OffsetDateTime) -> Result<(), DomainError> {
        match &mut self.state.refund {
            Some(r) if r.status == RefundStatus::Failed => {
                r.status = RefundStatus::Due;
                r.attempt += 1;
                r.failure = None;
                r.transaction_id = None;
                r.updated_at = now;
            }
            _ => return Err(DomainError::OrderLocked("the order has no refused refund")),
        }
        self.touch(now);
        self.record(now, |order| OrderEvent::Updated { order });
        Ok(())
    }

    fn transition(
        &mut self,
        to: OrderStatus,
        cause: TransitionCause,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        let from = self.state.status;
        if !from.can_become(to) {
            return Err(DomainError::InvalidOrderTransition {
                from: from.as_str(),
                to: to.as_str(),
            });
        }
        self.state.status = to;
        self.state.history.push(OrderTransition {
            status: to,
            at: now,
            cause,
        });
        self.touch(now);
        Ok(())
    }

    fn touch(&mut self, now: OffsetDateTime) {
        self.changes.bump(&mut self.state.version);
        self.state.updated_at = now;
    }

    fn record(&mut self, now: OffsetDateTime, event: impl FnOnce(OrderSnapshot) -> OrderEvent) {
        let snapshot = OrderSnapshot::of(&self.state);
        self.changes
            .record(&mut self.state.event_sequence, now, event(snapshot));
    }
}

impl Aggregate for Order {
    type Event = OrderEvent;

    fn aggregate_id(&self) -> String {
        self.state.id.to_string()
    }

    fn loaded_version(&self) -> Option<i64> {
        self.changes.loaded_version()
    }

    fn pending_events(&self) -> &[RecordedEvent<OrderEvent>] {
        self.changes.events()
    }

    fn mark_saved(&mut self) {
        self.changes.saved(self.state.version);
        self.stock.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn cur(code: &str) -> Currency {
        Currency::from_code(code).unwrap()
    }

    fn item(qty: u32, price: &str, currency: &str) -> OrderItem {
        OrderItem {
            product_id: "prod-1".into(),
            name: "Laptop".into(),
            quantity: qty,
            unit_price: Money::parse(price, cur(currency)).unwrap(),
            price_overridden: false,
        }
    }

    fn order(items: Vec<OrderItem>, currency: &str) -> Result<Order, DomainError> {
        Order::place(
            OrderId(Uuid::nil()),
            CustomerId::parse("c1").unwrap(),
            items,
            cur(currency),
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn the_whole_transition_table() {
        use OrderStatus::*;
        let allowed = [
            (Pending, Confirmed),
            (Confirmed, Shipped),
            (Pending, Cancelled),
            (Confirmed, Cancelled),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        // And through the aggregate, from every reachable status.
        let now = OffsetDateTime::UNIX_EPOCH;
        let pay = PaymentId(Uuid::nil());
        let reach = |status: OrderStatus| {
            let mut o = order(vec![item(1, "1.00", "USD")], "USD").unwrap();
            match status {
                Pending => {}
                Confirmed => o.confirm(pay, now).unwrap(),
                Shipped => {
                    o.confirm(pay, now).unwrap();
                    o.ship(now).unwrap();
                }
                Cancelled => o.cancel(false, now).unwrap(),
            }
            o
        };
        for from in OrderStatus::ALL {
            for to in [Confirmed, Shipped, Cancelled] {
                let mut o = reach(from);
                let result = match to {
                    Confirmed => o.confirm(pay, now),
                    Shipped => o.ship(now),
                    Cancelled => o.cancel(false, now),
                    Pending => unreachable!(),
                };
                assert_eq!(
                    result.is_ok(),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
                if let Err(e) = result {
                    let code = if (from, to) == (Shipped, Cancelled) {
                        "order_shipped"
                    } else {
                        "invalid_state_transition"
                    };
                    assert_eq!(e.code(), code, "{from} -> {to}");
                    assert!(e.is_state_conflict());
                    assert_eq!(
                        o.state().status,
                        from,
                        "a refused transition changes nothing"
                    );
                }
            }
        }
    }

    #[test]
    fn history_keeps_each_transition_and_its_cause() {
        let t = |s: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
        let mut o = order(vec![item(1, "1.00", "USD")], "USD").unwrap();
        o.confirm(PaymentId(Uuid::nil()), t(1)).unwrap();
        o.cancel(true, t(2)).unwrap();
        let steps: Vec<_> = o
            .state()
            .history
            .iter()
            .map(|h| (h.status, h.cause, h.at))
            .collect();
        use TransitionCause::*;
        assert_eq!(
            steps,
            vec![
                (OrderStatus::Pending, Placed, OffsetDateTime::UNIX_EPOCH),
                (OrderStatus::Confirmed, Paid, t(1)),
                (OrderStatus::Cancelled, CancelledByAdministrator, t(2)),
            ]
        );
    }

    #[test]
    fn a_cancellation_owes_a_refund_only_with_a_payment() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut unpaid = order(vec![item(1, "1.00", "USD")], "USD").unwrap();
        unpaid.cancel(false, now).unwrap();
        assert_eq!(unpaid.state().refund, None);
        assert!(unpaid.retry_refund(now).is_err());

        let pay = PaymentId(Uuid::nil());
        let txn = TransactionId(Uuid::max());
        let mut o = order(vec![item(2, "1.00", "USD")], "USD").unwrap();
        o.start_payment(pay, now).unwrap();
        o.cancel(false, now).unwrap();
        let r = o.state().refund.clone().unwrap();
        assert_eq!(
            (r.payment_id, r.status, r.attempt),
            (pay, RefundStatus::Due, 1)
        );
        assert_eq!(r.key(o.id()), format!("order-{}-refund-1", o.id()));
        assert!(
            o.retry_refund(now).is_err(),
            "only a refused refund is retried"
        );

        let refused = Failure::new("refund_failed", "no");
        o.refund_made(txn, 200, RefundOutcome::Failed(refused.clone()), now)
            .unwrap();
        let r = o.state().refund.clone().unwrap();
        assert_eq!((r.status, r.failure), (RefundStatus::Failed, Some(refused)));
        o.retry_refund(now).unwrap();
        let r = o.state().refund.clone().unwrap();
        assert_eq!(
            (r.status, r.attempt, r.transaction_id),
            (RefundStatus::Due, 2, None)
        );
        o.refund_made(txn, 200, RefundOutcome::Pending, now)
            .unwrap();
        let version = o.state().version;
        o.refund_made(txn, 200, RefundOutcome::Pending, now)
            .unwrap();
        assert_eq!(
            o.state().version,
            version,
            "the same outcome again changes nothing"
        );
        o.refund_made(txn, 200, RefundOutcome::Succeeded, now)
            .unwrap();
        assert_eq!(
            o.state().refund.as_ref().unwrap().status,
            RefundStatus::Succeeded
        );

        let mut failed_payment = order(vec![item(1, "1.00", "USD")], "USD").unwrap();
        failed_payment.start_payment(pay, now).unwrap();
        failed_payment.cancel(false, now).unwrap();
        failed_payment.refund_not_owed(now);
        assert_eq!(failed_payment.state().refund, None);
    }

    #[test]
    fn totals_follow_each_currency_exponent() {
        let usd = order(vec![item(3, "19.99", "USD"), item(2, "0.01", "USD")], "USD").unwrap();
        assert_eq!(usd.state().total.to_decimal_string(), "59.99");
        let jpy = order(vec![item(3, "1999", "JPY"), item(1, "1", "JPY")], "JPY").unwrap();
        assert_eq!(jpy.state().total.to_decimal_string(), "5998");
        let kwd = order(vec![item(2, "1.005", "KWD")], "KWD").unwrap();
        assert_eq!(kwd.state().total.to_decimal_string(), "2.010");
        let free = order(vec![item(1, "0", "EUR")], "EUR").unwrap();
        assert_eq!(free.state().total.minor(), 0, "free items are allowed");
    }

    #[test]
    fn bad_lines_are_refused() {
        let cases: Vec<(Vec<OrderItem>, &str)> = vec![
            (vec![], "items_invalid"),
            (vec![item(0, "1.00", "USD")], "items_invalid"),
            (vec![item(MAX_QUANTITY + 1, "1.00", "USD")], "items_invalid"),
            (vec![item(1, "-1.00", "USD")], "items_invalid"),
            (
                vec![item(1, "1.00", "USD"), item(1, "1.00", "EUR")],
                "currency_mismatch",
            ),
            (vec![item(1, "1.00", "USD"); MAX_ITEMS + 1], "items_invalid"),
            (
                vec![OrderItem {
                    name: "n".repeat(MAX_NAME + 1),
                    ..item(1, "1.00", "USD")
                }],
                "items_invalid",
            ),
            (
                vec![OrderItem {
                    product_id: "a b".into(),
                    ..item(1, "1.00", "USD")
                }],
                "items_invalid",
            ),
            (
                vec![item(MAX_QUANTITY, "92233720368547758.07", "USD")],
                "amount_too_large",
            ),
        ];
        for (items, code) in cases {
            assert_eq!(
                order(items.clone(), "USD").unwrap_err().code(),
                code,
                "{items:?}"
            );
        }
    }

    #[test]
    fn lines_change_only_while_pending_and_unpaid() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut o = order(vec![item(1, "5.00", "USD")], "USD").unwrap();
        o.mark_saved();
        o.replace_items(vec![item(2, "5.00", "USD")], now).unwrap();
        assert_eq!(o.state().total.to_decimal_string(), "10.00");
        assert_eq!(o.state().version, 2);
        o.start_payment(PaymentId(Uuid::from_u128(9)), now).unwrap();
        assert_eq!(
            o.replace_items(vec![item(1, "1.00", "USD")], now)
                .unwrap_err()
                .code(),
            "order_not_modifiable"
        );
        o.confirm(PaymentId(Uuid::from_u128(9)), now).unwrap();
        assert_eq!(
            o.replace_items(vec![item(1, "1.00", "USD")], now)
                .unwrap_err()
                .code(),
            "order_not_modifiable"
        );
        let types: Vec<_> = o
            .pending_events()
            .iter()
            .map(|e| e.event.event_type())
            .collect();
        assert_eq!(types, ["order.updated", "order.updated", "order.confirmed"]);
        let OrderEvent::Confirmed { order: snap } = &o.pending_events()[2].event else {
            panic!()
        };
        assert_eq!(
            (snap.total.as_str(), snap.status, snap.items.len()),
            ("10.00", OrderStatus::Confirmed, 1)
        );
    }
}
