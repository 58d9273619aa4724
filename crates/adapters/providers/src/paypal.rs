//! PayPal over its REST API: an OAuth2 client-credentials token, cached until a minute before
//! it expires (and fetched again once if PayPal answers 401); Orders v2 to charge (create an
//! order for the vaulted payment source named by the token, then capture it); a refund of the
//! capture. Our provider key goes in `PayPal-Request-Id`, so a retry never charges twice.
//! Answers that are not final (a `PENDING` capture or refund) are read again once; webhooks
//! complete the rest.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use portside_app::payments::{
    ChargeRequest, PaymentProvider, ProviderError, ProviderOutcome, RefundRequest,
};
use portside_domain::Failure;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::caller::{Answer, Caller, Resilience};

/// Where PayPal is and who we are.
#[derive(Clone)]
pub struct PayPalSettings {
    /// REST app client id.
    pub client_id: String,
    /// REST app secret.
    pub client_secret: String,
    /// `https://api-m.paypal.com` (live) or `https://api-m.sandbox.paypal.com`.
    pub api_base: String,
    /// Timeout, retries, circuit breaker.
    pub resilience: Resilience,
}

impl std::fmt::Debug for PayPalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayPalSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

struct Token {
    value: String,
    renew_at: Instant,
}

/// The PayPal payment provider.
pub struct PayPalProvider {
    caller: Caller,
    client_id: String,
    client_secret: String,
    api_base: String,
    token: Mutex<Option<Token>>,
}

/// A refusal in PayPal's error object (`name`, `details[].issue`).
fn failure(body: &Value) -> Failure {
    let issue = body["details"][0]["issue"]
        .as_str()
        .or_else(|| body["name"].as_str())
        .unwrap_or("paypal_error")
        .to_ascii_lowercase();
    let message = body["details"][0]["description"]
        .as_str()
        .or_else(|| body["message"].as_str())
        .unwrap_or("refused by PayPal")
        .to_owned();
    match issue.as_str() {
        "instrument_declined" | "payer_cannot_pay" | "transaction_refused" => {
            Failure::declined(issue, message)
        }
        _ => Failure::new(issue, message),
    }
}

/// The first capture of an order.
fn capture_of(order: &Value) -> &Value {
    &order["purchase_units"][0]["payments"]["captures"][0]
}

impl PayPalProvider {
    /// A client; no call is made yet.
    pub fn new(settings: PayPalSettings) -> Result<Self, String> {
        if settings.client_id.trim().is_empty() || settings.client_secret.trim().is_empty() {
            return Err("the client id and secret must both be set".into());
        }
        Ok(PayPalProvider {
            caller: Caller::new("paypal", settings.resilience)?,
            client_id: settings.client_id,
            client_secret: settings.client_secret,
            api_base: settings.api_base.trim_end_matches('/').to_owned(),
            token: Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one.
    async fn token(&self, renew: bool) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && !renew
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let url = format!("{}/v1/oauth2/token", self.api_base);
        let a = self
            .caller
            .send("token", || {
                self.caller
                    .http
                    .post(&url)
                    .basic_auth(&self.client_id, Some(&self.client_secret))
                    .form(&[("grant_type", "client_credentials")])
            })
            .await?;
        let value = a.body["access_token"]
            .as_str()
            .filter(|_| a.status.is_success());
        let Some(value) = value else {
            return Err(ProviderError::Unavailable(format!(
                "PayPal refused our client credentials ({})",
                a.status
            )));
        };
        let lifetime = Duration::from_secs(a.body["expires_in"].as_u64().unwrap_or(300));
        *cached = Some(Token {
            value: value.to_owned(),
            renew_at: Instant::now() + lifetime.saturating_sub(Duration::from_secs(60)),
        });
        Ok(value.to_owned())
    }

    /// One API call with the bearer token; a 401 fetches a new token and tries once more.
    async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<String>,
        request_id: Option<&str>,
    ) -> Result<Answer, ProviderError> {
        let url = format!("{}{path}", self.api_base);
        let mut renew = false;
        loop {
            let token = self.token(renew).await?;
            let a = self
                .caller
                .send(op, || {
                    let mut r = self
                        .caller
                        .http
                        .request(method.clone(), &url)
                        .bearer_auth(&token)
                        .header("Prefer", "return=representation");
                    if let Some(id) = request_id {
                        r = r.header("PayPal-Request-Id", id);
                    }
                    if let Some(b) = &body {
                        r = r.header("content-type", "application/json").body(b.clone());
                    }
                    r
                })
                .await?;
            if a.status.as_u16() == 401 && !renew {
                renew = true;
                continue;
            }
            return Ok(a);
        }
    }

    /// Asks PayPal whether a webhook notice is genuine (its documented postback), sending the
    /// notice exactly as received.
    pub(crate) async fn verify_notice(&self, request: String) -> Result<Answer, ProviderError> {
        self.call(
            "verify_webhook",
            Method::POST,
            "/v1/notifications/verify-webhook-signature",
            Some(request),
            None,
        )
        .await
    }

    fn refusal(op: &str, a: &Answer) -> Result<ProviderOutcome, ProviderError> {
        a.refusal("PayPal", op, &[400, 404, 422], failure)
    }

    /// The outcome `classify` reads from a capture or refund; `PENDING` is read again once at
    /// `path` + its id.
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
                self.call(op, Method::GET, &format!("{path}{id}"), None, None)
                    .await
            },
            |a| Self::refusal(op, a),
        )
        .await
    }
}

