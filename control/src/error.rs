//! The one error type of the API and its mapping to `{code, message, requestId, field?}` bodies.
//!
//! Every handler returns [`ApiError`]; nothing else turns failures into responses, so the error
//! shape and the status codes stay uniform across the whole surface.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

tokio::task_local! {
    /// The id of the request being served, set by the request-id middleware so that errors built
    /// deep inside handlers can quote it without threading it through every call.
    pub static REQUEST_ID: String;
}

/// The current request id, or `req_unknown` outside a request (e.g. background tasks).
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "req_unknown".to_string())
}

/// The machine-readable error codes (the seed's codes plus the few the extra resources need).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    NotFound,
    ValidationError,
    Unauthorized,
    Forbidden,
    RateLimited,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    ProviderUnavailable,
    InternalError,
}

impl ErrorCode {
    fn status(self) -> StatusCode {
        match self {
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::ValidationError => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One field-level problem found by validation.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    /// JSON path of the offending field, e.g. `llm.temperature` or `endCallPhrases[2]`.
    pub field: String,
    pub message: String,
}

/// The error body every non-2xx response carries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    pub request_id: String,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field problem found, when validation found several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// An API failure: a code, a human message, and optionally the field(s) at fault.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    pub details: Vec<FieldError>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            details: Vec::new(),
        }
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError {
            code: ErrorCode::ValidationError,
            message: format!("{field}: {message}"),
            details: vec![FieldError {
                field: field.clone(),
                message,
            }],
            field: Some(field),
        }
    }
    /// A validation error carrying every field problem; the first one is the headline.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let first = errors.first().cloned().unwrap_or(FieldError {
            field: String::new(),
            message: "invalid request".into(),
        });
        let message = if errors.len() > 1 {
            format!(
                "{}: {} (and {} more problem(s))",
                first.field,
                first.message,
                errors.len() - 1
            )
        } else {
            format!("{}: {}", first.field, first.message)
        };
        ApiError {
            code: ErrorCode::ValidationError,
            message,
            field: Some(first.field),
            details: errors,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // The database detail goes to the log, never to the client.
        tracing::error!(error = %e, "database error");
        ApiError::internal("database error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = ErrorBody {
            code: self.code,
            message: self.message,
            request_id: current_request_id(),
            field: self.field,
            details: self.details,
        };
        (status, axum::Json(body)).into_response()
    }
}
