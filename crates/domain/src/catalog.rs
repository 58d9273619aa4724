//! The catalog: products a shop sells, each with a price per currency. The price of an order
//! line is always copied from here when the order is placed, never taken from the buyer.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aggregate::{Changes, aggregate};
use crate::error::DomainError;
use crate::events::DomainEvent;
use crate::money::{Currency, Money};

/// Longest SKU, in characters.
pub const MAX_SKU: usize = 64;
/// Longest product description, in characters.
pub const MAX_DESCRIPTION: usize = 2_000;

/// A stock keeping unit: the product's identity, unique and immutable. Case and surrounding
/// spaces do not make another SKU: `" Mug-1 "` is `mug-1`. After that, 1 to 64 of `a-z`,
/// `0-9`, `-`, `_` and `.`, so it is safe in a URL path as it is.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    /// Normalises (trims, lower-cases) and checks a SKU.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let sku = text.trim().to_ascii_lowercase();
        let valid = (1..=MAX_SKU).contains(&sku.len())
            && sku
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if valid {
            Ok(Sku(sku))
        } else {
            Err(DomainError::InvalidSku)
        }
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Sku {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Sku::parse(&s)
    }
}

impl From<Sku> for String {
    fn from(s: Sku) -> String {
        s.0
    }
}

/// A product's prices: at least one currency, each price zero or more, at most one per currency.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Prices(BTreeMap<Currency, Money>);

impl Prices {
    /// Checks a list of prices.
    pub fn new(prices: impl IntoIterator<Item = Money>) -> Result<Self, DomainError> {
        let mut map = BTreeMap::new();
        for price in prices {
            if price.minor() < 0 {
                return Err(DomainError::InvalidProduct(format!(
                    "the {} price must not be negative",
                    price.currency()
                )));
            }
            if map.insert(price.currency(), price).is_some() {
                return Err(DomainError::InvalidProduct(format!(
                    "two prices in {}",
                    price.currency()
                )));
            }
        }
        if map.is_empty() {
            return Err(DomainError::InvalidProduct(
                "a product needs a price in at least one currency".into(),
            ));
        }
        Ok(Prices(map))
    }

    /// The price in `currency`, if the product has one.
    pub fn get(&self, currency: Currency) -> Option<Money> {
        self.0.get(&currency).copied()
    }

    /// Every price, by currency code.
    pub fn iter(&self) -> impl Iterator<Item = Money> + '_ {
        self.0.values().copied()
    }

    /// Every price as decimal text by ISO code, as events and the API show them.
    pub fn by_code(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|p| (p.currency().code().to_owned(), p.to_decimal_string()))
            .collect()
    }
}

/// The descriptive fields of a product, checked.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProductDetails {
    /// 1 to 200 characters.
    pub name: String,
    /// At most 2 000 characters.
    pub description: String,
    pub prices: Prices,
}

impl ProductDetails {
    /// Checks the texts; `prices` were checked when built.
    pub fn new(name: &str, description: &str, prices: Prices) -> Result<Self, DomainError> {
        let chars = name.chars().count();
        if chars == 0 || chars > crate::order::MAX_NAME || name.trim().is_empty() {
            return Err(DomainError::InvalidProduct(format!(
                "name must be 1 to {} characters",
                crate::order::MAX_NAME
            )));
        }
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(DomainError::TextTooLong {
                field: "description",
                max: MAX_DESCRIPTION,
            });
        }
        Ok(ProductDetails {
            name: name.to_owned(),
            description: description.to_owned(),
            prices,
        })
    }
}

/// Everything stored about a product.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProductState {
    pub sku: Sku,
    pub details: ProductDetails,
    /// False once archived: no longer listed for customers nor orderable.
    pub active: bool,
    /// Optimistic concurrency; the ETag.
    pub version: i64,
    /// Sequence of the last recorded event.
    pub event_sequence: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What every product event carries: the product after the change.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ProductSnapshot {
    pub sku: Sku,
    pub name: String,
    pub description: String,
    /// Decimal text by ISO code.
    pub prices: BTreeMap<String, String>,
    pub active: bool,
    pub version: i64,
}

impl ProductSnapshot {
    /// The snapshot of a product's state.
    pub fn of(s: &ProductState) -> Self {
        ProductSnapshot {
            sku: s.sku.clone(),
            name: s.details.name.clone(),
            description: s.details.description.clone(),
            prices: s.details.prices.by_code(),
            active: s.active,
            version: s.version,
        }
    }
}

/// What the data of every product event holds: the product after the change. Consumers decode
/// this rather than reading the data by key.
#[derive(Clone, PartialEq, Eq, Debug, Deserialize)]
pub struct ProductEventData {
    pub product: ProductSnapshot,
}

/// Everything that happens to a product.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProductEvent {
    /// `product.created`.
    Created { product: ProductSnapshot },
    /// `product.updated`: name, description, prices or active flag changed.
    Updated { product: ProductSnapshot },
    /// `product.archived`.
    Archived { product: ProductSnapshot },
}

impl ProductEvent {
    pub const CREATED: &'static str = "product.created";
    pub const UPDATED: &'static str = "product.updated";
    pub const ARCHIVED: &'static str = "product.archived";
    /// Every product event type.
    pub const TYPES: &'static [&'static str] = &[Self::CREATED, Self::UPDATED, Self::ARCHIVED];
}

