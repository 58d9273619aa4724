//! Payment provider adapters: the mock (test tokens that behave like Stripe's test cards, so
//! every branch of the payment flow can be driven from a plain HTTP request) and Stripe over
//! its REST API, each call with a timeout, retries and a circuit breaker.

mod caller;
mod mock;
mod stripe;
mod stripe_webhook;

pub use caller::Resilience;
pub use mock::MockProvider;
pub use stripe::{StripeProvider, StripeSettings};
pub use stripe_webhook::{StripeWebhooks, parse_header as parse_stripe_signature};
