//! Outgoing webhooks as the Standard Webhooks 1.0 specification defines them: a signing secret
//! (`whsec_` and the base64 of its key) and the signature of one message (`v1,` and the base64
//! of HMAC-SHA256 over `{id}.{timestamp}.{body}`), several space-separated while a rotated
//! secret still signs beside the new one. Receivers verify with the spec's own libraries
//! (`standardwebhooks` on PyPI and npm), so the format here is theirs to the byte.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::DomainError;

pub mod delivery;

use delivery::DisabledReason;

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

/// Longest URL an endpoint may have.
const MAX_URL: usize = 2048;
/// Longest description.
const MAX_DESCRIPTION: usize = 500;

/// Which URLs may be endpoints: `https` to public addresses by default; a setting allows
/// `http`, another private, loopback and link-local addresses (tests, private deployments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    pub allow_http: bool,
    pub allow_private: bool,
}

impl UrlPolicy {
    /// Checks a URL's form and, where its host is an IP address or `localhost`, where it points.
    /// A name that resolves to a private address is caught when it is resolved, at delivery.
    pub fn check(self, text: &str) -> Result<url::Url, DomainError> {
        let bad = |why: &str| DomainError::InvalidWebhookUrl(why.to_owned());
        if text.len() > MAX_URL {
            return Err(bad("longer than 2048 characters"));
        }
        let url = url::Url::parse(text).map_err(|e| bad(&format!("not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(bad("must be https")),
            _ => return Err(bad("must be https (or http where allowed)")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        if url.fragment().is_some() {
            return Err(bad("must not have a fragment"));
        }
        let host = match url.host() {
            None => return Err(bad("has no host")),
            Some(url::Host::Domain(d)) => {
                if !self.allow_private && (d == "localhost" || d.ends_with(".localhost")) {
                    return Err(bad("points at this machine"));
                }
                None
            }
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        };
        if let Some(ip) = host
            && !self.allow_private
            && !is_public(ip)
        {
            return Err(bad("points at a private, loopback or link-local address"));
        }
        Ok(url)
    }
}

/// Whether deliveries may go to this address when private ones are not allowed: not loopback,
/// private (RFC 1918, unique-local), link-local (with the cloud metadata address), shared
/// (100.64/10), unspecified, multicast or broadcast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Identity of a webhook endpoint.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct EndpointId(pub Uuid);

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where an administrator wants Portside's events sent, and how they are signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: EndpointId,
    pub url: String,
    pub description: Option<String>,
    /// The event types it wants; `None` for every type.
    pub event_types: Option<Vec<String>>,
    pub enabled: bool,
    pub secret: WebhookSecret,
    /// The secret a rotation replaced, and until when it still signs beside the new one.
    pub previous_secret: Option<(WebhookSecret, OffsetDateTime)>,
    /// Since when every attempt failed (none while the last one succeeded).
    pub failing_since: Option<OffsetDateTime>,
    /// Why Portside disabled it, when it did (an administrator's enabling clears it).
    pub disabled_reason: Option<DisabledReason>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What an administrator changes on an endpoint; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    /// `Some(None)`: every event type again.
    pub event_types: Option<Option<Vec<String>>>,
    pub enabled: Option<bool>,
}

impl WebhookEndpoint {
    /// A new, enabled endpoint. `event_types` are checked by the caller against the catalog of
    /// events (the domain does not know it); here only that a list names at least one, once.
    pub fn create(
        id: EndpointId,
        url: &str,
        description: Option<String>,
        event_types: Option<Vec<String>>,
        secret: WebhookSecret,
        policy: UrlPolicy,
        now: OffsetDateTime,
    ) -> Result<Self, DomainError> {
        let mut endpoint = WebhookEndpoint {
            id,
            url: String::new(),
            description: None,
            event_types: None,
            enabled: true,
            secret,
            previous_secret: None,
            failing_since: None,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        endpoint.change(
            EndpointChanges {
                url: Some(url.to_owned()),
                description: Some(description),
                event_types: Some(event_types),
                enabled: None,
            },
            policy,
            now,
        )?;
        Ok(endpoint)
    }

    /// Applies an administrator's changes, all or none.
    pub fn change(
        &mut self,
        changes: EndpointChanges,
        policy: UrlPolicy,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        let url = changes.url.map(|u| policy.check(&u)).transpose()?;
        if let Some(Some(d)) = &changes.description
            && d.chars().count() > MAX_DESCRIPTION
        {
            return Err(DomainError::TextTooLong {
                field: "description",
                max: MAX_DESCRIPTION,
            });
        }
        if let Some(Some(types)) = &changes.event_types {
            let mut sorted = types.clone();
            sorted.sort();
            sorted.dedup();
            if types.is_empty() || sorted.len() != types.len() {
                return Err(DomainError::InvalidEventTypes(
                    "name each event type once, at least one; leave the list out for all".into(),
                ));
            }
        }
        if let Some(url) = url {
            self.url = url.to_string();
        }
        if let Some(d) = changes.description {
            self.description = d;
        }
        if let Some(t) = changes.event_types {
            self.event_types = t;
        }
        if let Some(e) = changes.enabled {
            self.enabled = e;
            if e {
                self.failing_since = None;
                self.disabled_reason = None;
            }
        }
        self.updated_at = now;
        Ok(())
    }

    /// Replaces the secret; the old one keeps signing beside it until `now + overlap`, so
    /// receivers can switch without losing a delivery.
    pub fn rotate(&mut self, next: WebhookSecret, overlap: time::Duration, now: OffsetDateTime) {
        let old = std::mem::replace(&mut self.secret, next);
        self.previous_secret = Some((old, now + overlap));
        self.updated_at = now;
    }

    /// The secrets that sign a message sent at `now`: the current one, and the previous one
    /// while its overlap lasts.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> Vec<WebhookSecret> {
        let mut secrets = vec![self.secret.clone()];
        if let Some((previous, until)) = &self.previous_secret
            && now < *until
        {
            secrets.push(previous.clone());
        }
        secrets
    }

    /// Whether it wants events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled
            && self
                .event_types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == event_type))
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

    fn endpoint(url: &str, policy: UrlPolicy) -> Result<WebhookEndpoint, &'static str> {
        WebhookEndpoint::create(
            EndpointId(Uuid::nil()),
            url,
            None,
            None,
            WebhookSecret::from_key([1; SECRET_BYTES]),
            policy,
            OffsetDateTime::UNIX_EPOCH,
        )
        .map_err(|e| e.code())
    }

