//! Dead letters kept in the store, for the embedded mode: the in-process bus has no broker to
//! keep them, and a dead letter must outlive the process that wrote it. The commands of
//! `portside events dlq` run in a process of their own, so a replay is a request written to
//! the store, which the serving process's bus takes up and delivers to that one group.

use async_trait::async_trait;
use portside_kernel::StoreError;
use time::OffsetDateTime;

use crate::DeadLetter;

/// The store's dead letters.
#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    /// Keeps a dead letter; one with the same id (a replay that failed again) is replaced, and
    /// no longer asked for.
    async fn keep(&self, letter: &DeadLetter) -> Result<(), StoreError>;
    /// Up to `limit` dead letters of a group, oldest first; not those whose replay was asked
    /// (they leave the list, and come back if the replay fails again).
    async fn letters(&self, group: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    /// Asks for a replay of the letter to its group; false when there is no such letter.
    async fn ask_replay(
        &self,
        group: &str,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Up to `limit` letters of a group whose replay was asked, oldest request first.
    async fn asked(&self, group: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    /// Forgets a letter (its replay was handled); false when there was none.
    async fn forget(&self, id: &str) -> Result<bool, StoreError>;
    /// Forgets a group's letters; how many.
    async fn forget_group(&self, group: &str) -> Result<u64, StoreError>;
}
