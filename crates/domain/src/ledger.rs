//! The books: double-entry accounts named by purpose, immutable ledger transactions whose
//! entries balance per currency, and two-phase (pending, then posted or voided) amounts for
//! money whose movement is not final yet, as TigerBeetle's pending transfers.
//!
//! Which postings a payment's charge or refund makes is decided here ([`Posting::of_movement`]);
//! the store writes them in the transaction that changes the payment, so the books and the
//! payments can never disagree.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DomainError;
use crate::ids::{CustomerId, TransactionId};
use crate::money::Currency;
use crate::payment::PaymentState;
use crate::purpose::Purpose;
use crate::transaction::{Transaction, TransactionKind, TransactionStatus};

/// The side of an entry, and the side on which an account's balance normally grows.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    /// Storage and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Debit => "debit",
            Side::Credit => "credit",
        }
    }

    /// Reads the storage spelling.
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "debit" => Some(Side::Debit),
            "credit" => Some(Side::Credit),
            _ => None,
        }
    }

    fn opposite(self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }
}

/// What an account is for; its name says it, and its normal side and guard follow from it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum AccountName {
    /// What a provider owes us for charges it captured (an asset: debit-normal).
    Clearing(String),
    /// What we hold for a customer (a liability: credit-normal, never below zero).
    Wallet(CustomerId),
    /// What customers paid for orders, memberships and their own payments (income:
    /// credit-normal).
    Revenue,
}

impl AccountName {
    /// The clearing account of a provider (`provider:{name}:clearing`).
    pub fn clearing(provider: &str) -> Self {
        AccountName::Clearing(provider.to_owned())
    }

    /// A customer's wallet (`customer:{id}:wallet`).
    pub fn wallet(customer: &CustomerId) -> Self {
        AccountName::Wallet(customer.clone())
    }

    /// Reads a name as [`fmt::Display`] writes it.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::InvalidAccount(text.to_owned());
        if text == "platform:revenue" {
            return Ok(AccountName::Revenue);
        }
        if let Some(name) = text
            .strip_prefix("provider:")
            .and_then(|r| r.strip_suffix(":clearing"))
        {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            return if valid {
                Ok(AccountName::Clearing(name.to_owned()))
            } else {
                Err(invalid())
            };
        }
        if let Some(id) = text
            .strip_prefix("customer:")
            .and_then(|r| r.strip_suffix(":wallet"))
        {
            return CustomerId::parse(id)
                .map(AccountName::Wallet)
                .map_err(|_| invalid());
        }
        Err(invalid())
    }

    /// The side on which its balance grows.
    pub fn normal_side(&self) -> Side {
        match self {
            AccountName::Clearing(_) => Side::Debit,
            AccountName::Wallet(_) | AccountName::Revenue => Side::Credit,
        }
    }

    /// Whether the balance must never go below zero, pending amounts included (TigerBeetle's
    /// `debits_must_not_exceed_credits` for a credit-normal account). A write that would break
    /// it is refused as a whole.
    pub fn guarded(&self) -> bool {
        matches!(self, AccountName::Wallet(_))
    }

    /// Whether the account takes an entry in nearly every payment: its balance is then spread
    /// over several rows, so that payments do not queue on one row lock.
    pub fn is_hot(&self) -> bool {
        matches!(self, AccountName::Clearing(_) | AccountName::Revenue)
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountName::Clearing(p) => write!(f, "provider:{p}:clearing"),
            AccountName::Wallet(c) => write!(f, "customer:{}:wallet", c.as_str()),
            AccountName::Revenue => f.write_str("platform:revenue"),
        }
    }
}

/// How a ledger transaction changes balances.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// Final at once.
    Posted,
    /// Held: counted against what is available, not yet in the balance.
    Pending,
    /// Makes the pending transaction it names final.
    Post(LedgerTransactionId),
    /// Releases the pending transaction it names.
    Void(LedgerTransactionId),
    /// Undoes the posted transaction it names (its entries with sides swapped).
    Reversal(LedgerTransactionId),
}

