//! `/v1/calls` and `/v1/conversations`: the records of sessions (any channel), transcripts,
//! recordings, ending and cancelling live calls, and the live transcript stream.

use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::dispatch::DispatchError;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{ApiPath, ApiQuery};
use crate::ids::looks_like;
use crate::lifecycle;
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;
use crate::store::calls::{self, Call, CallFilter, TranscriptEntry};
use crate::store::keys;
use crate::timestamps::{now_ms, to_rfc3339};

/// How long a live-transcript session token is valid.
const LIVE_TOKEN_SECONDS: i64 = 300;

async fn load(
    state: &AppState,
    tenant_id: &str,
    id: &str,
    with_transcript: bool,
) -> ApiResult<Call> {
    if !looks_like("call", id) {
        return Err(ApiError::not_found("Call"));
    }
    let mut call = calls::get(&state.db, tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Call"))?;
    if with_transcript {
        call.transcript = Some(calls::transcript(&state.db, tenant_id, id, 0).await?);
    }
    Ok(call)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct CallListQuery {
    pub agent_id: Option<String>,
    pub task_id: Option<String>,
    /// `initiated`, `in_progress`, `completed` or `failed`.
    pub status: Option<String>,
    /// `phone`, `sip`, `webrtc` or `websocket`.
    pub channel: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

async fn list(state: &AppState, caller: &Caller, q: &CallListQuery) -> ApiResult<Page<Call>> {
    if let Some(s) = &q.status {
        if !matches!(
            s.as_str(),
            "initiated" | "in_progress" | "completed" | "failed"
        ) {
            return Err(ApiError::validation(
                "status",
                "must be initiated, in_progress, completed or failed",
            ));
        }
    }
    if let Some(c) = &q.channel {
        if !matches!(c.as_str(), "phone" | "sip" | "webrtc" | "websocket") {
            return Err(ApiError::validation(
                "channel",
                "must be phone, sip, webrtc or websocket",
            ));
        }
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let filter = CallFilter {
        agent_id: q.agent_id.as_deref(),
        task_id: q.task_id.as_deref(),
        status: q.status.as_deref(),
        channel: q.channel.as_deref(),
    };
    let rows = calls::list(
        &state.db,
        &caller.tenant_id,
        &filter,
        page.cursor()?,
        page.limit()?,
    )
    .await?;
    Ok(Page::from_rows(rows, |c| &c.id))
}

/// List calls
#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(CallListQuery),
    responses((status = 200, body = Page<Call>), (status = 400, body = ErrorBody)))]
pub async fn list_calls(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CallListQuery>,
) -> ApiResult<Json<Page<Call>>> {
    Ok(Json(list(&state, &caller, &q).await?))
}

/// Get a call, with its transcript
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = Call), (status = 404, body = ErrorBody)))]
pub async fn get_call(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Call>> {
    Ok(Json(load(&state, &caller.tenant_id, &id, true).await?))
}

/// List conversations (the same records as calls, across every channel)
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", params(CallListQuery),
    responses((status = 200, body = Page<Call>), (status = 400, body = ErrorBody)))]
pub async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CallListQuery>,
) -> ApiResult<Json<Page<Call>>> {
    Ok(Json(list(&state, &caller, &q).await?))
}

/// Get a conversation, with its transcript
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations", params(("id" = String, Path)),
    responses((status = 200, body = Call), (status = 404, body = ErrorBody)))]
pub async fn get_conversation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Call>> {
    Ok(Json(load(&state, &caller.tenant_id, &id, true).await?))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    pub call_id: String,
    pub status: String,
    pub entries: Vec<TranscriptEntry>,
}

