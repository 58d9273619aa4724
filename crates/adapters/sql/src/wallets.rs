//! Wallets in SQL: transfers, each written with its posted ledger transaction and its event in
//! one database transaction. The idempotency key is a unique column pair of the transfer, so
//! the second of two requests with one key waits for the first and then finds its transfer.

const TRANSFER_COLUMNS: &str = "id, sender, recipient, currency, amount_minor, description, \
    created_at";

/// Inserts a transfer unless its key made one before (then no row is returned).
const INSERT_TRANSFER: &str = "INSERT INTO transfers (id, sender, recipient, currency, \
    amount_minor, description, idempotency_scope, idempotency_key, fingerprint, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING RETURNING id";

/// Implements the wallets context's store port for the engine's `SqlStore`.
macro_rules! wallets {
    ($engine:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_app::payments::idempotency::IdempotentRequest;
            use portside_app::wallets::{Recorded, TransferStore};
            use portside_domain::{
                Currency, CustomerId, Money, Transfer, TransferId, TransferState,
            };
            use portside_kernel::StoreError;
            use sqlx::Row;

            use crate::error::store_error;
            use crate::ledger::$engine::post;
            use crate::store::SqlStore;
            use crate::store::$engine::{Db, begin, finish};
            use crate::types::{DbId, DbTime};
            use crate::wallets::*;

            fn corrupt(detail: impl std::fmt::Display) -> StoreError {
                StoreError::Other(format!("stored transfer is invalid: {detail}"))
            }

            fn transfer_of(row: &<Db as sqlx::Database>::Row) -> Result<Transfer, StoreError> {
                let text = |i: usize| row.try_get::<String, _>(i).map_err(store_error);
                let id: DbId = row.try_get(0).map_err(store_error)?;
                let currency = Currency::from_code(&text(3)?).map_err(corrupt)?;
                let at: DbTime = row.try_get(6).map_err(store_error)?;
                Ok(Transfer::restore(TransferState {
                    id: TransferId(id.0),
                    sender: CustomerId::parse(&text(1)?).map_err(corrupt)?,
                    recipient: CustomerId::parse(&text(2)?).map_err(corrupt)?,
                    amount: Money::from_minor(row.try_get(4).map_err(store_error)?, currency),
                    description: row.try_get(5).map_err(store_error)?,
                    created_at: at.0,
                    version: 1,
                }))
            }

            #[async_trait]
            impl TransferStore for SqlStore<Db> {
                async fn record_transfer(
                    &self,
                    transfer: &mut Transfer,
                    key: Option<&IdempotentRequest>,
                ) -> Result<Recorded, StoreError> {
                    let posting = transfer.posting().map_err(corrupt)?;
                    let s = transfer.state();
                    let mut tx = begin(&self.write, None).await?;
                    let inserted = sqlx::query(INSERT_TRANSFER)
                        .bind(DbId(s.id.0))
                        .bind(s.sender.as_str())
                        .bind(s.recipient.as_str())
                        .bind(s.amount.currency().code())
                        .bind(s.amount.minor())
                        .bind(&s.description)
                        .bind(key.map(|k| k.scope.as_str()))
                        .bind(key.map(|k| k.key.as_str()))
                        .bind(key.map(|k| k.fingerprint.as_str()))
                        .bind(DbTime(s.created_at))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(store_error)?;
                    if inserted.is_none() {
                        drop(tx);
                        let Some(k) = key else {
                            return Err(StoreError::Other(
                                "a transfer without a key conflicted".into(),
                            ));
                        };
                        let sql = format!(
                            "SELECT {TRANSFER_COLUMNS}, fingerprint FROM transfers \
                             WHERE idempotency_scope = $1 AND idempotency_key = $2"
                        );
                        let row = sqlx::query(&sql)
                            .bind(&k.scope)
                            .bind(k.key.as_str())
                            .fetch_one(&self.write)
                            .await
                            .map_err(store_error)?;
                        return Ok(Recorded::Existing {
                            transfer: Box::new(transfer_of(&row)?),
                            fingerprint: row.try_get(7).map_err(store_error)?,
                        });
                    }
                    post(&mut tx, &posting).await?;
                    finish(tx, transfer).await?;
                    Ok(Recorded::New)
                }

                async fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError> {
                    let sql = format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = $1");
                    let mut reader = self.read.get().await?;
                    let found = sqlx::query(&sql)
                        .bind(DbId(id.0))
                        .fetch_optional(&mut *reader)
                        .await;
                    reader.vet(found)?.as_ref().map(transfer_of).transpose()
                }
            }
        };
    };
}

wallets!(sqlite);
wallets!(postgres);