    #[test]
    fn endpoints_go_to_public_https_urls_unless_a_setting_allows_more() {
        let strict = UrlPolicy::default();
        assert!(endpoint("https://hooks.example.com/portside", strict).is_ok());
        for bad in [
            "not a url",
            "ftp://example.com/x",
            "http://hooks.example.com/x",
            "https://user:pw@example.com/x",
            "https://localhost/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://example.com/x#frag",
        ] {
            assert_eq!(
                endpoint(bad, strict).unwrap_err(),
                "webhook_url_invalid",
                "{bad}"
            );
        }
        let open = UrlPolicy {
            allow_http: true,
            allow_private: true,
        };
        assert!(endpoint("http://127.0.0.1:8999/hook", open).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(endpoint(&long, open).unwrap_err(), "webhook_url_invalid");
    }

    #[test]
    fn an_endpoint_wants_what_it_lists_or_everything() {
        let mut e = endpoint("https://example.com/h", UrlPolicy::default()).unwrap();
        assert!(e.wants("payment.succeeded"));
        e.event_types = Some(vec!["order.cancelled".into()]);
        assert!(!e.wants("payment.succeeded"));
        assert!(e.wants("order.cancelled"));
        e.enabled = false;
        assert!(!e.wants("order.cancelled"));
        let twice = WebhookEndpoint::create(
            EndpointId(Uuid::nil()),
            "https://example.com/h",
            None,
            Some(vec!["a.b".into(), "a.b".into()]),
            WebhookSecret::from_key([1; SECRET_BYTES]),
            UrlPolicy::default(),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(twice.unwrap_err().code(), "event_types_invalid");
    }

    #[test]
    fn changes_apply_all_or_none_and_a_rotation_overlaps() {
        let mut e = endpoint("https://example.com/h", UrlPolicy::default()).unwrap();
        let refused = e.change(
            EndpointChanges {
                url: Some("https://example.com/new".into()),
                description: Some(Some("d".repeat(501))),
                ..EndpointChanges::default()
            },
            UrlPolicy::default(),
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(refused.unwrap_err().code(), "text_too_long");
        assert_eq!(e.url, "https://example.com/h", "nothing changed");
        e.change(
            EndpointChanges {
                enabled: Some(false),
                event_types: Some(Some(vec!["order.shipped".into()])),
                ..EndpointChanges::default()
            },
            UrlPolicy::default(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        assert!(!e.enabled);
        assert_eq!(e.event_types, Some(vec!["order.shipped".into()]));

        let t0 = OffsetDateTime::UNIX_EPOCH;
        let old = e.secret.clone();
        let next = WebhookSecret::from_key([2; SECRET_BYTES]);
        e.rotate(next.clone(), time::Duration::hours(24), t0);
        assert_eq!(e.signing_secrets(t0), vec![next.clone(), old]);
        assert_eq!(
            e.signing_secrets(t0 + time::Duration::hours(24)),
            vec![next],
            "the old secret stops at the end of the overlap"
        );
    }
}
