//! The books as administrators read and check them: accounts and balances, an account's
//! entries, one ledger transaction, the trial balance, and the reconciliation that
//! `portside ledger check` and `GET /api/v1/ledger/check` run. A customer reads only the
//! entries of their own wallet.

pub mod ports;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use portside_domain::{AccountName, Actor, Balance, Currency, LedgerTransactionId, Posting};
use portside_kernel::{Page, PageRequest};

pub use ports::{
    AccountBalance, AccountCursor, AccountFilter, Difference, EntryCursor, EntryLine, LedgerStore,
};

use crate::AppError;
use crate::payments::customer_of;

/// The most differences one check reports (the rest are more of the same).
pub const MAX_DIFFERENCES: u32 = 1000;

/// What a reconciliation found: nothing, when the books hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Reconciliation {
    pub differences: Vec<Difference>,
    /// Per currency, the sum of every account's balance.
    pub trial_balance: Vec<(Currency, Balance)>,
}

impl Reconciliation {
    /// True when nothing differs.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Reads and checks the books.
pub struct Ledger {
    store: Arc<dyn LedgerStore>,
}

impl Ledger {
    /// The ledger over `store`.
    pub fn new(store: Arc<dyn LedgerStore>) -> Self {
        Ledger { store }
    }

    fn admin(actor: &Actor) -> Result<(), AppError> {
        if actor.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden("only administrators read the ledger"))
        }
    }

    /// Accounts and balances (administrators).
    pub async fn accounts(
        &self,
        actor: &Actor,
        filter: &AccountFilter,
        page: PageRequest<AccountCursor>,
    ) -> Result<Page<AccountBalance, AccountCursor>, AppError> {
        Self::admin(actor)?;
        let found = self.store.accounts(filter, page.probe()).await?;
        Ok(page.page(found, |a| {
            (a.account.to_string(), a.currency.code().to_owned())
        }))
    }

    /// An account's entries, newest first: administrators any account, a customer only their
    /// own wallet (anyone else's is not found, so its existence is not told).
    pub async fn entries(
        &self,
        actor: &Actor,
        account: &AccountName,
        currency: Option<Currency>,
        page: PageRequest<EntryCursor>,
    ) -> Result<Page<EntryLine, EntryCursor>, AppError> {
        let own = matches!(account, AccountName::Wallet(c) if *c == customer_of(actor));
        if !actor.is_admin() && !own {
            return Err(AppError::NotFound("account"));
        }
        let found = self.store.entries(account, currency, page.probe()).await?;
        Ok(page.page(found, |e| (e.created_at, e.transaction_id, e.line)))
    }

    /// One ledger transaction (administrators).
    pub async fn posting(
        &self,
        actor: &Actor,
        id: LedgerTransactionId,
    ) -> Result<Posting, AppError> {
        Self::admin(actor)?;
        self.store
            .posting(id)
            .await?
            .ok_or(AppError::NotFound("ledger_transaction"))
    }

    /// Per currency, all balances summed (administrators).
    pub async fn trial_balance(&self, actor: &Actor) -> Result<Vec<(Currency, Balance)>, AppError> {
        Self::admin(actor)?;
        Ok(self.store.trial_balance().await?)
    }

    /// The reconciliation (administrators).
    pub async fn check(&self, actor: &Actor) -> Result<Reconciliation, AppError> {
        Self::admin(actor)?;
        self.reconcile().await
    }

    /// The reconciliation, for the command line: every movement has exactly its posting, every
    /// transaction balances, every stored balance equals its entries, and per currency the
    /// debits equal the credits, posted and pending.
    pub async fn reconcile(&self) -> Result<Reconciliation, AppError> {
        let mut differences = self.store.differences(MAX_DIFFERENCES).await?;
        let trial_balance = self.store.trial_balance().await?;
        for (currency, b) in &trial_balance {
            if b.debits_posted != b.credits_posted || b.debits_pending != b.credits_pending {
                differences.push(Difference {
                    code: "trial_balance_not_zero",
                    subject: currency.code().to_owned(),
                    detail: format!(
                        "posted debits {} and credits {}, pending debits {} and credits {}",
                        b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending
                    ),
                });
            }
        }
        Ok(Reconciliation {
            differences,
            trial_balance,
        })
    }
}
