//! Preconditions of writes: what a client read, so that it never overwrites a change it did
//! not see.

/// The precondition of a write, from HTTP's `If-Match` (RFC 9110 §13.1.1). If-Match compares
/// entity tags strongly, so a weak tag, or a tag this API never issued, names no version: the
/// write then fails its precondition (412) rather than being a malformed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No precondition: no header, or `*` (the order exists, which every write checks anyway).
    Any,
    /// The versions the client's strong tags name; the write proceeds if one of them is current.
    Versions(Vec<i64>),
}

impl IfMatch {
    /// The precondition of a client that read `version`.
    pub fn version(version: i64) -> Self {
        IfMatch::Versions(vec![version])
    }

    /// Whether the write may proceed on the `current` version.
    pub fn holds(&self, current: i64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&current),
        }
    }
}