/// A capture's final outcome; `None` while pending.
fn capture_outcome(capture: &Value) -> Option<ProviderOutcome> {
    match capture["status"].as_str() {
        Some("COMPLETED") => Some(ProviderOutcome::Succeeded {
            reference: capture["id"].as_str().unwrap_or_default().to_owned(),
        }),
        Some("DECLINED" | "FAILED") => Some(ProviderOutcome::Failed(Failure::declined(
            "capture_declined",
            "PayPal declined the capture",
        ))),
        _ => None,
    }
}

/// A refund's final outcome; `None` while pending.
fn refund_outcome(refund: &Value) -> Option<ProviderOutcome> {
    match refund["status"].as_str() {
        Some("COMPLETED") => Some(ProviderOutcome::Succeeded {
            reference: refund["id"].as_str().unwrap_or_default().to_owned(),
        }),
        Some("CANCELLED" | "FAILED") => Some(ProviderOutcome::Failed(Failure::new(
            "refund_failed",
            "PayPal could not refund the capture",
        ))),
        _ => None,
    }
}

#[async_trait]
impl PaymentProvider for PayPalProvider {
    async fn charge(&self, r: &ChargeRequest) -> Result<ProviderOutcome, ProviderError> {
        let mut unit = json!({
            "custom_id": r.transaction_id.0.to_string(),
            "amount": {
                "currency_code": r.amount.currency().code(),
                "value": r.amount.to_decimal_string(),
            },
        });
        if let Some(d) = &r.description {
            unit["description"] = d.chars().take(127).collect::<String>().into();
        }
        let order = json!({
            "intent": "CAPTURE",
            "purchase_units": [unit],
            "payment_source": {"paypal": {"vault_id": r.method_token}},
        });
        let created = self
            .call(
                "charge",
                Method::POST,
                "/v2/checkout/orders",
                Some(order.to_string()),
                Some(&r.provider_key),
            )
            .await?;
        if !created.status.is_success() {
            return Self::refusal("charge", &created);
        }
        // A vaulted source may be captured at creation; otherwise capture now.
        if created.body["status"] == "COMPLETED" {
            return self
                .final_or_again(
                    capture_of(&created.body),
                    capture_outcome,
                    "capture_status",
                    "/v2/payments/captures/",
                )
                .await;
        }
        let Some(order_id) = created.body["id"].as_str() else {
            return Err(ProviderError::Unavailable(
                "PayPal returned an order without id".into(),
            ));
        };
        let captured = self
            .call(
                "capture",
                Method::POST,
                &format!("/v2/checkout/orders/{order_id}/capture"),
                Some("{}".to_owned()),
                Some(&format!("{}-capture", r.provider_key)),
            )
            .await
            .map_err(crate::caller::already_sent)?;
        if !captured.status.is_success() {
            return Self::refusal("capture", &captured);
        }
        self.final_or_again(
            capture_of(&captured.body),
            capture_outcome,
            "capture_status",
            "/v2/payments/captures/",
        )
        .await
    }

    async fn refund(&self, r: &RefundRequest) -> Result<ProviderOutcome, ProviderError> {
        let mut body = json!({
            "amount": {
                "currency_code": r.amount.currency().code(),
                "value": r.amount.to_decimal_string(),
            },
            "custom_id": r.transaction_id.0.to_string(),
        });
        if let Some(reason) = &r.reason {
            body["note_to_payer"] = reason.chars().take(255).collect::<String>().into();
        }
        let a = self
            .call(
                "refund",
                Method::POST,
                &format!("/v2/payments/captures/{}/refund", r.charge_reference),
                Some(body.to_string()),
                Some(&r.provider_key),
            )
            .await?;
        if a.status.is_success() {
            self.final_or_again(
                &a.body,
                refund_outcome,
                "refund_status",
                "/v2/payments/refunds/",
            )
            .await
        } else {
            Self::refusal("refund", &a)
        }
    }

    fn availability(&self) -> Result<(), Duration> {
        self.caller.availability()
    }
}
