//! Stock of one product: on hand, reserved by open orders, and the movements that explain both.
//! Available = on hand − reserved, never below zero, so stock cannot be oversold. A product
//! without a stock record is not tracked: it is never out of stock.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aggregate::{Changes, aggregate};
use crate::catalog::Sku;
use crate::error::DomainError;
use crate::events::DomainEvent;
use crate::ids::OrderId;
use crate::order::{Order, StockIntent};

use std::collections::{BTreeMap, BTreeSet};

/// Most units on hand of one product (and the largest adjustment).
pub const MAX_ON_HAND: i64 = 1_000_000_000;
/// Longest reason of a movement, in characters.
pub const MAX_REASON: usize = 200;

/// What moved stock.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// An order placed (or re-lined) took units out of available.
    Reserved,
    /// An order cancelled, expired or re-lined gave them back.
    Released,
    /// A shipped order took its reserved units out of on hand.
    Shipped,
    /// An administrator counted, received or wrote off units.
    Adjusted,
}

impl MovementKind {
    /// The storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Reserved => "reserved",
            MovementKind::Released => "released",
            MovementKind::Shipped => "shipped",
            MovementKind::Adjusted => "adjusted",
        }
    }

    /// From the storage spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Reserved,
            Self::Released,
            Self::Shipped,
            Self::Adjusted,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One immutable change of a product's stock, with its cause and the figures after it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StockMovement {
    pub sku: Sku,
    /// Its place in the product's stock history (the stock event's sequence).
    pub sequence: i64,
    pub kind: MovementKind,
    /// Units: positive, except an adjustment that removes units.
    pub quantity: i64,
    /// The order behind a reservation, release or shipment.
    pub order_id: Option<OrderId>,
    /// Why: the administrator's reason, or what released an order's units.
    pub reason: Option<String>,
    pub on_hand: i64,
    pub reserved: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A change asked of a product's stock.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StockOp {
    Reserve {
        order: OrderId,
        quantity: i64,
    },
    Release {
        order: OrderId,
        quantity: i64,
        cause: &'static str,
    },
    Ship {
        order: OrderId,
        quantity: i64,
    },
    Adjust {
        delta: i64,
        reason: String,
    },
}

/// An administrator's change of a product's stock: units added (or removed, negative) with a
/// reason, and optionally a new low-stock threshold.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StockAdjustment {
    pub delta: i64,
    pub reason: String,
    /// `Some(None)` removes the threshold.
    pub low_stock_threshold: Option<Option<i64>>,
}

/// Everything stored about a product's stock.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StockState {
    pub sku: Sku,
    pub on_hand: i64,
    pub reserved: i64,
    /// `stock.low` is recorded once when available falls to this or below.
    pub low_stock_threshold: Option<i64>,
    /// Whether available is at or below the threshold now (so the event is not repeated).
    pub low: bool,
    pub version: i64,
    pub event_sequence: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl StockState {
    /// On hand − reserved.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// What stock events carry: the figures after the change and, but for `stock.low`, the movement.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StockSnapshot {
    pub sku: Sku,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub low_stock_threshold: Option<i64>,
}

/// Everything that happens to stock.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StockEvent {
    /// `stock.reserved`, `stock.released`, `stock.shipped` or `stock.adjusted`.
    Moved {
        stock: StockSnapshot,
        movement: StockMovement,
    },
    /// `stock.low`: available fell to the threshold or below.
    Low { stock: StockSnapshot },
}

impl StockEvent {
    pub const RESERVED: &'static str = "stock.reserved";
    pub const RELEASED: &'static str = "stock.released";
    pub const SHIPPED: &'static str = "stock.shipped";
    pub const ADJUSTED: &'static str = "stock.adjusted";
    pub const LOW: &'static str = "stock.low";
    /// Every stock event type.
    pub const TYPES: &'static [&'static str] = &[
        Self::RESERVED,
        Self::RELEASED,
        Self::SHIPPED,
        Self::ADJUSTED,
        Self::LOW,
    ];
}

impl DomainEvent for StockEvent {
    const AGGREGATE: &'static str = "stock";

    fn event_type(&self) -> &'static str {
        match self {
            StockEvent::Moved { movement, .. } => match movement.kind {
                MovementKind::Reserved => Self::RESERVED,
                MovementKind::Released => Self::RELEASED,
                MovementKind::Shipped => Self::SHIPPED,
                MovementKind::Adjusted => Self::ADJUSTED,
            },
            StockEvent::Low { .. } => Self::LOW,
        }
    }
}

/// A product's stock and its new events.
#[derive(Clone, Debug)]
pub struct Stock {
    state: StockState,
    changes: Changes<StockEvent>,
}

