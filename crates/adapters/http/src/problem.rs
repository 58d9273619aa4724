//! RFC 9457 problem details: every error leaves the API as `application/problem+json` with a
//! stable machine `code`. Use-case errors are mapped to statuses here, in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portside_app::AppError;
use portside_app::payments::WebhookError;
use portside_domain::DomainError;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// One field that failed validation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The request field or query parameter (`amount`, `metadata.note`, `limit`).
    pub field: String,
    /// Stable machine code.
    pub code: String,
    /// What is wrong, for humans.
    pub message: String,
}

impl FieldError {
    /// The error of a field whose value a domain rule refused.
    pub fn refused(field: impl Into<String>, error: &DomainError) -> Self {
        FieldError {
            field: field.into(),
            code: error.code().to_owned(),
            message: error.to_string(),
        }
    }
}

/// A problem+json response (boxed: it travels in every handler's `Err`).
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemBody>);

/// The problem+json body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody {
    /// A URI naming the problem type (`urn:portside:problem:<code>`).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Stable machine code.
    pub code: String,
    /// Field-level errors of a request that failed validation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Problem-specific members (e.g. the failed `payment`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
    #[serde(skip)]
    retry_after: Option<u32>,
    #[serde(skip)]
    www_authenticate: bool,
}

impl Problem {
    /// A problem with a status, a code and a detail.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem(Box::new(ProblemBody {
            problem_type: format!("urn:portside:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            errors: Vec::new(),
            extensions: Map::new(),
            retry_after: None,
            www_authenticate: false,
        }))
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// A 422 naming the fields at fault; the first one's code is the problem's code.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let code = errors
            .first()
            .map(|e| e.code.clone())
            .unwrap_or_else(|| "invalid_request".into());
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, &code, detail);
        p.0.errors = errors;
        p
    }

    /// A 400 about one query parameter or header.
    pub fn bad_parameter(field: &str, code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut p = Problem::new(StatusCode::BAD_REQUEST, code, format!("{field}: {message}"));
        p.0.errors = vec![FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message,
        }];
        p
    }

    /// Adds a member to the body.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.0.extensions.insert(key.to_owned(), value);
        self
    }

    /// Asks the client to wait before retrying.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.0.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.0.retry_after;
        let www_authenticate = self.0.www_authenticate;
        let body = serde_json::to_vec(&*self.0).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid { field, error } => {
                Problem::invalid(vec![FieldError::refused(field, &error)])
            }
            AppError::Refused { conflict, refusals } => {
                let errors: Vec<FieldError> = refusals
                    .into_iter()
                    .map(|r| FieldError {
                        field: r.field,
                        code: r.code,
                        message: r.message,
                    })
                    .collect();
                let mut p = Problem::invalid(errors);
                if conflict {
                    p.0.status = StatusCode::CONFLICT.as_u16();
                    p.0.title = "Conflict".into();
                }
                p
            }
            AppError::State(error) => {
                Problem::new(StatusCode::CONFLICT, error.code(), error.to_string())
            }
            AppError::UnknownProvider(name) => Problem::invalid(vec![FieldError {
                field: "provider".into(),
                code: "provider_unknown".into(),
                message: format!("no payment provider named {name:?} is configured"),
            }]),
            AppError::Unauthorized(code) => unauthorized(
                code,
                match code {
                    "invalid_credentials" => "the email or password is wrong",
                    "token_expired" => "the access token has expired; refresh it",
                    "refresh_token_reused" => {
                        "this refresh token was already used; all sessions of its login are revoked"
                    }
                    "refresh_token_invalid" => "the refresh token is unknown, expired or revoked",
                    "account_gone" => "the account this access token belongs to no longer exists",
                    _ => "the access token is invalid",
                },
            ),
            AppError::BadQuery(message) => Problem::bad_parameter("q", "query_invalid", message),
            AppError::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, "forbidden", detail),
            AppError::Taken(field) => Problem::new(
                StatusCode::CONFLICT,
                &format!("{field}_taken"),
                format!("this {field} is already registered"),
            ),
            AppError::NotFound(what) => Problem::new(
                StatusCode::NOT_FOUND,
                &format!("{what}_not_found"),
                format!("no {what} with this id"),
            ),
            e @ AppError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                e.to_string(),
            ),
            e @ AppError::IdempotencyKeyInUse => Problem::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                e.to_string(),
            )
            .retry_after(1),
            e @ AppError::PreconditionFailed => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                e.to_string(),
            ),
            e @ AppError::Conflict => Problem::new(
                StatusCode::CONFLICT,
                "concurrent_modification",
                e.to_string(),
            ),
            AppError::InsufficientFunds(detail) => Problem::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_funds",
                format!("{detail}; top the wallet up or pay with another method"),
            ),
            AppError::Unavailable(detail) => {
                tracing::warn!(%detail, "dependency unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "a dependency is unavailable; retry later",
                )
                .retry_after(2)
            }
            e @ AppError::ProviderUnavailable {
                retry_after_secs, ..
            } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                e.to_string(),
            )
            .retry_after(u32::try_from(retry_after_secs).unwrap_or(u32::MAX)),
            AppError::Webhook(e) => {
                let code = match e {
                    WebhookError::BadSignature(_) => "webhook_signature_invalid",
                    WebhookError::Stale(_) => "webhook_timestamp_out_of_tolerance",
                    _ => "webhook_payload_invalid",
                };
                Problem::new(StatusCode::BAD_REQUEST, code, e.to_string())
            }
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                internal_error()
            }
        }
    }
}

/// A 401 asking for a bearer token.
pub fn unauthorized(code: &str, detail: &str) -> Problem {
    let mut p = Problem::new(StatusCode::UNAUTHORIZED, code, detail);
    p.0.www_authenticate = true;
    p
}

/// The 500 problem: no details leak.
pub fn internal_error() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "an unexpected error occurred; it has been logged",
    )
}

/// A domain refusal as the code and message [`field`] records.
pub(crate) fn refusal(error: impl Into<DomainError>) -> (&'static str, String) {
    let error = error.into();
    (error.code(), error.to_string())
}

/// Records a field's error and returns its value when it is valid, so that one answer can name
/// every bad field of a body.
pub(crate) fn field<T>(
    errors: &mut Vec<FieldError>,
    name: &str,
    result: Result<T, (&str, String)>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err((code, message)) => {
            errors.push(FieldError {
                field: name.to_owned(),
                code: code.to_owned(),
                message,
            });
            None
        }
    }
}
