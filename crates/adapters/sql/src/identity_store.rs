//! Users, refresh tokens and messages in SQL. Expanded inside `impl_store!`, so it shares that
//! block's `Db`, `Tx`, `write_events` and imports; `$strpos` names the engine's substring
//! function (`strpos` in PostgreSQL, `instr` in SQLite; both take haystack, needle).

pub(crate) const USER_COLUMNS: &str = "id, email, name, password_hash, role, membership, version, event_sequence, created_at, updated_at";

pub(crate) const REFRESH_COLUMNS: &str =
    "id, family_id, user_id, digest, created_at, expires_at, used_at, revoked_at";

pub(crate) const MESSAGE_COLUMNS: &str = "id, owner_id, body, version, created_at, updated_at";

macro_rules! identity_impls {
    ($strpos:literal) => {
        use portside_app::messages::{MessageFilter, MessageOrder, MessagePage, MessageRepository};
        use portside_app::users::{Redeemed, RefreshToken, RefreshTokens, UserPage, UserRepository};
        use portside_domain::{Email, Message, MessageId, User, UserId};

        use crate::identity_store::{MESSAGE_COLUMNS, REFRESH_COLUMNS, USER_COLUMNS};
        use crate::rows::{MessageRow, RefreshRow, UserRow};

        async fn save_user_events(mut tx: Tx, user: &mut User) -> Result<(), StoreError> {
            write_events(&mut tx, user.id().to_string(), user.pending_events()).await?;
            tx.commit().await.map_err(store_error)?;
            user.mark_saved();
            Ok(())
        }

        fn user_of(row: UserRow) -> Result<User, StoreError> {
            row.try_into().map(User::restore)
        }

        #[async_trait]
        impl UserRepository for SqlStore<Db> {
            async fn insert_user(&self, user: &mut User) -> Result<(), StoreError> {
                let s = user.state();
                let mut tx = self.write.begin().await.map_err(store_error)?;
                sqlx::query(
                    "INSERT INTO users (id, email, name, password_hash, role, membership, version, \
                     event_sequence, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(DbId(s.id.0))
                .bind(s.email.as_str())
                .bind(s.name.as_str())
                .bind(&s.password_hash)
                .bind(s.role.as_str())
                .bind(s.membership.as_str())
                .bind(s.version)
                .bind(s.event_sequence)
                .bind(DbTime(s.created_at))
                .bind(DbTime(s.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                save_user_events(tx, user).await
            }

            async fn update_user(&self, user: &mut User, mark: Option<&InboxMark>) -> Result<(), StoreError> {
                let s = user.state();
                let mut tx = self.write.begin().await.map_err(store_error)?;
                if let Some(m) = mark
                    && !insert_mark(&mut tx, m).await?
                {
                    return Err(StoreError::AlreadyProcessed);
                }
                let done = sqlx::query(
                    "UPDATE users SET email = $2, name = $3, password_hash = $4, role = $5, \
                     membership = $6, version = $7, event_sequence = $8, updated_at = $9 \
                     WHERE id = $1 AND version = $10",
                )
                .bind(DbId(s.id.0))
                .bind(s.email.as_str())
                .bind(s.name.as_str())
                .bind(&s.password_hash)
                .bind(s.role.as_str())
                .bind(s.membership.as_str())
                .bind(s.version)
                .bind(s.event_sequence)
                .bind(DbTime(s.updated_at))
                .bind(user.loaded_version())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict);
                }
                save_user_events(tx, user).await
            }

            async fn delete_user(&self, user: &mut User) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(store_error)?;
                let done = sqlx::query("DELETE FROM users WHERE id = $1 AND version = $2")
                    .bind(DbId(user.id().0))
                    .bind(user.loaded_version())
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::Conflict);
                }
                save_user_events(tx, user).await
            }

            async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
                let mut reader = self.read.get().await?;
                let found = sqlx::query_as(&sql)
                    .bind(DbId(id.0))
                    .fetch_optional(&mut *reader).await;
                let row: Option<UserRow> = reader.vet(found)?;
                row.map(user_of).transpose()
            }

            async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
                let mut reader = self.read.get().await?;
                let found = sqlx::query_as(&sql)
                    .bind(email.as_str())
                    .fetch_optional(&mut *reader).await;
                let row: Option<UserRow> = reader.vet(found)?;
                row.map(user_of).transpose()
            }

            async fn users(&self, page: UserPage) -> Result<Vec<User>, StoreError> {
                let mut q = sqlx::QueryBuilder::<Db>::new(format!("SELECT {USER_COLUMNS} FROM users"));
                if let Some(after) = page.after {
                    q.push(" WHERE id > ").push_bind(DbId(after.0));
                }
                q.push(" ORDER BY id LIMIT ").push_bind(i64::from(page.limit));
                let mut reader = self.read.get().await?;
                let found = q.build_query_as().fetch_all(&mut *reader).await;
                let rows: Vec<UserRow> = reader.vet(found)?;
                rows.into_iter().map(user_of).collect()
            }
        }

        #[async_trait]
        impl RefreshTokens for SqlStore<Db> {
            async fn issue(&self, t: &RefreshToken) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, family_id, user_id, digest, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(DbId(t.id))
                .bind(DbId(t.family_id))
                .bind(DbId(t.user_id.0))
                .bind(&t.digest)
                .bind(DbTime(t.created_at))
                .bind(DbTime(t.expires_at))
                .execute(&self.write)
                .await
                .map_err(store_error)?;
                Ok(())
            }

            async fn redeem(&self, digest: &str, now: OffsetDateTime) -> Result<Redeemed, StoreError> {
                let spend = format!(
                    "UPDATE refresh_tokens SET used_at = $2 WHERE digest = $1 AND used_at IS NULL \
                     AND revoked_at IS NULL AND expires_at > $2 RETURNING {REFRESH_COLUMNS}"
                );
                let spent: Option<RefreshRow> = sqlx::query_as(&spend)
                    .bind(digest)
                    .bind(DbTime(now))
                    .fetch_optional(&self.write)
                    .await
                    .map_err(store_error)?;
                if let Some(row) = spent {
                    return Ok(Redeemed::Fresh((&row).into()));
                }
                let find = format!("SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE digest = $1");
                let known: Option<RefreshRow> = sqlx::query_as(&find)
                    .bind(digest)
                    .fetch_optional(&self.write)
                    .await
                    .map_err(store_error)?;
                Ok(match known {
                    Some(row) if row.used_at.is_some() || row.revoked_at.is_some() => Redeemed::Reused((&row).into()),
                    _ => Redeemed::Unknown,
                })
            }

            async fn revoke_family(&self, family_id: Uuid, now: OffsetDateTime) -> Result<(), StoreError> {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
                    .bind(DbId(family_id))
                    .bind(DbTime(now))
                    .execute(&self.write)
                    .await
                    .map_err(store_error)?;
                Ok(())
            }

            async fn revoke_family_of(&self, digest: &str, user_id: UserId, now: OffsetDateTime) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $3 WHERE revoked_at IS NULL AND family_id = \
                     (SELECT family_id FROM refresh_tokens WHERE digest = $1 AND user_id = $2)",
                )
                .bind(digest)
                .bind(DbId(user_id.0))
                .bind(DbTime(now))
                .execute(&self.write)
                .await
                .map_err(store_error)?;
                Ok(())
            }

            async fn revoke_user(&self, user_id: UserId, now: OffsetDateTime) -> Result<(), StoreError> {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(DbId(user_id.0))
                    .bind(DbTime(now))
                    .execute(&self.write)
                    .await
                    .map_err(store_error)?;
                Ok(())
            }
        }

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
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::Conflict) }
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

            async fn messages(&self, filter: &MessageFilter, page: MessagePage) -> Result<Vec<Message>, StoreError> {
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
                let (cmp, order) = match page.order {
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
}

pub(crate) use identity_impls;
