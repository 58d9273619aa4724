//! Payment provider adapters. For now the mock, whose test tokens behave like Stripe's test
//! cards so that every branch of the payment flow can be driven from a plain HTTP request.

mod mock;

pub use mock::MockProvider;
