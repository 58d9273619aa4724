//! Outgoing webhooks as the Standard Webhooks 1.0 specification defines them: a signing secret
//! (`whsec_` and the base64 of its key) and the signature of one message (`v1,` and the base64
//! of HMAC-SHA256 over `{id}.{timestamp}.{body}`), several space-separated while a rotated
//! secret still signs beside the new one. Receivers verify with the spec's own libraries
//! (`standardwebhooks` on PyPI and npm), so the format here is theirs to the byte.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::DomainError;

/// The prefix of a secret's text.
const PREFIX: &str = "whsec_";

/// Key bytes of a secret Portside makes (192 bits; the spec asks for 24 to 64).
pub const SECRET_BYTES: usize = 24;

/// A signing secret: shown to the endpoint's owner, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// A secret with these key bytes (from a CSPRNG: the domain makes no randomness).
    pub fn from_key(key: [u8; SECRET_BYTES]) -> Self {
        WebhookSecret(key.to_vec())
    }

    /// Reads `whsec_…` (a stored secret, or one a test was given).
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::InvalidWebhookSecret;
        let key = STANDARD
            .decode(text.strip_prefix(PREFIX).ok_or_else(invalid)?)
            .map_err(|_| invalid())?;
        if (SECRET_BYTES..=64).contains(&key.len()) {
            Ok(WebhookSecret(key))
        } else {
            Err(invalid())
        }
    }

    /// The `whsec_…` text.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// `v1,` and the base64 of the message's HMAC-SHA256 under this key.
    fn sign(&self, message: &WebhookMessage<'_>) -> String {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            unreachable!("HMAC accepts keys of every length")
        };
        mac.update(message.id.as_bytes());
        mac.update(b".");
        mac.update(message.timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(message.body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// One request as the receiver sees it: `webhook-id` (the same on every retry, so a receiver
/// can drop duplicates), `webhook-timestamp` (Unix seconds of this attempt) and the raw body.
#[derive(Clone, Copy, Debug)]
pub struct WebhookMessage<'a> {
    pub id: &'a str,
    pub timestamp: i64,
    pub body: &'a [u8],
}

impl WebhookMessage<'_> {
    /// The `webhook-signature` header: one signature per secret that signs now (the current
    /// one, and the previous one while a rotation overlaps), space-separated.
    pub fn signature(&self, secrets: &[WebhookSecret]) -> String {
        secrets
            .iter()
            .map(|s| s.sign(self))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector published with the specification, which its reference library reproduces:
    /// `Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").sign("msg_p5jXN8AQM9LWM0D4loKWxJek",
    /// 1614265330, '{"test": 2432232314}')` with the `standardwebhooks` package from PyPI.
    #[test]
    fn signs_as_the_reference_library_does() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let message = WebhookMessage {
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp: 1614265330,
            body: br#"{"test": 2432232314}"#,
        };
        assert_eq!(
            message.signature(std::slice::from_ref(&secret)),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // A second secret (the same library: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        // "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1674087231) signs beside the first.
        let next = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body =
            br#"{"type":"payment.succeeded","timestamp":"2023-01-19T00:13:51Z","data":{"a":1}}"#;
        let both = WebhookMessage {
            id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            timestamp: 1674087231,
            body,
        }
        .signature(&[next, secret]);
        let mut parts = both.split(' ');
        assert_eq!(
            parts.next(),
            Some("v1,sV8y1s9NWdFPBVPcNYp067Tisj7b24ptGvYHuutoqos=")
        );
        assert!(parts.next().is_some_and(|s| s.starts_with("v1,")));
    }

    #[test]
    fn a_secret_round_trips_and_bad_ones_are_refused() {
        let secret = WebhookSecret::from_key([7; SECRET_BYTES]);
        let text = secret.reveal();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text).unwrap(), secret);
        assert_eq!(format!("{secret:?}"), "WebhookSecret(…)", "never printed");
        for bad in [
            "",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_!!",
            "whsec_c2hvcnQ=",
        ] {
            assert_eq!(
                WebhookSecret::parse(bad).unwrap_err().code(),
                "webhook_secret_invalid",
                "{bad}"
            );
        }
    }
}
