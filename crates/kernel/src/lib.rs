//! What every layer around the domain shares and no use case owns: the error a store reports,
//! the clock and id ports (so tests are exact), readiness probes, the cache port, and the
//! policies for calling remote dependencies. Adapters use it without importing the use cases.

mod cache;
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub mod cache_contract;
mod clock;
mod page;
mod probe;
pub mod resilience;
mod store;

pub use cache::{Cache, CacheError};
pub use clock::{Clock, IdGenerator, SystemClock, UuidV7};
pub use page::{Page, PageRequest};
pub use probe::Probe;
pub use store::StoreError;