impl Stock {
    /// Starts tracking a product with `on_hand` units (an adjustment with `reason`).
    pub fn track(
        sku: Sku,
        on_hand: i64,
        low_stock_threshold: Option<i64>,
        reason: String,
        now: OffsetDateTime,
    ) -> Result<Self, DomainError> {
        check_threshold(low_stock_threshold)?;
        let mut stock = Stock {
            state: StockState {
                sku,
                on_hand: 0,
                reserved: 0,
                low_stock_threshold,
                low: false,
                version: 1,
                event_sequence: 0,
                updated_at: now,
            },
            changes: Changes::new(),
        };
        if on_hand != 0 {
            stock.apply(
                StockOp::Adjust {
                    delta: on_hand,
                    reason,
                },
                now,
            )?;
        }
        Ok(stock)
    }

    /// From storage.
    pub fn restore(state: StockState) -> Self {
        Stock {
            changes: Changes::loaded(state.version),
            state,
        }
    }

    pub fn state(&self) -> &StockState {
        &self.state
    }

    /// The movements recorded since load.
    pub fn movements(&self) -> impl Iterator<Item = &StockMovement> {
        self.changes.events().iter().filter_map(|e| match &e.event {
            StockEvent::Moved { movement, .. } => Some(movement),
            StockEvent::Low { .. } => None,
        })
    }

    /// Applies a change, or refuses it and changes nothing: a reservation beyond what is
    /// available (`insufficient_stock`), an adjustment that would leave fewer units on hand
    /// than are reserved or than zero, a release or shipment of more than is reserved.
    pub fn apply(&mut self, op: StockOp, now: OffsetDateTime) -> Result<(), DomainError> {
        let s = &self.state;
        let (kind, quantity, order, reason, on_hand, reserved) = match op {
            StockOp::Reserve { order, quantity } => {
                positive(quantity)?;
                if quantity > s.available() {
                    return Err(DomainError::InsufficientStock {
                        sku: s.sku.to_string(),
                        available: s.available().max(0),
                    });
                }
                let reserved = s.reserved + quantity;
                (
                    MovementKind::Reserved,
                    quantity,
                    Some(order),
                    None,
                    s.on_hand,
                    reserved,
                )
            }
            StockOp::Release {
                order,
                quantity,
                cause,
            } => {
                positive(quantity)?;
                let released = quantity.min(s.reserved);
                let reason = Some(cause.to_owned());
                let reserved = s.reserved - released;
                (
                    MovementKind::Released,
                    released,
                    Some(order),
                    reason,
                    s.on_hand,
                    reserved,
                )
            }
            StockOp::Ship { order, quantity } => {
                positive(quantity)?;
                let shipped = quantity.min(s.reserved);
                let (on_hand, reserved) = (s.on_hand - shipped, s.reserved - shipped);
                (
                    MovementKind::Shipped,
                    shipped,
                    Some(order),
                    None,
                    on_hand,
                    reserved,
                )
            }
            StockOp::Adjust { delta, reason } => {
                check_reason(&reason)?;
                if delta == 0 {
                    return Err(DomainError::InvalidStock(
                        "an adjustment must add or remove at least one unit".into(),
                    ));
                }
                let on_hand = s.on_hand.checked_add(delta).unwrap_or(i64::MAX);
                if on_hand > MAX_ON_HAND {
                    return Err(DomainError::InvalidStock(format!(
                        "on hand may be at most {MAX_ON_HAND}"
                    )));
                }
                if on_hand < s.reserved {
                    return Err(DomainError::StockBelowReserved {
                        sku: s.sku.to_string(),
                        reserved: s.reserved,
                        on_hand: s.on_hand,
                    });
                }
                (
                    MovementKind::Adjusted,
                    delta,
                    None,
                    Some(reason),
                    on_hand,
                    s.reserved,
                )
            }
        };
        self.changes.bump(&mut self.state.version);
        self.state.on_hand = on_hand;
        self.state.reserved = reserved;
        self.state.updated_at = now;
        let movement = StockMovement {
            sku: self.state.sku.clone(),
            sequence: self.state.event_sequence + 1,
            kind,
            quantity,
            order_id: order,
            reason,
            on_hand,
            reserved,
            at: now,
        };
        let stock = self.snapshot();
        self.changes.record(
            &mut self.state.event_sequence,
            now,
            StockEvent::Moved { stock, movement },
        );
        self.watch_threshold(now);
        Ok(())
    }

    /// An administrator's adjustment of `current`, or of a product not tracked yet, whose
    /// tracking then starts at zero.
    pub fn adjusted(
        current: Option<Stock>,
        sku: &Sku,
        a: &StockAdjustment,
        now: OffsetDateTime,
    ) -> Result<Stock, DomainError> {
        let mut stock = match current {
            Some(stock) => stock,
            None => Stock::track(sku.clone(), 0, None, String::new(), now)?,
        };
        stock.adjust(a, now)?;
        Ok(stock)
    }

