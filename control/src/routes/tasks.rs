//! `/v1/tasks` (and the agent-scoped aliases `/v1/agents/{id}/tasks`): outbound call tasks
//! with the status rules pending → in_progress → completed | failed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::dispatch::OutboundCall;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{from_value, ApiJson, ApiPath, ApiQuery};
use crate::ids::{looks_like, new_id};
use crate::lifecycle;
use crate::model::agent::merge_patch;
use crate::model::task::{CreateTask, TaskSpec};
use crate::pagination::{Page, PageQuery};
use crate::routes::agents::load as load_agent;
use crate::state::AppState;
use crate::store::calls::NewCall;
use crate::store::tasks::{self, Task};
use crate::store::webhooks;

/// A created task; `webhookSecret` is present (once) when the task has a `webhookUrl`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTask {
    #[serde(flatten)]
    pub task: Task,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

async fn load(state: &AppState, tenant_id: &str, id: &str) -> ApiResult<Task> {
    if !looks_like("task", id) {
        return Err(ApiError::not_found("Task"));
    }
    tasks::get(&state.db, tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Task"))
}

async fn create(
    state: &AppState,
    caller: &Caller,
    agent_id: &str,
    mut spec: TaskSpec,
) -> ApiResult<CreatedTask> {
    spec.validate()?;
    if !looks_like("agt", agent_id) {
        return Err(ApiError::validation("agentId", "no such agent"));
    }
    if crate::store::agents::get(&state.db, &caller.tenant_id, agent_id)
        .await?
        .is_none()
    {
        return Err(ApiError::validation("agentId", "no such agent"));
    }
    let task = tasks::insert(&state.db, &caller.tenant_id, agent_id, &spec).await?;
    let webhook_secret = match &spec.webhook_url {
        Some(url) => {
            let events = if spec.webhook_events.is_empty() {
                vec![
                    "call.started".into(),
                    "call.completed".into(),
                    "call.failed".into(),
                ]
            } else {
                spec.webhook_events.clone()
            };
            let (_, secret) = webhooks::create(
                &state.db,
                &state.secrets,
                &caller.tenant_id,
                Some(&task.id),
                url,
                &events,
                None,
                Some(&format!("webhook of task {}", task.id)),
            )
            .await?;
            Some(secret)
        }
        None => None,
    };
    Ok(CreatedTask {
        task,
        webhook_secret,
    })
}

/// Create a task (an outbound call to place)
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = CreateTask,
    responses((status = 201, body = CreatedTask), (status = 400, body = ErrorBody)))]
pub async fn create_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTask>,
) -> ApiResult<(StatusCode, Json<CreatedTask>)> {
    let (agent_id, spec) = body.split();
    Ok((
        StatusCode::CREATED,
        Json(create(&state, &caller, &agent_id, spec).await?),
    ))
}

/// Dispatch an outbound call task for this agent (same as `POST /v1/tasks` with `agentId`)
#[utoipa::path(post, path = "/v1/agents/{id}/tasks", tag = "tasks", params(("id" = String, Path)),
    request_body = TaskSpec,
    responses((status = 201, body = CreatedTask), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_agent_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(spec): ApiJson<TaskSpec>,
) -> ApiResult<(StatusCode, Json<CreatedTask>)> {
    load_agent(&state, &caller.tenant_id, &agent_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(create(&state, &caller, &agent_id, spec).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct TaskListQuery {
    pub agent_id: Option<String>,
    /// `pending`, `in_progress`, `completed` or `failed`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn check_status(status: Option<&str>) -> ApiResult<()> {
    match status {
        None | Some("pending" | "in_progress" | "completed" | "failed") => Ok(()),
        Some(_) => Err(ApiError::validation(
            "status",
            "must be pending, in_progress, completed or failed",
        )),
    }
}

async fn list(
    state: &AppState,
    caller: &Caller,
    agent_id: Option<&str>,
    q: &TaskListQuery,
) -> ApiResult<Page<Task>> {
    check_status(q.status.as_deref())?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let rows = tasks::list(
        &state.db,
        &caller.tenant_id,
        agent_id,
        q.status.as_deref(),
        page.cursor()?,
        page.limit()?,
    )
    .await?;
    Ok(Page::from_rows(rows, |t| &t.id))
}

/// List tasks
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(TaskListQuery),
    responses((status = 200, body = Page<Task>), (status = 400, body = ErrorBody)))]
pub async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TaskListQuery>,
) -> ApiResult<Json<Page<Task>>> {
    Ok(Json(
        list(&state, &caller, q.agent_id.as_deref(), &q).await?,
    ))
}

/// List this agent's tasks
#[utoipa::path(get, path = "/v1/agents/{id}/tasks", tag = "tasks", params(("id" = String, Path), TaskListQuery),
    responses((status = 200, body = Page<Task>), (status = 404, body = ErrorBody)))]
pub async fn list_agent_tasks(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(agent_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<TaskListQuery>,
) -> ApiResult<Json<Page<Task>>> {
    load_agent(&state, &caller.tenant_id, &agent_id).await?;
    Ok(Json(list(&state, &caller, Some(&agent_id), &q).await?))
}

/// Get a task
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody)))]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Task>> {
    Ok(Json(load(&state, &caller.tenant_id, &id).await?))
}

/// Get one of this agent's tasks
#[utoipa::path(get, path = "/v1/agents/{id}/tasks/{taskId}", tag = "tasks",
    params(("id" = String, Path), ("taskId" = String, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody)))]
