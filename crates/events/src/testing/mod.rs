//! Test support for the adapters of the backbone's ports.

pub mod bus;