impl DomainEvent for ProductEvent {
    const AGGREGATE: &'static str = "product";

    fn event_type(&self) -> &'static str {
        match self {
            ProductEvent::Created { .. } => Self::CREATED,
            ProductEvent::Updated { .. } => Self::UPDATED,
            ProductEvent::Archived { .. } => Self::ARCHIVED,
        }
    }
}

/// A product and its new events.
#[derive(Clone, Debug)]
pub struct Product {
    state: ProductState,
    changes: Changes<ProductEvent>,
}

impl Product {
    /// A new, active product; records `product.created`.
    pub fn create(sku: Sku, details: ProductDetails, now: OffsetDateTime) -> Self {
        let mut product = Product {
            state: ProductState {
                sku,
                details,
                active: true,
                version: 1,
                event_sequence: 0,
                created_at: now,
                updated_at: now,
            },
            changes: Changes::new(),
        };
        product.record(now, |product| ProductEvent::Created { product });
        product
    }

    /// From storage.
    pub fn restore(state: ProductState) -> Self {
        Product {
            changes: Changes::loaded(state.version),
            state,
        }
    }

    pub fn state(&self) -> &ProductState {
        &self.state
    }

    pub fn sku(&self) -> &Sku {
        &self.state.sku
    }

    /// What an order line in `currency` costs per unit: refused for an archived product or
    /// one without a price in that currency.
    pub fn price_for_order(&self, currency: Currency) -> Result<Money, DomainError> {
        if !self.state.active {
            return Err(DomainError::ProductArchived);
        }
        self.state
            .details
            .prices
            .get(currency)
            .ok_or(DomainError::PriceUnavailable(currency))
    }

    /// Replaces the details and, when given, the active flag; records `product.updated` if
    /// anything changed (or `product.archived` when it was archived).
    pub fn update(&mut self, details: ProductDetails, active: Option<bool>, now: OffsetDateTime) {
        let active = active.unwrap_or(self.state.active);
        if details == self.state.details && active == self.state.active {
            return;
        }
        let archiving = self.state.active && !active;
        self.state.details = details;
        self.state.active = active;
        self.touch(now);
        if archiving {
            self.record(now, |product| ProductEvent::Archived { product });
        } else {
            self.record(now, |product| ProductEvent::Updated { product });
        }
    }

    /// No longer listed nor orderable; records `product.archived`. Archiving twice changes
    /// nothing.
    pub fn archive(&mut self, now: OffsetDateTime) {
        let details = self.state.details.clone();
        self.update(details, Some(false), now);
    }

    fn touch(&mut self, now: OffsetDateTime) {
        self.changes.bump(&mut self.state.version);
        self.state.updated_at = now;
    }

    fn record(&mut self, now: OffsetDateTime, event: impl FnOnce(ProductSnapshot) -> ProductEvent) {
        let snapshot = ProductSnapshot::of(&self.state);
        self.changes
            .record(&mut self.state.event_sequence, now, event(snapshot));
    }
}

aggregate!(Product, ProductEvent, sku);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;

    fn usd(text: &str) -> Money {
        Money::parse(text, Currency::from_code("USD").unwrap()).unwrap()
    }

    fn details(price: &str) -> ProductDetails {
        ProductDetails::new("Mug", "", Prices::new([usd(price)]).unwrap()).unwrap()
    }

    #[test]
    fn skus_are_normalised_and_checked() {
        assert_eq!(
            Sku::parse("  Laptop-Pro_16.b ").unwrap().as_str(),
            "laptop-pro_16.b"
        );
        assert_eq!(Sku::parse("MUG").unwrap(), Sku::parse("mug").unwrap());
        for bad in ["", "   ", "a b", "a/b", "é", &"x".repeat(MAX_SKU + 1)] {
            assert_eq!(
                Sku::parse(bad).unwrap_err().code(),
                "sku_invalid",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prices_need_one_currency_each_and_no_negative() {
        let eur = Money::parse("1", Currency::from_code("EUR").unwrap()).unwrap();
        assert!(Prices::new([usd("1.00"), eur]).is_ok());
        assert!(Prices::new([usd("0")]).is_ok(), "free is allowed");
        for bad in [vec![], vec![usd("1"), usd("2")], vec![usd("-0.01")]] {
            assert_eq!(Prices::new(bad).unwrap_err().code(), "product_invalid");
        }
    }

    #[test]
    fn orders_are_priced_only_from_an_active_product_in_its_currency() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut p = Product::create(Sku::parse("mug").unwrap(), details("4.50"), now);
        let usd_c = Currency::from_code("USD").unwrap();
        assert_eq!(p.price_for_order(usd_c).unwrap(), usd("4.50"));
        assert_eq!(
            p.price_for_order(Currency::from_code("EUR").unwrap())
                .unwrap_err()
                .code(),
            "price_unavailable"
        );
        p.mark_saved();
        p.update(details("4.50"), None, now);
        assert_eq!(
            p.state().version,
            1,
            "an update that changes nothing records nothing"
        );
        p.archive(now);
        p.archive(now);
        assert_eq!(
            p.price_for_order(usd_c).unwrap_err().code(),
            "product_archived"
        );
        let types: Vec<_> = p
            .pending_events()
            .iter()
            .map(|e| e.event.event_type())
            .collect();
        assert_eq!(types, ["product.archived"]);
        assert_eq!(p.state().version, 2);
    }
}
