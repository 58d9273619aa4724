//! Dead letters as administrators operate them through the API: a consumer group's list, and a
//! replay to that group only. `portside events dlq` operates the same port from the command
//! line; on the embedded default both reach the store, on a broker its queues or streams.

use std::sync::Arc;

use portside_domain::Actor;
use portside_events::{DeadLetter, DeadLetters};

use crate::AppError;

/// The dead letters of this version's consumer groups.
pub struct DeadLetterDesk {
    dead: Arc<dyn DeadLetters>,
    groups: Vec<String>,
}

impl DeadLetterDesk {
    /// The desk over `dead`, for the groups named.
    pub fn new(dead: Arc<dyn DeadLetters>, groups: Vec<String>) -> Self {
        DeadLetterDesk { dead, groups }
    }

    fn check(&self, actor: &Actor, group: &str) -> Result<(), AppError> {
        if !actor.is_admin() {
            return Err(AppError::Forbidden(
                "only administrators operate dead letters",
            ));
        }
        if !self.groups.iter().any(|g| g == group) {
            return Err(AppError::NotFound("consumer_group"));
        }
        Ok(())
    }

    /// Up to `limit` dead letters of `group`, oldest first (administrators).
    pub async fn list(
        &self,
        actor: &Actor,
        group: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, AppError> {
        self.check(actor, group)?;
        self.dead
            .dead_letters(group, limit)
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))
    }

    /// Delivers a dead letter to its group again (administrators); the other groups never see
    /// it again.
    pub async fn replay(&self, actor: &Actor, group: &str, id: &str) -> Result<(), AppError> {
        self.check(actor, group)?;
        let replayed = self
            .dead
            .replay(group, id)
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
        if replayed {
            Ok(())
        } else {
            Err(AppError::NotFound("dead_letter"))
        }
    }
}
