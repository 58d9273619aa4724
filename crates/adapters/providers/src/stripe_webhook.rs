//! Stripe webhook verification: `Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>…]` where
//! each `v1` is HMAC-SHA256 of `"<t>.<raw body>"` keyed with the endpoint's signing secret.
//! Any `v1` may match (Stripe sends several while a secret is rolled); the comparison is
//! constant-time; a timestamp further than the tolerance from now is refused as a replay.

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use portside_app::payments::{ProviderChange, ProviderNotice, WebhookError, WebhookVerifier};
use portside_domain::TransactionId;
use serde_json::Value;
use sha2::Sha256;

use crate::stripe::intent_failure;

/// Verifies Stripe's notices for one endpoint.
pub struct StripeWebhooks {
    secret: String,
    tolerance: Duration,
}

impl StripeWebhooks {
    /// For the endpoint's signing secret (`whsec_…`), with Stripe's default tolerance of 5 min.
    pub fn new(secret: impl Into<String>) -> Self {
        StripeWebhooks {
            secret: secret.into(),
            tolerance: Duration::from_secs(300),
        }
    }

    /// Checks the header against the raw body at `now` (Unix seconds).
    pub fn check(&self, header: &str, body: &[u8], now: i64) -> Result<(), WebhookError> {
        let (timestamp, signatures) = parse_header(header)?;
        if now.abs_diff(timestamp) > self.tolerance.as_secs() {
            return Err(WebhookError::Stale(self.tolerance.as_secs()));
        }
        for signature in signatures {
            let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes())
                .map_err(|e| WebhookError::BadSignature(e.to_string()))?;
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(&signature).is_ok() {
                return Ok(());
            }
        }
        Err(WebhookError::BadSignature(
            "no v1 signature matches the payload".into(),
        ))
    }
}

/// `t=…` and every `v1=…` (decoded); other schemes (`v0`) are ignored.
pub fn parse_header(header: &str) -> Result<(i64, Vec<Vec<u8>>), WebhookError> {
    let bad = |m: &str| WebhookError::BadSignature(m.into());
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| bad("t is not a Unix time"))?),
            "v1" => signatures.push(hex(v).ok_or_else(|| bad("v1 is not hex"))?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| bad("Stripe-Signature has no t"))?;
    if signatures.is_empty() {
        return Err(bad("Stripe-Signature has no v1 signature"));
    }
    Ok((timestamp, signatures))
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn transaction_of(object: &Value) -> Option<TransactionId> {
    object["metadata"]["portside_transaction_id"]
        .as_str()
        .and_then(|t| uuid::Uuid::parse_str(t).ok())
        .map(TransactionId)
}

/// Reads a verified event.
fn notice(body: &[u8]) -> Result<ProviderNotice, WebhookError> {
    let event: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let text = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| WebhookError::Malformed(format!("{what} missing")))
    };
    let event_id = text(&event["id"], "id")?;
    let event_type = text(&event["type"], "type")?;
    let object = &event["data"]["object"];
    let change = match event_type.as_str() {
        "payment_intent.succeeded" => Some(ProviderChange::ChargeSucceeded {
            transaction_id: transaction_of(object),
            reference: text(&object["id"], "data.object.id")?,
        }),
        "payment_intent.payment_failed" => Some(ProviderChange::ChargeFailed {
            transaction_id: transaction_of(object),
            reference: text(&object["id"], "data.object.id")?,
            failure: intent_failure(object),
        }),
        "charge.refunded" => Some(ProviderChange::Refunded {
            reference: text(&object["payment_intent"], "data.object.payment_intent")?,
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
impl WebhookVerifier for StripeWebhooks {
    async fn verify(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ProviderNotice, WebhookError> {
        let header = headers
            .iter()
            .find(|(k, _)| k == "stripe-signature")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| WebhookError::BadSignature("Stripe-Signature is missing".into()))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.check(header, body, now)?;
        notice(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{body}").as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn signatures_are_checked_with_tolerance_and_key_rolling() {
        let w = StripeWebhooks::new("whsec_test");
        let body = r#"{"id":"evt_1","type":"x"}"#;
        let now = 1_700_000_000;
        let good = sign("whsec_test", now, body);
        let old = sign("whsec_old", now, body);
        assert_eq!(
            w.check(&format!("t={now},v1={good}"), body.as_bytes(), now),
            Ok(())
        );
        assert_eq!(
            w.check(
                &format!("t={now},v1={old},v1={good},v0=abc"),
                body.as_bytes(),
                now + 299
            ),
            Ok(()),
            "any v1 may match; v0 is ignored"
        );
        let stale = w.check(&format!("t={now},v1={good}"), body.as_bytes(), now + 301);
        assert_eq!(stale, Err(WebhookError::Stale(300)));
        assert_eq!(
            w.check(&format!("t={now},v1={good}"), body.as_bytes(), now - 301),
            Err(WebhookError::Stale(300)),
            "from the future too"
        );
        for bad in [
            format!("t={now},v1={old}"),
            format!("t={now}"),
            format!("v1={good}"),
            format!("t=yesterday,v1={good}"),
            format!("t={now},v1=zz"),
            String::new(),
            "garbage".into(),
        ] {
            assert!(
                matches!(
                    w.check(&bad, body.as_bytes(), now),
                    Err(WebhookError::BadSignature(_))
                ),
                "{bad}"
            );
        }
        let tampered = r#"{"id":"evt_1","type":"y"}"#;
        assert!(
            w.check(&format!("t={now},v1={good}"), tampered.as_bytes(), now)
                .is_err()
        );
    }

    #[test]
    fn events_are_read_into_changes() {
        let t = "01a20000-0000-7000-8000-000000000001";
        let n = notice(format!(r#"{{"id":"evt_1","type":"payment_intent.succeeded","data":{{"object":{{"id":"pi_1","metadata":{{"portside_transaction_id":"{t}"}}}}}}}}"#).as_bytes()).unwrap();
        assert_eq!(
            n.change,
            Some(ProviderChange::ChargeSucceeded {
                transaction_id: Some(TransactionId(uuid::Uuid::parse_str(t).unwrap())),
                reference: "pi_1".into()
            })
        );
        let n = notice(br#"{"id":"evt_2","type":"payment_intent.payment_failed","data":{"object":{"id":"pi_2","metadata":{},"last_payment_error":{"code":"card_declined","decline_code":"stolen_card","message":"Your card was declined."}}}}"#).unwrap();
        assert!(
            matches!(n.change, Some(ProviderChange::ChargeFailed { ref failure, .. }) if failure.decline_code.as_deref() == Some("stolen_card"))
        );
        let n = notice(br#"{"id":"evt_3","type":"charge.refunded","data":{"object":{"id":"ch_1","payment_intent":"pi_1"}}}"#).unwrap();
        assert_eq!(
            n.change,
            Some(ProviderChange::Refunded {
                reference: "pi_1".into()
            })
        );
        let n =
            notice(br#"{"id":"evt_4","type":"customer.created","data":{"object":{}}}"#).unwrap();
        assert_eq!(n.change, None);
        assert!(matches!(
            notice(b"not json"),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            notice(br#"{"type":"x"}"#),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            notice(br#"{"id":"e","type":"charge.refunded","data":{"object":{}}}"#),
            Err(WebhookError::Malformed(_))
        ));
    }
}
