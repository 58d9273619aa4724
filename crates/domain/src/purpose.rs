//! What a payment pays for when Portside itself starts it: an order, a membership, or money put
//! into the payer's wallet. It is a
//! type in the code; in the payment's metadata (stored, and published in every payment event)
//! it travels under reserved keys that clients cannot set, so payments already stored and
//! events already published read the same.

use std::collections::BTreeMap;

use crate::error::DomainError;
use crate::ids::{OrderId, UserId};
use crate::payment::Metadata;

/// The reserved key naming the purpose.
const PURPOSE: &str = "portside_purpose";
/// The reserved key of the order paid for.
const ORDER: &str = "portside_order_id";
/// The reserved key of the user who buys the membership.
const USER: &str = "portside_user_id";

/// What a payment pays for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Purpose {
    /// An order's total.
    Order(OrderId),
    /// The premium membership of this user.
    Membership(UserId),
    /// Money put into this user's wallet (a top-up): the books credit the wallet, not revenue.
    TopUp(UserId),
}

impl Purpose {
    /// The metadata of a payment made for this purpose.
    pub fn metadata(self) -> Result<Metadata, DomainError> {
        let entries = match self {
            Purpose::Order(order) => [(PURPOSE, "order"), (ORDER, &order.to_string())]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
            Purpose::Membership(user) => [(PURPOSE, "membership"), (USER, &user.to_string())]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
            Purpose::TopUp(user) => [(PURPOSE, "top_up"), (USER, &user.to_string())]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        };
        Metadata::new(BTreeMap::from(entries))
    }

    /// The purpose a payment's metadata records: `None` for a client's own payment, an error
    /// when the reserved entries are there but unreadable.
    pub fn of(metadata: &Metadata) -> Result<Option<Purpose>, DomainError> {
        let map = metadata.as_map();
        let id = |key: &str| {
            map.get(key)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| DomainError::InvalidMetadata(format!("no valid {key}")))
        };
        match map.get(PURPOSE).map(String::as_str) {
            None => Ok(None),
            Some("order") => Ok(Some(Purpose::Order(OrderId(id(ORDER)?)))),
            Some("membership") => Ok(Some(Purpose::Membership(UserId(id(USER)?)))),
            Some("top_up") => Ok(Some(Purpose::TopUp(UserId(id(USER)?)))),
            Some(other) => Err(DomainError::InvalidMetadata(format!(
                "unknown {PURPOSE} {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_purpose_survives_its_metadata_and_a_client_cannot_pose_as_one() {
        for purpose in [
            Purpose::Order(OrderId(Uuid::now_v7())),
            Purpose::Membership(UserId(Uuid::now_v7())),
            Purpose::TopUp(UserId(Uuid::now_v7())),
        ] {
            let metadata = purpose.metadata().unwrap();
            assert_eq!(Purpose::of(&metadata), Ok(Some(purpose)));
            assert!(Metadata::from_client(metadata.as_map().clone()).is_err());
        }
        let plain = Metadata::from_client(BTreeMap::from([("k".into(), "v".into())])).unwrap();
        assert_eq!(Purpose::of(&plain), Ok(None));
        let broken = Metadata::new(BTreeMap::from([(PURPOSE.into(), "order".into())])).unwrap();
        assert!(Purpose::of(&broken).is_err());
    }
}
