//! Outgoing webhooks in SQL: the endpoints, their deliveries and the deliveries' attempts.

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, enabled, secret, created_at, \
    updated_at, previous_secret, previous_until, failing_since, disabled_reason";

const UPDATE_ENDPOINT: &str = "UPDATE webhook_endpoints SET url = $2, description = $3, \
    event_types = $4, enabled = $5, secret = $6, updated_at = $7, previous_secret = $8, \
    previous_until = $9, failing_since = $10, disabled_reason = $11 WHERE id = $1";

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, body, status, attempts, \
    next_attempt_at, created_at, updated_at";

const ATTEMPT_COLUMNS: &str =
    "delivery_id, number, attempted_at, status_code, latency_us, response, error";

const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, \
    event_type, body, status, attempts, next_attempt_at, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (endpoint_id, event_id) DO NOTHING";

/// The enabled endpoints with deliveries due at $1.
fn due_endpoints_sql() -> String {
    format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.enabled = TRUE AND EXISTS \
         (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id \
         AND d.status = 'pending' AND d.next_attempt_at <= $1) ORDER BY e.id"
    )
}

/// Leases up to $4 due deliveries of endpoint $1 (due at $2) until $3. `{lock}` is
/// ` FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers in several processes pass each other by.
fn claim_sql(lock: &str) -> String {
    format!(
        "UPDATE webhook_deliveries SET next_attempt_at = $3 WHERE id IN (SELECT id \
         FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending' \
         AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $4{lock}) \
         RETURNING {DELIVERY_COLUMNS}"
    )
}

const SAVE_DELIVERY: &str = "UPDATE webhook_deliveries SET status = $2, attempts = $3, \
    next_attempt_at = $4, updated_at = $5 WHERE id = $1";

const INSERT_ATTEMPT: &str = "INSERT INTO webhook_attempts (delivery_id, number, attempted_at, \
    status_code, latency_us, response, error) VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (delivery_id, number) DO NOTHING";

const DISABLE_ENDPOINT: &str = "UPDATE webhook_endpoints SET enabled = FALSE, \
    disabled_reason = $2, failing_since = NULL, updated_at = $3, \
    event_sequence = event_sequence + 1 WHERE id = $1 AND enabled = TRUE \
    RETURNING event_sequence, url";

const PENDING: &str = "SELECT endpoint_id, count(*), min(created_at) FROM webhook_deliveries \
    WHERE status = 'pending' GROUP BY endpoint_id";

/// Inserts an endpoint unless `limit` exist already (no row inserted then).
const INSERT_ENDPOINT: &str = "INSERT INTO webhook_endpoints (id, url, description, event_types, \
    enabled, secret, created_at, updated_at) \
    SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
    WHERE (SELECT count(*) FROM webhook_endpoints) < $9";

