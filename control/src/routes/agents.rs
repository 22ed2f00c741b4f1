//! `/v1/agents`: CRUD, PUT/PATCH with versioning, publish, activate/deactivate, duplicate and
//! provision.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::events;
use crate::extract::{from_value, ApiJson, ApiPath, ApiQuery};
use crate::ids::looks_like;
use crate::model::agent::{changed_fields, merge_patch, offline_defaults, AgentConfig};
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;
use crate::store::agents::{self, Agent, AgentVersion, Update};
use crate::store::PageRows;
use crate::validate::Checker;

/// Loads an agent of the caller's tenant, or 404 (also for other tenants' agents).
pub async fn load(state: &AppState, tenant_id: &str, id: &str) -> ApiResult<Agent> {
    if !looks_like("agt", id) {
        return Err(ApiError::not_found("Agent"));
    }
    agents::get(&state.db, tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent"))
}

fn emit_agent(state: &AppState, tenant_id: &str, event: &str, agent: &Agent) {
    events::emit(
        state,
        tenant_id,
        event,
        None,
        serde_json::json!({ "agentId": agent.id, "version": agent.version, "name": agent.config.name }),
    );
}

/// Create an agent
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentConfig,
    responses((status = 201, body = Agent), (status = 400, body = ErrorBody)))]
pub async fn create_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(config): ApiJson<AgentConfig>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    config.validate()?;
    let agent = agents::insert(
        &state.db,
        &caller.tenant_id,
        &config,
        "draft",
        &caller.key_id,
        "Created",
    )
    .await?;
    emit_agent(&state, &caller.tenant_id, "agent.created", &agent);
    Ok((StatusCode::CREATED, Json(agent)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentListQuery {
    /// `draft`, `active` or `inactive`.
    pub status: Option<String>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Comma-separated tags (≤ 20); only agents carrying every one of them are listed. Tags
    /// compare case-insensitively.
    pub tags: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List agents
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(AgentListQuery),
    responses((status = 200, body = Page<Agent>), (status = 400, body = ErrorBody)))]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AgentListQuery>,
) -> ApiResult<Json<Page<Agent>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    if let Some(s) = &q.status {
        if !matches!(s.as_str(), "draft" | "active" | "inactive") {
            return Err(ApiError::validation(
                "status",
                "must be draft, active or inactive",
            ));
        }
    }
    if q.search.as_ref().is_some_and(|s| s.chars().count() > 100) {
        return Err(ApiError::validation(
            "search",
            "must be at most 100 characters",
        ));
    }
    let tags: Vec<String> = q
        .tags
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    let mut c = Checker::default();
    c.string_list("tags", &tags, 20, 50);
    c.finish()?;
    let rows = agents::list(
        &state.db,
        &caller.tenant_id,
        q.status.as_deref(),
        q.search.as_deref().filter(|s| !s.is_empty()),
        &tags,
        page.cursor()?,
        page.limit()?,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, |a| &a.id)))
}

/// Get an agent
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Agent), (status = 404, body = ErrorBody)))]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    // The hot read path: the agent's JSON is rendered once per version and served as is.
    if !looks_like("agt", &id) {
        return Err(ApiError::not_found("Agent"));
    }
    let shared = agents::get_shared(&state.db, &caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent"))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        shared.json.clone(),
    )
        .into_response())
}

/// Applies `change` to the current configuration and stores it as a new version, retrying if
/// another writer got in between. An unchanged configuration is not a new version.
async fn change_config(
    state: &AppState,
    caller: &Caller,
    id: &str,
    change: impl Fn(&AgentConfig) -> ApiResult<AgentConfig>,
) -> ApiResult<Agent> {
    for _ in 0..5 {
        let current = load(state, &caller.tenant_id, id).await?;
        let next = change(&current.config)?;
        next.validate()?;
        let old_json = serde_json::to_value(&current.config).unwrap_or_default();
        let new_json = serde_json::to_value(&next).unwrap_or_default();
        let changed = changed_fields(&old_json, &new_json);
        if changed.is_empty() {
            return Ok(current);
        }
        let summary = format!("Updated {}", changed.join(", "));
        match agents::update(
            &state.db,
            &caller.tenant_id,
            id,
            current.version,
            &next,
            &caller.key_id,
            &summary,
        )
        .await?
        {
            Update::Done(agent) => {
                emit_agent(state, &caller.tenant_id, "agent.updated", &agent);
                return Ok(*agent);
            }
            Update::NotFound => return Err(ApiError::not_found("Agent")),
            Update::Stale => continue,
        }
    }
    Err(ApiError::conflict(
        "the agent is being changed concurrently; retry",
    ))
}

/// Replace an agent's configuration (full update; bumps the version)
#[utoipa::path(put, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    request_body = AgentConfig,
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn replace_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(config): ApiJson<AgentConfig>,
) -> ApiResult<Json<Agent>> {
    config.validate()?;
    Ok(Json(
        change_config(&state, &caller, &id, |_| Ok(config.clone())).await?,
    ))
}

/// Update an agent partially (JSON merge patch; nested objects merge, `null` resets a field)
#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    request_body(content = Object, description = "Any subset of the AgentConfig fields"),
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn patch_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> ApiResult<Json<Agent>> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "the PATCH body must be a JSON object",
        ));
    }
    let agent = change_config(&state, &caller, &id, |current| {
        let mut merged = serde_json::to_value(current).unwrap_or_default();
        merge_patch(&mut merged, &patch);
        from_value::<AgentConfig>(merged)
    })
    .await?;
    Ok(Json(agent))
}

