//! The catalog use cases: administrators create, change, archive products and adjust their
//! stock; everyone reads the active products. Orders take their prices and reservations from
//! here (see `orders::Orders::place`).

mod ports;
#[cfg(test)]
mod tests;

pub use ports::*;

use std::sync::Arc;

use portside_domain::{
    Actor, DomainError, Prices, Product, ProductDetails, ProductState, Sku, Stock, StockAdjustment,
    StockMovement,
};
use portside_kernel::{Clock, Page, PageRequest, StoreError};

use crate::error::AppError;
use crate::precondition::IfMatch;

const MAX_ATTEMPTS: usize = 5;

/// A new product.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: Sku,
    pub details: ProductDetails,
    /// Units on hand when stock is tracked; `None`: unlimited.
    pub on_hand: Option<i64>,
    pub low_stock_threshold: Option<i64>,
}

/// Changes to a product; what is `None` stays.
#[derive(Debug, Clone, Default)]
pub struct ProductChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub prices: Option<Prices>,
    pub active: Option<bool>,
}

/// A product with its stock, as the catalog shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    pub product: ProductState,
    /// `None`: stock is not tracked.
    pub stock: Option<portside_domain::StockState>,
}

impl CatalogEntry {
    fn of(product: &Product, stock: Option<&Stock>) -> Self {
        CatalogEntry {
            product: product.state().clone(),
            stock: stock.map(|s| s.state().clone()),
        }
    }
}

/// The catalog use cases.
pub struct Catalog {
    repo: Arc<dyn CatalogRepository>,
    clock: Arc<dyn Clock>,
}

fn admin(actor: &Actor, what: &'static str) -> Result<(), AppError> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(what))
    }
}

impl Catalog {
    pub fn new(repo: Arc<dyn CatalogRepository>, clock: Arc<dyn Clock>) -> Self {
        Catalog { repo, clock }
    }

    /// Creates a product (administrators); 409 `sku_taken` when its SKU exists.
    pub async fn create(&self, actor: &Actor, new: NewProduct) -> Result<CatalogEntry, AppError> {
        admin(actor, "only administrators create products")?;
        let now = self.clock.now();
        let mut product = Product::create(new.sku.clone(), new.details, now);
        let mut stock = new
            .on_hand
            .map(|units| {
                Stock::track(
                    new.sku.clone(),
                    units,
                    new.low_stock_threshold,
                    "initial stock".into(),
                    now,
                )
            })
            .transpose()
            .map_err(AppError::invalid("stock"))?;
        match self.repo.insert_product(&mut product, stock.as_mut()).await {
            Ok(()) => Ok(CatalogEntry::of(&product, stock.as_ref())),
            Err(StoreError::Duplicate) => Err(AppError::Taken("sku")),
            Err(e) => Err(e.into()),
        }
    }

    /// One product; an archived one exists only for administrators.
    pub async fn get(&self, actor: &Actor, sku: &Sku) -> Result<CatalogEntry, AppError> {
        let product = self.visible(actor, sku).await?;
        self.entry(&product).await
    }

    async fn entry(&self, product: &Product) -> Result<CatalogEntry, AppError> {
        let stock = self.repo.stock(product.sku()).await?;
        Ok(CatalogEntry::of(product, stock.as_ref()))
    }

    async fn visible(&self, actor: &Actor, sku: &Sku) -> Result<Product, AppError> {
        match self.repo.product(sku).await? {
            Some(p) if p.state().active || actor.is_admin() => Ok(p),
            _ => Err(AppError::NotFound("product")),
        }
    }

    /// Products by SKU: the active ones, or (administrators) those the filter names.
    pub async fn list(
        &self,
        actor: &Actor,
        mut filter: ProductFilter,
        page: PageRequest<Sku>,
    ) -> Result<Page<ProductState, Sku>, AppError> {
        if !actor.is_admin() {
            if filter.active == Some(false) {
                return Err(AppError::Forbidden(
                    "only administrators list archived products",
                ));
            }
            filter.active = Some(true);
        }
        let found = self.repo.products(&filter, page.probe()).await?;
        let states = found.iter().map(|p| p.state().clone()).collect();
        Ok(page.page(states, |p: &ProductState| p.sku.clone()))
    }

