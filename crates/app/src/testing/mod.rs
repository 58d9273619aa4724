//! Test support shared by this crate's tests and the adapters' tests: in-memory fakes of the
//! ports (for use-case tests) and the contract suite of each context's store ports, which
//! every adapter of them must pass.

pub mod catalog;
pub mod fakes;
pub mod ledger;
pub mod messages;
pub mod orders;
pub mod payments;
pub mod routing;
pub mod search;
pub mod users;
pub mod wallets;
pub mod webhooks;
