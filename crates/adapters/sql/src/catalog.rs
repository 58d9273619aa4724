//! The catalog in SQL: products (prices as JSON of minor units by currency), stock levels,
//! movements and reservations. Stock is changed only under the row lock of its level
//! (`FOR UPDATE` on PostgreSQL, the one writer connection on SQLite), locked in SKU order, and
//! the domain decides what the change may be, so two orders never oversell and never wait for
//! each other in a cycle.

pub(crate) const PRODUCT_COLUMNS: &str =
    "sku, name, description, prices, active, version, event_sequence, created_at, updated_at";
pub(crate) const STOCK_COLUMNS: &str =
    "sku, on_hand, reserved, low_stock_threshold, low, version, event_sequence, updated_at";
pub(crate) const MOVEMENT_COLUMNS: &str =
    "sku, sequence, kind, quantity, order_id, reason, on_hand, reserved, at";

/// The stock helpers the order store shares, and the catalog store, for the engine's `SqlStore`.
/// `$lock` is how the engine locks the rows a `SELECT` reads until the transaction ends.
macro_rules! catalog {
    ($engine:ident, $lock:literal) => {
        pub(crate) mod $engine {
            use std::collections::{BTreeMap, BTreeSet};

            use async_trait::async_trait;
            use portside_app::catalog::{CatalogRepository, ProductFilter, stock_refused};
            use portside_domain::{
                Aggregate, Order, OrderId, Product, Sku, Stock, StockAdjustment,
                StockMovement, stock,
            };
            use portside_kernel::{PageRequest, StoreError};
            use sqlx::types::Json;
            use time::OffsetDateTime;

            use super::{MOVEMENT_COLUMNS, PRODUCT_COLUMNS, STOCK_COLUMNS};
            use crate::error::store_error;
            use crate::rows::{MovementRow, ProductRow, StockRow, prices_json};
            use crate::store::$engine::{Db, Tx, begin, finish, record};
            use crate::store::{SqlStore, version_checked};
            use crate::types::{DbId, DbTime};

            /// Locks and reads the stock levels of `skus` (those tracked), in SKU order.
            async fn lock(tx: &mut Tx, skus: &BTreeSet<Sku>) -> Result<BTreeMap<Sku, Stock>, StoreError> {
                if skus.is_empty() {
                    return Ok(BTreeMap::new());
                }
                let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                    "SELECT {STOCK_COLUMNS} FROM stock_levels WHERE sku IN ("
                ));
                let mut list = q.separated(", ");
                for sku in skus {
                    list.push_bind(sku.as_str().to_owned());
                }
                q.push(concat!(") ORDER BY sku ", $lock));
                let rows: Vec<StockRow> = q.build_query_as().fetch_all(&mut **tx).await.map_err(store_error)?;
                rows.into_iter()
                    .map(|r| {
                        let state: portside_domain::StockState = r.try_into()?;
                        Ok((state.sku.clone(), Stock::restore(state)))
                    })
                    .collect()
            }

            /// Writes a stock level (insert or version-checked update), its movements and its
            /// events in the caller's transaction.
            async fn save(tx: &mut Tx, s: &Stock) -> Result<(), StoreError> {
                let st = s.state();
                let sql = match s.loaded_version() {
                    None => "INSERT INTO stock_levels (sku, on_hand, reserved, low_stock_threshold, low, version, \
                             event_sequence, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    Some(_) => "UPDATE stock_levels SET on_hand = $2, reserved = $3, low_stock_threshold = $4, \
                                low = $5, version = $6, event_sequence = $7, updated_at = $8 \
                                WHERE sku = $1 AND version = $9",
                };
                let mut q = sqlx::query(sql)
                    .bind(st.sku.as_str())
                    .bind(st.on_hand)
                    .bind(st.reserved)
                    .bind(st.low_stock_threshold)
                    .bind(st.low)
                    .bind(st.version)
                    .bind(st.event_sequence)
                    .bind(DbTime(st.updated_at));
                if let Some(loaded) = s.loaded_version() {
                    q = q.bind(loaded);
                }
                let done = q.execute(&mut **tx).await.map_err(store_error)?;
                version_checked(done.rows_affected())?;
                for m in s.movements() {
                    sqlx::query(
                        "INSERT INTO stock_movements (sku, sequence, kind, quantity, order_id, reason, on_hand, \
                         reserved, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(m.sku.as_str())
                    .bind(m.sequence)
                    .bind(m.kind.as_str())
                    .bind(m.quantity)
                    .bind(m.order_id.map(|o| DbId(o.0)))
                    .bind(m.reason.as_deref())
                    .bind(m.on_hand)
                    .bind(m.reserved)
                    .bind(DbTime(m.at))
                    .execute(&mut **tx)
                    .await
                    .map_err(store_error)?;
                }
                record(tx, s).await
            }

            /// Applies what an order's changes ask of stock, in the order's transaction: locks
            /// the levels it touches, lets the domain decide, writes the levels, movements,
            /// events and what the order holds afterwards. `Refused` (write nothing) when stock
            /// ran out.
            pub(crate) async fn for_order(tx: &mut Tx, order: &Order) -> Result<(), StoreError> {
                if order.stock_intents().is_empty() {
                    return Ok(());
                }
                let id: OrderId = order.id();
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT sku, quantity FROM stock_reservations WHERE order_id = $1")
                        .bind(DbId(id.0))
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(store_error)?;
                let held: BTreeMap<Sku, i64> = rows
                    .into_iter()
                    .filter_map(|(sku, q)| Sku::parse(&sku).ok().map(|s| (s, q)))
                    .collect();
                let mut stocks = lock(tx, &stock::skus_touched(order, &held)).await?;
                let after = stock::apply_order(order, held, &mut stocks)
                    .map_err(|(sku, e)| stock_refused(&sku, &e))?;
                for s in stocks.values() {
                    if !s.pending_events().is_empty() {
                        save(tx, s).await?;
                    }
                }
                sqlx::query("DELETE FROM stock_reservations WHERE order_id = $1")
                    .bind(DbId(id.0))
                    .execute(&mut **tx)
                    .await
                    .map_err(store_error)?;
                for (sku, quantity) in after.iter().filter(|(_, q)| **q > 0) {
                    sqlx::query("INSERT INTO stock_reservations (order_id, sku, quantity) VALUES ($1, $2, $3)")
                        .bind(DbId(id.0))
                        .bind(sku.as_str())
                        .bind(quantity)
                        .execute(&mut **tx)
                        .await
                        .map_err(store_error)?;
                }
                Ok(())
            }

            #[async_trait]
            impl CatalogRepository for SqlStore<Db> {
                async fn insert_product(&self, product: &mut Product, stock: Option<&mut Stock>) -> Result<(), StoreError> {
                    let p = product.state();
                    let mut tx = begin(&self.write, None).await?;
                    sqlx::query(
                        "INSERT INTO products (sku, name, description, prices, active, version, event_sequence, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(p.sku.as_str())
                    .bind(&p.details.name)
                    .bind(&p.details.description)
                    .bind(Json(prices_json(&p.details.prices)))
                    .bind(p.active)
                    .bind(p.version)
                    .bind(p.event_sequence)
                    .bind(DbTime(p.created_at))
                    .bind(DbTime(p.updated_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                    if let Some(s) = stock {
                        save(&mut tx, s).await?;
                        finish(tx, product).await?;
                        s.mark_saved();
                        return Ok(());
                    }
                    finish(tx, product).await
                }

                async fn update_product(&self, product: &mut Product) -> Result<(), StoreError> {
                    let p = product.state();
                    let mut tx = begin(&self.write, None).await?;
                    let done = sqlx::query(
                        "UPDATE products SET name = $2, description = $3, prices = $4, active = $5, version = $6, \
                         event_sequence = $7, updated_at = $8 WHERE sku = $1 AND version = $9",
                    )
                    .bind(p.sku.as_str())
                    .bind(&p.details.name)
                    .bind(&p.details.description)
                    .bind(Json(prices_json(&p.details.prices)))
                    .bind(p.active)
                    .bind(p.version)
                    .bind(p.event_sequence)
                    .bind(DbTime(p.updated_at))
                    .bind(product.loaded_version())
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                    version_checked(done.rows_affected())?;
                    finish(tx, product).await
                }

                async fn product(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
                    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = $1");
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(&sql).bind(sku.as_str()).fetch_optional(&mut *reader).await;
                    let row: Option<ProductRow> = reader.vet(found)?;
                    row.map(|r| r.try_into().map(Product::restore)).transpose()
                }

                async fn products(&self, filter: &ProductFilter, page: PageRequest<Sku>) -> Result<Vec<Product>, StoreError> {
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE 1 = 1"));
                    if let Some(active) = filter.active {
                        q.push(" AND active = ").push_bind(active);
                    }
                    if let Some(after) = &page.after {
                        q.push(" AND sku > ").push_bind(after.as_str().to_owned());
                    }
                    q.push(" ORDER BY sku LIMIT ").push_bind(i64::from(page.limit));
                    let mut reader = self.read.get().await?;
                    let found = q.build_query_as().fetch_all(&mut *reader).await;
                    let rows: Vec<ProductRow> = reader.vet(found)?;
                    rows.into_iter().map(|r| r.try_into().map(Product::restore)).collect()
                }

                async fn stock(&self, sku: &Sku) -> Result<Option<Stock>, StoreError> {
                    let sql = format!("SELECT {STOCK_COLUMNS} FROM stock_levels WHERE sku = $1");
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query_as(&sql).bind(sku.as_str()).fetch_optional(&mut *reader).await;
                    let row: Option<StockRow> = reader.vet(found)?;
                    row.map(|r| r.try_into().map(Stock::restore)).transpose()
                }

                async fn adjust_stock(&self, sku: &Sku, adjustment: &StockAdjustment, at: OffsetDateTime) -> Result<Stock, StoreError> {
                    let mut tx = begin(&self.write, None).await?;
                    let current = lock(&mut tx, &BTreeSet::from([sku.clone()])).await?.remove(sku);
                    let mut s = Stock::adjusted(current, sku, adjustment, at).map_err(|e| stock_refused(sku, &e))?;
                    save(&mut tx, &s).await?;
                    tx.commit().await.map_err(store_error)?;
                    s.mark_saved();
                    Ok(s)
                }

                async fn movements(&self, sku: &Sku, page: PageRequest<i64>) -> Result<Vec<StockMovement>, StoreError> {
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!("SELECT {MOVEMENT_COLUMNS} FROM stock_movements WHERE sku = "));
                    q.push_bind(sku.as_str().to_owned());
                    if let Some(after) = page.after {
                        q.push(" AND sequence < ").push_bind(after);
                    }
                    q.push(" ORDER BY sequence DESC LIMIT ").push_bind(i64::from(page.limit));
                    let mut reader = self.read.get().await?;
                    let found = q.build_query_as().fetch_all(&mut *reader).await;
                    let rows: Vec<MovementRow> = reader.vet(found)?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }
            }
        }
    };
}

catalog!(sqlite, "");
catalog!(postgres, "FOR UPDATE");