impl Phase {
    /// Storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Posted => "posted",
            Phase::Pending => "pending",
            Phase::Post(_) => "post",
            Phase::Void(_) => "void",
            Phase::Reversal(_) => "reversal",
        }
    }

    /// The transaction this one resolves or reverses.
    pub fn refers_to(self) -> Option<LedgerTransactionId> {
        match self {
            Phase::Posted | Phase::Pending => None,
            Phase::Post(id) | Phase::Void(id) | Phase::Reversal(id) => Some(id),
        }
    }

    /// Reads the storage spelling with the transaction it refers to.
    pub fn parse(s: &str, refers_to: Option<LedgerTransactionId>) -> Option<Phase> {
        match (s, refers_to) {
            ("posted", None) => Some(Phase::Posted),
            ("pending", None) => Some(Phase::Pending),
            ("post", Some(id)) => Some(Phase::Post(id)),
            ("void", Some(id)) => Some(Phase::Void(id)),
            ("reversal", Some(id)) => Some(Phase::Reversal(id)),
            _ => None,
        }
    }
}

/// Identity of a ledger transaction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LedgerTransactionId(pub Uuid);

impl fmt::Display for LedgerTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for LedgerTransactionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(LedgerTransactionId)
    }
}

/// One line of a ledger transaction: an amount on one side of one account.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    pub account: AccountName,
    pub currency: Currency,
    pub side: Side,
    /// Minor units, always positive.
    pub amount_minor: i64,
}

/// An immutable ledger transaction: two or more entries whose debits equal their credits in
/// each currency.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Posting {
    pub id: LedgerTransactionId,
    pub phase: Phase,
    /// What caused it, unique per phase (`charge:{transaction id}`): the reconciliation finds a
    /// movement's posting by it.
    pub cause: String,
    pub entries: Vec<Entry>,
    pub created_at: OffsetDateTime,
}

impl Posting {
    /// Checks the entries: at least two, each positive, balanced per currency.
    pub fn new(
        id: LedgerTransactionId,
        phase: Phase,
        cause: String,
        entries: Vec<Entry>,
        created_at: OffsetDateTime,
    ) -> Result<Self, DomainError> {
        if entries.len() < 2 {
            return Err(DomainError::UnbalancedPosting(
                "a ledger transaction has at least two entries".into(),
            ));
        }
        let mut net: BTreeMap<&str, i128> = BTreeMap::new();
        for e in &entries {
            if e.amount_minor <= 0 {
                return Err(DomainError::UnbalancedPosting(format!(
                    "entry of {} on {} is not positive",
                    e.amount_minor, e.account
                )));
            }
            let signed = i128::from(e.amount_minor);
            *net.entry(e.currency.code()).or_default() += match e.side {
                Side::Debit => signed,
                Side::Credit => -signed,
            };
        }
        if let Some((currency, diff)) = net.into_iter().find(|(_, n)| *n != 0) {
            return Err(DomainError::UnbalancedPosting(format!(
                "debits and credits in {currency} differ by {diff} minor units"
            )));
        }
        Ok(Posting {
            id,
            phase,
            cause,
            entries,
            created_at,
        })
    }

    /// The postings a payment's charge or refund makes at this point of its life: pending when
    /// it starts, then post or void when it settles. The ids are derived from the payment
    /// transaction's, so that writing the same step twice meets a unique key instead of
    /// moving money twice.
    pub fn of_movement(
        payment: &PaymentState,
        txn: &Transaction,
        at: OffsetDateTime,
    ) -> Result<Posting, DomainError> {
        let pending = LedgerTransactionId(txn.id.0);
        let (phase, id) = match txn.status {
            TransactionStatus::Pending => (Phase::Pending, pending),
            TransactionStatus::Succeeded => (Phase::Post(pending), settled_id(txn.id)),
            TransactionStatus::Failed => (Phase::Void(pending), settled_id(txn.id)),
        };
        let (from, to) = movement_accounts(payment)?;
        let (debit, credit) = match txn.kind {
            TransactionKind::Charge => (from, to),
            TransactionKind::Refund => (to, from),
        };
        let amount = txn.amount;
        let entry = |account: AccountName, side: Side| Entry {
            account,
            currency: amount.currency(),
            side,
            amount_minor: amount.minor(),
        };
        Posting::new(
            id,
            phase,
            format!("{}:{}:{}", txn.kind.as_str(), txn.id, phase.as_str()),
            vec![entry(debit, Side::Debit), entry(credit, Side::Credit)],
            at,
        )
    }

