//! Idempotency keys (IETF `Idempotency-Key` draft, Stripe semantics): scoped to the caller,
//! bound to a fingerprint of the request, locked while the request runs, and holding the
//! outcome to replay once it finished.

use super::Outcome;
use portside_domain::TransactionId;
use time::OffsetDateTime;

/// A validated key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("idempotency key must be 1 to 255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// Validates a key.
    pub fn parse(text: &str) -> Result<Self, InvalidIdempotencyKey> {
        if (1..=255).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(IdempotencyKey(text.to_owned()))
        } else {
            Err(InvalidIdempotencyKey)
        }
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a request carries to be idempotent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    /// Who is calling: keys of different callers never collide.
    pub scope: String,
    pub key: IdempotencyKey,
    /// Hash of method, path and canonical body: the same key with another request is refused.
    pub fingerprint: String,
}

/// What phase 1 writes to claim a key.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyClaim {
    /// Caller scope.
    pub scope: String,
    pub key: String,
    /// Request fingerprint.
    pub fingerprint: String,
    /// The charge or refund this key started: its settlement stores the outcome here.
    pub transaction_id: TransactionId,
    /// Until when the first request holds the key (a retry before that gets 409).
    pub locked_until: OffsetDateTime,
    /// When the claim was made.
    pub created_at: OffsetDateTime,
    /// When the key may be forgotten.
    pub expires_at: OffsetDateTime,
    /// The answer already given, stored with the claim: an asynchronous submission's 202,
    /// which every replay returns (the charge's own settlement leaves it as it is).
    pub outcome: Option<Outcome>,
}

/// A stored key.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// Caller scope.
    pub scope: String,
    pub key: String,
    /// Fingerprint of the request that claimed it.
    pub fingerprint: String,
    /// The transaction it started.
    pub transaction_id: TransactionId,
    /// Held until then; `None` once released or finished.
    pub locked_until: Option<OffsetDateTime>,
    /// The stored outcome, once the transaction settled.
    pub outcome: Option<Outcome>,
    /// When claimed.
    pub created_at: OffsetDateTime,
    /// When it may be forgotten.
    pub expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::parse("order-42_retry").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", " ", "a b", "ключ", "tab\t"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }
}
