//! Read-through caching of user profiles. The cache is an optimization only: every cache
//! failure is logged and counted and the caller falls back to the store.

use std::sync::Arc;
use std::time::Duration;

use portside_domain::{Membership, Role, User, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use portside_kernel::Cache;

/// What clients see of a user (never the password hash); also what the cache holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub id: UserId,
    pub email: String,
    /// Display name.
    pub name: String,
    /// Customer or admin.
    pub role: Role,
    /// Free or premium.
    pub membership: Membership,
    /// When the premium membership ends, unless renewed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub membership_until: Option<OffsetDateTime>,
    /// When registered.
    pub created_at: OffsetDateTime,
    /// When last changed.
    pub updated_at: OffsetDateTime,
}

impl From<&User> for UserProfile {
    fn from(u: &User) -> Self {
        let s = u.state();
        UserProfile {
            id: s.id,
            email: s.email.as_str().to_owned(),
            name: s.name.as_str().to_owned(),
            role: s.role,
            membership: s.membership,
            membership_until: s.membership_until,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// User profiles in a `Cache`, under `user:v1:<id>`.
#[derive(Clone)]
pub struct UserCache {
    cache: Arc<dyn Cache>,
    ttl: Duration,
}

fn key(id: UserId) -> String {
    format!("user:v1:{id}")
}

impl UserCache {
    /// Profiles live `ttl` at most (a bound on staleness should an invalidation be lost).
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        UserCache { cache, ttl }
    }

    /// The cached profile; a miss on any cache failure.
    pub async fn get(&self, id: UserId) -> Option<UserProfile> {
        match self.cache.get(&key(id)).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(profile) => {
                    metrics::counter!("portside_cache_requests_total", "result" => "hit")
                        .increment(1);
                    Some(profile)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable cache entry; using the store");
                    metrics::counter!("portside_cache_requests_total", "result" => "error")
                        .increment(1);
                    None
                }
            },
            Ok(None) => {
                metrics::counter!("portside_cache_requests_total", "result" => "miss").increment(1);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache read failed; using the store");
                metrics::counter!("portside_cache_requests_total", "result" => "error")
                    .increment(1);
                None
            }
        }
    }

    /// Stores a profile; failures are logged and counted only.
    pub async fn put(&self, profile: &UserProfile) {
        let Ok(bytes) = serde_json::to_vec(profile) else {
            return;
        };
        if let Err(e) = self.cache.set(&key(profile.id), &bytes, self.ttl).await {
            tracing::warn!(error = %e, "cache write failed");
            metrics::counter!("portside_cache_errors_total", "op" => "set").increment(1);
        }
    }

    /// Drops a profile after a change; a failure leaves a stale entry for at most the TTL.
    pub async fn invalidate(&self, id: UserId) {
        if let Err(e) = self.cache.delete(&key(id)).await {
            tracing::error!(error = %e, user = %id, "cache invalidation failed; the entry expires with its TTL");
            metrics::counter!("portside_cache_errors_total", "op" => "delete").increment(1);
        }
    }
}
