//! `/v1/audience-groups`: contact lists for outbound campaigns.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::ids::looks_like;
use crate::model::audience::AudienceGroupSpec;
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;
use crate::store::audience_groups::{self, AudienceGroup};

async fn load(state: &AppState, tenant_id: &str, id: &str) -> ApiResult<AudienceGroup> {
    if !looks_like("aud", id) {
        return Err(ApiError::not_found("Audience group"));
    }
    audience_groups::get(&state.db, tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Audience group"))
}

/// Create an audience group
#[utoipa::path(post, path = "/v1/audience-groups", tag = "audience-groups",
    request_body = AudienceGroupSpec,
    responses((status = 201, body = AudienceGroup), (status = 400, body = ErrorBody)))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<AudienceGroupSpec>,
) -> ApiResult<(StatusCode, Json<AudienceGroup>)> {
    spec.validate()?;
    let group = audience_groups::insert(&state.db, &caller.tenant_id, &spec).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

/// List audience groups (without their contacts; see `contactCount`)
#[utoipa::path(get, path = "/v1/audience-groups", tag = "audience-groups", params(PageQuery),
    responses((status = 200, body = Page<AudienceGroup>), (status = 400, body = ErrorBody)))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<AudienceGroup>>> {
    let rows = audience_groups::list(&state.db, &caller.tenant_id, q.cursor()?, q.limit()?).await?;
    Ok(Json(Page::from_rows(rows, |g| &g.id)))
}

/// Get an audience group with its contacts
#[utoipa::path(get, path = "/v1/audience-groups/{id}", tag = "audience-groups",
    params(("id" = String, Path)),
    responses((status = 200, body = AudienceGroup), (status = 404, body = ErrorBody)))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AudienceGroup>> {
    Ok(Json(load(&state, &caller.tenant_id, &id).await?))
}

/// Replace an audience group (name, description, tags and the whole contact list)
#[utoipa::path(put, path = "/v1/audience-groups/{id}", tag = "audience-groups",
    params(("id" = String, Path)), request_body = AudienceGroupSpec,
    responses((status = 200, body = AudienceGroup), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<AudienceGroupSpec>,
) -> ApiResult<Json<AudienceGroup>> {
    load(&state, &caller.tenant_id, &id).await?;
    spec.validate()?;
    audience_groups::update(&state.db, &caller.tenant_id, &id, &spec)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Audience group"))
}

/// Delete an audience group
#[utoipa::path(delete, path = "/v1/audience-groups/{id}", tag = "audience-groups",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    load(&state, &caller.tenant_id, &id).await?;
    if !audience_groups::delete(&state.db, &caller.tenant_id, &id).await? {
        return Err(ApiError::not_found("Audience group"));
    }
    Ok(StatusCode::NO_CONTENT)
}
