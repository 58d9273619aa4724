//! Stripe over its REST API (form-encoded requests, the secret key as bearer token, our provider
//! key as `Idempotency-Key`).
//!
//! A charge creates and confirms a PaymentIntent from the payment method token (redirect-based
//! methods are not allowed: a server-side charge has nowhere to send the customer). A refund
//! refunds the PaymentIntent, partially or fully. Because Stripe replays the first answer to a
//! repeated idempotency key, an answer that is not final (`processing`, `requires_action`,
//! `pending`) is followed by a read of the object's current state, so a retry or the recovery
//! task sees what happened since; webhooks complete the rest.

use async_trait::async_trait;
use portside_app::ports::{
    ChargeRequest, PaymentProvider, ProviderError, ProviderOutcome, RefundRequest,
};
use portside_domain::Failure;
use reqwest::Method;
use serde_json::Value;

use crate::caller::{Answer, Caller, Resilience};

/// Where Stripe is and how to call it.
#[derive(Clone)]
pub struct StripeSettings {
    /// Secret API key (`sk_live_…` / `sk_test_…`).
    pub secret_key: String,
    /// Base URL, `https://api.stripe.com` unless a test double stands in.
    pub api_base: String,
    /// Timeout, retries, circuit breaker.
    pub resilience: Resilience,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("secret_key", &"<redacted>")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// The Stripe payment provider.
pub struct StripeProvider {
    caller: Caller,
    secret_key: String,
    api_base: String,
}

/// A refusal in Stripe's error object: `decline_code` for card declines, else `code`.
fn failure(body: &Value, fallback: &str) -> Failure {
    let error = &body["error"];
    let message = error["message"]
        .as_str()
        .unwrap_or("refused by Stripe")
        .to_owned();
    match (error["code"].as_str(), error["decline_code"].as_str()) {
        (Some("card_declined"), decline) | (None, decline @ Some(_)) => {
            Failure::declined(decline.unwrap_or("generic_decline"), message)
        }
        (Some(code), _) => Failure::new(code, message),
        (None, None) => Failure::new(fallback, message),
    }
}

/// The last payment error of a PaymentIntent that needs a new payment method.
pub(crate) fn intent_failure(intent: &Value) -> Failure {
    let error = &intent["last_payment_error"];
    if error.is_object() {
        failure(&serde_json::json!({ "error": error }), "payment_failed")
    } else {
        Failure::new("payment_failed", "the payment method was refused")
    }
}

impl StripeProvider {
    /// A client; no call is made yet.
    pub fn new(settings: StripeSettings) -> Result<Self, String> {
        if settings.secret_key.trim().is_empty() {
            return Err("the secret key is empty".into());
        }
        Ok(StripeProvider {
            caller: Caller::new("stripe", settings.resilience)?,
            secret_key: settings.secret_key,
            api_base: settings.api_base.trim_end_matches('/').to_owned(),
        })
    }

    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        form: &[(String, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Answer, ProviderError> {
        let url = format!("{}{path}", self.api_base);
        self.caller
            .send(op, || {
                let mut r = self
                    .caller
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(&self.secret_key);
                if let Some(key) = idempotency_key {
                    r = r.header("Idempotency-Key", key);
                }
                if !form.is_empty() {
                    r = r.form(form);
                }
                r
            })
            .await
    }

    /// Maps an answer that is not a 2xx: refusals are definite, credentials and the unexpected
    /// leave the outcome unknown (nothing is marked failed for our own misconfiguration).
    fn refusal(op: &str, a: &Answer) -> Result<ProviderOutcome, ProviderError> {
        match a.status.as_u16() {
            400 | 402 | 404 => Ok(ProviderOutcome::Failed(failure(&a.body, "invalid_request"))),
            401 | 403 => Err(ProviderError::Unavailable(format!(
                "Stripe refused the API key ({}) on {op}",
                a.status
            ))),
            _ => Err(ProviderError::Unavailable(format!(
                "Stripe answered {} on {op}",
                a.status
            ))),
        }
    }

    /// A PaymentIntent's state as an outcome; not final → read it again once.
    async fn intent_outcome(
        &self,
        intent: &Value,
        fresh: bool,
    ) -> Result<ProviderOutcome, ProviderError> {
        let id = intent["id"].as_str().unwrap_or_default();
        match intent["status"].as_str() {
            Some("succeeded") => Ok(ProviderOutcome::Succeeded {
                reference: id.to_owned(),
            }),
            Some("requires_payment_method") => Ok(ProviderOutcome::Failed(intent_failure(intent))),
            Some("canceled") => Ok(ProviderOutcome::Failed(Failure::new(
                "payment_canceled",
                "the payment was canceled at Stripe",
            ))),
            Some(_) if !fresh && !id.is_empty() => {
                let a = self
                    .call(
                        "charge_status",
                        Method::GET,
                        &format!("/v1/payment_intents/{id}"),
                        &[],
                        None,
                    )
                    .await?;
                if !a.status.is_success() {
                    return Self::refusal("charge_status", &a);
                }
                Box::pin(self.intent_outcome(&a.body, true)).await
            }
            _ => Ok(ProviderOutcome::Pending),
        }
    }

    async fn refund_outcome(
        &self,
        refund: &Value,
        fresh: bool,
    ) -> Result<ProviderOutcome, ProviderError> {
        let id = refund["id"].as_str().unwrap_or_default();
        match refund["status"].as_str() {
            Some("succeeded") => Ok(ProviderOutcome::Succeeded {
                reference: id.to_owned(),
            }),
            Some("failed" | "canceled") => Ok(ProviderOutcome::Failed(Failure::new(
                "refund_failed",
                format!(
                    "Stripe could not refund: {}",
                    refund["failure_reason"]
                        .as_str()
                        .unwrap_or("unknown reason")
                ),
            ))),
            Some(_) if !fresh && !id.is_empty() => {
                let a = self
                    .call(
                        "refund_status",
                        Method::GET,
                        &format!("/v1/refunds/{id}"),
                        &[],
                        None,
                    )
                    .await?;
                if !a.status.is_success() {
                    return Self::refusal("refund_status", &a);
                }
                Box::pin(self.refund_outcome(&a.body, true)).await
            }
            _ => Ok(ProviderOutcome::Pending),
        }
    }
}

fn pair(k: impl Into<String>, v: impl Into<String>) -> (String, String) {
    (k.into(), v.into())
}

#[async_trait]
impl PaymentProvider for StripeProvider {
    async fn charge(&self, r: &ChargeRequest) -> Result<ProviderOutcome, ProviderError> {
        let mut form = vec![
            pair("amount", r.amount.minor().to_string()),
            pair("currency", r.amount.currency().code().to_ascii_lowercase()),
            pair("payment_method", r.method_token.as_str()),
            pair("confirm", "true"),
            pair("automatic_payment_methods[enabled]", "true"),
            pair("automatic_payment_methods[allow_redirects]", "never"),
            pair(
                "metadata[portside_transaction_id]",
                r.transaction_id.0.to_string(),
            ),
            pair("metadata[portside_customer_id]", r.customer_id.as_str()),
        ];
        if let Some(d) = &r.description {
            form.push(pair("description", d.as_str()));
        }
        for (k, v) in r.metadata.as_map() {
            form.push(pair(format!("metadata[{k}]"), v.as_str()));
        }
        let a = self
            .call(
                "charge",
                Method::POST,
                "/v1/payment_intents",
                &form,
                Some(&r.provider_key),
            )
            .await?;
        if a.status.is_success() {
            self.intent_outcome(&a.body, false).await
        } else {
            Self::refusal("charge", &a)
        }
    }

    async fn refund(&self, r: &RefundRequest) -> Result<ProviderOutcome, ProviderError> {
        let mut form = vec![
            pair("payment_intent", r.charge_reference.as_str()),
            pair("amount", r.amount.minor().to_string()),
            pair(
                "metadata[portside_transaction_id]",
                r.transaction_id.0.to_string(),
            ),
        ];
        if let Some(reason) = &r.reason {
            form.push(pair("metadata[reason]", reason.as_str()));
        }
        let a = self
            .call(
                "refund",
                Method::POST,
                "/v1/refunds",
                &form,
                Some(&r.provider_key),
            )
            .await?;
        if a.status.is_success() {
            self.refund_outcome(&a.body, false).await
        } else {
            Self::refusal("refund", &a)
        }
    }

    fn availability(&self) -> Result<(), std::time::Duration> {
        self.caller.availability()
    }
}
