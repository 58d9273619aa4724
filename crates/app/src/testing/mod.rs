//! Test support shared by this crate's tests and the adapters' tests: in-memory fakes of the
//! ports (for use-case tests) and the port contract suites every adapter must pass.

pub mod bus_contract;
pub mod cache_contract;
pub mod contract;
pub mod fakes;
pub mod identity_contract;
pub mod order_contract;
pub mod search_contract;
