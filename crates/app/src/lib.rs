//! Portside's application layer: the use cases (payments, accounts, messages, memberships)
//! and the ports they drive. It knows the domain
//! and nothing of HTTP, SQL or brokers; adapters implement the ports.

pub mod accounts;
#[cfg(test)]
mod accounts_tests;
pub mod error;
pub mod events;
pub mod handlers;
pub mod idempotency;
pub mod memberships;
pub mod messages;
pub mod orders;
#[cfg(test)]
mod orders_tests;
pub mod payments;
#[cfg(test)]
mod payments_tests;
pub mod ports;
pub mod relay;
#[cfg(test)]
mod relay_tests;
pub mod resilience;
pub mod search;
#[cfg(test)]
mod search_tests;
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]
pub mod testing;
pub mod trace_context;
pub mod user_cache;
pub mod webhooks;
pub mod worker;

pub use error::AppError;
