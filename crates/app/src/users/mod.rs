//! The users use cases: registration, login with rotating refresh tokens, logout, and
//! reading and changing users (self or admin), with the profile cache kept in step.

pub mod cache;
mod ports;
#[cfg(test)]
mod tests;

pub use ports::*;

use std::sync::{Arc, OnceLock};

use portside_domain::{Actor, Email, Role, User, UserId, UserName, check_password};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::AppError;
use crate::users::cache::{UserCache, UserProfile};
use portside_events::InboxMark;
use portside_kernel::{Clock, IdGenerator, Page, PageRequest, StoreError};

/// How many times an update retries after losing an optimistic-concurrency race.
const MAX_ATTEMPTS: usize = 5;

/// A registration request.
#[derive(Debug, Clone)]
pub struct Registration {
    pub email: Email,
    /// Plain password (checked against the policy, then hashed).
    pub password: String,
    pub name: UserName,
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub name: Option<UserName>,
    pub email: Option<Email>,
    /// New password.
    pub password: Option<String>,
    /// New role (admins only).
    pub role: Option<Role>,
}

/// What login and refresh return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque, single-use token for `POST /auth/refresh`.
    pub refresh_token: String,
}

/// The identity use cases over their ports.
pub struct Users {
    users: Arc<dyn UserRepository>,
    refresh: Arc<dyn RefreshTokens>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenService>,
    cache: UserCache,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    refresh_ttl: Duration,
    /// A hash to verify against when the email is unknown, so that both failures take as long.
    decoy: OnceLock<String>,
}

fn store(e: StoreError) -> AppError {
    e.into()
}

