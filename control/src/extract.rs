//! Typed extractors whose rejections are [`ApiError`]s, so malformed input of any kind gets the
//! uniform error body (with the JSON path of the offending field) instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// The largest request body accepted, in bytes (agent prompts are the largest legitimate bodies).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body. An empty body reads as `{}` so that action endpoints with optional
/// bodies (publish, duplicate, …) accept a bare POST. Unknown fields are rejected by the target
/// types themselves (`deny_unknown_fields`).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("request body exceeds {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request(format!("cannot read request body: {rejection}"))
            }
        })?;
        let body: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            b"{}"
        } else {
            match content_type.as_deref() {
                Some(ct) if is_json(ct) => {}
                Some(ct) => {
                    return Err(ApiError::new(
                        ErrorCode::UnsupportedMediaType,
                        format!("expected Content-Type application/json, got `{ct}`"),
                    ))
                }
                None => {
                    return Err(ApiError::new(
                        ErrorCode::UnsupportedMediaType,
                        "expected Content-Type application/json",
                    ))
                }
            }
            &bytes
        };
        parse_json(body).map(ApiJson)
    }
}

fn is_json(ct: &str) -> bool {
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence == "application/json" || essence.ends_with("+json")
}

/// Deserializes JSON, reporting the path of the field at fault.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {}", strip_position(&e))))?;
    Ok(value)
}

/// Deserializes an already-parsed JSON value (used after merging PATCH bodies).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(json_error)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return ApiError::bad_request(format!("malformed JSON: {}", strip_position(inner)));
    }
    let message = strip_position(inner);
    // For unknown fields serde_path_to_error's path already ends at the unknown key.
    let field = path;
    if field.is_empty() || field == "." {
        ApiError::bad_request(format!("invalid request body: {message}"))
    } else {
        ApiError::validation(field, message)
    }
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Path parameters; a bad one (e.g. a non-numeric version) is a validation error.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| {
                ApiError::bad_request(format!("invalid path parameter: {}", e.body_text()))
            })
    }
}

/// Query parameters, with the offending parameter named on error.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let msg = e.inner().to_string();
                if path.is_empty() || path == "." {
                    ApiError::bad_request(format!("invalid query string: {msg}"))
                } else {
                    ApiError::validation(path, msg)
                }
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}
