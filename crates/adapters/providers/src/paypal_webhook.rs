//! PayPal webhook verification through PayPal's documented postback
//! (`POST /v1/notifications/verify-webhook-signature`): the transmission headers, our webhook id
//! and the notice exactly as received go to PayPal, which answers `SUCCESS` or `FAILURE`. The
//! transmission time must also be within 5 minutes of now, so an old notice cannot be replayed.

use std::sync::Arc;

use async_trait::async_trait;
use portside_app::payments::{ProviderChange, ProviderNotice, WebhookError, WebhookVerifier};
use portside_domain::{Failure, TransactionId};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::paypal::PayPalProvider;

const TOLERANCE_SECS: i64 = 300;

/// Verifies PayPal's notices for one webhook (its id in the PayPal app).
pub struct PayPalWebhooks {
    paypal: Arc<PayPalProvider>,
    webhook_id: String,
}

#[derive(Serialize)]
struct Verification<'a> {
    auth_algo: &'a str,
    cert_url: &'a str,
    transmission_id: &'a str,
    transmission_sig: &'a str,
    transmission_time: &'a str,
    webhook_id: &'a str,
    webhook_event: &'a RawValue,
}

impl PayPalWebhooks {
    /// Verifies with the given client (it holds the OAuth token) for `webhook_id`.
    pub fn new(paypal: Arc<PayPalProvider>, webhook_id: impl Into<String>) -> Self {
        PayPalWebhooks {
            paypal,
            webhook_id: webhook_id.into(),
        }
    }
}

fn transaction_of(resource: &Value) -> Option<TransactionId> {
    resource["custom_id"]
        .as_str()
        .and_then(|t| uuid::Uuid::parse_str(t).ok())
        .map(TransactionId)
}

/// The capture a refund belongs to, from its `up` link (`…/v2/payments/captures/{id}`).
fn capture_of_refund(resource: &Value) -> Option<String> {
    resource["links"]
        .as_array()?
        .iter()
        .find(|l| l["rel"] == "up")?["href"]
        .as_str()?
        .rsplit('/')
        .next()
        .map(str::to_owned)
}

/// Reads a verified event.
pub(crate) fn notice(body: &[u8]) -> Result<ProviderNotice, WebhookError> {
    let event: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let text = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| WebhookError::Malformed(format!("{what} missing")))
    };
    let event_id = text(&event["id"], "id")?;
    let event_type = text(&event["event_type"], "event_type")?;
    let resource = &event["resource"];
    let change = match event_type.as_str() {
        "PAYMENT.CAPTURE.COMPLETED" => Some(ProviderChange::ChargeSucceeded {
            transaction_id: transaction_of(resource),
            reference: text(&resource["id"], "resource.id")?,
        }),
        "PAYMENT.CAPTURE.DECLINED" | "PAYMENT.CAPTURE.DENIED" => {
            Some(ProviderChange::ChargeFailed {
                transaction_id: transaction_of(resource),
                reference: text(&resource["id"], "resource.id")?,
                failure: Failure::declined("capture_declined", "PayPal declined the capture"),
            })
        }
        "PAYMENT.CAPTURE.REFUNDED" => Some(ProviderChange::Refunded {
            reference: capture_of_refund(resource).ok_or_else(|| {
                WebhookError::Malformed("resource.links has no capture (rel up)".into())
            })?,
        }),
        _ => None,
    };
    Ok(ProviderNotice {
        event_id,
        event_type,
        change,
    })
}

#[async_trait]
impl WebhookVerifier for PayPalWebhooks {
    async fn verify(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ProviderNotice, WebhookError> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| WebhookError::BadSignature(format!("{name} is missing")))
        };
        let time = header("paypal-transmission-time")?;
        let sent = OffsetDateTime::parse(time, &Rfc3339).map_err(|_| {
            WebhookError::BadSignature("paypal-transmission-time is not RFC 3339".into())
        })?;
        let age = (OffsetDateTime::now_utc() - sent).whole_seconds();
        if age.abs() > TOLERANCE_SECS {
            return Err(WebhookError::Stale(TOLERANCE_SECS as u64));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| WebhookError::Malformed("the body is not UTF-8".into()))?;
        let event = RawValue::from_string(text.to_owned())
            .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let request = serde_json::to_string(&Verification {
            auth_algo: header("paypal-auth-algo")?,
            cert_url: header("paypal-cert-url")?,
            transmission_id: header("paypal-transmission-id")?,
            transmission_sig: header("paypal-transmission-sig")?,
            transmission_time: time,
            webhook_id: &self.webhook_id,
            webhook_event: &event,
        })
        .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let answer = self
            .paypal
            .verify_notice(request)
            .await
            .map_err(|e| WebhookError::Unavailable(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(WebhookError::Unavailable(format!(
                "PayPal's verification answered {}",
                answer.status
            )));
        }
        if answer.body["verification_status"] != "SUCCESS" {
            return Err(WebhookError::BadSignature(
                "PayPal did not verify the notice".into(),
            ));
        }
        notice(body)
    }
}