/// Get a call's transcript
#[utoipa::path(get, path = "/v1/calls/{id}/transcript", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = Transcript), (status = 404, body = ErrorBody)))]
pub async fn get_transcript(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Transcript>> {
    let call = load(&state, &caller.tenant_id, &id, true).await?;
    Ok(Json(Transcript {
        call_id: call.id,
        status: call.status,
        entries: call.transcript.unwrap_or_default(),
    }))
}

/// Stream the call's recording (the WAV the engine wrote)
#[utoipa::path(get, path = "/v1/calls/{id}/recording", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, description = "The audio file", content_type = "audio/wav"), (status = 404, body = ErrorBody)))]
pub async fn get_recording(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    load(&state, &caller.tenant_id, &id, false).await?;
    let (path, content_type) = calls::recording(&state.db, &caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("Recording"))?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::warn!(%path, error = %e, "recording file unavailable");
        ApiError::not_found("Recording file")
    })?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    let stream = tokio_util::io::ReaderStream::new(file);
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        content_type
            .parse()
            .unwrap_or(header::HeaderValue::from_static("audio/wav")),
    );
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, len.into());
    }
    Ok(resp)
}

async fn stop(
    state: &AppState,
    caller: &Caller,
    id: &str,
    ok: bool,
    reason: &str,
) -> ApiResult<Call> {
    let call = load(state, &caller.tenant_id, id, false).await?;
    if !matches!(call.status.as_str(), "initiated" | "in_progress") {
        return Err(ApiError::conflict(format!(
            "the call has already ended ({})",
            call.status
        )));
    }
    match state.dispatcher.end_call(id).await {
        // No live media for it here: the record is finalized all the same.
        Ok(()) | Err(DispatchError::NotActive) | Err(DispatchError::NoTransport) => {}
        Err(e) => return Err(ApiError::new(ErrorCode::ProviderUnavailable, e.to_string())),
    }
    lifecycle::call_ended(state, id, ok, reason)
        .await
        .map_err(|e| match e {
            lifecycle::LifecycleError::Db(e) => ApiError::from(e),
            lifecycle::LifecycleError::UnknownCall => ApiError::not_found("Call"),
        })?;
    load(state, &caller.tenant_id, id, false).await
}

/// End a live call (hang up; the call completes)
#[utoipa::path(post, path = "/v1/calls/{id}/end", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = Call), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn end_call(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Call>> {
    Ok(Json(
        stop(&state, &caller, &id, true, "ended_via_api").await?,
    ))
}

/// Cancel a live call (hang up; the call and its task are marked failed)
#[utoipa::path(post, path = "/v1/calls/{id}/cancel", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = Call), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_call(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Call>> {
    Ok(Json(stop(&state, &caller, &id, false, "cancelled").await?))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveInfo {
    pub call_id: String,
    /// WebSocket URL; append `?session_token=<tempToken>` (or `?api_key=<key>`).
    pub websocket_url: String,
    /// Valid for 5 minutes, for this call only.
    pub temp_token: String,
    pub expires_at: String,
    /// `connected`, `transcript_update`, `call_status_update`, `pong`, `error`.
    pub message_types: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct LiveClaims {
    c: String,
    t: String,
    e: i64,
}

/// Get the live transcript WebSocket URL and a 5-minute session token
#[utoipa::path(get, path = "/v1/calls/{id}/live", tag = "calls", params(("id" = String, Path)),
    responses((status = 200, body = LiveInfo), (status = 404, body = ErrorBody)))]
