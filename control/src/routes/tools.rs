//! `/v1/agents/{id}/tools`: the HTTP webhook tools an agent's LLM may call, and `…/test`, which
//! runs one against its endpoint with sample arguments.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::events;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::ids::{looks_like, new_id};
use crate::model::tool::{ToolSpec, MAX_TOOLS_PER_AGENT};
use crate::outbound::{self, ToolCallOutcome};
use crate::pagination::{Page, PageQuery};
use crate::routes::agents::load as load_agent;
use crate::state::AppState;
use crate::store::is_unique_violation;
use crate::store::tools::{self, Tool};

async fn load(state: &AppState, tenant_id: &str, agent_id: &str, id: &str) -> ApiResult<Tool> {
    load_agent(state, tenant_id, agent_id).await?;
    if !looks_like("tool", id) {
        return Err(ApiError::not_found("Tool"));
    }
    tools::get(&state.db, tenant_id, agent_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Tool"))
}

fn duplicate_name(e: sqlx::Error, name: &str) -> ApiError {
    if is_unique_violation(&e) {
        let mut err = ApiError::conflict(format!("the agent already has a tool named `{name}`"));
        err.field = Some("name".into());
        err
    } else {
        e.into()
    }
}

/// Create a tool
#[utoipa::path(post, path = "/v1/agents/{id}/tools", tag = "tools", params(("id" = String, Path)),
    request_body = ToolSpec,
    responses((status = 201, body = Tool), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a tool of that name exists, or the agent has 64 tools")))]
pub async fn create_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(spec): ApiJson<ToolSpec>,
) -> ApiResult<(StatusCode, Json<Tool>)> {
    load_agent(&state, &caller.tenant_id, &agent_id).await?;
    spec.validate()?;
    if tools::count(&state.db, &caller.tenant_id, &agent_id).await? >= MAX_TOOLS_PER_AGENT {
        return Err(ApiError::conflict(format!(
            "an agent can have at most {MAX_TOOLS_PER_AGENT} tools"
        )));
    }
    let tool = tools::insert(&state.db, &caller.tenant_id, &agent_id, &spec)
        .await
        .map_err(|e| duplicate_name(e, &spec.name))?;
    Ok((StatusCode::CREATED, Json(tool)))
}

/// List an agent's tools
#[utoipa::path(get, path = "/v1/agents/{id}/tools", tag = "tools",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<Tool>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_tools(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Tool>>> {
    load_agent(&state, &caller.tenant_id, &agent_id).await?;
    let rows = tools::list(
        &state.db,
        &caller.tenant_id,
        &agent_id,
        q.cursor()?,
        q.limit()?,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, |t| &t.id)))
}

/// Get a tool
#[utoipa::path(get, path = "/v1/agents/{id}/tools/{toolId}", tag = "tools",
    params(("id" = String, Path), ("toolId" = String, Path)),
    responses((status = 200, body = Tool), (status = 404, body = ErrorBody)))]
pub async fn get_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((agent_id, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Tool>> {
    Ok(Json(load(&state, &caller.tenant_id, &agent_id, &id).await?))
}

/// Replace a tool's settings
#[utoipa::path(put, path = "/v1/agents/{id}/tools/{toolId}", tag = "tools",
    params(("id" = String, Path), ("toolId" = String, Path)), request_body = ToolSpec,
    responses((status = 200, body = Tool), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn update_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((agent_id, id)): ApiPath<(String, String)>,
    ApiJson(spec): ApiJson<ToolSpec>,
) -> ApiResult<Json<Tool>> {
    load(&state, &caller.tenant_id, &agent_id, &id).await?;
    spec.validate()?;
    tools::update(&state.db, &caller.tenant_id, &agent_id, &id, &spec)
        .await
        .map_err(|e| duplicate_name(e, &spec.name))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Tool"))
}

/// Delete a tool
#[utoipa::path(delete, path = "/v1/agents/{id}/tools/{toolId}", tag = "tools",
    params(("id" = String, Path), ("toolId" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((agent_id, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    load(&state, &caller.tenant_id, &agent_id, &id).await?;
    if !tools::delete(&state.db, &caller.tenant_id, &agent_id, &id).await? {
        return Err(ApiError::not_found("Tool"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolTestRequest {
    /// Sample arguments, checked against the tool's parameters schema (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub arguments: Option<serde_json::Value>,
}

/// The outcome of a tool test: what was sent and what the endpoint answered.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolTestResult {
    pub tool_id: String,
    pub tool_call_id: String,
    pub method: String,
    pub url: String,
    #[schema(value_type = Object)]
    pub arguments: serde_json::Value,
    #[serde(flatten)]
    pub outcome: ToolCallOutcome,
}

/// Run a tool once with sample arguments
///
/// The arguments are validated against the tool's JSON Schema first (400 with the path of
/// each bad argument). Then the endpoint is called as during a conversation (with
/// `"test": true` in the body) and its status, body and latency are returned — also when it
/// fails or cannot be reached (`ok: false`, `error`). Emits `tool.executed`.
#[utoipa::path(post, path = "/v1/agents/{id}/tools/{toolId}/test", tag = "tools",
    params(("id" = String, Path), ("toolId" = String, Path)), request_body = ToolTestRequest,
    responses((status = 200, body = ToolTestResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test_tool(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((agent_id, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ToolTestRequest>,
) -> ApiResult<Json<ToolTestResult>> {
    let tool = load(&state, &caller.tenant_id, &agent_id, &id).await?;
    let arguments = body
        .arguments
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    if !arguments.is_object() {
        return Err(ApiError::validation(
            "arguments",
            "must be a JSON object of argument values",
        ));
    }
    tool.spec.check_arguments(&arguments)?;
    let tool_call_id = new_id("tc");
    let outcome = outbound::call_tool(
        &state.http,
        &tool.spec,
        &agent_id,
        &tool_call_id,
        &arguments,
        true,
    )
    .await;
    events::emit(
        &state,
        &caller.tenant_id,
        "tool.executed",
        None,
        serde_json::json!({
            "agentId": agent_id,
            "toolId": tool.id,
            "toolCallId": tool_call_id,
            "name": tool.spec.name,
            "test": true,
            "ok": outcome.ok,
            "status": outcome.status,
            "latencyMs": outcome.latency_ms,
            "error": outcome.error,
        }),
    );
    Ok(Json(ToolTestResult {
        tool_id: tool.id,
        tool_call_id,
        method: tool.spec.method.as_reqwest().to_string(),
        url: tool.spec.url,
        arguments,
        outcome,
    }))
}