/// Implements the webhooks context's store port for the engine's `SqlStore`.
macro_rules! webhooks {
    ($engine:ident, $lock:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_app::webhooks::{
                DeliveryFilter, DeliveryRecord, PendingFigures, WebhookDeliveryStore,
                WebhookEndpointStore, limit_reached,
            };
            use portside_domain::RecordedEvent;
            use portside_domain::webhook::delivery::{
                Attempt, DeliveryId, DeliveryStatus, DisabledReason, WebhookDelivery,
                WebhookEndpointEvent,
            };
            use portside_domain::webhook::{EndpointId, WebhookEndpoint, WebhookSecret};
            use portside_kernel::{PageRequest, StoreError};
            use sqlx::Row;
            use time::OffsetDateTime;

            use crate::error::store_error;
            use crate::store::SqlStore;
            use crate::store::$engine::{Db, write_events};
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
                let failing: Option<DbTime> = row.try_get(10).map_err(store_error)?;
                let reason: Option<String> = row.try_get(11).map_err(store_error)?;
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
                    failing_since: failing.map(|f| f.0),
                    disabled_reason: reason
                        .map(|r| DisabledReason::parse(&r).ok_or_else(|| corrupt(r)))
                        .transpose()?,
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
                        .bind(e.failing_since.map(DbTime))
                        .bind(e.disabled_reason.map(DisabledReason::as_str))
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

            fn delivery_of(
                row: &<Db as sqlx::Database>::Row,
            ) -> Result<WebhookDelivery, StoreError> {
                let id: DbId = row.try_get(0).map_err(store_error)?;
                let endpoint: DbId = row.try_get(1).map_err(store_error)?;
                let event: DbId = row.try_get(2).map_err(store_error)?;
                let status: String = row.try_get(5).map_err(store_error)?;
                let attempts: i32 = row.try_get(6).map_err(store_error)?;
                let next: Option<DbTime> = row.try_get(7).map_err(store_error)?;
                let created: DbTime = row.try_get(8).map_err(store_error)?;
                let updated: DbTime = row.try_get(9).map_err(store_error)?;
                Ok(WebhookDelivery {
                    id: DeliveryId(id.0),
                    endpoint_id: EndpointId(endpoint.0),
                    event_id: event.0,
                    event_type: row.try_get(3).map_err(store_error)?,
                    body: row.try_get(4).map_err(store_error)?,
                    status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt(&status))?,
                    attempts: u32::try_from(attempts).map_err(corrupt)?,
                    next_attempt_at: next.map(|n| n.0),
                    created_at: created.0,
                    updated_at: updated.0,
                })
            }

            fn attempt_of(
                row: &<Db as sqlx::Database>::Row,
            ) -> Result<(DeliveryId, Attempt), StoreError> {
                let delivery: DbId = row.try_get(0).map_err(store_error)?;
                let number: i32 = row.try_get(1).map_err(store_error)?;
                let at: DbTime = row.try_get(2).map_err(store_error)?;
                let status: Option<i32> = row.try_get(3).map_err(store_error)?;
                let latency: i64 = row.try_get(4).map_err(store_error)?;
                Ok((
                    DeliveryId(delivery.0),
                    Attempt {
                        number: u32::try_from(number).map_err(corrupt)?,
                        at: at.0,
                        status_code: status.map(u16::try_from).transpose().map_err(corrupt)?,
                        latency: std::time::Duration::from_micros(
                            u64::try_from(latency).unwrap_or(0),
                        ),
                        response: row.try_get(5).map_err(store_error)?,
                        error: row.try_get(6).map_err(store_error)?,
                    },
                ))
            }

            impl SqlStore<Db> {
                /// The deliveries with their attempts, in the deliveries' order.
                async fn with_attempts(
                    &self,
                    deliveries: Vec<WebhookDelivery>,
                ) -> Result<Vec<DeliveryRecord>, StoreError> {
                    if deliveries.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                        "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE delivery_id IN ("
                    ));
                    let mut ids = q.separated(", ");
                    for d in &deliveries {
                        ids.push_bind(DbId(d.id.0));
                    }
                    q.push(") ORDER BY delivery_id, number");
                    let mut reader = self.read.get().await?;
                    let found = q.build().fetch_all(&mut *reader).await;
                    let mut attempts = std::collections::HashMap::<DeliveryId, Vec<Attempt>>::new();
                    for row in reader.vet(found)? {
                        let (id, attempt) = attempt_of(&row)?;
                        attempts.entry(id).or_default().push(attempt);
                    }
                    Ok(deliveries
                        .into_iter()
                        .map(|delivery| DeliveryRecord {
                            attempts: attempts.remove(&delivery.id).unwrap_or_default(),
                            delivery,
                        })
                        .collect())
                }
            }

            #[async_trait]
            impl WebhookDeliveryStore for SqlStore<Db> {
                async fn enabled_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
                    let sql = format!(
                        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE enabled = TRUE ORDER BY id"
                    );
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query(&sql).fetch_all(&mut *reader).await;
                    reader.vet(found)?.iter().map(endpoint_of).collect()
                }

                async fn enqueue(&self, deliveries: &[WebhookDelivery]) -> Result<(), StoreError> {
                    let mut tx = self.write.begin().await.map_err(store_error)?;
                    for d in deliveries {
                        sqlx::query(INSERT_DELIVERY)
                            .bind(DbId(d.id.0))
                            .bind(DbId(d.endpoint_id.0))
                            .bind(DbId(d.event_id))
                            .bind(&d.event_type)
                            .bind(&d.body)
                            .bind(d.status.as_str())
                            .bind(i32::try_from(d.attempts).unwrap_or(i32::MAX))
                            .bind(d.next_attempt_at.map(DbTime))
                            .bind(DbTime(d.created_at))
                            .bind(DbTime(d.updated_at))
                            .execute(&mut *tx)
                            .await
                            .map_err(store_error)?;
                    }
                    tx.commit().await.map_err(store_error)
                }

                async fn due_endpoints(
                    &self,
                    now: OffsetDateTime,
                ) -> Result<Vec<WebhookEndpoint>, StoreError> {
                    let sql = due_endpoints_sql();
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query(&sql)
                        .bind(DbTime(now))
                        .fetch_all(&mut *reader)
                        .await;
                    reader.vet(found)?.iter().map(endpoint_of).collect()
                }

                async fn claim(
                    &self,
                    endpoint: EndpointId,
                    now: OffsetDateTime,
                    lease_until: OffsetDateTime,
                    limit: u32,
                ) -> Result<Vec<WebhookDelivery>, StoreError> {
                    let rows = sqlx::query(&claim_sql($lock))
                        .bind(DbId(endpoint.0))
                        .bind(DbTime(now))
                        .bind(DbTime(lease_until))
                        .bind(i64::from(limit))
                        .fetch_all(&self.write)
                        .await
                        .map_err(store_error)?;
                    rows.iter().map(delivery_of).collect()
                }

                async fn record_attempts(
                    &self,
                    attempts: &[(WebhookDelivery, Attempt)],
                ) -> Result<(), StoreError> {
                    let mut tx = self.write.begin().await.map_err(store_error)?;
                    for (d, a) in attempts {
                        sqlx::query(SAVE_DELIVERY)
                            .bind(DbId(d.id.0))
                            .bind(d.status.as_str())
                            .bind(i32::try_from(d.attempts).unwrap_or(i32::MAX))
                            .bind(d.next_attempt_at.map(DbTime))
                            .bind(DbTime(d.updated_at))
                            .execute(&mut *tx)
                            .await
                            .map_err(store_error)?;
                        sqlx::query(INSERT_ATTEMPT)
                            .bind(DbId(d.id.0))
                            .bind(i32::try_from(a.number).unwrap_or(i32::MAX))
                            .bind(DbTime(a.at))
                            .bind(a.status_code.map(i32::from))
                            .bind(i64::try_from(a.latency.as_micros()).unwrap_or(i64::MAX))
                            .bind(&a.response)
                            .bind(&a.error)
                            .execute(&mut *tx)
                            .await
                            .map_err(store_error)?;
                    }
                    tx.commit().await.map_err(store_error)
                }

                async fn endpoint_succeeded(&self, endpoint: EndpointId) -> Result<(), StoreError> {
                    sqlx::query(
                        "UPDATE webhook_endpoints SET failing_since = NULL \
                         WHERE id = $1 AND failing_since IS NOT NULL",
                    )
                    .bind(DbId(endpoint.0))
                    .execute(&self.write)
                    .await
                    .map_err(store_error)?;
                    Ok(())
                }

                async fn endpoint_failed(
                    &self,
                    endpoint: EndpointId,
                    now: OffsetDateTime,
                ) -> Result<Option<OffsetDateTime>, StoreError> {
                    let since: Option<Option<DbTime>> = sqlx::query_scalar(
                        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) \
                         WHERE id = $1 RETURNING failing_since",
                    )
                    .bind(DbId(endpoint.0))
                    .bind(DbTime(now))
                    .fetch_optional(&self.write)
                    .await
                    .map_err(store_error)?;
                    Ok(since.flatten().map(|s| s.0))
                }

                async fn disable_endpoint(
                    &self,
                    endpoint: EndpointId,
                    reason: DisabledReason,
                    now: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.write.begin().await.map_err(store_error)?;
                    let row = sqlx::query(DISABLE_ENDPOINT)
                        .bind(DbId(endpoint.0))
                        .bind(reason.as_str())
                        .bind(DbTime(now))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(store_error)?;
                    let Some(row) = row else {
                        return Ok(false);
                    };
                    let sequence: i64 = row.try_get(0).map_err(store_error)?;
                    let url: String = row.try_get(1).map_err(store_error)?;
                    let recorded = RecordedEvent {
                        sequence,
                        occurred_at: now,
                        event: WebhookEndpointEvent::Disabled {
                            endpoint_id: endpoint.0,
                            url,
                            reason,
                        },
                    };
                    write_events(&mut tx, endpoint.to_string(), std::slice::from_ref(&recorded))
                        .await?;
                    tx.commit().await.map_err(store_error)?;
                    Ok(true)
                }

                async fn delivery(
                    &self,
                    id: DeliveryId,
                ) -> Result<Option<DeliveryRecord>, StoreError> {
                    let sql =
                        format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
                    let found = {
                        let mut reader = self.read.get().await?;
                        let found = sqlx::query(&sql)
                            .bind(DbId(id.0))
                            .fetch_optional(&mut *reader)
                            .await;
                        reader.vet(found)?
                    };
                    match found {
                        Some(row) => Ok(self.with_attempts(vec![delivery_of(&row)?]).await?.pop()),
                        None => Ok(None),
                    }
                }

                async fn deliveries(
                    &self,
                    filter: &DeliveryFilter,
                    page: PageRequest<DeliveryId>,
                ) -> Result<Vec<DeliveryRecord>, StoreError> {
                    let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE 1 = 1"
                    ));
                    if let Some(e) = filter.endpoint {
                        q.push(" AND endpoint_id = ").push_bind(DbId(e.0));
                    }
                    if let Some(e) = filter.event {
                        q.push(" AND event_id = ").push_bind(DbId(e));
                    }
                    if let Some(s) = filter.status {
                        q.push(" AND status = ").push_bind(s.as_str());
                    }
                    if let Some(after) = page.after {
                        q.push(" AND id > ").push_bind(DbId(after.0));
                    }
                    q.push(" ORDER BY id LIMIT ").push_bind(i64::from(page.limit));
                    let deliveries = {
                        let mut reader = self.read.get().await?;
                        let found = q.build().fetch_all(&mut *reader).await;
                        reader
                            .vet(found)?
                            .iter()
                            .map(delivery_of)
                            .collect::<Result<Vec<_>, _>>()?
                    };
                    self.with_attempts(deliveries).await
                }

                async fn retry_now(
                    &self,
                    id: DeliveryId,
                    now: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, \
                         updated_at = $2 WHERE id = $1",
                    )
                    .bind(DbId(id.0))
                    .bind(DbTime(now))
                    .execute(&self.write)
                    .await
                    .map_err(store_error)?;
                    Ok(done.rows_affected() == 1)
                }

                async fn recover(
                    &self,
                    endpoint: EndpointId,
                    since: OffsetDateTime,
                    now: OffsetDateTime,
                ) -> Result<u64, StoreError> {
                    let done = sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
                         updated_at = $3 WHERE endpoint_id = $1 AND status = 'failed' \
                         AND created_at >= $2",
                    )
                    .bind(DbId(endpoint.0))
                    .bind(DbTime(since))
                    .bind(DbTime(now))
                    .execute(&self.write)
                    .await
                    .map_err(store_error)?;
                    Ok(done.rows_affected())
                }

                async fn pending(&self) -> Result<Vec<PendingFigures>, StoreError> {
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query(PENDING).fetch_all(&mut *reader).await;
                    reader
                        .vet(found)?
                        .iter()
                        .map(|row| {
                            let endpoint: DbId = row.try_get(0).map_err(store_error)?;
                            let pending: i64 = row.try_get(1).map_err(store_error)?;
                            let oldest: DbTime = row.try_get(2).map_err(store_error)?;
                            Ok(PendingFigures {
                                endpoint: EndpointId(endpoint.0),
                                pending: u64::try_from(pending).unwrap_or(0),
                                oldest: oldest.0,
                            })
                        })
                        .collect()
                }
            }
        };
    };
}

webhooks!(sqlite, "");
webhooks!(postgres, " FOR UPDATE SKIP LOCKED");
