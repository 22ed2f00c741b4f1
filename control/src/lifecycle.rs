//! The engine-facing side of call records: what the media plane reports as a call progresses
//! (answered, transcript lines, handoff, end, usage). Each step updates the store and emits the
//! matching webhook events, so the API and the webhooks always agree.

use crate::events;
use crate::state::AppState;
use crate::store::calls::{self, Call, NewCall};
use crate::store::{tasks, usage};

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("no such call")]
    UnknownCall,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn call_payload(call: &Call) -> serde_json::Value {
    serde_json::json!({
        "callId": call.id,
        "agentId": call.agent_id,
        "taskId": call.task_id,
        "status": call.status,
        "channel": call.channel,
        "direction": call.direction,
        "durationSeconds": call.duration_seconds,
        "endReason": call.end_reason,
    })
}

async fn load(state: &AppState, call_id: &str) -> Result<(String, Call), LifecycleError> {
    let tenant = calls::tenant_of(&state.db, call_id)
        .await?
        .ok_or(LifecycleError::UnknownCall)?;
    let call = calls::get(&state.db, &tenant, call_id)
        .await?
        .ok_or(LifecycleError::UnknownCall)?;
    Ok((tenant, call))
}

/// Records a new call (inbound, or outbound placed by `execute`) and emits `call.started`.
pub async fn call_started(
    state: &AppState,
    tenant_id: &str,
    new: &NewCall,
) -> Result<Call, LifecycleError> {
    let call = calls::insert(&state.db, tenant_id, new).await?;
    events::emit(
        state,
        tenant_id,
        "call.started",
        call.task_id.as_deref(),
        call_payload(&call),
    );
    Ok(call)
}

/// The call connected: initiated → in_progress.
pub async fn call_answered(state: &AppState, call_id: &str) -> Result<(), LifecycleError> {
    let (tenant, _) = load(state, call_id).await?;
    calls::mark_in_progress(&state.db, &tenant, call_id).await?;
    Ok(())
}

/// Appends one transcript line; returns its sequence number.
pub async fn transcript(
    state: &AppState,
    call_id: &str,
    speaker: &str,
    text: &str,
) -> Result<i64, LifecycleError> {
    let (tenant, _) = load(state, call_id).await?;
    Ok(calls::append_transcript(&state.db, &tenant, call_id, speaker, text).await?)
}

/// The agent asked for a human.
pub async fn handoff_requested(
    state: &AppState,
    call_id: &str,
    reason: &str,
) -> Result<(), LifecycleError> {
    let (tenant, call) = load(state, call_id).await?;
    let mut payload = call_payload(&call);
    payload["reason"] = serde_json::Value::String(reason.to_string());
    events::emit(
        state,
        &tenant,
        "handoff.requested",
        call.task_id.as_deref(),
        payload,
    );
    Ok(())
}

/// Ends a call as completed (`ok`) or failed, finishes its task, and emits `call.completed` or
/// `call.failed` plus `conversation.ended`. Returns `false` if the call had already ended.
pub async fn call_ended(
    state: &AppState,
    call_id: &str,
    ok: bool,
    reason: &str,
) -> Result<bool, LifecycleError> {
    let (tenant, _) = load(state, call_id).await?;
    let status = if ok { "completed" } else { "failed" };
    if !calls::finish(&state.db, &tenant, call_id, status, reason).await? {
        return Ok(false);
    }
    let (_, call) = load(state, call_id).await?;
    if let Some(task_id) = &call.task_id {
        tasks::finish(&state.db, &tenant, task_id, ok, (!ok).then_some(reason)).await?;
    }
    let payload = call_payload(&call);
    let event = if ok { "call.completed" } else { "call.failed" };
    events::emit(
        state,
        &tenant,
        event,
        call.task_id.as_deref(),
        payload.clone(),
    );
    events::emit(
        state,
        &tenant,
        "conversation.ended",
        call.task_id.as_deref(),
        payload,
    );
    Ok(true)
}

/// Stores where the engine wrote the call's recording.
pub async fn recording_stored(
    state: &AppState,
    call_id: &str,
    path: &str,
    content_type: &str,
) -> Result<(), LifecycleError> {
    let (tenant, _) = load(state, call_id).await?;
    calls::set_recording(&state.db, &tenant, call_id, path, content_type).await?;
    Ok(())
}

/// Adds provider consumption (e.g. `tts_characters`, `stt_seconds`, `llm_tokens`) to usage.
pub async fn record_usage(
    state: &AppState,
    call_id: &str,
    provider: &str,
    metric: &str,
    quantity: f64,
) -> Result<(), LifecycleError> {
    let (tenant, _) = load(state, call_id).await?;
    usage::record(
        &state.db,
        &tenant,
        Some(call_id),
        provider,
        metric,
        quantity,
    )
    .await?;
    Ok(())
}
