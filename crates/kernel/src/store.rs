//! The one error every store port reports, whatever the engine behind it.

/// Why a store could not do what was asked. Adapters map their own errors into this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the row first (optimistic concurrency) or it was already settled.
    #[error("concurrent modification")]
    Conflict,
    /// A unique value (an email, ...) is already taken.
    #[error("duplicate value")]
    Duplicate,
    /// The inbox already holds this event for this group: the effect happened before.
    #[error("event already processed")]
    AlreadyProcessed,
    /// A row this write refers to does not exist (any more): a foreign key was refused.
    #[error("a referenced row does not exist")]
    MissingReference,
    /// A rule checked under the store's lock (stock that ran out meanwhile, say) refused the
    /// write; nothing was written. `code` is the rule's stable code, `subject` what it is about
    /// (a SKU), `detail` the message for humans.
    #[error("{detail}")]
    Refused {
        code: String,
        subject: String,
        detail: String,
    },
    /// The store cannot be reached right now (connection refused, pool timeout).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data. Details go to the log, not to the client.
    #[error("store failure: {0}")]
    Other(String),
}
