//! SQL adapters of Portside's store ports, on SQLite (embedded) and PostgreSQL (server), with
//! their migrations. One implementation serves both engines (see `store`).

mod connect;
mod error;
mod identity_store;
mod order_store;
mod readers;
mod rows;
mod store;
mod types;

pub use connect::{AnyStore, OpenError, PoolSettings, PoolUse};
pub use store::SqlStore;
