//! The JSON shapes of the catalog API and their conversion into the use cases' commands.

use std::collections::BTreeMap;

use portside_app::catalog::{CatalogEntry, NewProduct, ProductChanges, ProductFilter};
use portside_domain::{
    Currency, Money, Prices, ProductDetails, Sku, StockAdjustment, StockMovement, StockState,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::json::{param, whole, whole_or_null};
use crate::payments::DecimalText;
use crate::problem::{FieldError, Problem, field, refusal};
use crate::timestamp::Timestamp;

/// Stock to track from the start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockInput {
    /// Units on hand, 0 to 1 000 000 000.
    #[schema(example = 25, minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "whole")]
    pub on_hand: i64,
    /// `stock.low` is emitted once when available falls to this or below.
    #[schema(example = 5, minimum = 0)]
    #[serde(default, deserialize_with = "whole_or_null")]
    pub low_stock_threshold: Option<i64>,
}

/// `POST /api/v1/products`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// Unique, immutable: 1 to 64 of a-z, 0-9, `-`, `_`, `.`; case and surrounding spaces
    /// are ignored (`" Mug-1 "` is `mug-1`).
    #[schema(example = "laptop-pro-16")]
    pub sku: String,
    /// 1 to 200 characters.
    #[schema(example = "Laptop Pro 16")]
    pub name: String,
    /// At most 2 000 characters.
    pub description: Option<String>,
    /// Unit price by ISO-4217 code, at most the currency's decimals, e.g. `{"USD": "1999.00"}`.
    #[schema(value_type = BTreeMap<String, String>, example = json!({"USD": "1999.00", "EUR": "1849.00"}))]
    pub prices: BTreeMap<String, DecimalText>,
    /// Absent: stock is not tracked (never runs out).
    pub stock: Option<StockInput>,
}

/// `PATCH /api/v1/products/{sku}`: what is absent stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces every price.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub prices: Option<BTreeMap<String, DecimalText>>,
    /// `false` archives, `true` restores.
    pub active: Option<bool>,
}

/// `POST /api/v1/products/{sku}/stock/adjustments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustStock {
    /// Units added (positive) or removed (negative); 0 only to change the threshold alone.
    #[schema(example = 10)]
    #[serde(deserialize_with = "whole")]
    pub quantity: i64,
    /// Why: a delivery, a count, a write-off (1 to 200 characters).
    #[schema(example = "delivery 2026-11-30")]
    pub reason: String,
    /// A new threshold; `null` removes it; absent keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub low_stock_threshold: Option<Option<i64>>,
}

/// Tells an absent member (`None`) from `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    whole_or_null(d).map(Some)
}

/// A product's stock (administrators only).
#[derive(Debug, Serialize, ToSchema)]
pub struct StockView {
    pub on_hand: i64,
    /// Held by open orders.
    pub reserved: i64,
    /// on hand − reserved.
    pub available: i64,
    pub low_stock_threshold: Option<i64>,
}

/// A product.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    pub sku: String,
    /// Always `product`.
    pub object: &'static str,
    pub name: String,
    pub description: String,
    /// Unit price by ISO-4217 code.
    #[schema(example = json!({"USD": "1999.00"}))]
    pub prices: BTreeMap<String, String>,
    /// False once archived.
    pub active: bool,
    /// The version (also the ETag).
    pub version: i64,
    /// Shown to administrators; `null` when stock is not tracked.
    pub stock: Option<StockView>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ProductView {
    /// The view of a product; its stock only when `show_stock`.
    pub fn of(entry: &CatalogEntry, show_stock: bool) -> Self {
        let s = &entry.product;
        ProductView {
            sku: s.sku.to_string(),
            object: "product",
            name: s.details.name.clone(),
            description: s.details.description.clone(),
            prices: s.details.prices.by_code(),
            active: s.active,
            version: s.version,
            stock: entry
                .stock
                .as_ref()
                .filter(|_| show_stock)
                .map(StockView::from),
            created_at: s.created_at.into(),
            updated_at: s.updated_at.into(),
        }
    }
}