    /// Changes a product (administrators); 412 when `expected` is stale.
    pub async fn update(
        &self,
        actor: &Actor,
        sku: &Sku,
        changes: ProductChanges,
        expected: IfMatch,
    ) -> Result<CatalogEntry, AppError> {
        admin(actor, "only administrators change products")?;
        self.mutate(sku, &expected, |p, now| {
            let current = &p.state().details;
            let details = ProductDetails::new(
                changes.name.as_deref().unwrap_or(&current.name),
                changes
                    .description
                    .as_deref()
                    .unwrap_or(&current.description),
                changes
                    .prices
                    .clone()
                    .unwrap_or_else(|| current.prices.clone()),
            )?;
            p.update(details, changes.active, now);
            Ok(())
        })
        .await
    }

    /// Archives a product (administrators): no longer listed for customers nor orderable;
    /// orders already placed keep it.
    pub async fn archive(
        &self,
        actor: &Actor,
        sku: &Sku,
        expected: IfMatch,
    ) -> Result<CatalogEntry, AppError> {
        admin(actor, "only administrators archive products")?;
        self.mutate(sku, &expected, |p, now| {
            p.archive(now);
            Ok(())
        })
        .await
    }

    async fn mutate(
        &self,
        sku: &Sku,
        expected: &IfMatch,
        change: impl Fn(&mut Product, time::OffsetDateTime) -> Result<(), DomainError>,
    ) -> Result<CatalogEntry, AppError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut product = self
                .repo
                .product(sku)
                .await?
                .ok_or(AppError::NotFound("product"))?;
            // RFC 9110 §13.2.1: a request refused without its precondition is refused the same
            // way with it; the precondition decides only between success and 412.
            let current = product.state().version;
            change(&mut product, self.clock.now()).map_err(AppError::invalid("product"))?;
            if !expected.holds(current) {
                return Err(AppError::PreconditionFailed);
            }
            match self.repo.update_product(&mut product).await {
                Ok(()) => return self.entry(&product).await,
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }

    /// Adds or removes units with a reason, or sets the low-stock threshold (administrators).
    /// A product not tracked yet starts being tracked at zero.
    pub async fn adjust_stock(
        &self,
        actor: &Actor,
        sku: &Sku,
        adjustment: StockAdjustment,
    ) -> Result<CatalogEntry, AppError> {
        admin(actor, "only administrators adjust stock")?;
        let product = self.visible(actor, sku).await?;
        let stock = match self
            .repo
            .adjust_stock(sku, &adjustment, self.clock.now())
            .await
        {
            Ok(stock) => stock,
            Err(StoreError::Refused { code, detail, .. }) => {
                let field =
                    if code == "stock_below_reserved" || adjustment.low_stock_threshold.is_none() {
                        "quantity"
                    } else {
                        "stock"
                    };
                return Err(AppError::Refused {
                    conflict: code == "stock_below_reserved",
                    refusals: vec![crate::Refusal {
                        field: field.into(),
                        code,
                        message: detail,
                    }],
                });
            }
            Err(e) => return Err(e.into()),
        };
        Ok(CatalogEntry::of(&product, Some(&stock)))
    }

    /// A product's stock movements, newest first (administrators).
    pub async fn movements(
        &self,
        actor: &Actor,
        sku: &Sku,
        page: PageRequest<i64>,
    ) -> Result<Page<StockMovement, i64>, AppError> {
        admin(actor, "only administrators read stock movements")?;
        self.visible(actor, sku).await?;
        let found = self.repo.movements(sku, page.probe()).await?;
        Ok(page.page(found, |m| m.sequence))
    }
}
