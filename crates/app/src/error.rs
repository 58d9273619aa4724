//! Errors of the use cases. The HTTP adapter maps each to a status and a stable code in one place.

use portside_domain::DomainError;

use portside_kernel::StoreError;

/// What went wrong in a use case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// A request value broke a domain rule; `field` names the request field.
    #[error("{field}: {error}")]
    Invalid {
        /// The request field at fault.
        field: &'static str,
        /// The rule it broke.
        error: DomainError,
    },
    /// Request values, each named by its field (`items[2].sku`), broke rules: a 409 when the
    /// first is about the current state (stock ran out), else a 422.
    #[error("{}", .refusals.iter().map(|r| format!("{}: {}", r.field, r.message)).collect::<Vec<_>>().join("; "))]
    Refused {
        /// Whether the state of a resource, rather than the request, is at fault.
        conflict: bool,
        refusals: Vec<Refusal>,
    },
    /// The current state of a resource does not allow the operation.
    #[error(transparent)]
    State(DomainError),
    /// A search query the index cannot run (syntax, bounds, unknown facet).
    #[error("invalid search query: {0}")]
    BadQuery(String),
    /// No provider of that name is configured.
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    /// Missing, expired or wrong credentials; `0` is the stable code.
    #[error("authentication failed: {0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A unique value is already taken; `0` names the field.
    #[error("{0} is already taken")]
    Taken(&'static str),
    /// Nothing with that id (or the caller may not see it).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The idempotency key was used before with a different request.
    #[error("this idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// The first request with this idempotency key is still running.
    #[error("a request with this idempotency key is still in progress; retry later")]
    IdempotencyKeyInUse,
    /// The client's `If-Match` names a version that is no longer current.
    #[error("the resource changed since the version in If-Match")]
    PreconditionFailed,
    /// Concurrent changes kept winning; the client may retry.
    #[error("the resource was changed concurrently; retry")]
    Conflict,
    /// The payer's wallet does not hold enough to pay; nothing was written.
    #[error("insufficient funds: {0}")]
    InsufficientFunds(String),
    /// A dependency (store, provider) is unreachable; the client may retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The payment provider failed repeatedly and its circuit is open; nothing was written.
    #[error("payment provider {provider} is unavailable; retry in {retry_after_secs} s")]
    ProviderUnavailable {
        /// Provider name.
        provider: String,
        /// Seconds until the circuit lets a call through again.
        retry_after_secs: u64,
    },
    /// A provider's notice was refused (signature, timestamp, payload).
    #[error(transparent)]
    Webhook(crate::payments::WebhookError),
    /// A bug or corrupt data; details are logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One refused request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: String,
    /// The stable code.
    pub code: String,
    pub message: String,
}

impl Refusal {
    /// The refusal of `field` by a domain rule.
    pub fn of(field: impl Into<String>, error: &DomainError) -> Self {
        Refusal {
            field: field.into(),
            code: error.code().to_owned(),
            message: error.to_string(),
        }
    }
}

impl AppError {
    /// A 422 (or 409 for a state conflict) naming each refused field.
    pub fn refused(refusals: Vec<(String, DomainError)>) -> Self {
        let conflict = refusals.first().is_some_and(|(_, e)| e.is_state_conflict());
        AppError::Refused {
            conflict,
            refusals: refusals
                .iter()
                .map(|(f, e)| Refusal::of(f.clone(), e))
                .collect(),
        }
    }

    /// Wraps a domain error raised by a request field's value.
    pub fn invalid(field: &'static str) -> impl FnOnce(DomainError) -> AppError {
        move |error| AppError::Invalid { field, error }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict | StoreError::Duplicate | StoreError::AlreadyProcessed => {
                AppError::Conflict
            }
            StoreError::Unavailable(m) => AppError::Unavailable(m),
            StoreError::Refused {
                code,
                subject,
                detail,
            } => AppError::Refused {
                conflict: true,
                refusals: vec![Refusal {
                    field: subject,
                    code,
                    message: detail,
                }],
            },
            StoreError::MissingReference => {
                AppError::Internal("a write referred to a row that does not exist".into())
            }
            StoreError::Other(m) => AppError::Internal(m),
        }
    }
}
