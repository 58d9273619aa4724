//! The messaging use cases: post, read, edit, delete (owner or admin) and search.

mod ports;

pub use ports::*;

use std::sync::Arc;

use portside_domain::{Actor, Message, MessageBody, MessageId};
use time::OffsetDateTime;

use crate::error::AppError;
use portside_kernel::{Clock, IdGenerator, Page, PageRequest, StoreError};

/// The messaging use cases over their ports.
pub struct Messages {
    repo: Arc<dyn MessageRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl Messages {
    /// Wires the use cases.
    pub fn new(
        repo: Arc<dyn MessageRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Messages { repo, clock, ids }
    }

    /// Posts a message owned by the actor.
    pub async fn post(&self, actor: &Actor, body: MessageBody) -> Result<Message, AppError> {
        let message = Message::post(
            MessageId(self.ids.new_id()),
            actor.user_id,
            body,
            self.clock.now(),
        );
        // The owner is the only row a message refers to: the access token outlived its account.
        self.repo
            .insert_message(&message)
            .await
            .map_err(|e| match e {
                StoreError::MissingReference => AppError::Unauthorized("account_gone"),
                e => e.into(),
            })?;
        Ok(message)
    }

    /// One message; others' messages do not exist for a customer.
    pub async fn get(&self, actor: &Actor, id: MessageId) -> Result<Message, AppError> {
        match self.repo.message(id).await? {
            Some(m) if actor.may_access(m.owner_id) => Ok(m),
            _ => Err(AppError::NotFound("message")),
        }
    }

    /// Replaces a message's text.
    pub async fn edit(
        &self,
        actor: &Actor,
        id: MessageId,
        body: MessageBody,
    ) -> Result<Message, AppError> {
        for _ in 0..5 {
            let mut message = self.get(actor, id).await?;
            message.edit(body.clone(), self.clock.now());
            match self.repo.update_message(&message).await {
                Ok(()) => return Ok(message),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict)
    }

    /// Deletes a message.
    pub async fn delete(&self, actor: &Actor, id: MessageId) -> Result<(), AppError> {
        self.get(actor, id).await?;
        if self.repo.delete_message(id).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("message"))
        }
    }

    /// Searches messages. Customers search their own; only admins name another owner or
    /// search everyone's.
    pub async fn list(
        &self,
        actor: &Actor,
        mut filter: MessageFilter,
        page: PageRequest<(OffsetDateTime, MessageId)>,
    ) -> Result<Page<Message, (OffsetDateTime, MessageId)>, AppError> {
        match filter.owner_id {
            Some(owner) if !actor.may_access(owner) => {
                return Err(AppError::Forbidden(
                    "only administrators read others' messages",
                ));
            }
            None if !actor.is_admin() => filter.owner_id = Some(actor.user_id),
            _ => {}
        }
        let found = self.repo.messages(&filter, page.probe()).await?;
        Ok(page.page(found, |m| (m.created_at, m.id)))
    }
}