impl From<&StockState> for StockView {
    fn from(s: &StockState) -> Self {
        StockView {
            on_hand: s.on_hand,
            reserved: s.reserved,
            available: s.available(),
            low_stock_threshold: s.low_stock_threshold,
        }
    }
}

/// One stock movement.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovementView {
    /// Its place in the product's stock history.
    pub sequence: i64,
    /// `reserved`, `released`, `shipped` or `adjusted`.
    pub kind: &'static str,
    /// Units (negative for an adjustment that removed units).
    pub quantity: i64,
    /// The order behind a reservation, release or shipment.
    pub order_id: Option<Uuid>,
    /// The administrator's reason, or what released the units.
    pub reason: Option<String>,
    /// On hand after it.
    pub on_hand: i64,
    /// Reserved after it.
    pub reserved: i64,
    pub at: Timestamp,
}

impl From<&StockMovement> for MovementView {
    fn from(m: &StockMovement) -> Self {
        MovementView {
            sequence: m.sequence,
            kind: m.kind.as_str(),
            quantity: m.quantity,
            order_id: m.order_id.map(|o| o.0),
            reason: m.reason.clone(),
            on_hand: m.on_hand,
            reserved: m.reserved,
            at: m.at.into(),
        }
    }
}

/// Query of `GET /api/v1/products`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListProducts {
    active: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl ListProducts {
    /// The filter these parameters name; a 400 naming the first bad one.
    pub fn filter(&self) -> Result<ProductFilter, Problem> {
        let active = param("active", self.active.as_deref(), |t| match t {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("active must be true or false"),
        })?;
        Ok(ProductFilter { active })
    }
}

/// Parses prices by currency code, naming each bad one (`prices.USD`).
fn prices(input: BTreeMap<String, DecimalText>, errors: &mut Vec<FieldError>) -> Option<Prices> {
    let mut out = Vec::new();
    for (code, amount) in input {
        let name = format!("prices.{code}");
        let parsed = Currency::from_code(&code)
            .and_then(|c| Money::parse(&amount.0, c))
            .map_err(refusal);
        if let Some(m) = field(errors, &name, parsed) {
            out.push(m);
        }
    }
    if !errors.is_empty() {
        return None;
    }
    field(errors, "prices", Prices::new(out).map_err(refusal))
}

impl CreateProduct {
    /// The command this body asks for; a 422 naming every bad field at once.
    pub fn into_command(self) -> Result<NewProduct, Problem> {
        let mut errors = Vec::new();
        let sku = field(&mut errors, "sku", Sku::parse(&self.sku).map_err(refusal));
        let prices = prices(self.prices, &mut errors);
        let details = prices.and_then(|p| {
            field(
                &mut errors,
                "name",
                ProductDetails::new(&self.name, self.description.as_deref().unwrap_or(""), p)
                    .map_err(refusal),
            )
        });
        let (Some(sku), Some(details), true) = (sku, details, errors.is_empty()) else {
            return Err(Problem::invalid(errors));
        };
        Ok(NewProduct {
            sku,
            details,
            on_hand: self.stock.as_ref().map(|s| s.on_hand),
            low_stock_threshold: self.stock.and_then(|s| s.low_stock_threshold),
        })
    }
}

impl UpdateProduct {
    /// The changes this body asks for; a 422 naming every bad field at once.
    pub fn into_changes(self) -> Result<ProductChanges, Problem> {
        let mut errors = Vec::new();
        let prices = match self.prices {
            Some(p) => prices(p, &mut errors),
            None => None,
        };
        if errors.is_empty() {
            Ok(ProductChanges {
                name: self.name,
                description: self.description,
                prices,
                active: self.active,
            })
        } else {
            Err(Problem::invalid(errors))
        }
    }
}

impl AdjustStock {
    /// The adjustment this body asks for.
    pub fn into_adjustment(self) -> StockAdjustment {
        StockAdjustment {
            delta: self.quantity,
            reason: self.reason,
            low_stock_threshold: self.low_stock_threshold,
        }
    }
}
