//! Request extractors that answer every bad input with problem+json: a JSON body (with its
//! request fingerprint for idempotency) and query parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::problem::{FieldError, Problem};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 256 * 1024;

/// A JSON body parsed into `T`, and the fingerprint of the request (method, path, canonical
/// body) that idempotency keys are bound to.
pub struct JsonBody<T> {
    /// The parsed body.
    pub value: T,
    /// SHA-256 of method, path and the body with keys sorted and whitespace removed.
    pub fingerprint: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body must be at most {BODY_LIMIT} bytes"),
                )
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "body_unreadable", e.body_text())
            }
        })?;
        // No body at all reads as `{}`: `POST /payments/{id}/refunds` without a body is a full refund.
        let bytes = match content_type {
            None if bytes.is_empty() => Bytes::from_static(b"{}"),
            Some(ct) if is_json(&ct) => bytes,
            _ => {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with Content-Type: application/json",
                ));
            }
        };
        let value = parse(&bytes)?;
        Ok(JsonBody {
            value,
            fingerprint: fingerprint(method.as_str(), &path, &bytes),
        })
    }
}

/// Whether valid JSON holds a `\u0000` escape: no text field has a use for NUL, and
/// PostgreSQL cannot store it. (A raw NUL byte is already invalid JSON.) An escape is a `\`
/// preceded by an even number of other backslashes.
fn has_nul_escape(bytes: &[u8]) -> bool {
    bytes.windows(6).enumerate().any(|(i, w)| {
        w == b"\\u0000" && bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0
    })
}

fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let malformed = |e: serde_json::Error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    };
    // Syntax first, so that broken JSON is a 400 whatever its content. Skipping a value does
    // not check the text of its strings, so UTF-8 is checked on its own.
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(malformed)?;
    // Every body of this API is an object; serde would also read a struct from an array of its
    // fields in order (`["tok"]` as `{"refresh_token": "tok"}`), which no client means.
    if !text.trim_start().starts_with('{') {
        return Err(Problem::invalid(vec![FieldError {
            field: "body".into(),
            code: "body_not_an_object".into(),
            message: "the body must be a JSON object".into(),
        }]));
    }
    if has_nul_escape(bytes) {
        return Err(Problem::invalid(vec![FieldError {
            field: "body".into(),
            code: "nul_character".into(),
            message: "text must not contain NUL characters (\\u0000)".into(),
        }]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        Problem::invalid(vec![FieldError {
            field: if path == "." { "body".into() } else { path },
            code: "invalid_field".into(),
            message: strip_position(&inner.to_string()),
        }])
    })
}

/// serde_json appends " at line 1 column 42" to data errors; the field path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A whole number as JSON Schema reads one, `5` or `5.0`: the document says `integer`, which
/// admits both, while serde alone refuses `5.0` for an integer field.
pub(crate) fn whole<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    to_whole(serde_json::Number::deserialize(d)?)
}

/// [`whole`] for a field that may be absent or `null`.
pub(crate) fn whole_or_null<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(to_whole)
        .transpose()
}

fn to_whole<T: TryFrom<i64>, E: serde::de::Error>(number: serde_json::Number) -> Result<T, E> {
    // Beyond 2^53 a float no longer tells neighbouring integers apart.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let value = number
        .as_i64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
                .map(|f| f as i64)
        })
        .ok_or_else(|| E::custom(format!("expected a whole number, got {number}")))?;
    T::try_from(value).map_err(|_| E::custom(format!("{value} is out of range")))
}

/// Fingerprint of a request: the body is canonicalized (sorted keys, no whitespace) when it is
/// JSON, so that a client re-serializing the same request still matches.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_vec(&v).ok())
        .unwrap_or_else(|| body.to_vec());
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update(b" ");
    hash.update(path.as_bytes());
    hash.update(b"\n");
    hash.update(&canonical);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// An optional query parameter read by `parse`; a 400 naming the parameter when it does not
/// parse.
pub fn param<T, E: std::fmt::Display>(
    name: &str,
    text: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, Problem> {
    text.map(parse)
        .transpose()
        .map_err(|e| Problem::bad_parameter(name, "invalid_parameter", e.to_string()))
}

/// An optional RFC 3339 instant in a query parameter.
pub fn instant(name: &str, text: Option<&str>) -> Result<Option<OffsetDateTime>, Problem> {
    param(name, text, |t| {
        OffsetDateTime::parse(t, &Rfc3339)
            .map_err(|_| format!("{name} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"))
    })
}

/// Query parameters parsed into `T` (whose fields are all optional text, validated by the
/// handler so that errors name the parameter). Unknown parameters are refused: a typo must
/// not silently widen a filter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|e| {
                let message = e.to_string();
                let field = message
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next())
                    .unwrap_or("query")
                    .to_owned();
                Problem::bad_parameter(&field, "invalid_parameter", message)
            })
    }
}
