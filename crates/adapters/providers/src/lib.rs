//! Payment provider adapters: the mock (test tokens that behave like Stripe's test cards, so
//! every branch of the payment flow can be driven from a plain HTTP request), Stripe and PayPal
//! over their REST APIs (each call with a timeout, retries and a circuit breaker), and the
//! verification of their webhooks.

mod caller;
mod mock;
mod paypal;
mod paypal_webhook;
mod stripe;
mod stripe_webhook;

pub use caller::Resilience;
pub use mock::MockProvider;
pub use paypal::{PayPalProvider, PayPalSettings};
pub use paypal_webhook::PayPalWebhooks;
pub use stripe::{StripeProvider, StripeSettings};
pub use stripe_webhook::{StripeWebhooks, parse_header as parse_stripe_signature};
