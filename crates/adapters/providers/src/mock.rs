//! A deterministic provider: the payment method token decides the outcome.
//!
//! | token | charge | refund |
//! |---|---|---|
//! | `tok_visa…`, `tok_mastercard…`, `tok_amex…` | succeeds | succeeds |
//! | `tok_chargeDeclined` | declined, `generic_decline` | — |
//! | `tok_chargeDeclinedInsufficientFunds` | declined, `insufficient_funds` | — |
//! | `tok_chargeDeclinedExpiredCard` | fails, `expired_card` | — |
//! | `tok_processing_error` | fails, `processing_error` | — |
//! | `tok_timeout` | first call per key times out (the charge went through; the answer was lost), later calls succeed | same |
//! | `tok_refundFail` | succeeds | fails, `refund_failed` |
//! | `tok_unavailable` | not reached (as if the mock were down: nothing charged, the charge may move to the next provider of its route) | not reached |
//! | anything else | fails, `invalid_payment_method` | — |
//!
//! Like a real provider it is idempotent on the provider key: a repeated call with the same
//! key gets the same reference.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use portside_app::payments::{
    ChargeRequest, PaymentProvider, ProviderError, ProviderOutcome, RefundRequest,
};
use portside_domain::Failure;
use sha2::{Digest, Sha256};

/// The mock provider (see the module docs for its tokens).
#[derive(Default)]
pub struct MockProvider {
    /// Provider keys whose first (timed-out) call already happened.
    timed_out: Mutex<HashSet<String>>,
}

impl MockProvider {
    /// A fresh mock.
    pub fn new() -> Self {
        Self::default()
    }

    /// First call with this key: false (and remembered); afterwards true.
    fn seen_before(&self, key: &str) -> bool {
        match self.timed_out.lock() {
            Ok(mut seen) => !seen.insert(key.to_owned()),
            Err(_) => true,
        }
    }
}

fn reference(prefix: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_mock_{hex}")
}

fn succeeded(prefix: &str, key: &str) -> Result<ProviderOutcome, ProviderError> {
    Ok(ProviderOutcome::Succeeded {
        reference: reference(prefix, key),
    })
}

fn unreachable() -> ProviderError {
    ProviderError::NotSent("the mock is unavailable (tok_unavailable)".into())
}

fn failed(failure: Failure) -> Result<ProviderOutcome, ProviderError> {
    Ok(ProviderOutcome::Failed(failure))
}

#[async_trait]
impl PaymentProvider for MockProvider {
    async fn charge(&self, request: &ChargeRequest) -> Result<ProviderOutcome, ProviderError> {
        let key = &request.provider_key;
        match request.method_token.as_str() {
            t if t.starts_with("tok_visa")
                || t.starts_with("tok_mastercard")
                || t.starts_with("tok_amex") =>
            {
                succeeded("ch", key)
            }
            "tok_refundFail" => succeeded("ch", key),
            "tok_chargeDeclined" => failed(Failure::declined(
                "generic_decline",
                "Your card was declined.",
            )),
            "tok_chargeDeclinedInsufficientFunds" => failed(Failure::declined(
                "insufficient_funds",
                "Your card has insufficient funds.",
            )),
            "tok_chargeDeclinedExpiredCard" => {
                failed(Failure::new("expired_card", "Your card has expired."))
            }
            "tok_processing_error" => failed(Failure::new(
                "processing_error",
                "An error occurred while processing your card. Try again in a little bit.",
            )),
            "tok_timeout" if !self.seen_before(key) => Err(ProviderError::Timeout),
            "tok_timeout" => succeeded("ch", key),
            "tok_unavailable" => Err(unreachable()),
            other => failed(Failure::new(
                "invalid_payment_method",
                format!("No such payment method token: {other:?}"),
            )),
        }
    }

    async fn refund(&self, request: &RefundRequest) -> Result<ProviderOutcome, ProviderError> {
        let key = &request.provider_key;
        match request.method_token.as_str() {
            "tok_refundFail" => failed(Failure::new(
                "refund_failed",
                "The refund was refused by the card issuer.",
            )),
            "tok_timeout" if !self.seen_before(key) => Err(ProviderError::Timeout),
            "tok_unavailable" => Err(unreachable()),
            _ => succeeded("re", key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portside_domain::{Currency, CustomerId, Metadata, Money, PaymentMethod};

    fn charge(token: &str, key: &str) -> ChargeRequest {
        ChargeRequest {
            transaction_id: portside_domain::TransactionId(Default::default()),
            provider_key: key.into(),
            amount: Money::from_minor(100, Currency::from_code("USD").unwrap()),
            method: PaymentMethod::Card,
            method_token: token.into(),
            customer_id: CustomerId::parse("c").unwrap(),
            description: None,
            metadata: Metadata::default(),
        }
    }

    #[tokio::test]
    async fn tokens_decide_the_outcome() {
        let mock = MockProvider::new();
        let ok = mock.charge(&charge("tok_visa_4242", "k1")).await.unwrap();
        assert_eq!(
            ok,
            mock.charge(&charge("tok_visa_4242", "k1")).await.unwrap(),
            "idempotent on the key"
        );
        assert!(
            matches!(ok, ProviderOutcome::Succeeded { ref reference } if reference.starts_with("ch_mock_"))
        );
        let declined = mock
            .charge(&charge("tok_chargeDeclined", "k2"))
            .await
            .unwrap();
        assert!(
            matches!(declined, ProviderOutcome::Failed(ref f) if f.code == "card_declined" && f.decline_code.as_deref() == Some("generic_decline"))
        );
        let error = mock
            .charge(&charge("tok_processing_error", "k3"))
            .await
            .unwrap();
        assert!(matches!(error, ProviderOutcome::Failed(ref f) if f.code == "processing_error"));
        assert!(matches!(
            mock.charge(&charge("tok_unavailable", "k5")).await,
            Err(ProviderError::NotSent(_))
        ));
        let unknown = mock.charge(&charge("tok_nope", "k4")).await.unwrap();
        assert!(
            matches!(unknown, ProviderOutcome::Failed(ref f) if f.code == "invalid_payment_method")
        );
    }

    #[tokio::test]
    async fn a_timeout_is_answered_on_the_retry_with_the_same_key() {
        let mock = MockProvider::new();
        assert_eq!(
            mock.charge(&charge("tok_timeout", "k")).await,
            Err(ProviderError::Timeout)
        );
        assert!(matches!(
            mock.charge(&charge("tok_timeout", "k")).await,
            Ok(ProviderOutcome::Succeeded { .. })
        ));
        assert_eq!(
            mock.charge(&charge("tok_timeout", "other")).await,
            Err(ProviderError::Timeout)
        );
    }
}
