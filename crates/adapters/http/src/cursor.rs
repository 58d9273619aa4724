//! Opaque pagination cursors: base64url of the last item's position, so clients cannot build
//! or edit them by accident.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::problem::Problem;

fn invalid() -> Problem {
    Problem::bad_parameter(
        "cursor",
        "invalid_parameter",
        "cursor is not a value this API returned as next_cursor",
    )
}

/// A cursor after an id.
pub fn encode_id(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// The id of a cursor made by [`encode_id`].
pub fn decode_id(text: &str) -> Result<Uuid, Problem> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(invalid)
}

/// A cursor after (time, id) in one sort direction (`tag`), so it cannot be reused with another.
pub fn encode_position(tag: char, at: OffsetDateTime, id: Uuid) -> String {
    let micros = at.unix_timestamp_nanos() / 1000;
    URL_SAFE_NO_PAD.encode(format!("{tag}:{micros}:{id}"))
}

/// The position of a cursor made by [`encode_position`] with the same `tag`.
pub fn decode_position(tag: char, text: &str) -> Result<(OffsetDateTime, Uuid), Problem> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, ':');
    let (Some(t), Some(micros), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    if t.len() != 1 || !t.starts_with(tag) {
        return Err(Problem::bad_parameter(
            "cursor",
            "invalid_parameter",
            "cursor belongs to a list in another sort order",
        ));
    }
    let nanos = micros
        .parse::<i128>()
        .ok()
        .and_then(|m| m.checked_mul(1000))
        .ok_or_else(invalid)?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid())?;
    Ok((at, Uuid::parse_str(id).map_err(|_| invalid())?))
}

/// Parses a page size of 1 to 100 (default 20).
pub fn limit(text: Option<&str>) -> Result<u32, Problem> {
    match text {
        None => Ok(20),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                Problem::bad_parameter(
                    "limit",
                    "invalid_parameter",
                    "limit must be an integer from 1 to 100",
                )
            }),
    }
}
