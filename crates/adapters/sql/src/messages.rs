//! Messages in SQL, with case-insensitive substring search and keyset pages.

pub(crate) const MESSAGE_COLUMNS: &str = "id, owner_id, body, version, created_at, updated_at";

/// Implements the message store for the engine's `SqlStore`; `$strpos` names the engine's
/// substring function (`strpos` in PostgreSQL, `instr` in SQLite; both take haystack, needle).
macro_rules! messages {
    ($engine:ident, $strpos:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_app::messages::{MessageFilter, MessageOrder, MessageRepository};
            use portside_domain::{Message, MessageId};
            use time::OffsetDateTime;
            use portside_kernel::{PageRequest, StoreError};

            use crate::error::store_error;
            use crate::messages::MESSAGE_COLUMNS;
            use crate::rows::MessageRow;
            use crate::store::$engine::Db;
            use crate::store::{SqlStore, version_checked};
            use crate::types::{DbId, DbTime};

        #[async_trait]
        impl MessageRepository for SqlStore<Db> {
            async fn insert_message(&self, m: &Message) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO messages (id, owner_id, body, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(DbId(m.id.0))
                .bind(DbId(m.owner_id.0))
                .bind(m.body.as_str())
                .bind(m.version)
                .bind(DbTime(m.created_at))
                .bind(DbTime(m.updated_at))
                .execute(&self.write)
                .await
                .map_err(store_error)?;
                Ok(())
            }

            async fn update_message(&self, m: &Message) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE messages SET body = $2, version = $3, updated_at = $4 WHERE id = $1 AND version = $5",
                )
                .bind(DbId(m.id.0))
                .bind(m.body.as_str())
                .bind(m.version)
                .bind(DbTime(m.updated_at))
                .bind(m.version - 1)
                .execute(&self.write)
                .await
                .map_err(store_error)?;
                version_checked(done.rows_affected())
            }

            async fn delete_message(&self, id: MessageId) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM messages WHERE id = $1")
                    .bind(DbId(id.0))
                    .execute(&self.write)
                    .await
                    .map_err(store_error)?;
                Ok(done.rows_affected() == 1)
            }

            async fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
                let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
                let mut reader = self.read.get().await?;
                let found = sqlx::query_as(&sql)
                    .bind(DbId(id.0))
                    .fetch_optional(&mut *reader).await;
                let row: Option<MessageRow> = reader.vet(found)?;
                row.map(TryInto::try_into).transpose()
            }

            async fn messages(&self, filter: &MessageFilter, page: PageRequest<(OffsetDateTime, MessageId)>) -> Result<Vec<Message>, StoreError> {
                let mut q = sqlx::QueryBuilder::<Db>::new(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE 1 = 1"));
                if let Some(owner) = filter.owner_id {
                    q.push(" AND owner_id = ").push_bind(DbId(owner.0));
                }
                if let Some(text) = &filter.text {
                    q.push(concat!(" AND ", $strpos, "(lower(body), lower("))
                        .push_bind(text.clone())
                        .push(")) > 0");
                }
                if let Some(after) = filter.created_after {
                    q.push(" AND created_at > ").push_bind(DbTime(after));
                }
                if let Some(before) = filter.created_before {
                    q.push(" AND created_at < ").push_bind(DbTime(before));
                }
                let (cmp, order) = match filter.order {
                    MessageOrder::Oldest => (">", "ASC"),
                    MessageOrder::Newest => ("<", "DESC"),
                };
                if let Some((at, id)) = page.after {
                    q.push(format!(" AND (created_at {cmp} "))
                        .push_bind(DbTime(at))
                        .push(" OR (created_at = ")
                        .push_bind(DbTime(at))
                        .push(format!(" AND id {cmp} "))
                        .push_bind(DbId(id.0))
                        .push("))");
                }
                q.push(format!(" ORDER BY created_at {order}, id {order} LIMIT "))
                    .push_bind(i64::from(page.limit));
                let mut reader = self.read.get().await?;
                let found = q.build_query_as().fetch_all(&mut *reader).await;
                let rows: Vec<MessageRow> = reader.vet(found)?;
                rows.into_iter().map(TryInto::try_into).collect()
            }
        }
        };
    };
}

messages!(sqlite, "instr");
messages!(postgres, "strpos");