/// Delete an agent (refused while it has pending or in-progress tasks; calls are kept)
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    load(&state, &caller.tenant_id, &id).await?;
    let open = agents::open_task_count(&state.db, &caller.tenant_id, &id).await?;
    if open > 0 {
        return Err(ApiError::conflict(format!(
            "the agent has {open} pending or in-progress task(s); delete or finish them first"
        )));
    }
    if !agents::delete(&state.db, &caller.tenant_id, &id).await? {
        return Err(ApiError::not_found("Agent"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Provision a ready-to-run agent in one call: omitted persona, voice, llm, transcription and
/// prompt default to the embedded offline providers; the agent is created active and its first
/// version published
#[utoipa::path(post, path = "/v1/agents/provision", tag = "agents",
    request_body(content = Object, description = "Any AgentConfig fields; only `name` is required"),
    responses((status = 201, body = Agent), (status = 400, body = ErrorBody)))]
pub async fn provision_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let mut merged = offline_defaults();
    merge_patch(&mut merged, &body);
    let config: AgentConfig = from_value(merged)?;
    config.validate()?;
    let agent = agents::insert(
        &state.db,
        &caller.tenant_id,
        &config,
        "active",
        &caller.key_id,
        "Provisioned",
    )
    .await?;
    let agent = agents::publish(&state.db, &caller.tenant_id, &agent.id, Some("Provisioned"))
        .await?
        .ok_or_else(|| ApiError::not_found("Agent"))?;
    emit_agent(&state, &caller.tenant_id, "agent.created", &agent);
    Ok((StatusCode::CREATED, Json(agent)))
}

async fn set_status(state: &AppState, caller: &Caller, id: &str, status: &str) -> ApiResult<Agent> {
    load(state, &caller.tenant_id, id).await?;
    agents::set_status(&state.db, &caller.tenant_id, id, status)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent"))
}

/// Activate an agent (it may then take and place calls)
#[utoipa::path(post, path = "/v1/agents/{id}/activate", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Agent), (status = 404, body = ErrorBody)))]
pub async fn activate_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(set_status(&state, &caller, &id, "active").await?))
}

/// Deactivate an agent
#[utoipa::path(post, path = "/v1/agents/{id}/deactivate", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Agent), (status = 404, body = ErrorBody)))]
pub async fn deactivate_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(set_status(&state, &caller, &id, "inactive").await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicateRequest {
    /// Name of the copy (default: the original's name + " (Copy)").
    pub name: Option<String>,
}

/// Duplicate an agent (the copy starts inactive at version 1)
#[utoipa::path(post, path = "/v1/agents/{id}/duplicate", tag = "agents", params(("id" = String, Path)),
    request_body = DuplicateRequest,
    responses((status = 201, body = Agent), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn duplicate_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DuplicateRequest>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    let original = load(&state, &caller.tenant_id, &id).await?;
    let mut config = original.config.clone();
    config.name = match body.name {
        Some(n) => n,
        None => {
            let base: String = original.config.name.chars().take(93).collect();
            format!("{base} (Copy)")
        }
    };
    config.validate()?;
    let summary = format!("Duplicated from {} v{}", original.id, original.version);
    let agent = agents::insert(
        &state.db,
        &caller.tenant_id,
        &config,
        "inactive",
        &caller.key_id,
        &summary,
    )
    .await?;
    emit_agent(&state, &caller.tenant_id, "agent.created", &agent);
    Ok((StatusCode::CREATED, Json(agent)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Release notes for this version (≤ 1000 characters).
    pub notes: Option<String>,
}

/// Publish the current version as the stable one
#[utoipa::path(post, path = "/v1/agents/{id}/publish", tag = "agents", params(("id" = String, Path)),
    request_body = PublishRequest,
    responses((status = 200, body = Agent), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn publish_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PublishRequest>,
) -> ApiResult<Json<Agent>> {
    let mut c = Checker::default();
    c.opt_text("notes", body.notes.as_deref(), 1000);
    c.finish()?;
    load(&state, &caller.tenant_id, &id).await?;
    let agent = agents::publish(&state.db, &caller.tenant_id, &id, body.notes.as_deref())
        .await?
        .ok_or_else(|| ApiError::not_found("Agent"))?;
    Ok(Json(agent))
}

/// List an agent's versions, newest first (the cursor is a version number)
#[utoipa::path(get, path = "/v1/agents/{id}/versions", tag = "agents",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<AgentVersion>), (status = 404, body = ErrorBody)))]
pub async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<AgentVersion>>> {
    load(&state, &caller.tenant_id, &id).await?;
    let before = match q.cursor()? {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::validation("cursor", "not a cursor returned by this API"))?,
        ),
    };
    let rows: PageRows<AgentVersion> =
        agents::list_versions(&state.db, &caller.tenant_id, &id, before, q.limit()?).await?;
    let next_cursor = if rows.has_more {
        rows.items.last().map(|v| v.version.to_string())
    } else {
        None
    };
    Ok(Json(Page {
        data: rows.items,
        next_cursor,
        has_more: rows.has_more,
    }))
}

/// Get one version of an agent, with its full configuration
#[utoipa::path(get, path = "/v1/agents/{id}/versions/{version}", tag = "agents",
    params(("id" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = AgentVersion), (status = 404, body = ErrorBody)))]
pub async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, version)): ApiPath<(String, i64)>,
) -> ApiResult<Json<AgentVersion>> {
    load(&state, &caller.tenant_id, &id).await?;
    let v = agents::get_version(&state.db, &caller.tenant_id, &id, version)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent version"))?;
    Ok(Json(v))
}
