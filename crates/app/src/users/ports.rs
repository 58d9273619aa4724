//! Ports of the users context: users, refresh tokens, password hashing and access tokens.

use async_trait::async_trait;
use portside_domain::{Actor, Email, User, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use portside_events::InboxMark;
use portside_kernel::{PageRequest, StoreError};

/// Users and their outbox events; each write is one DB transaction.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Inserts a new user; `Duplicate` when the email is taken.
    async fn insert_user(&self, user: &mut User) -> Result<(), StoreError>;
    /// Saves changes, version-checked (`Conflict`); `Duplicate` when a new email is taken.
    /// With `mark`, records it in the inbox in the same transaction (`AlreadyProcessed` if it
    /// is there already, and then nothing is written).
    async fn update_user(
        &self,
        user: &mut User,
        mark: Option<&InboxMark>,
    ) -> Result<(), StoreError>;
    /// Removes the user with their refresh tokens and messages, writing `user.deleted`.
    async fn delete_user(&self, user: &mut User) -> Result<(), StoreError>;
    /// One user.
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// The user with this (normalized) email.
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
    /// A page of users.
    async fn users(&self, page: PageRequest<UserId>) -> Result<Vec<User>, StoreError>;
    /// Users whose premium membership ended by `now` (its end has passed), oldest end first.
    async fn memberships_ended_by(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError>;
}

/// A refresh token as stored: only its digest, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: Uuid,
    /// Tokens rotated from one login share a family; reuse of a spent one revokes it.
    pub family_id: Uuid,
    /// Whose.
    pub user_id: UserId,
    /// SHA-256 of the token.
    pub digest: String,
    /// When issued.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// What redeeming a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// It was live and is now spent: issue the next one in its family.
    Fresh(RefreshToken),
    /// It was spent or revoked before: someone replays it.
    Reused(RefreshToken),
    /// No such token.
    Unknown,
}

/// Refresh tokens, rotated on every use.
#[async_trait]
pub trait RefreshTokens: Send + Sync {
    /// Stores a new token.
    async fn issue(&self, token: &RefreshToken) -> Result<(), StoreError>;
    /// Atomically spends a live, unexpired token.
    async fn redeem(&self, digest: &str, now: OffsetDateTime) -> Result<Redeemed, StoreError>;
    /// Revokes every token of a family.
    async fn revoke_family(&self, family_id: Uuid, now: OffsetDateTime) -> Result<(), StoreError>;
    /// Revokes the family of the token with this digest, if the token is the user's.
    async fn revoke_family_of(
        &self,
        digest: &str,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Revokes every token of a user.
    async fn revoke_user(&self, user_id: UserId, now: OffsetDateTime) -> Result<(), StoreError>;
}

/// Why a password could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// Password hashing (argon2id in production), off the async runtime.
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A PHC string of the password.
    async fn hash(&self, password: &str) -> Result<String, HashError>;
    /// True when the password matches; false for a wrong password or a malformed hash.
    async fn verify(&self, password: &str, hash: &str) -> bool;
}

/// A signed access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("the access token has expired")]
    Expired,
    /// Bad signature, algorithm, claims or format.
    #[error("the access token is invalid")]
    Invalid,
}

/// Access tokens (HS256 JWT) and the randomness and digests of refresh tokens.
pub trait TokenService: Send + Sync {
    /// Signs an access token for the actor.
    fn issue(&self, actor: &Actor, now: OffsetDateTime) -> Result<AccessToken, TokenError>;
    /// Verifies an access token and returns who it speaks for.
    fn verify(&self, token: &str) -> Result<Actor, TokenError>;
    /// A new unguessable refresh token (256 random bits, URL-safe).
    fn new_refresh_token(&self) -> String;
    /// The digest under which a refresh token is stored.
    fn digest(&self, refresh_token: &str) -> String;
}
