//! The messaging context: a message belongs to its owner; only the owner or an admin edits
//! or deletes it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::ids::{MessageId, UserId};

/// Longest message body, in characters.
pub const MAX_BODY: usize = 10_000;

/// A message's text: 1 to 10 000 characters.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageBody(String);

impl MessageBody {
    /// Validates a body.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let count = text.chars().count();
        if text.trim().is_empty() {
            Err(DomainError::InvalidMessage("must not be empty"))
        } else if count > MAX_BODY {
            Err(DomainError::InvalidMessage(
                "must be at most 10000 characters",
            ))
        } else {
            Ok(MessageBody(text.to_owned()))
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    /// Who wrote it.
    pub owner_id: UserId,
    pub body: MessageBody,
    /// Optimistic concurrency.
    pub version: i64,
    /// When posted.
    pub created_at: OffsetDateTime,
    /// When last edited.
    pub updated_at: OffsetDateTime,
}

impl Message {
    /// A new message.
    pub fn post(id: MessageId, owner_id: UserId, body: MessageBody, now: OffsetDateTime) -> Self {
        Message {
            id,
            owner_id,
            body,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// Replaces the text; the store checks `version - 1` is what it holds.
    pub fn edit(&mut self, body: MessageBody, now: OffsetDateTime) {
        self.body = body;
        self.version += 1;
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_bounded() {
        assert!(MessageBody::parse("hi").is_ok());
        assert!(MessageBody::parse(&"é".repeat(MAX_BODY)).is_ok());
        for bad in [
            String::new(),
            "  \n".into(),
            "x".repeat(MAX_BODY + 1),
            "x".repeat(100_001),
        ] {
            assert_eq!(
                MessageBody::parse(&bad).unwrap_err().code(),
                "message_invalid"
            );
        }
    }
}
