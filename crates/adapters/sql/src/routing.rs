//! Routing in SQL: the one row of rules administrators set, replaced only at the version the
//! writer read. Read from the primary, so that a change applies to the next payment.

/// The first write inserts the row; a concurrent first write finds it there (no row returned).
const INSERT_RULES: &str = "INSERT INTO routing_rules (id, version, rules, updated_at, updated_by) \
    VALUES (1, 1, $1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING version";

const UPDATE_RULES: &str = "UPDATE routing_rules SET version = version + 1, rules = $1, \
    updated_at = $2, updated_by = $3 WHERE id = 1 AND version = $4 RETURNING version";

/// Implements the routing context's store port for the engine's `SqlStore`.
macro_rules! routing {
    ($engine:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_app::routing::{RoutingStore, StoredRules};
            use portside_domain::routing::RouteRule;
            use portside_kernel::StoreError;
            use sqlx::Row;
            use sqlx::types::Json;
            use time::OffsetDateTime;

            use crate::error::store_error;
            use crate::routing::*;
            use crate::store::SqlStore;
            use crate::store::$engine::Db;
            use crate::types::DbTime;

            #[async_trait]
            impl RoutingStore for SqlStore<Db> {
                async fn rules(&self) -> Result<StoredRules, StoreError> {
                    let row = sqlx::query(
                        "SELECT version, rules, updated_at, updated_by FROM routing_rules WHERE id = 1",
                    )
                    .fetch_optional(&self.write)
                    .await
                    .map_err(store_error)?;
                    let Some(row) = row else {
                        return Ok(StoredRules::default());
                    };
                    let rules: Option<Json<Vec<RouteRule>>> =
                        row.try_get(1).map_err(store_error)?;
                    let at: DbTime = row.try_get(2).map_err(store_error)?;
                    Ok(StoredRules {
                        version: row.try_get(0).map_err(store_error)?,
                        rules: rules.map(|r| r.0),
                        updated_at: Some(at.0),
                        updated_by: row.try_get(3).map_err(store_error)?,
                    })
                }

                async fn replace(
                    &self,
                    expected: i64,
                    rules: Option<&[RouteRule]>,
                    by: &str,
                    at: OffsetDateTime,
                ) -> Result<i64, StoreError> {
                    let written = if expected == 0 {
                        sqlx::query(INSERT_RULES)
                            .bind(rules.map(Json))
                            .bind(DbTime(at))
                            .bind(by)
                            .fetch_optional(&self.write)
                            .await
                    } else {
                        sqlx::query(UPDATE_RULES)
                            .bind(rules.map(Json))
                            .bind(DbTime(at))
                            .bind(by)
                            .bind(expected)
                            .fetch_optional(&self.write)
                            .await
                    }
                    .map_err(store_error)?;
                    match written {
                        Some(row) => row.try_get(0).map_err(store_error),
                        None => Err(StoreError::Conflict),
                    }
                }
            }
        };
    };
}

routing!(sqlite);
routing!(postgres);
