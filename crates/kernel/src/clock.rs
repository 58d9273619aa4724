//! Time and identities as ports, so that tests control both and assert exact values.

use time::OffsetDateTime;
use uuid::Uuid;

/// Current time; a port so that tests control it.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// New identities; a port so that tests get predictable ids.
pub trait IdGenerator: Send + Sync {
    /// A fresh UUID (v7 in production: sortable by creation time).
    fn new_id(&self) -> Uuid;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Truncated to microseconds, the precision both SQL engines store, so that what a request
    /// returns equals what a later read returns.
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
            .unwrap_or(now)
    }
}

/// UUID v7 ids.
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}
