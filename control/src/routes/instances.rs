//! `/v1/agents/{id}/instances`: deployments of an agent on a channel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::ids::looks_like;
use crate::model::instance::InstanceSpec;
use crate::pagination::{Page, PageQuery};
use crate::routes::agents::load as load_agent;
use crate::state::AppState;
use crate::store::instances::{self, Instance};

async fn load(state: &AppState, tenant_id: &str, agent_id: &str, id: &str) -> ApiResult<Instance> {
    load_agent(state, tenant_id, agent_id).await?;
    if !looks_like("inst", id) {
        return Err(ApiError::not_found("Instance"));
    }
    instances::get(&state.db, tenant_id, agent_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Instance"))
}

/// Create an instance of an agent
#[utoipa::path(post, path = "/v1/agents/{id}/instances", tag = "instances",
    params(("id" = String, Path)), request_body = InstanceSpec,
    responses((status = 201, body = Instance), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_instance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(spec): ApiJson<InstanceSpec>,
) -> ApiResult<(StatusCode, Json<Instance>)> {
    let agent = load_agent(&state, &caller.tenant_id, &agent_id).await?;
    spec.validate(agent.version)?;
    let inst = instances::insert(&state.db, &caller.tenant_id, &agent_id, &spec).await?;
    Ok((StatusCode::CREATED, Json(inst)))
}

/// List an agent's instances
#[utoipa::path(get, path = "/v1/agents/{id}/instances", tag = "instances",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<Instance>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_instances(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Instance>>> {
    load_agent(&state, &caller.tenant_id, &agent_id).await?;
    let rows = instances::list(
        &state.db,
        &caller.tenant_id,
        &agent_id,
        q.cursor()?,
        q.limit()?,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, |i| &i.id)))
}

/// Get an instance
#[utoipa::path(get, path = "/v1/agents/{id}/instances/{instanceId}", tag = "instances",
    params(("id" = String, Path), ("instanceId" = String, Path)),
    responses((status = 200, body = Instance), (status = 404, body = ErrorBody)))]
pub async fn get_instance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((agent_id, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Instance>> {
    Ok(Json(load(&state, &caller.tenant_id, &agent_id, &id).await?))
}

/// Replace an instance's settings
#[utoipa::path(put, path = "/v1/agents/{id}/instances/{instanceId}", tag = "instances",
    params(("id" = String, Path), ("instanceId" = String, Path)), request_body = InstanceSpec,
    responses((status = 200, body = Instance), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_instance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((agent_id, id)): ApiPath<(String, String)>,
    ApiJson(spec): ApiJson<InstanceSpec>,
) -> ApiResult<Json<Instance>> {
    let agent = load_agent(&state, &caller.tenant_id, &agent_id).await?;
    load(&state, &caller.tenant_id, &agent_id, &id).await?;
    spec.validate(agent.version)?;
    instances::update(&state.db, &caller.tenant_id, &agent_id, &id, &spec)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Instance"))
}

/// Delete an instance
#[utoipa::path(delete, path = "/v1/agents/{id}/instances/{instanceId}", tag = "instances",
    params(("id" = String, Path), ("instanceId" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_instance(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((agent_id, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    load(&state, &caller.tenant_id, &agent_id, &id).await?;
    if !instances::delete(&state.db, &caller.tenant_id, &agent_id, &id).await? {
        return Err(ApiError::not_found("Instance"));
    }
    Ok(StatusCode::NO_CONTENT)
}
