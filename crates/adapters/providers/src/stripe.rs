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
use portside_app::payments::{
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
        a.refusal("Stripe", op, &[400, 402, 404], |body| {
            failure(body, "invalid_request")
        })
    }

    /// The outcome `classify` reads from an object; when it is not final, the object is read
    /// again once at `path` + its id (Stripe replays the first answer to a repeated key).
    async fn final_or_again(
        &self,
        object: &Value,
        classify: fn(&Value) -> Option<ProviderOutcome>,
        op: &'static str,
        path: &str,
    ) -> Result<ProviderOutcome, ProviderError> {
        crate::caller::final_or_again(
            object,
            classify,
            |id| async move {
                self.call(op, Method::GET, &format!("{path}{id}"), &[], None)
                    .await
            },
            |a| Self::refusal(op, a),
        )
        .await
    }
}

/// A PaymentIntent's final outcome; `None` while it is not final.
fn intent_outcome(intent: &Value) -> Option<ProviderOutcome> {
    match intent["status"].as_str() {
        Some("succeeded") => Some(ProviderOutcome::Succeeded {
            reference: intent["id"].as_str().unwrap_or_default().to_owned(),
        }),
        Some("requires_payment_method") => Some(ProviderOutcome::Failed(intent_failure(intent))),
        Some("canceled") => Some(ProviderOutcome::Failed(Failure::new(
            "payment_canceled",
            "the payment was canceled at Stripe",
        ))),
        _ => None,
    }
}

/// A Refund's final outcome; `None` while it is pending.
fn refund_outcome(refund: &Value) -> Option<ProviderOutcome> {
    match refund["status"].as_str() {
        Some("succeeded") => Some(ProviderOutcome::Succeeded {
            reference: refund["id"].as_str().unwrap_or_default().to_owned(),
        }),
        Some("failed" | "canceled") => Some(ProviderOutcome::Failed(Failure::new(
            "refund_failed",
            format!(
                "Stripe could not refund: {}",
                refund["failure_reason"]
                    .as_str()
                    .unwrap_or("unknown reason")
            ),
        ))),
        _ => None,
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
            self.final_or_again(
                &a.body,
                intent_outcome,
                "charge_status",
                "/v1/payment_intents/",
            )
            .await
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
            self.final_or_again(&a.body, refund_outcome, "refund_status", "/v1/refunds/")
                .await
        } else {
            Self::refusal("refund", &a)
        }
    }

    fn availability(&self) -> Result<(), std::time::Duration> {
        self.caller.availability()
    }
}
