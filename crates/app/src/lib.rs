//! Portside's application layer: one module per bounded context (payments, users, messages,
//! memberships, catalog, orders, search, history, ledger, wallets, webhooks, routing), each holding its use cases, the ports they drive and the
//! consumers of events it owns. It knows the domain and nothing of HTTP, SQL or brokers;
//! adapters implement the ports. The event backbone is `portside-events`; what all layers
//! share (store errors, clock, probes, resilience) is `portside-kernel`.

pub mod application;
#[cfg(test)]
mod backbone_tests;
pub mod catalog;
pub mod dead_letters;
pub mod error;
pub mod history;
pub mod ledger;
pub mod memberships;
pub mod messages;
pub mod orders;
pub mod payments;
pub mod precondition;
pub mod routing;
pub mod search;
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]
pub mod testing;
pub mod users;
pub mod wallets;
pub mod webhooks;

pub use error::{AppError, Refusal};
pub use precondition::IfMatch;
