//! A transfer of money from one customer's wallet to another's: final at once (a posted ledger
//! transaction written with it), never changed afterwards; a mistaken transfer is undone by a
//! transfer back.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::aggregate::{Changes, aggregate};
use crate::error::DomainError;
use crate::events::DomainEvent;
use crate::ids::{CustomerId, TransferId};
use crate::ledger::{AccountName, Entry, LedgerTransactionId, Phase, Posting, Side};
use crate::money::Money;
use crate::payment::AmountLimit;

/// Longest description of a transfer.
const MAX_DESCRIPTION: usize = 500;

/// What a transfer is.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TransferState {
    pub id: TransferId,
    /// Whose wallet gives.
    pub sender: CustomerId,
    /// Whose wallet receives.
    pub recipient: CustomerId,
    pub amount: Money,
    pub description: Option<String>,
    pub created_at: OffsetDateTime,
    /// Always 1: a transfer never changes.
    pub version: i64,
}

/// A transfer as its event carries it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TransferSnapshot {
    pub transfer_id: TransferId,
    pub sender: String,
    pub recipient: String,
    /// Decimal text.
    pub amount: String,
    pub amount_minor: i64,
    pub currency: String,
    pub description: Option<String>,
}

/// What happens to a transfer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TransferEvent {
    /// `transfer.completed`: the money moved from the sender's wallet to the recipient's.
    Completed { transfer: TransferSnapshot },
}

impl TransferEvent {
    pub const COMPLETED: &'static str = "transfer.completed";
    /// Every transfer event type.
    pub const TYPES: &'static [&'static str] = &[Self::COMPLETED];
}

impl DomainEvent for TransferEvent {
    const AGGREGATE: &'static str = "transfer";

    fn event_type(&self) -> &'static str {
        match self {
            TransferEvent::Completed { .. } => Self::COMPLETED,
        }
    }
}

/// A transfer and its event.
#[derive(Clone, Debug)]
pub struct Transfer {
    state: TransferState,
    changes: Changes<TransferEvent>,
}

aggregate!(Transfer, TransferEvent);

impl Transfer {
    /// A new transfer: an amount within the payment limit to someone else, with a bounded
    /// description.
    pub fn create(
        id: TransferId,
        sender: CustomerId,
        recipient: CustomerId,
        amount: Money,
        description: Option<String>,
        limit: AmountLimit,
        now: OffsetDateTime,
    ) -> Result<Self, DomainError> {
        limit.check(amount)?;
        if sender == recipient {
            return Err(DomainError::TransferToSelf);
        }
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return Err(DomainError::TextTooLong {
                field: "description",
                max: MAX_DESCRIPTION,
            });
        }
        let state = TransferState {
            id,
            sender,
            recipient,
            amount,
            description,
            created_at: now,
            version: 1,
        };
        let mut changes = Changes::new();
        let mut sequence = 0;
        changes.record(
            &mut sequence,
            now,
            TransferEvent::Completed {
                transfer: snapshot(&state),
            },
        );
        Ok(Transfer { state, changes })
    }

    /// A stored transfer.
    pub fn restore(state: TransferState) -> Self {
        let changes = Changes::loaded(state.version);
        Transfer { state, changes }
    }

    pub fn state(&self) -> &TransferState {
        &self.state
    }

    /// The ledger transaction that moves the money: posted at once, from the sender's wallet
    /// (guarded: the store refuses it when the balance is short) to the recipient's.
    pub fn posting(&self) -> Result<Posting, DomainError> {
        let s = &self.state;
        let entry = |customer: &CustomerId, side| Entry {
            account: AccountName::wallet(customer),
            currency: s.amount.currency(),
            side,
            amount_minor: s.amount.minor(),
        };
        Posting::new(
            LedgerTransactionId(s.id.0),
            Phase::Posted,
            format!("transfer:{}", s.id),
            vec![
                entry(&s.sender, Side::Debit),
                entry(&s.recipient, Side::Credit),
            ],
            s.created_at,
        )
    }
}

fn snapshot(s: &TransferState) -> TransferSnapshot {
    TransferSnapshot {
        transfer_id: s.id,
        sender: s.sender.as_str().to_owned(),
        recipient: s.recipient.as_str().to_owned(),
        amount: s.amount.to_decimal_string(),
        amount_minor: s.amount.minor(),
        currency: s.amount.currency().code().to_owned(),
        description: s.description.clone(),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::aggregate::Aggregate;
    use crate::money::Currency;

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::from_code("USD").unwrap())
    }

    fn customer(id: &str) -> CustomerId {
        CustomerId::parse(id).unwrap()
    }

    #[test]
    fn a_transfer_moves_money_between_two_wallets_with_one_event() {
        let t = Transfer::create(
            TransferId(Uuid::now_v7()),
            customer("a"),
            customer("b"),
            usd(700),
            Some("rent".into()),
            AmountLimit::default(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let p = t.posting().unwrap();
        assert_eq!(p.phase, Phase::Posted);
        assert_eq!(p.entries[0].account, AccountName::wallet(&customer("a")));
        assert_eq!(p.entries[0].side, Side::Debit);
        assert_eq!(p.entries[1].account, AccountName::wallet(&customer("b")));
        assert_eq!(t.pending_events().len(), 1);
        assert_eq!(
            t.pending_events()[0].event.event_type(),
            "transfer.completed"
        );
    }

    #[test]
    fn a_transfer_to_oneself_or_of_nothing_is_refused() {
        let make = |to: &str, minor: i64, description: Option<String>| {
            Transfer::create(
                TransferId(Uuid::now_v7()),
                customer("a"),
                customer(to),
                usd(minor),
                description,
                AmountLimit::default(),
                OffsetDateTime::UNIX_EPOCH,
            )
            .map(|_| ())
            .map_err(|e| e.code())
        };
        assert_eq!(make("a", 100, None), Err("transfer_to_self"));
        assert_eq!(make("b", 0, None), Err("amount_too_small"));
        assert_eq!(make("b", 1, Some("x".repeat(501))), Err("text_too_long"));
        assert_eq!(make("b", 1, None), Ok(()));
    }
}
