//! Ports of the messaging context.

use async_trait::async_trait;
use portside_domain::{Message, MessageId, UserId};
use time::OffsetDateTime;

use portside_kernel::{PageRequest, StoreError};

/// Which messages to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only this owner's.
    pub owner_id: Option<UserId>,
    /// Body contains this text, case-insensitively.
    pub text: Option<String>,
    /// Created strictly after.
    pub created_after: Option<OffsetDateTime>,
    /// Created strictly before.
    pub created_before: Option<OffsetDateTime>,
    /// The list's order, which its keyset pages follow.
    pub order: MessageOrder,
}

/// Order of a message list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageOrder {
    /// Oldest first.
    Oldest,
    /// Newest first.
    #[default]
    Newest,
}

/// Messages.
#[async_trait]
pub trait MessageRepository: Send + Sync {
    /// Inserts a message.
    async fn insert_message(&self, message: &Message) -> Result<(), StoreError>;
    /// Saves an edit; `Conflict` unless the store holds `version - 1`.
    async fn update_message(&self, message: &Message) -> Result<(), StoreError>;
    /// Deletes; false when there was nothing to delete.
    async fn delete_message(&self, id: MessageId) -> Result<bool, StoreError>;
    /// One message.
    async fn message(&self, id: MessageId) -> Result<Option<Message>, StoreError>;
    /// A page of messages.
    async fn messages(
        &self,
        filter: &MessageFilter,
        page: PageRequest<(OffsetDateTime, MessageId)>,
    ) -> Result<Vec<Message>, StoreError>;
}