impl Users {
    /// Wires the use cases.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        users: Arc<dyn UserRepository>,
        refresh: Arc<dyn RefreshTokens>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenService>,
        cache: UserCache,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        refresh_ttl: Duration,
    ) -> Self {
        Users {
            users,
            refresh,
            hasher,
            tokens,
            cache,
            clock,
            ids,
            refresh_ttl,
            decoy: OnceLock::new(),
        }
    }

    /// Registers a customer.
    pub async fn register(&self, r: Registration) -> Result<UserProfile, AppError> {
        check_password(&r.password, &r.email).map_err(AppError::invalid("password"))?;
        self.create(r.email, r.name, &r.password, Role::Customer)
            .await
    }

    async fn create(
        &self,
        email: Email,
        name: UserName,
        password: &str,
        role: Role,
    ) -> Result<UserProfile, AppError> {
        let hash = self
            .hasher
            .hash(password)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let mut user = User::register(
            UserId(self.ids.new_id()),
            email,
            name,
            hash,
            role,
            self.clock.now(),
        );
        match self.users.insert_user(&mut user).await {
            Err(StoreError::Duplicate) => Err(AppError::Taken("email")),
            other => other.map_err(store),
        }?;
        Ok(UserProfile::from(&user))
    }

    /// Makes (or promotes) an administrator; for the command line, not the API.
    pub async fn create_admin(
        &self,
        email: Email,
        password: &str,
        name: UserName,
    ) -> Result<UserProfile, AppError> {
        check_password(password, &email).map_err(AppError::invalid("password"))?;
        match self.users.user_by_email(&email).await? {
            None => self.create(email, name, password, Role::Admin).await,
            Some(existing) => {
                let hash = self
                    .hasher
                    .hash(password)
                    .await
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                let mut user = existing;
                user.update(None, None, Some(hash), Some(Role::Admin), self.clock.now());
                self.users.update_user(&mut user, None).await?;
                self.cache.invalidate(user.id()).await;
                Ok(UserProfile::from(&user))
            }
        }
    }

    /// Checks credentials and opens a session. Unknown email and wrong password fail the same
    /// way and take the same time (a hash is verified either way).
    pub async fn login(&self, email: &str, password: &str) -> Result<Tokens, AppError> {
        let user = match Email::parse(email) {
            Ok(e) => self.users.user_by_email(&e).await?,
            Err(_) => None,
        };
        let hash = match &user {
            Some(u) => u.state().password_hash.clone(),
            None => self.decoy_hash().await?,
        };
        let matches = self.hasher.verify(password, &hash).await;
        match user {
            Some(u) if matches => self.open(actor_of(&u), Uuid::now_v7()).await,
            _ => Err(AppError::Unauthorized("invalid_credentials")),
        }
    }

    async fn decoy_hash(&self) -> Result<String, AppError> {
        if let Some(h) = self.decoy.get() {
            return Ok(h.clone());
        }
        let h = self
            .hasher
            .hash("decoy password that never matches")
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(self.decoy.get_or_init(|| h).clone())
    }

    /// Issues an access token and a refresh token of `family`.
    async fn open(&self, actor: Actor, family_id: Uuid) -> Result<Tokens, AppError> {
        let now = self.clock.now();
        let access = self
            .tokens
            .issue(&actor, now)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let refresh_token = self.tokens.new_refresh_token();
        self.refresh
            .issue(&RefreshToken {
                id: self.ids.new_id(),
                family_id,
                user_id: actor.user_id,
                digest: self.tokens.digest(&refresh_token),
                created_at: now,
                expires_at: now + self.refresh_ttl,
            })
            .await?;
        Ok(Tokens {
            access_token: access.token,
            expires_in: access.expires_in,
            refresh_token,
        })
    }

    /// Trades a refresh token for a new pair. A token used twice revokes its whole family:
    /// one of the two callers is not who they claim to be.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AppError> {
        let now = self.clock.now();
        match self
            .refresh
            .redeem(&self.tokens.digest(refresh_token), now)
            .await?
        {
            Redeemed::Fresh(t) => {
                let user = self
                    .users
                    .user(t.user_id)
                    .await?
                    .ok_or(AppError::Unauthorized("refresh_token_invalid"))?;
                self.open(actor_of(&user), t.family_id).await
            }
            Redeemed::Reused(t) => {
                tracing::warn!(user = %t.user_id, family = %t.family_id, "refresh token reused; revoking its family");
                self.refresh.revoke_family(t.family_id, now).await?;
                Err(AppError::Unauthorized("refresh_token_reused"))
            }
            Redeemed::Unknown => Err(AppError::Unauthorized("refresh_token_invalid")),
        }
    }

    /// Ends sessions: the family of `refresh_token` when given, else every session of the actor.
    pub async fn logout(&self, actor: &Actor, refresh_token: Option<&str>) -> Result<(), AppError> {
        let now = self.clock.now();
        match refresh_token {
            Some(t) => {
                self.refresh
                    .revoke_family_of(&self.tokens.digest(t), actor.user_id, now)
                    .await?;
            }
            None => self.refresh.revoke_user(actor.user_id, now).await?,
        }
        Ok(())
    }

    /// Who an access token speaks for.
    pub fn authenticate(&self, access_token: &str) -> Result<Actor, AppError> {
        self.tokens.verify(access_token).map_err(|e| match e {
            crate::users::TokenError::Expired => AppError::Unauthorized("token_expired"),
            crate::users::TokenError::Invalid => AppError::Unauthorized("token_invalid"),
        })
    }

    /// A user's profile, through the cache; others' profiles are "not found" to customers.
    pub async fn get(&self, actor: &Actor, id: UserId) -> Result<UserProfile, AppError> {
        if !actor.may_access(id) {
            return Err(AppError::NotFound("user"));
        }
        if let Some(profile) = self.cache.get(id).await {
            return Ok(profile);
        }
        let user = self
            .users
            .user(id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        let profile = UserProfile::from(&user);
        self.cache.put(&profile).await;
        Ok(profile)
    }

    /// Changes a user (self or admin; roles by admins only). A new password ends all sessions.
    pub async fn update(
        &self,
        actor: &Actor,
        id: UserId,
        changes: UserChanges,
    ) -> Result<UserProfile, AppError> {
        if !actor.may_access(id) {
            return Err(AppError::NotFound("user"));
        }
        if changes.role.is_some() && !actor.is_admin() {
            return Err(AppError::Forbidden("only administrators change roles"));
        }
        let UserChanges {
            name,
            email,
            password,
            role,
        } = changes;
        let hash = match &password {
            None => None,
            Some(p) => {
                let for_policy = match &email {
                    Some(e) => e.clone(),
                    None => self
                        .users
                        .user(id)
                        .await?
                        .ok_or(AppError::NotFound("user"))?
                        .state()
                        .email
                        .clone(),
                };
                check_password(p, &for_policy).map_err(AppError::invalid("password"))?;
                Some(
                    self.hasher
                        .hash(p)
                        .await
                        .map_err(|e| AppError::Internal(e.to_string()))?,
                )
            }
        };
        for _ in 0..MAX_ATTEMPTS {
            let mut user = self
                .users
                .user(id)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            user.update(
                name.clone(),
                email.clone(),
                hash.clone(),
                role,
                self.clock.now(),
            );
            match self.users.update_user(&mut user, None).await {
                Ok(()) => {
                    self.cache.invalidate(id).await;
                    if hash.is_some() {
                        self.refresh.revoke_user(id, self.clock.now()).await?;
                    }
                    return Ok(UserProfile::from(&user));
                }
                Err(StoreError::Conflict) => continue,
                Err(StoreError::Duplicate) => return Err(AppError::Taken("email")),
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }

    /// Applies a membership change to a user and saves it with the inbox mark, so one event
    /// changes it at most once; `change` answers whether it changed anything.
    async fn change_membership(
        &self,
        id: UserId,
        mark: Option<&InboxMark>,
        change: impl Fn(&mut User, OffsetDateTime) -> bool,
    ) -> Result<bool, AppError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut user = self
                .users
                .user(id)
                .await?
                .ok_or(AppError::NotFound("user"))?;
            if !change(&mut user, self.clock.now()) {
                return Ok(false);
            }
            match self.users.update_user(&mut user, mark).await {
                Ok(()) => {
                    self.cache.invalidate(id).await;
                    return Ok(true);
                }
                Err(StoreError::Conflict) => continue,
                Err(StoreError::AlreadyProcessed) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }

    /// A membership period paid: premium until a period from now, or a period more from the
    /// current end.
    pub async fn add_membership_period(
        &self,
        id: UserId,
        period: Duration,
        mark: Option<&InboxMark>,
    ) -> Result<bool, AppError> {
        self.change_membership(id, mark, |u, now| {
            u.add_membership_period(period, now);
            true
        })
        .await
    }

    /// The payment of a membership period was refunded in full: the period is taken back, and
    /// the membership ends when nothing of it remains.
    pub async fn take_back_membership_period(
        &self,
        id: UserId,
        period: Duration,
        mark: Option<&InboxMark>,
    ) -> Result<bool, AppError> {
        self.change_membership(id, mark, |u, now| {
            u.take_back_membership_period(period, now)
        })
        .await
    }

    /// Ends the premium memberships whose end has passed (`user.membership_ended`, cause
    /// `expired`); how many ended.
    pub async fn expire_memberships(&self) -> Result<usize, AppError> {
        let mut ended = 0;
        for id in self
            .users
            .memberships_ended_by(self.clock.now(), 200)
            .await?
        {
            if self
                .change_membership(id, None, |u, now| u.expire_membership(now))
                .await?
            {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Deletes a user (self or admin) with their sessions and messages.
    pub async fn delete(&self, actor: &Actor, id: UserId) -> Result<(), AppError> {
        if !actor.may_access(id) {
            return Err(AppError::NotFound("user"));
        }
        let mut user = self
            .users
            .user(id)
            .await?
            .ok_or(AppError::NotFound("user"))?;
        user.delete(self.clock.now());
        self.users.delete_user(&mut user).await?;
        self.cache.invalidate(id).await;
        Ok(())
    }

    /// All users, for administrators.
    pub async fn list(
        &self,
        actor: &Actor,
        page: PageRequest<UserId>,
    ) -> Result<Page<UserProfile, UserId>, AppError> {
        if !actor.is_admin() {
            return Err(AppError::Forbidden("only administrators list users"));
        }
        let found = self.users.users(page.probe()).await?;
        Ok(page.page(found.iter().map(UserProfile::from).collect(), |u| u.id))
    }
}

fn actor_of(user: &User) -> Actor {
    Actor {
        user_id: user.id(),
        role: user.state().role,
    }
}