    /// The transaction that undoes this posted one: the same entries with sides swapped.
    pub fn reversal(
        &self,
        id: LedgerTransactionId,
        at: OffsetDateTime,
    ) -> Result<Posting, DomainError> {
        if !matches!(self.phase, Phase::Posted | Phase::Post(_)) {
            return Err(DomainError::UnbalancedPosting(format!(
                "only a posted transaction can be reversed, not a {} one",
                self.phase.as_str()
            )));
        }
        let entries = self
            .entries
            .iter()
            .map(|e| Entry {
                side: e.side.opposite(),
                ..e.clone()
            })
            .collect();
        Posting::new(
            id,
            Phase::Reversal(self.id),
            format!("reversal:{}", self.id),
            entries,
            at,
        )
    }
}

/// The id of the post or void that settles a movement's pending posting: a name-based UUID
/// (v5) of the pending one, so it is derived, and never equal to an id the generator makes.
fn settled_id(txn: TransactionId) -> LedgerTransactionId {
    LedgerTransactionId(Uuid::new_v5(&txn.0, b"settlement"))
}

/// The provider of payments made with the balance of the payer's wallet: nothing outside
/// Portside is called, the books move the money.
pub const WALLET_PROVIDER: &str = "wallet";

/// Which account gives and which receives when the payment's charge moves money: the
/// provider's clearing account (it owes us what it captured), or the payer's wallet when the
/// balance pays; to revenue, or to the payer's wallet when the payment is a top-up.
fn movement_accounts(payment: &PaymentState) -> Result<(AccountName, AccountName), DomainError> {
    let payer = AccountName::wallet(&payment.customer_id);
    let from = if payment.provider == WALLET_PROVIDER {
        payer.clone()
    } else {
        AccountName::clearing(&payment.provider)
    };
    let to = match Purpose::of(&payment.metadata)? {
        Some(Purpose::TopUp(_)) => payer,
        _ => AccountName::Revenue,
    };
    Ok((from, to))
}

/// An account's balance in one currency: posted and pending sums on each side, as TigerBeetle
/// keeps them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Balance {
    pub debits_posted: i64,
    pub credits_posted: i64,
    pub debits_pending: i64,
    pub credits_pending: i64,
}

impl Balance {
    /// The change one entry makes, by the phase of its transaction.
    pub fn delta(side: Side, amount: i64, phase: Phase) -> Balance {
        let (posted, pending) = match phase {
            Phase::Posted | Phase::Reversal(_) => (amount, 0),
            Phase::Pending => (0, amount),
            Phase::Post(_) => (amount, -amount),
            Phase::Void(_) => (0, -amount),
        };
        match side {
            Side::Debit => Balance {
                debits_posted: posted,
                debits_pending: pending,
                ..Balance::default()
            },
            Side::Credit => Balance {
                credits_posted: posted,
                credits_pending: pending,
                ..Balance::default()
            },
        }
    }

    /// Adds another balance (or delta).
    pub fn plus(self, o: Balance) -> Balance {
        Balance {
            debits_posted: self.debits_posted + o.debits_posted,
            credits_posted: self.credits_posted + o.credits_posted,
            debits_pending: self.debits_pending + o.debits_pending,
            credits_pending: self.credits_pending + o.credits_pending,
        }
    }

