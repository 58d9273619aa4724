//! Users and their refresh tokens in SQL.

pub(crate) const USER_COLUMNS: &str = "id, email, name, password_hash, role, membership, version, event_sequence, created_at, updated_at, membership_until";

pub(crate) const REFRESH_COLUMNS: &str =
    "id, family_id, user_id, digest, created_at, expires_at, used_at, revoked_at";

/// Implements the users context's store ports for the engine's `SqlStore`.
macro_rules! users {
    ($engine:ident) => {
        const _: () = {
            use async_trait::async_trait;
            use portside_app::users::{Redeemed, RefreshToken, RefreshTokens, UserRepository};
            use portside_domain::{Aggregate, Email, User, UserId};
            use portside_events::InboxMark;
            use portside_kernel::{PageRequest, StoreError};
            use time::OffsetDateTime;
            use uuid::Uuid;

            use crate::error::store_error;
            use crate::rows::{RefreshRow, UserRow};
            use crate::store::$engine::{Db, begin, finish};
            use crate::store::{SqlStore, version_checked};
            use crate::types::{DbId, DbTime};
            use crate::users::{REFRESH_COLUMNS, USER_COLUMNS};

        fn user_of(row: UserRow) -> Result<User, StoreError> {
            row.try_into().map(User::restore)
        }

        #[async_trait]
        impl UserRepository for SqlStore<Db> {
            async fn insert_user(&self, user: &mut User) -> Result<(), StoreError> {
                let s = user.state();
                let mut tx = begin(&self.write, None).await?;
                sqlx::query(
                    "INSERT INTO users (id, email, name, password_hash, role, membership, version, \
                     event_sequence, created_at, updated_at, membership_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
                .bind(s.membership_until.map(DbTime))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                finish(tx, user).await
            }

            async fn update_user(&self, user: &mut User, mark: Option<&InboxMark>) -> Result<(), StoreError> {
                let s = user.state();
                let mut tx = begin(&self.write, mark).await?;
                let done = sqlx::query(
                    "UPDATE users SET email = $2, name = $3, password_hash = $4, role = $5, \
                     membership = $6, version = $7, event_sequence = $8, updated_at = $9, \
                     membership_until = $11 WHERE id = $1 AND version = $10",
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
                .bind(s.membership_until.map(DbTime))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                version_checked(done.rows_affected())?;
                finish(tx, user).await
            }

            async fn delete_user(&self, user: &mut User) -> Result<(), StoreError> {
                let mut tx = begin(&self.write, None).await?;
                let done = sqlx::query("DELETE FROM users WHERE id = $1 AND version = $2")
                    .bind(DbId(user.id().0))
                    .bind(user.loaded_version())
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
                version_checked(done.rows_affected())?;
                finish(tx, user).await
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

            async fn users(&self, page: PageRequest<UserId>) -> Result<Vec<User>, StoreError> {
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

            async fn memberships_ended_by(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<UserId>, StoreError> {
                let mut reader = self.read.get().await?;
                let found = sqlx::query_as(
                    "SELECT id FROM users WHERE membership_until IS NOT NULL AND membership_until <= $1 \
                     ORDER BY membership_until LIMIT $2",
                )
                .bind(DbTime(now))
                .bind(i64::from(limit))
                .fetch_all(&mut *reader)
                .await;
                let rows: Vec<(DbId,)> = reader.vet(found)?;
                Ok(rows.into_iter().map(|(id,)| UserId(id.0)).collect())
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
        };
    };
}

users!(sqlite);
users!(postgres);
