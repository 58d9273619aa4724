//! Identifiers of the payments context. Ids are UUIDs (v7 in production, so they sort by
//! creation time); customer ids are opaque text chosen by the caller or the users context.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

uuid_id!(
    /// Identity of a payment.
    PaymentId
);
uuid_id!(
    /// Identity of a transaction (a charge or a refund of a payment).
    TransactionId
);

uuid_id!(
    /// Identity of a user.
    UserId
);
uuid_id!(
    /// Identity of a message.
    MessageId
);
uuid_id!(
    /// Identity of an order.
    OrderId
);
uuid_id!(
    /// Identity of a transfer between wallets.
    TransferId
);

/// The customer a payment belongs to: 1 to 64 visible ASCII characters, no spaces
/// (`cust_001`, a user's UUID, ...).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomerId(String);

impl CustomerId {
    /// Validates and wraps a customer id.
    pub fn parse(text: &str) -> Result<Self, crate::DomainError> {
        let valid = (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(CustomerId(text.to_owned()))
        } else {
            Err(crate::DomainError::InvalidCustomerId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user pays as the customer named by their user id.
impl From<UserId> for CustomerId {
    fn from(id: UserId) -> Self {
        CustomerId(id.to_string())
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