pub async fn get_agent_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((agent_id, task_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Task>> {
    let task = load(&state, &caller.tenant_id, &task_id).await?;
    if task.agent_id != agent_id {
        return Err(ApiError::not_found("Task"));
    }
    Ok(Json(task))
}

fn wrong_state(task: &Task, action: &str, allowed: &str) -> ApiError {
    ApiError::conflict(format!(
        "cannot {action} a task that is {}; only {allowed} tasks",
        task.status
    ))
}

/// Update a pending task (JSON merge patch of its settings)
#[utoipa::path(patch, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    request_body(content = Object, description = "Any subset of the TaskSpec fields"),
    responses((status = 200, body = Task), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn patch_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> ApiResult<Json<Task>> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "the PATCH body must be a JSON object",
        ));
    }
    let task = load(&state, &caller.tenant_id, &id).await?;
    if task.status != "pending" {
        return Err(wrong_state(&task, "update", "pending"));
    }
    let mut merged = serde_json::to_value(&task.spec).unwrap_or_default();
    merge_patch(&mut merged, &patch);
    let mut spec: TaskSpec = from_value(merged)?;
    spec.validate()?;
    if !tasks::update_spec(&state.db, &caller.tenant_id, &id, &spec).await? {
        let now = load(&state, &caller.tenant_id, &id).await?;
        return Err(wrong_state(&now, "update", "pending"));
    }
    Ok(Json(load(&state, &caller.tenant_id, &id).await?))
}

/// Delete a task (pending or failed only)
#[utoipa::path(delete, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let task = load(&state, &caller.tenant_id, &id).await?;
    if !tasks::delete(&state.db, &caller.tenant_id, &id).await? {
        return Err(wrong_state(&task, "delete", "pending or failed"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Executed {
    pub call_id: String,
    pub message: String,
}

/// Execute a pending task: place its call through the engine. Fails with 503
/// PROVIDER_UNAVAILABLE while no transport can place outbound calls (the call and task are then
/// recorded as failed; `reset` makes the task pending again)
#[utoipa::path(post, path = "/v1/tasks/{id}/execute", tag = "tasks", params(("id" = String, Path)),
    responses((status = 202, body = Executed), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn execute_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<Executed>)> {
    let task = load(&state, &caller.tenant_id, &id).await?;
    if task.status != "pending" {
        return Err(wrong_state(&task, "execute", "pending"));
    }
    let agent = crate::store::agents::get(&state.db, &caller.tenant_id, &task.agent_id)
        .await?
        .ok_or_else(|| ApiError::conflict("the task's agent no longer exists"))?;
    if agent.status != "active" {
        return Err(ApiError::conflict(format!(
            "agent {} is {}; activate it before executing tasks",
            agent.id, agent.status
        )));
    }
    // Dial the published version when there is one, so drafts never reach callers.
    let (config, version) = match agent.published_version {
        Some(v) => {
            match crate::store::agents::get_version(&state.db, &caller.tenant_id, &agent.id, v)
                .await?
            {
                Some(ver) => (ver.config.unwrap_or(agent.config.clone()), v),
                None => (agent.config.clone(), agent.version),
            }
        }
        None => (agent.config.clone(), agent.version),
    };
    let call_id = new_id("call");
    if !tasks::claim(&state.db, &caller.tenant_id, &id, &call_id).await? {
        let now = load(&state, &caller.tenant_id, &id).await?;
        return Err(wrong_state(&now, "execute", "pending"));
    }
    let new = NewCall {
        id: call_id.clone(),
        agent_id: agent.id.clone(),
        task_id: Some(task.id.clone()),
        channel: "phone".into(),
        direction: "outbound".into(),
        from_number: None,
        to_number: Some(task.spec.to_number.clone()),
    };
    lifecycle::call_started(&state, &caller.tenant_id, &new)
        .await
        .map_err(internal)?;
    let outbound = OutboundCall {
        call_id: call_id.clone(),
        tenant_id: caller.tenant_id.clone(),
        agent_id: agent.id.clone(),
        task_id: Some(task.id.clone()),
        to_number: task.spec.to_number.clone(),
        agent_config: serde_json::to_value(&config).unwrap_or_default(),
        agent_version: version,
        first_message: task
            .spec
            .first_message
            .clone()
            .or(config.first_message.clone()),
        context: task.spec.context_data.clone(),
    };
    match state.dispatcher.place_call(outbound).await {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(Executed {
                call_id,
                message: "Call initiated".into(),
            }),
        )),
        Err(e) => {
            lifecycle::call_ended(&state, &call_id, false, &format!("dispatch failed: {e}"))
                .await
                .map_err(internal)?;
            // Every dispatch failure means no provider could take the call right now.
            Err(ApiError::new(ErrorCode::ProviderUnavailable, e.to_string()))
        }
    }
}

fn internal(e: lifecycle::LifecycleError) -> ApiError {
    match e {
        lifecycle::LifecycleError::Db(e) => ApiError::from(e),
        lifecycle::LifecycleError::UnknownCall => ApiError::internal("call record vanished"),
    }
}

/// Reset a completed or failed task to pending so it can be executed again
#[utoipa::path(post, path = "/v1/tasks/{id}/reset", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = Task), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reset_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Task>> {
    let task = load(&state, &caller.tenant_id, &id).await?;
    if !tasks::reset(&state.db, &caller.tenant_id, &id).await? {
        return Err(if task.status == "pending" {
            ApiError::conflict("the task is already pending")
        } else {
            wrong_state(&task, "reset", "completed or failed")
        });
    }
    Ok(Json(load(&state, &caller.tenant_id, &id).await?))
}