    /// Applies an administrator's adjustment: the threshold first, then the units.
    pub fn adjust(&mut self, a: &StockAdjustment, now: OffsetDateTime) -> Result<(), DomainError> {
        if let Some(threshold) = a.low_stock_threshold {
            self.set_threshold(threshold, now)?;
            if a.delta == 0 {
                return Ok(());
            }
        }
        self.apply(
            StockOp::Adjust {
                delta: a.delta,
                reason: a.reason.clone(),
            },
            now,
        )
    }

    /// Sets the low-stock threshold (`None`: no alert).
    pub fn set_threshold(
        &mut self,
        threshold: Option<i64>,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        check_threshold(threshold)?;
        if threshold != self.state.low_stock_threshold {
            self.changes.bump(&mut self.state.version);
            self.state.low_stock_threshold = threshold;
            self.state.updated_at = now;
            self.watch_threshold(now);
        }
        Ok(())
    }

    /// Records `stock.low` when available crosses the threshold downwards, once; re-arms when it
    /// rises above again.
    fn watch_threshold(&mut self, now: OffsetDateTime) {
        let low = self
            .state
            .low_stock_threshold
            .is_some_and(|t| self.state.available() <= t);
        if low && !self.state.low {
            self.state.low = true;
            let stock = self.snapshot();
            self.changes.record(
                &mut self.state.event_sequence,
                now,
                StockEvent::Low { stock },
            );
        } else if !low {
            self.state.low = false;
        }
    }

    fn snapshot(&self) -> StockSnapshot {
        let s = &self.state;
        StockSnapshot {
            sku: s.sku.clone(),
            on_hand: s.on_hand,
            reserved: s.reserved,
            available: s.available(),
            low_stock_threshold: s.low_stock_threshold,
        }
    }
}

/// The SKUs whose stock the order's changes touch: what it holds and what its lines ask for.
/// A store locks these (in this order, so two orders never wait for each other) before
/// [`apply_order`].
pub fn skus_touched(order: &Order, held: &BTreeMap<Sku, i64>) -> BTreeSet<Sku> {
    let mut skus: BTreeSet<Sku> = held.keys().cloned().collect();
    if order.stock_intents().contains(&StockIntent::Reserve) {
        skus.extend(
            order
                .state()
                .items
                .iter()
                .filter_map(|i| Sku::parse(&i.product_id).ok()),
        );
    }
    skus
}

/// Applies what an order's changes ask of stock: `held` is what the order holds now (by SKU),
/// `stocks` the tracked stock of [`skus_touched`] (a SKU missing from it is not tracked and
/// never runs out). Returns what the order holds afterwards; on a refusal, the SKU and why,
/// and the caller writes nothing.
pub fn apply_order(
    order: &Order,
    mut held: BTreeMap<Sku, i64>,
    stocks: &mut BTreeMap<Sku, Stock>,
) -> Result<BTreeMap<Sku, i64>, (Sku, DomainError)> {
    let s = order.state();
    let (id, now) = (s.id, s.updated_at);
    for intent in order.stock_intents() {
        match *intent {
            StockIntent::Reserve => {
                for item in &s.items {
                    let Ok(sku) = Sku::parse(&item.product_id) else {
                        continue;
                    };
                    let Some(stock) = stocks.get_mut(&sku) else {
                        continue;
                    };
                    let quantity = i64::from(item.quantity);
                    stock
                        .apply(
                            StockOp::Reserve {
                                order: id,
                                quantity,
                            },
                            now,
                        )
                        .map_err(|e| (sku.clone(), e))?;
                    *held.entry(sku).or_default() += quantity;
                }
            }
            StockIntent::ReleaseAll { cause } => {
                for (sku, quantity) in std::mem::take(&mut held) {
                    if let Some(stock) = stocks.get_mut(&sku) {
                        let op = StockOp::Release {
                            order: id,
                            quantity,
                            cause,
                        };
                        stock.apply(op, now).map_err(|e| (sku.clone(), e))?;
                    }
                }
            }
            StockIntent::ShipAll => {
                for (sku, quantity) in std::mem::take(&mut held) {
                    if let Some(stock) = stocks.get_mut(&sku) {
                        let op = StockOp::Ship {
                            order: id,
                            quantity,
                        };
                        stock.apply(op, now).map_err(|e| (sku.clone(), e))?;
                    }
                }
            }
        }
    }
    Ok(held)
}

