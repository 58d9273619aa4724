//! Ports of the catalog context.

use async_trait::async_trait;
use portside_domain::{DomainError, Product, Sku, Stock, StockAdjustment, StockMovement};
use time::OffsetDateTime;

use portside_kernel::{PageRequest, StoreError};

/// What a store answers when a domain rule refuses a stock change under its lock:
/// `StoreError::Refused` with the rule's code, the SKU as its subject, and the message.
pub fn stock_refused(sku: &Sku, e: &DomainError) -> StoreError {
    StoreError::Refused {
        code: e.code().to_owned(),
        subject: sku.to_string(),
        detail: e.to_string(),
    }
}

/// Which products to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    /// Only active (`Some(true)`) or only archived (`Some(false)`) products.
    pub active: Option<bool>,
}

/// Products, their stock and its movements, with their outbox events; each write is one DB
/// transaction.
#[async_trait]
pub trait CatalogRepository: Send + Sync {
    /// Inserts a new product and, when it is tracked, its stock (`Duplicate` when the SKU exists).
    async fn insert_product(
        &self,
        product: &mut Product,
        stock: Option<&mut Stock>,
    ) -> Result<(), StoreError>;
    /// Saves changes, version-checked (`Conflict`).
    async fn update_product(&self, product: &mut Product) -> Result<(), StoreError>;
    /// One product, archived or not.
    async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError>;
    /// A page of products by SKU.
    async fn products(
        &self,
        filter: &ProductFilter,
        page: PageRequest<Sku>,
    ) -> Result<Vec<Product>, StoreError>;
    /// The stock of a product (`None`: not tracked).
    async fn stock(&self, sku: &Sku) -> Result<Option<Stock>, StoreError>;
    /// Applies an adjustment under the stock's lock (tracking starts at zero for a product
    /// not tracked yet); a domain refusal is `Refused` and nothing is written.
    async fn adjust_stock(
        &self,
        sku: &Sku,
        adjustment: &StockAdjustment,
        at: OffsetDateTime,
    ) -> Result<Stock, StoreError>;
    /// A page of a product's movements, newest first, by sequence.
    async fn movements(
        &self,
        sku: &Sku,
        page: PageRequest<i64>,
    ) -> Result<Vec<StockMovement>, StoreError>;
}
