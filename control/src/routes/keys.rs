//! `/v1/keys`: API keys of the caller's tenant (admin scope).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;
use crate::store::keys::{self, ApiKey};
use crate::validate::Checker;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateKey {
    /// A label for the key (1–100 characters).
    pub name: String,
    /// Any of `read`, `write`, `admin` (default `["read", "write"]`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// A key with its secret, returned once on creation or rotation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The full key. It is not stored and cannot be shown again.
    pub secret: String,
}

/// Validates a scope list; shared with the CLI bootstrap.
pub fn parse_scopes(scopes: &[String], c: &mut Checker) -> Vec<String> {
    if scopes.is_empty() {
        c.fail("scopes", "must name at least one scope");
    }
    let mut out: Vec<String> = Vec::new();
    for (i, s) in scopes.iter().enumerate() {
        match Scope::parse(s) {
            Some(sc) => {
                if !out.iter().any(|o| o == sc.as_str()) {
                    out.push(sc.as_str().to_string());
                }
            }
            None => c.fail(&format!("scopes[{i}]"), "must be one of read, write, admin"),
        }
    }
    out
}

/// Create an API key
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let mut c = Checker::default();
    c.text("name", &body.name, 1, 100);
    let scopes = body
        .scopes
        .unwrap_or_else(|| vec!["read".into(), "write".into()]);
    let scopes = parse_scopes(&scopes, &mut c);
    c.finish()?;
    let (key, secret) = keys::create(&state.db, &caller.tenant_id, &body.name, &scopes).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, secret })))
}

/// List API keys
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(PageQuery),
    responses((status = 200, body = Page<ApiKey>), (status = 403, body = ErrorBody)))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<ApiKey>>> {
    let rows = keys::list(&state.db, &caller.tenant_id, q.cursor()?, q.limit()?).await?;
    Ok(Json(Page::from_rows(rows, |k| &k.id)))
}

/// Revoke an API key
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if !keys::revoke(&state.db, &caller.tenant_id, &id).await? {
        return Err(ApiError::not_found("API key"));
    }
    state.auth_cache.evict(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate an API key (new secret, same id and scopes; the old secret stops working)
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = CreatedKey), (status = 404, body = ErrorBody)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CreatedKey>> {
    let (key, secret) = keys::rotate(&state.db, &caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    state.auth_cache.evict(&id);
    Ok(Json(CreatedKey { key, secret }))
}
