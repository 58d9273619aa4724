//! What the ledger context needs of a store: its accounts and entries to read, and the
//! reconciliation's queries. Postings are written by the stores of the contexts whose changes
//! move money, in their own transactions; this port only reads.

use async_trait::async_trait;
use portside_domain::{AccountName, Balance, Currency, Entry, LedgerTransactionId, Phase, Posting};
use portside_kernel::{PageRequest, StoreError};
use time::OffsetDateTime;

/// Which accounts to list.
#[derive(Clone, Debug, Default)]
pub struct AccountFilter {
    /// Names starting with this (`customer:`, `provider:stripe:`).
    pub prefix: Option<String>,
    pub currency: Option<Currency>,
}

/// An account in one currency and its balance (summed over its slots).
#[derive(Clone, Debug, PartialEq)]
pub struct AccountBalance {
    pub account: AccountName,
    pub currency: Currency,
    pub balance: Balance,
}

/// Where an account list's page starts: the last account and currency of the previous one.
pub type AccountCursor = (String, String);

/// One entry as an account's statement shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryLine {
    pub transaction_id: LedgerTransactionId,
    pub line: i32,
    pub phase: Phase,
    pub cause: String,
    pub entry: Entry,
    pub created_at: OffsetDateTime,
}

/// Where a statement's page starts: the previous page's last entry.
pub type EntryCursor = (OffsetDateTime, LedgerTransactionId, i32);

/// One thing the reconciliation found wrong: a stable code, what it is about, and what differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub code: &'static str,
    pub subject: String,
    pub detail: String,
}

/// The books as a store keeps them.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Accounts with their balances, in name and currency order.
    async fn accounts(
        &self,
        filter: &AccountFilter,
        page: PageRequest<AccountCursor>,
    ) -> Result<Vec<AccountBalance>, StoreError>;

    /// One account's entries, newest first.
    async fn entries(
        &self,
        account: &AccountName,
        currency: Option<Currency>,
        page: PageRequest<EntryCursor>,
    ) -> Result<Vec<EntryLine>, StoreError>;

    /// One ledger transaction with its entries.
    async fn posting(&self, id: LedgerTransactionId) -> Result<Option<Posting>, StoreError>;

    /// Per currency, every account's balance summed: debits equal credits when the books hold.
    async fn trial_balance(&self) -> Result<Vec<(Currency, Balance)>, StoreError>;

    /// Up to `limit` differences between the payments and the books, within the books (a
    /// transaction that does not balance), and between the stored balances and their entries.
    async fn differences(&self, limit: u32) -> Result<Vec<Difference>, StoreError>;
}
