//! Keyset pages over HTTP: `limit` and `cursor` in, one list body out. Cursors are opaque
//! (base64url of the last item's position), so clients cannot build or edit them by accident.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portside_kernel::{Page, PageRequest};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::problem::Problem;

/// The query of a list that has no filter of its own.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// One page of a list, as every list endpoint answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListBody<T: ToSchema> {
    /// In the list's order.
    pub data: Vec<T>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `cursor` to get the next page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> ListBody<T> {
    /// The body of a use case's page: each item's view, and the cursor of the next page.
    pub fn of<S, K>(
        page: Page<S, K>,
        view: impl Fn(&S) -> T,
        cursor: impl Fn(K) -> String,
    ) -> Self {
        ListBody {
            data: page.items.iter().map(view).collect(),
            has_more: page.next.is_some(),
            next_cursor: page.next.map(cursor),
        }
    }
}

/// The page a request asks for: `limit` (1 to 100, default 20) items after the position its
/// `cursor` names, read by `decode`.
pub fn request<K>(
    limit_text: Option<&str>,
    cursor: Option<&str>,
    decode: impl Fn(&str) -> Result<K, Problem>,
) -> Result<PageRequest<K>, Problem> {
    Ok(PageRequest {
        limit: limit(limit_text)?,
        after: cursor.map(decode).transpose()?,
    })
}

/// The problem of a cursor this API did not make.
pub fn invalid_cursor() -> Problem {
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
        .ok_or_else(invalid_cursor)
}

/// A cursor after (time, id) in one sort direction (`tag`), so it cannot be reused with another.
pub fn encode_position(tag: char, at: OffsetDateTime, id: Uuid) -> String {
    let micros = at.unix_timestamp_nanos() / 1000;
    URL_SAFE_NO_PAD.encode(format!("{tag}:{micros}:{id}"))
}

/// The position of a cursor made by [`encode_position`] with the same `tag`.
pub fn decode_position(tag: char, text: &str) -> Result<(OffsetDateTime, Uuid), Problem> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_cursor())?;
    let mut parts = text.splitn(3, ':');
    let (Some(t), Some(micros), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid_cursor());
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
        .ok_or_else(invalid_cursor)?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid_cursor())?;
    Ok((at, Uuid::parse_str(id).map_err(|_| invalid_cursor())?))
}

/// A cursor after a text key (a SKU) or a number, in the list `tag` names.
pub fn encode_key(tag: char, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}:{key}"))
}

/// The key of a cursor made by [`encode_key`] with the same `tag`.
pub fn decode_key(tag: char, text: &str) -> Result<String, Problem> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_cursor())?;
    match text.split_once(':') {
        Some((t, key)) if t.len() == 1 && t.starts_with(tag) => Ok(key.to_owned()),
        _ => Err(invalid_cursor()),
    }
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
