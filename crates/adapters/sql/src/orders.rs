//! Orders in SQL: lines as JSON, the total in minor units, keyset pages newest first.

pub(crate) const ORDER_COLUMNS: &str = "id, customer_id, items, currency, total_minor, status, payment_id, \
    version, event_sequence, created_at, updated_at, history, refund";

/// Implements the order store for the engine's `SqlStore`.
macro_rules! orders {
    ($engine:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_app::orders::{OrderFilter, OrderRepository};
            use portside_domain::{Aggregate, Order, OrderId};
            use time::OffsetDateTime;
            use portside_events::InboxMark;
            use portside_kernel::{PageRequest, StoreError};
            use sqlx::types::Json;

            use crate::catalog::$engine as stock;
            use crate::error::store_error;
            use crate::orders::ORDER_COLUMNS;
            use crate::rows::{KeyedOrderRow, OrderRow, items_json};
            use portside_app::payments::idempotency::IdempotentRequest;
            use crate::store::$engine::{Db, begin, finish};
            use crate::store::{SqlStore, version_checked};
            use crate::types::{DbId, DbTime};

        #[async_trait]
        impl OrderRepository for SqlStore<Db> {
            async fn insert_keyed_order(&self, order: &mut Order, key: Option<&IdempotentRequest>) -> Result<(), StoreError> {
                let s = order.state();
                let mut tx = begin(&self.write, None).await?;
                sqlx::query(
                    "INSERT INTO orders (id, customer_id, items, currency, total_minor, status, payment_id, \
                     version, event_sequence, created_at, updated_at, idempotency_scope, idempotency_key, \
                     request_fingerprint, history, refund) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(DbId(s.id.0))
                .bind(s.customer_id.as_str())
                .bind(Json(items_json(&s.items)))
                .bind(s.total.currency().code())
                .bind(s.total.minor())
                .bind(s.status.as_str())
                .bind(s.payment_id.map(|p| DbId(p.0)))
                .bind(s.version)
                .bind(s.event_sequence)
                .bind(DbTime(s.created_at))
                .bind(DbTime(s.updated_at))
                .bind(key.map(|k| k.scope.as_str()))
                .bind(key.map(|k| k.key.as_str()))
                .bind(key.map(|k| k.fingerprint.as_str()))
                .bind(Json(&s.history))
                .bind(s.refund.as_ref().map(Json))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                stock::for_order(&mut tx, order).await?;
                finish(tx, order).await
            }

            async fn order_by_key(&self, scope: &str, key: &str) -> Result<Option<(Order, String)>, StoreError> {
                let sql = format!(
                    "SELECT {ORDER_COLUMNS}, request_fingerprint FROM orders \
                     WHERE idempotency_scope = $1 AND idempotency_key = $2"
                );
                let mut reader = self.read.get().await?;
                let found = sqlx::query_as(&sql).bind(scope).bind(key).fetch_optional(&mut *reader).await;
                let row: Option<KeyedOrderRow> = reader.vet(found)?;
                row.map(|r| {
                    let fingerprint = r.request_fingerprint.unwrap_or_default();
                    r.order.try_into().map(|s| (Order::restore(s), fingerprint))
                })
                .transpose()
            }

            async fn update_order(&self, order: &mut Order, mark: Option<&InboxMark>) -> Result<(), StoreError> {
                let s = order.state();
                let mut tx = begin(&self.write, mark).await?;
                let done = sqlx::query(
                    "UPDATE orders SET items = $2, total_minor = $3, status = $4, payment_id = $5, \
                     version = $6, event_sequence = $7, updated_at = $8, history = $10, refund = $11 \
                     WHERE id = $1 AND version = $9",
                )
                .bind(DbId(s.id.0))
                .bind(Json(items_json(&s.items)))
                .bind(s.total.minor())
                .bind(s.status.as_str())
                .bind(s.payment_id.map(|p| DbId(p.0)))
                .bind(s.version)
                .bind(s.event_sequence)
                .bind(DbTime(s.updated_at))
                .bind(order.loaded_version())
                .bind(Json(&s.history))
                .bind(s.refund.as_ref().map(Json))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                version_checked(done.rows_affected())?;
                stock::for_order(&mut tx, order).await?;
                finish(tx, order).await
            }

            async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
                let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
                let mut reader = self.read.get().await?;
                let found = sqlx::query_as(&sql)
                    .bind(DbId(id.0))
                    .fetch_optional(&mut *reader).await;
                let row: Option<OrderRow> = reader.vet(found)?;
                row.map(|r| r.try_into().map(Order::restore)).transpose()
            }

            async fn orders(&self, filter: &OrderFilter, page: PageRequest<(OffsetDateTime, OrderId)>) -> Result<Vec<Order>, StoreError> {
                let mut q = sqlx::QueryBuilder::<Db>::new(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE 1 = 1"));
                if let Some(c) = &filter.customer_id {
                    q.push(" AND customer_id = ").push_bind(c.as_str().to_owned());
                }
                if let Some(s) = filter.status {
                    q.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(after) = filter.created_after {
                    q.push(" AND created_at > ").push_bind(DbTime(after));
                }
                if let Some(before) = filter.created_before {
                    q.push(" AND created_at <= ").push_bind(DbTime(before));
                }
                if let Some((at, id)) = page.after {
                    q.push(" AND (created_at < ")
                        .push_bind(DbTime(at))
                        .push(" OR (created_at = ")
                        .push_bind(DbTime(at))
                        .push(" AND id < ")
                        .push_bind(DbId(id.0))
                        .push("))");
                }
                q.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(page.limit));
                let mut reader = self.read.get().await?;
                let found = q.build_query_as().fetch_all(&mut *reader).await;
                let rows: Vec<OrderRow> = reader.vet(found)?;
                rows.into_iter().map(|r| r.try_into().map(Order::restore)).collect()
            }
        }
        };
    };
}

orders!(sqlite);
orders!(postgres);
