//! What the wallets context needs of a store: transfers written with their posting and event in
//! one transaction, and read back. Balances are the ledger's (`LedgerStore`); top-ups and
//! wallet payments are payments.

use async_trait::async_trait;
use portside_domain::{Transfer, TransferId};
use portside_kernel::StoreError;

use crate::payments::idempotency::IdempotentRequest;

/// The answer to writing a transfer.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// Written: the money moved.
    New,
    /// The key made this transfer before (with the request of this fingerprint); nothing was
    /// written.
    Existing {
        transfer: Box<Transfer>,
        fingerprint: String,
    },
}

/// Transfers.
#[async_trait]
pub trait TransferStore: Send + Sync {
    /// Writes the transfer, its posted ledger transaction and its event atomically; refuses the
    /// whole write (`Refused`, `insufficient_funds`) when the sender's wallet is short. With a
    /// key that made a transfer before, writes nothing and returns that one.
    async fn record_transfer(
        &self,
        transfer: &mut Transfer,
        key: Option<&IdempotentRequest>,
    ) -> Result<Recorded, StoreError>;

    /// One transfer.
    async fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StoreError>;
}
