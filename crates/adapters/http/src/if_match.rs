//! `If-Match` as RFC 9110 reads it, for the writes of an order or a product, and the `ETag`
//! of their answers.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portside_app::IfMatch;
use serde::Serialize;

use crate::problem::Problem;

/// The precondition an `If-Match` header states (RFC 9110 §13.1.1): `*`, or a list of entity
/// tags. A malformed header is a bad request (400 `if_match_invalid`); a well-formed tag that
/// is not the current version (a weak tag, one from elsewhere, an older version) is not: the
/// use case answers 412.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<IfMatch, Problem> {
    let invalid = || {
        Problem::bad_parameter(
            "If-Match",
            "if_match_invalid",
            "If-Match must be * or a list of entity tags, e.g. \"3\"",
        )
    };
    let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
    if values.peek().is_none() {
        return Ok(IfMatch::Any);
    }
    // A list that names no tag (`If-Match:` or `If-Match: ,`) is well-formed (`#entity-tag`
    // admits zero elements) and no tag of it matches: the use case answers 412.
    let mut versions = Vec::new();
    for value in values {
        let text = value.to_str().map_err(|_| invalid())?;
        if text.trim() == "*" {
            return Ok(IfMatch::Any);
        }
        for (weak, opaque) in entity_tags(text).ok_or_else(invalid)? {
            if let (false, Ok(version)) = (weak, opaque.parse::<i64>()) {
                versions.push(version);
            }
        }
    }
    Ok(IfMatch::Versions(versions))
}

/// The entity tags of a list (`#entity-tag`: `W/"x", "y"`), each with whether it is weak and
/// its opaque text; `None` when the list is not well-formed.
fn entity_tags(text: &str) -> Option<Vec<(bool, &str)>> {
    let mut tags = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        let weak = rest.starts_with("W/");
        rest = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"')?;
        let end = rest.find('"')?;
        let opaque = &rest[..end];
        // etagc: %x21 / %x23-7E / obs-text; the closing quote is found above.
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        tags.push((weak, opaque));
        rest = rest[end + 1..].trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return None;
        }
    }
}

/// A versioned resource's answer: its body, `ETag: "<version>"` (what a later `If-Match`
/// names) and, when it was just created, its `Location`.
pub(crate) fn with_etag(
    status: StatusCode,
    body: impl Serialize,
    version: i64,
    location: impl FnOnce() -> String,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&location())
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