pub async fn live_info(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<LiveInfo>> {
    load(&state, &caller.tenant_id, &id, false).await?;
    let expires = now_ms() / 1000 + LIVE_TOKEN_SECONDS;
    let claims = LiveClaims {
        c: id.clone(),
        t: caller.tenant_id.clone(),
        e: expires,
    };
    let token = state
        .secrets
        .sign_token(&serde_json::to_string(&claims).unwrap_or_default());
    let base = match &state.options.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    let ws_base = base
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    Ok(Json(LiveInfo {
        websocket_url: format!("{ws_base}/v1/calls/{id}/live/ws"),
        call_id: id,
        temp_token: token,
        expires_at: to_rfc3339(expires * 1000),
        message_types: [
            "connected",
            "transcript_update",
            "call_status_update",
            "pong",
            "error",
        ]
        .map(String::from)
        .to_vec(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveAuth {
    /// The `tempToken` from `GET /v1/calls/{id}/live`.
    pub session_token: Option<String>,
    /// Alternatively, an API key with read scope.
    pub api_key: Option<String>,
}

/// Live transcript WebSocket (authenticates with `session_token` or `api_key` in the query,
/// since browsers cannot set headers on WebSocket requests)
#[utoipa::path(get, path = "/v1/calls/{id}/live/ws", tag = "calls", security(()),
    params(("id" = String, Path), LiveAuth),
    responses((status = 101, description = "Switching to the WebSocket protocol"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn live_ws(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(auth): ApiQuery<LiveAuth>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let tenant = if let Some(token) = &auth.session_token {
        let claims: LiveClaims = state
            .secrets
            .verify_token(token)
            .and_then(|p| serde_json::from_str(&p).ok())
            .ok_or_else(|| ApiError::unauthorized("invalid session token"))?;
        if claims.e < now_ms() / 1000 {
            return Err(ApiError::unauthorized("session token expired"));
        }
        if claims.c != id {
            return Err(ApiError::unauthorized("session token is for another call"));
        }
        claims.t
    } else if let Some(key) = &auth.api_key {
        match keys::find_by_secret(&state.db, key).await? {
            Some(k) if !k.revoked => k.tenant_id,
            _ => return Err(ApiError::unauthorized("invalid API key")),
        }
    } else {
        return Err(ApiError::unauthorized(
            "pass session_token or api_key in the query",
        ));
    };
    load(&state, &tenant, &id, false).await?;
    let ws =
        ws.map_err(|_| ApiError::bad_request("this endpoint needs a WebSocket upgrade request"))?;
    Ok(ws.on_upgrade(move |socket| stream_live(state, tenant, id, socket)))
}

const LIVE_POLL: Duration = Duration::from_millis(250);
const LIVE_MAX: Duration = Duration::from_secs(4 * 3600);

/// Streams transcript lines and status changes from the store until the call ends. Reading the
/// store (rather than in-process channels) makes it work on any node sharing the database.
async fn stream_live(state: AppState, tenant: String, call_id: String, mut socket: WebSocket) {
    let send = |v: serde_json::Value| Message::Text(v.to_string().into());
    if socket
        .send(send(
            serde_json::json!({"type": "connected", "data": {"callId": call_id}}),
        ))
        .await
        .is_err()
    {
        return;
    }
    let deadline = tokio::time::Instant::now() + LIVE_MAX;
    let mut last_seq = 0i64;
    let mut last_status = String::new();
    loop {
        let Ok(Some(call)) = calls::get(&state.db, &tenant, &call_id).await else {
            let _ = socket
                .send(send(
                    serde_json::json!({"type": "error", "error": "call no longer available"}),
                ))
                .await;
            return;
        };
        if let Ok(entries) = calls::transcript(&state.db, &tenant, &call_id, last_seq).await {
            if let Some(last) = entries.last() {
                last_seq = last.seq;
                let msg = serde_json::json!({"type": "transcript_update", "data": {"callId": call_id, "entries": entries}});
                if socket.send(send(msg)).await.is_err() {
                    return;
                }
            }
        }
        if call.status != last_status {
            last_status = call.status.clone();
            let msg = serde_json::json!({"type": "call_status_update", "data": {"callId": call_id, "status": call.status}});
            if socket.send(send(msg)).await.is_err() {
                return;
            }
        }
        if matches!(call.status.as_str(), "completed" | "failed")
            || tokio::time::Instant::now() > deadline
        {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        tokio::select! {
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(t))) => {
                    let reply = match serde_json::from_str::<serde_json::Value>(&t) {
                        Ok(v) if v["type"] == "ping" => serde_json::json!({"type": "pong"}),
                        _ => serde_json::json!({"type": "error", "error": "expected {\"type\":\"ping\"}"}),
                    };
                    if socket.send(send(reply)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep(LIVE_POLL) => {}
        }
    }
}