fn positive(quantity: i64) -> Result<(), DomainError> {
    if quantity > 0 {
        Ok(())
    } else {
        Err(DomainError::InvalidStock(
            "a quantity must be positive".into(),
        ))
    }
}

fn check_reason(reason: &str) -> Result<(), DomainError> {
    let n = reason.chars().count();
    if n == 0 || n > MAX_REASON || reason.trim().is_empty() {
        return Err(DomainError::InvalidStock(format!(
            "a reason of 1 to {MAX_REASON} characters is required"
        )));
    }
    Ok(())
}

fn check_threshold(threshold: Option<i64>) -> Result<(), DomainError> {
    match threshold {
        Some(t) if !(0..=MAX_ON_HAND).contains(&t) => Err(DomainError::InvalidStock(format!(
            "low_stock_threshold must be 0 to {MAX_ON_HAND}"
        ))),
        _ => Ok(()),
    }
}

aggregate!(Stock, StockEvent, sku);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use uuid::Uuid;

    fn stock(on_hand: i64, threshold: Option<i64>) -> Stock {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut s = Stock::track(
            Sku::parse("mug").unwrap(),
            on_hand,
            threshold,
            "initial count".into(),
            now,
        )
        .unwrap();
        s.mark_saved();
        s
    }

    fn order(n: u128) -> OrderId {
        OrderId(Uuid::from_u128(n))
    }

    #[test]
    fn available_never_goes_below_zero() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut s = stock(3, None);
        s.apply(
            StockOp::Reserve {
                order: order(1),
                quantity: 2,
            },
            now,
        )
        .unwrap();
        let refused = s
            .apply(
                StockOp::Reserve {
                    order: order(2),
                    quantity: 2,
                },
                now,
            )
            .unwrap_err();
        assert_eq!(refused.code(), "insufficient_stock");
        assert!(
            refused.to_string().contains("only 1 available"),
            "{refused}"
        );
        assert_eq!(
            (s.state().on_hand, s.state().reserved),
            (3, 2),
            "a refusal changes nothing"
        );
        assert_eq!(
            s.apply(
                StockOp::Adjust {
                    delta: -2,
                    reason: "broken".into()
                },
                now
            )
            .unwrap_err()
            .code(),
            "stock_below_reserved"
        );
        s.apply(
            StockOp::Ship {
                order: order(1),
                quantity: 2,
            },
            now,
        )
        .unwrap();
        assert_eq!((s.state().on_hand, s.state().reserved), (1, 0));
        s.apply(
            StockOp::Release {
                order: order(3),
                quantity: 5,
                cause: "cancelled",
            },
            now,
        )
        .unwrap();
        assert_eq!(
            s.state().reserved,
            0,
            "a release never takes reserved below zero"
        );
        for bad in [
            StockOp::Reserve {
                order: order(1),
                quantity: 0,
            },
            StockOp::Adjust {
                delta: 1,
                reason: " ".into(),
            },
            StockOp::Adjust {
                delta: 0,
                reason: "nothing".into(),
            },
            StockOp::Adjust {
                delta: MAX_ON_HAND,
                reason: "too many".into(),
            },
        ] {
            assert!(s.clone().apply(bad.clone(), now).is_err(), "{bad:?}");
        }
        let kinds: Vec<_> = s
            .movements()
            .map(|m| (m.kind, m.quantity, m.on_hand, m.reserved))
            .collect();
        assert_eq!(
            kinds,
            [
                (MovementKind::Reserved, 2, 3, 2),
                (MovementKind::Shipped, 2, 1, 0),
                (MovementKind::Released, 0, 1, 0),
            ]
        );
    }

    #[test]
    fn the_low_stock_event_is_recorded_once_per_crossing() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut s = stock(5, Some(2));
        for n in 0..4 {
            s.apply(
                StockOp::Reserve {
                    order: order(n),
                    quantity: 1,
                },
                now,
            )
            .unwrap();
        }
        s.apply(
            StockOp::Adjust {
                delta: 10,
                reason: "delivery".into(),
            },
            now,
        )
        .unwrap();
        s.apply(
            StockOp::Reserve {
                order: order(9),
                quantity: 10,
            },
            now,
        )
        .unwrap();
        let types: Vec<_> = s
            .pending_events()
            .iter()
            .map(|e| e.event.event_type())
            .collect();
        assert_eq!(
            types,
            [
                "stock.reserved",
                "stock.reserved",
                "stock.reserved",
                "stock.low",
                "stock.reserved",
                "stock.adjusted",
                "stock.reserved",
                "stock.low",
            ]
        );
        let sequences: Vec<_> = s.pending_events().iter().map(|e| e.sequence).collect();
        assert_eq!(
            sequences,
            (2..=9).collect::<Vec<_>>(),
            "one history with the movements"
        );
    }
}
