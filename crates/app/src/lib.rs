//! Portside's application layer: the use cases and the ports they drive. It knows the domain
//! and nothing of HTTP, SQL or brokers; adapters implement the ports.

pub mod error;
pub mod idempotency;
pub mod payments;
#[cfg(test)]
mod payments_tests;
pub mod ports;
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]
pub mod testing;

pub use error::AppError;
