//! The `Prefer` request header (RFC 7240): which preferences a client states. Only
//! `respond-async` is honoured, by `POST /api/v1/payments`; any other preference, and
//! `Prefer` on any other operation, is ignored as §2 asks. A header that is not a list of
//! preferences is a bad request (400 `prefer_invalid`), so that a typo is not silently read as
//! "no preference".

use axum::http::HeaderMap;

use crate::problem::Problem;

/// Whether the client prefers an asynchronous answer (`respond-async`, in any letter case).
pub(crate) fn respond_async(headers: &HeaderMap) -> Result<bool, Problem> {
    let mut wanted = false;
    for value in headers.get_all("prefer") {
        let text = value
            .to_str()
            .map_err(|_| invalid("it is not visible ASCII"))?;
        for name in preference_names(text).map_err(invalid)? {
            wanted |= name.eq_ignore_ascii_case("respond-async");
        }
    }
    Ok(wanted)
}

fn invalid(why: &str) -> Problem {
    Problem::bad_parameter(
        "Prefer",
        "prefer_invalid",
        format!("Prefer must be a list of preferences (RFC 7240), e.g. respond-async: {why}"),
    )
}

/// The name of each preference of one header value:
/// `1#( token [ "=" word ] *( ";" [ token [ "=" word ] ] ) )`, words being tokens or quoted
/// strings, with optional whitespace around the separators.
fn preference_names(text: &str) -> Result<Vec<&str>, &'static str> {
    let mut names = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return if names.is_empty() {
                Err("it names no preference")
            } else {
                Ok(names)
            };
        }
        let (name, after) = token(rest).ok_or("a preference must start with a token")?;
        names.push(name);
        rest = value(after)?;
        // Parameters: `; name[=word]`, possibly empty.
        loop {
            let trimmed = rest.trim_start_matches([' ', '\t']);
            let Some(after) = trimmed.strip_prefix(';') else {
                rest = trimmed;
                break;
            };
            let after = after.trim_start_matches([' ', '\t']);
            rest = match token(after) {
                Some((_, after)) => value(after)?,
                None => after,
            };
        }
        if !(rest.is_empty() || rest.starts_with(',')) {
            return Err("preferences are separated by commas");
        }
    }
}

/// A token at the start of `text` and what follows it.
fn token(text: &str) -> Option<(&str, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)))
        .unwrap_or(text.len());
    (end > 0).then(|| (&text[..end], &text[end..]))
}

/// An optional `= word` at the start of `text`; what follows it.
fn value(text: &str) -> Result<&str, &'static str> {
    let trimmed = text.trim_start_matches([' ', '\t']);
    let Some(after) = trimmed.strip_prefix('=') else {
        return Ok(text);
    };
    let after = after.trim_start_matches([' ', '\t']);
    if let Some(quoted) = after.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return Ok(&quoted[i + 1..]),
                _ => {}
            }
        }
        return Err("a quoted value is not closed");
    }
    token(after)
        .map(|(_, rest)| rest)
        .ok_or("a value after = must be a token or a quoted string")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("prefer", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn respond_async_is_found_among_other_preferences() {
        for yes in [
            &["respond-async"][..],
            &["Respond-Async"],
            &["wait=10, respond-async"],
            &["return=minimal", "respond-async; foo=\"a, b\""],
            &["respond-async;", "handling=lenient"],
        ] {
            assert!(respond_async(&headers(yes)).unwrap(), "{yes:?}");
        }
        for no in [
            &[][..],
            &["wait=10"],
            &["respond-asynchronously"],
            &["return=\"respond-async\""],
        ] {
            assert!(!respond_async(&headers(no)).unwrap(), "{no:?}");
        }
    }

    #[test]
    fn a_header_that_is_not_a_list_of_preferences_is_refused() {
        for bad in [
            "",
            " , ",
            "=x",
            "respond async",
            "wait=\"10",
            "a=b c",
            "(respond-async)",
        ] {
            let problem = respond_async(&headers(&[bad])).unwrap_err();
            assert_eq!(problem.code(), "prefer_invalid", "{bad:?}");
        }
    }
}
