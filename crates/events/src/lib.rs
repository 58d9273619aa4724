//! The event backbone (docs/ARCHITECTURE.md, "Events"). Aggregates' events reach the outbox in their store's
//! transaction; the relay publishes them to a bus; the worker hands them to consumer groups,
//! deduplicated by the inbox. Nothing here knows a use case: handlers are given to the worker.

mod audit;
mod bus;
mod dead_letters;
mod envelope;
mod history;
mod outbox;
pub mod relay;
pub mod retention;
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]
pub mod testing;
pub mod trace_context;
pub mod worker;

pub use audit::AuditLog;
pub use bus::{
    Backlog, BusError, DeadLetter, DeadLetters, Delivery, EventBus, EventSource, StreamSink,
};
pub use dead_letters::DeadLetterStore;
pub use envelope::{CATALOG, Envelope};
pub use history::EventHistory;
pub use outbox::{Inbox, InboxMark, Outbox, OutboxLag};
