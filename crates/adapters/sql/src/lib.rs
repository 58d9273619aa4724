//! SQL adapters of Portside's store ports, on SQLite (embedded) and PostgreSQL (server), with
//! their migrations. One implementation serves both engines (see `store`); each context's
//! ports are implemented in the file of its name.

mod catalog;
mod connect;
mod error;
mod events;
mod ledger;
mod messages;
mod orders;
mod payments;
mod readers;
mod routing;
mod rows;
mod store;
mod types;
mod users;
mod wallets;
mod webhooks;

pub use connect::{AnyStore, OpenError, PoolSettings, PoolUse};
pub use store::SqlStore;
