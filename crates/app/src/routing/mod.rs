//! Payment routing: ordered rules, the first that matches a payment naming the providers it
//! tries in turn. The rules come from the configuration file until an administrator replaces
//! them through the API; the stored rules then win until an administrator resets them to the
//! file's. Every change is versioned (a write names the version it read) and is read by every
//! process before the next payment it routes.

mod ports;
#[cfg(test)]
mod tests;

pub use ports::{Router, RoutingStore, StoredRules};

use std::sync::Arc;

use async_trait::async_trait;
use portside_domain::Actor;
use portside_domain::routing::{Route, RouteFacts, RouteRule, check_rules, choose};
use portside_kernel::{Clock, StoreError};
use serde::Serialize;
use time::OffsetDateTime;

use crate::{AppError, IfMatch};

/// Where the rules in force come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    /// The configuration file (`ROUTING_FILE`), or no rules at all.
    File,
    /// An administrator, through the API.
    Api,
}

impl RuleSource {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleSource::File => "file",
            RuleSource::Api => "api",
        }
    }
}

/// The rules in force and where they come from.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingTable {
    pub version: i64,
    pub source: RuleSource,
    pub rules: Vec<RouteRule>,
    /// Takes the payments no rule matches.
    pub default_provider: String,
    pub updated_at: Option<OffsetDateTime>,
    pub updated_by: Option<String>,
}

/// The routing use cases.
pub struct Routing {
    store: Arc<dyn RoutingStore>,
    file: Vec<RouteRule>,
    configured: Vec<String>,
    default: String,
    clock: Arc<dyn Clock>,
}

impl Routing {
    /// Routing over `store`; `file` holds the configuration file's rules, checked beforehand
    /// with [`Routing::check`].
    pub fn new(
        store: Arc<dyn RoutingStore>,
        file: Vec<RouteRule>,
        configured: Vec<String>,
        default: String,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Routing {
            store,
            file,
            configured,
            default,
            clock,
        }
    }

    /// Refuses rules that name a provider not in `configured`, split by weights that do not add
    /// up, or cannot be reached; each problem names the field at fault.
    pub fn check(rules: &[RouteRule], configured: &[String]) -> Result<(), AppError> {
        let names: Vec<&str> = configured.iter().map(String::as_str).collect();
        let problems = check_rules(rules, &names);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AppError::refused(problems))
        }
    }

    fn table(&self, stored: StoredRules) -> RoutingTable {
        let (source, rules) = match stored.rules {
            Some(rules) => (RuleSource::Api, rules),
            None => (RuleSource::File, self.file.clone()),
        };
        RoutingTable {
            version: stored.version,
            source,
            rules,
            default_provider: self.default.clone(),
            updated_at: stored.updated_at,
            updated_by: stored.updated_by,
        }
    }

    /// The rules in force (administrators only).
    pub async fn rules(&self, actor: &Actor) -> Result<RoutingTable, AppError> {
        admin(actor)?;
        Ok(self.table(self.store.rules().await?))
    }

    /// Replaces the rules in force, if `if_match` names the version in force (administrators
    /// only). Checked like the file's: the first problem of each field refuses it all.
    pub async fn replace(
        &self,
        actor: &Actor,
        if_match: &IfMatch,
        rules: Vec<RouteRule>,
    ) -> Result<RoutingTable, AppError> {
        admin(actor)?;
        Self::check(&rules, &self.configured)?;
        self.write(actor, if_match, Some(rules)).await
    }

    /// Goes back to the file's rules (administrators only).
    pub async fn reset(&self, actor: &Actor, if_match: &IfMatch) -> Result<RoutingTable, AppError> {
        admin(actor)?;
        self.write(actor, if_match, None).await
    }

    async fn write(
        &self,
        actor: &Actor,
        if_match: &IfMatch,
        rules: Option<Vec<RouteRule>>,
    ) -> Result<RoutingTable, AppError> {
        let current = self.store.rules().await?;
        if !if_match.holds(current.version) {
            return Err(AppError::PreconditionFailed);
        }
        let by = actor.user_id.to_string();
        let at = self.clock.now();
        match self
            .store
            .replace(current.version, rules.as_deref(), &by, at)
            .await
        {
            Ok(version) => {
                tracing::info!(version, by = %by, source = if rules.is_some() { "api" } else { "file" }, "routing rules changed");
                Ok(self.table(StoredRules {
                    version,
                    rules,
                    updated_at: Some(at),
                    updated_by: Some(by),
                }))
            }
            Err(StoreError::Conflict) => Err(AppError::PreconditionFailed),
            Err(e) => Err(e.into()),
        }
    }
}

#[async_trait]
impl Router for Routing {
    async fn route(&self, facts: &RouteFacts) -> Result<Route, StoreError> {
        let stored = self.store.rules().await?;
        let rules = stored.rules.as_deref().unwrap_or(&self.file);
        Ok(choose(
            rules,
            facts,
            &self.default,
            rand::random_range(0..100),
        ))
    }
}

fn admin(actor: &Actor) -> Result<(), AppError> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only administrators see and change routing",
        ))
    }
}
