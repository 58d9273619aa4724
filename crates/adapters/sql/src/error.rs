//! sqlx errors mapped into the ports' `StoreError`: what a retry may fix (conflicts, lost
//! connections) is told apart from bugs.

use portside_kernel::StoreError;

/// Maps a sqlx error to the port error, logging what the client will not see.
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // Unique violations: PostgreSQL 23505, SQLite 2067 (unique) and 1555 (primary key).
                "23505" | "2067" | "1555" => StoreError::Duplicate,
                // Foreign key violations: PostgreSQL 23503, SQLite 787.
                "23503" | "787" => StoreError::MissingReference,
                // PostgreSQL: serialization failure, deadlock.
                "40001" | "40P01" => StoreError::Conflict,
                // SQLite busy/locked; PostgreSQL connection exceptions and shutdowns.
                "5" | "6" | "57P01" | "57P02" | "57P03" => StoreError::Unavailable(e.to_string()),
                c if c.starts_with("08") => StoreError::Unavailable(e.to_string()),
                _ => {
                    tracing::error!(error = %e, "database error");
                    StoreError::Other(e.to_string())
                }
            }
        }
        _ => {
            tracing::error!(error = %e, "database error");
            StoreError::Other(e.to_string())
        }
    }
}