    /// The posted balance on the account's normal side.
    pub fn posted(&self, normal: Side) -> i64 {
        match normal {
            Side::Debit => self.debits_posted - self.credits_posted,
            Side::Credit => self.credits_posted - self.debits_posted,
        }
    }

    /// What is held by pending amounts against the normal side.
    pub fn held(&self, normal: Side) -> i64 {
        match normal {
            Side::Debit => self.credits_pending,
            Side::Credit => self.debits_pending,
        }
    }

    /// Posted minus held: what can be spent.
    pub fn available(&self, normal: Side) -> i64 {
        self.posted(normal) - self.held(normal)
    }

    /// True when a guarded account would go below zero.
    pub fn breaks_guard(&self, account: &AccountName) -> bool {
        account.guarded() && self.available(account.normal_side()) < 0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::PaymentId;
    use crate::money::Money;
    use crate::payment::{AmountLimit, Metadata, NewPayment, Payment, PaymentMethod};

    fn usd() -> Currency {
        Currency::from_code("USD").unwrap()
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn entry(account: AccountName, side: Side, amount_minor: i64) -> Entry {
        Entry {
            account,
            currency: usd(),
            side,
            amount_minor,
        }
    }

    #[test]
    fn names_round_trip_and_bad_ones_are_refused() {
        let customer = CustomerId::parse("cust:1").unwrap();
        for name in [
            AccountName::Revenue,
            AccountName::clearing("stripe"),
            AccountName::wallet(&customer),
        ] {
            assert_eq!(AccountName::parse(&name.to_string()), Ok(name));
        }
        for bad in [
            "",
            "world",
            "provider::clearing",
            "provider:Stripe:clearing",
            "customer::wallet",
            "customer:a b:wallet",
            "platform:revenue:x",
        ] {
            assert_eq!(
                AccountName::parse(bad).unwrap_err().code(),
                "account_invalid",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_posting_balances_per_currency() {
        let id = LedgerTransactionId(Uuid::nil());
        let one_sided = vec![
            entry(AccountName::Revenue, Side::Credit, 10),
            entry(AccountName::clearing("mock"), Side::Debit, 9),
        ];
        let err = Posting::new(id, Phase::Posted, "x".into(), one_sided, now()).unwrap_err();
        assert_eq!(err.code(), "posting_unbalanced");
        let mut eur = entry(AccountName::Revenue, Side::Credit, 10);
        eur.currency = Currency::from_code("EUR").unwrap();
        let mixed = vec![eur, entry(AccountName::clearing("mock"), Side::Debit, 10)];
        assert!(Posting::new(id, Phase::Posted, "x".into(), mixed, now()).is_err());
        let lonely = vec![entry(AccountName::Revenue, Side::Credit, 0)];
        assert!(Posting::new(id, Phase::Posted, "x".into(), lonely, now()).is_err());
    }

    fn charged(provider: &str) -> (PaymentState, Transaction) {
        let payment = Payment::create(
            NewPayment {
                id: PaymentId(Uuid::now_v7()),
                customer_id: CustomerId::parse("cust_1").unwrap(),
                amount: Money::from_minor(1250, usd()),
                method: PaymentMethod::Card,
                method_token: "tok_visa".into(),
                provider: provider.into(),
                description: None,
                metadata: Metadata::default(),
                routing: None,
            },
            AmountLimit::default(),
            now(),
        )
        .unwrap();
        let txn = Transaction::charge(
            TransactionId(Uuid::now_v7()),
            payment.id(),
            payment.state().amount,
            now(),
        );
        (payment.state().clone(), txn)
    }

    #[test]
    fn a_charge_is_held_then_posted_or_voided() {
        let (payment, mut txn) = charged("stripe");
        let pending = Posting::of_movement(&payment, &txn, now()).unwrap();
        assert_eq!(pending.phase, Phase::Pending);
        assert_eq!(pending.entries[0].account, AccountName::clearing("stripe"));
        assert_eq!(pending.entries[0].side, Side::Debit);
        assert_eq!(pending.entries[1].account, AccountName::Revenue);
        txn.status = TransactionStatus::Succeeded;
        let post = Posting::of_movement(&payment, &txn, now()).unwrap();
        assert_eq!(post.phase, Phase::Post(pending.id));
        assert_ne!(post.id, pending.id);
        txn.status = TransactionStatus::Failed;
        let void = Posting::of_movement(&payment, &txn, now()).unwrap();
        assert_eq!(void.phase, Phase::Void(pending.id));
        assert_eq!(void.id, post.id, "one settlement per pending posting");
        let reversal = post
            .reversal(LedgerTransactionId(Uuid::now_v7()), now())
            .unwrap();
        assert_eq!(reversal.entries[0].side, Side::Credit);
        assert!(pending.reversal(reversal.id, now()).is_err());
    }

    #[test]
    fn the_balance_pays_from_the_wallet_and_a_top_up_fills_it() {
        let (mut payment, txn) = charged(WALLET_PROVIDER);
        let wallet = AccountName::wallet(&payment.customer_id);
        let paid = Posting::of_movement(&payment, &txn, now()).unwrap();
        assert_eq!(paid.entries[0].account, wallet);
        assert_eq!(paid.entries[0].side, Side::Debit);
        assert_eq!(paid.entries[1].account, AccountName::Revenue);
        let held = Balance::delta(Side::Debit, 1250, Phase::Pending);
        assert_eq!(
            held.held(Side::Credit),
            1250,
            "a pending wallet payment holds its amount"
        );
        assert!(held.breaks_guard(&wallet), "an empty wallet cannot pay");

        payment.provider = "stripe".into();
        payment.metadata = Purpose::TopUp(crate::ids::UserId(Uuid::now_v7()))
            .metadata()
            .unwrap();
        let topped = Posting::of_movement(&payment, &txn, now()).unwrap();
        assert_eq!(topped.entries[0].account, AccountName::clearing("stripe"));
        assert_eq!(topped.entries[1].account, wallet);
        assert_eq!(topped.entries[1].side, Side::Credit);
        let mut refund = txn.clone();
        refund.kind = TransactionKind::Refund;
        let back = Posting::of_movement(&payment, &refund, now()).unwrap();
        assert_eq!(
            (back.entries[0].account.clone(), back.entries[0].side),
            (wallet, Side::Debit),
            "refunding a top-up takes the money out of the wallet again"
        );
    }

    /// Applies postings to balances the way the store does.
    fn apply(balances: &mut BTreeMap<AccountName, Balance>, p: &Posting) {
        for e in &p.entries {
            let b = balances.entry(e.account.clone()).or_default();
            *b = b.plus(Balance::delta(e.side, e.amount_minor, p.phase));
        }
    }

    proptest! {
        #[test]
        fn charges_and_refunds_keep_the_trial_balance_at_zero(
            steps in proptest::collection::vec((1i64..100_000, any::<bool>(), any::<bool>()), 1..30)
        ) {
            let mut balances = BTreeMap::new();
            for (amount, refund, succeeds) in steps {
                let (payment, mut txn) = charged("mock");
                txn.amount = Money::from_minor(amount, usd());
                if refund { txn.kind = TransactionKind::Refund; }
                apply(&mut balances, &Posting::of_movement(&payment, &txn, now()).unwrap());
                txn.status = if succeeds { TransactionStatus::Succeeded } else { TransactionStatus::Failed };
                apply(&mut balances, &Posting::of_movement(&payment, &txn, now()).unwrap());
            }
            let (mut debits, mut credits) = (0, 0);
            for b in balances.values() {
                prop_assert_eq!(b.debits_pending, 0);
                prop_assert_eq!(b.credits_pending, 0);
                debits += b.debits_posted;
                credits += b.credits_posted;
            }
            prop_assert_eq!(debits, credits);
        }
    }
}
