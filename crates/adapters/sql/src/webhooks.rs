//! Outgoing webhooks in SQL: the endpoints.

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, secret, created_at, \
    updated_at, previous_secret, previous_until";

const UPDATE_ENDPOINT: &str = "UPDATE webhook_endpoints SET url = $2, description = $3, \
    event_types = $4, enabled = $5, secret = $6, updated_at = $7, previous_secret = $8, \
    previous_until = $9 WHERE id = $1";

/// Inserts an endpoint unless `limit` exist already (no row inserted then).
const INSERT_ENDPOINT: &str = "INSERT INTO webhook_endpoints (id, url, description, event_types, \
    enabled, secret, created_at, updated_at) \
    SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
    WHERE (SELECT count(*) FROM webhook_endpoints) < $9";

/// Implements the webhooks context's store port for the engine's `SqlStore`.
macro_rules! webhooks {
    ($engine:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_app::webhooks::{WebhookEndpointStore, limit_reached};
            use portside_domain::webhook::{EndpointId, WebhookEndpoint, WebhookSecret};
            use portside_kernel::{PageRequest, StoreError};
            use sqlx::Row;

            use crate::error::store_error;
            use crate::store::SqlStore;
            use crate::store::$engine::Db;
            use crate::types::{DbId, DbTime};
            use crate::webhooks::*;

            fn corrupt(detail: impl std::fmt::Display) -> StoreError {
                StoreError::Other(format!("stored webhook endpoint is invalid: {detail}"))
            }

            fn endpoint_of(
                row: &<Db as sqlx::Database>::Row,
            ) -> Result<WebhookEndpoint, StoreError> {
                let id: DbId = row.try_get(0).map_err(store_error)?;
                let types: Option<String> = row.try_get(3).map_err(store_error)?;
                let secret: String = row.try_get(5).map_err(store_error)?;
                let created: DbTime = row.try_get(6).map_err(store_error)?;
                let updated: DbTime = row.try_get(7).map_err(store_error)?;
                let previous: Option<String> = row.try_get(8).map_err(store_error)?;
                let until: Option<DbTime> = row.try_get(9).map_err(store_error)?;
                let previous_secret = match (previous, until) {
                    (Some(s), Some(u)) => Some((WebhookSecret::parse(&s).map_err(corrupt)?, u.0)),
                    _ => None,
                };
                Ok(WebhookEndpoint {
                    id: EndpointId(id.0),
                    url: row.try_get(1).map_err(store_error)?,
                    description: row.try_get(2).map_err(store_error)?,
                    event_types: types
                        .map(|t| serde_json::from_str(&t))
                        .transpose()
                        .map_err(corrupt)?,
                    enabled: row.try_get(4).map_err(store_error)?,
                    secret: WebhookSecret::parse(&secret).map_err(corrupt)?,
                    previous_secret,
                    created_at: created.0,
                    updated_at: updated.0,
                })
            }

            /// The endpoint's event types as stored: a JSON array, or NULL for every type.
            fn event_types_json(e: &WebhookEndpoint) -> Result<Option<String>, StoreError> {
                e.event_types
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(corrupt)
            }

            #[async_trait]
            impl WebhookEndpointStore for SqlStore<Db> {
                async fn insert_endpoint(
                    &self,
                    e: &WebhookEndpoint,
                    limit: u32,
                ) -> Result<(), StoreError> {
                    let types = event_types_json(e)?;
                    let done = sqlx::query(INSERT_ENDPOINT)
                        .bind(DbId(e.id.0))
                        .bind(&e.url)
                        .bind(&e.description)
                        .bind(types)
                        .bind(e.enabled)
                        .bind(e.secret.reveal())
                        .bind(DbTime(e.created_at))
                        .bind(DbTime(e.updated_at))
                        .bind(i64::from(limit))
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    if done.rows_affected() == 1 {
                        Ok(())
                    } else {
                        Err(limit_reached(limit))
                    }
                }

                async fn endpoint(
                    &self,
                    id: EndpointId,
                ) -> Result<Option<WebhookEndpoint>, StoreError> {
                    let sql =
                        format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query(&sql)
                        .bind(DbId(id.0))
                        .fetch_optional(&mut *reader)
                        .await;
                    reader.vet(found)?.as_ref().map(endpoint_of).transpose()
                }

                async fn endpoints(
                    &self,
                    page: PageRequest<EndpointId>,
                ) -> Result<Vec<WebhookEndpoint>, StoreError> {
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE 1 = 1"
                    ));
                    if let Some(after) = page.after {
                        q.push(" AND id > ").push_bind(DbId(after.0));
                    }
                    q.push(" ORDER BY id LIMIT ")
                        .push_bind(i64::from(page.limit));
                    let mut reader = self.read.get().await?;
                    let found = q.build().fetch_all(&mut *reader).await;
                    reader.vet(found)?.iter().map(endpoint_of).collect()
                }

                async fn update_endpoint(&self, e: &WebhookEndpoint) -> Result<bool, StoreError> {
                    let types = event_types_json(e)?;
                    let done = sqlx::query(UPDATE_ENDPOINT)
                        .bind(DbId(e.id.0))
                        .bind(&e.url)
                        .bind(&e.description)
                        .bind(types)
                        .bind(e.enabled)
                        .bind(e.secret.reveal())
                        .bind(DbTime(e.updated_at))
                        .bind(e.previous_secret.as_ref().map(|(s, _)| s.reveal()))
                        .bind(e.previous_secret.as_ref().map(|(_, until)| DbTime(*until)))
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(done.rows_affected() == 1)
                }

                async fn delete_endpoint(&self, id: EndpointId) -> Result<bool, StoreError> {
                    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                        .bind(DbId(id.0))
                        .execute(&self.write)
                        .await
                        .map_err(store_error)?;
                    Ok(done.rows_affected() == 1)
                }
            }
        };
    };
}

webhooks!(sqlite);
webhooks!(postgres);
