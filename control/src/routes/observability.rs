//! `/v1/observability`: per-turn latency traces of calls ("sessions"), root-cause findings,
//! barge-in quality, the call timeline picture, and `/v1/recordings`.
//!
//! A session is the media of one call, so session and call ids are the same; the `calls/`
//! routes add the call record (and transcript) to what the `sessions/` routes return.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::ids::looks_like;
use crate::observability::{
    self, AgentInterruptions, Baseline, InterruptionStats, LatencySummary, RootCause, TurnView,
};
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;
use crate::store::calls::{self, Call};
use crate::store::traces::{self, CallMetrics, TraceRow};
use crate::store::{Arg, ListQuery, PageRows};
use crate::timestamps::{self, now_ms, to_rfc3339};

/// Turns of an agent that make up its baseline (its most recent ones).
const BASELINE_TURNS: usize = 500;
/// Most turns an interruption-quality report reads.
const PERIOD_TURNS: usize = 100_000;
/// Default period of reports: the last 30 days.
const DEFAULT_PERIOD_MS: i64 = 30 * 24 * 3600 * 1000;

/// The media side of a call: what it ran on and what its audio did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaStats {
    pub stt_provider: String,
    pub llm_provider: String,
    pub llm_model: Option<String>,
    pub tts_provider: String,
    /// The agent's silence threshold (endpointing) during the call.
    pub silence_ms: i64,
    /// False while the call is live: the counters are filled in when it ends.
    pub final_counts: bool,
    pub caller_frames: u64,
    pub agent_frames_sent: u64,
    /// Agent frames that left more than 20 ms after their scheduled send time.
    pub late_frames: u64,
    /// Times the agent's audio ran dry mid-reply (the caller heard a gap).
    pub underruns: u64,
    pub barge_ins: u64,
    pub suppressed_barge_ins: u64,
    pub talk_overs: u64,
    pub provider_errors: i64,
    /// Turn traces lost because the store fell behind (never audio).
    pub traces_dropped: i64,
    /// Session events dropped because their consumer fell behind.
    pub events_dropped: i64,
}

impl From<&CallMetrics> for MediaStats {
    fn from(m: &CallMetrics) -> Self {
        MediaStats {
            stt_provider: m.stt_provider.clone(),
            llm_provider: m.llm_provider.clone(),
            llm_model: m.llm_model.clone(),
            tts_provider: m.tts_provider.clone(),
            silence_ms: m.silence_ms,
            final_counts: m.ended,
            caller_frames: m.stats.vad_frames,
            agent_frames_sent: m.stats.frames_sent,
            late_frames: m.stats.late_frames,
            underruns: m.stats.underruns,
            barge_ins: m.stats.barge_ins,
            suppressed_barge_ins: m.stats.suppressed_barge_ins,
            talk_overs: m.stats.talk_overs,
            provider_errors: m.provider_errors,
            traces_dropped: m.traces_dropped,
            events_dropped: m.events_dropped,
        }
    }
}

/// A session in a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// The session id (the call's id).
    pub id: String,
    pub call_id: String,
    pub agent_id: String,
    pub channel: String,
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_seconds: Option<f64>,
    /// Traced turns, the greeting included.
    pub turns: usize,
    pub latency: LatencySummary,
    pub interruptions: usize,
    pub media: Option<MediaStats>,
}

/// A session with every turn.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDetail {
    #[serde(flatten)]
    pub summary: SessionSummary,
    pub turns_detail: Vec<TurnView>,
}

/// A call record with its session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallDetail {
    pub call: Call,
    pub session: SessionDetail,
}

fn summary(call: &Call, turns: &[&TraceRow], media: Option<&CallMetrics>) -> SessionSummary {
    SessionSummary {
        id: call.id.clone(),
        call_id: call.id.clone(),
        agent_id: call.agent_id.clone(),
        channel: call.channel.clone(),
        status: call.status.clone(),
        started_at: call.started_at.clone(),
        ended_at: call.ended_at.clone(),
        duration_seconds: call.duration_seconds,
        turns: turns.len(),
        latency: observability::latency_summary(turns),
        interruptions: turns.iter().filter(|t| t.interrupted_us.is_some()).count(),
        media: media.map(MediaStats::from),
    }
}

async fn load_call(
    state: &AppState,
    caller: &Caller,
    id: &str,
    transcript: bool,
) -> ApiResult<Call> {
    if !looks_like("call", id) {
        return Err(ApiError::not_found("Session"));
    }
    let mut call = calls::get(&state.db, &caller.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Session"))?;
    if transcript {
        call.transcript = Some(calls::transcript(&state.db, &caller.tenant_id, id, 0).await?);
    }
    Ok(call)
}

/// A call and its traces and media statistics.
async fn load_session(
    state: &AppState,
    caller: &Caller,
    id: &str,
    transcript: bool,
) -> ApiResult<(Call, Vec<TraceRow>, Option<CallMetrics>)> {
    let call = load_call(state, caller, id, transcript).await?;
    let ids = [call.id.clone()];
    let turns = traces::turns_of_calls(&state.db, &caller.tenant_id, &ids).await?;
    let media = traces::metrics_of_calls(&state.db, &caller.tenant_id, &ids)
        .await?
        .pop();
    Ok((call, turns, media))
}

fn detail(call: &Call, turns: &[TraceRow], media: Option<&CallMetrics>) -> SessionDetail {
    let refs: Vec<&TraceRow> = turns.iter().collect();
    SessionDetail {
        summary: summary(call, &refs, media),
        turns_detail: turns.iter().map(observability::turn_view).collect(),
    }
}

/// An optional time query parameter, in epoch ms.
fn time_param(field: &str, v: Option<&str>) -> ApiResult<Option<i64>> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => timestamps::parse(s).map(Some).ok_or_else(|| {
            ApiError::validation(field, "must be an RFC 3339 timestamp or YYYY-MM-DD")
        }),
    }
}

fn period(from: Option<&str>, to: Option<&str>) -> ApiResult<(i64, i64)> {
    let to_ms = time_param("to", to)?.unwrap_or_else(|| now_ms() + 1);
    let from_ms = time_param("from", from)?.unwrap_or(to_ms - DEFAULT_PERIOD_MS);
    if from_ms >= to_ms {
        return Err(ApiError::validation("from", "must be before `to`"));
    }
    Ok((from_ms, to_ms))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct SessionListQuery {
    pub agent_id: Option<String>,
    /// Sessions that started at or after this time (RFC 3339 or YYYY-MM-DD).
    pub from: Option<String>,
    /// Sessions that started before this time.
    pub to: Option<String>,
    /// Only sessions with a turn whose voice-to-voice latency reached this many ms.
    pub min_latency_ms: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List session traces
#[utoipa::path(get, path = "/v1/observability/sessions", tag = "observability",
    params(SessionListQuery),
    responses((status = 200, body = Page<SessionSummary>), (status = 400, body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SessionListQuery>,
) -> ApiResult<Json<Page<SessionSummary>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let (limit, cursor) = (page.limit()?, page.cursor()?);
    let from = time_param("from", q.from.as_deref())?;
    let to = time_param("to", q.to.as_deref())?;
    if let Some(m) = q.min_latency_ms {
        if !(0..=3_600_000).contains(&m) {
            return Err(ApiError::validation(
                "minLatencyMs",
                "must be between 0 and 3600000",
            ));
        }
    }
    let mut query = ListQuery::new(calls::COLUMNS, &caller.tenant_id)
        .cond_opt_text("agent_id", q.agent_id.as_deref());
    if let Some(f) = from {
        query = query.cond("started_at", ">=", Arg::Int(f));
    }
    if let Some(t) = to {
        query = query.cond("started_at", "<", Arg::Int(t));
    }
    if let Some(m) = q.min_latency_ms {
        query = query.cond_expr(
            "id IN (SELECT call_id FROM turn_traces WHERE voice_to_voice_us >= {})",
            Arg::Int(m * 1000),
        );
    }
    let rows = query.cursor(cursor).fetch(&state.db, limit).await?;
    let items = rows
        .iter()
        .map(calls::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let rows = PageRows::from_overfetch(items, limit);
    let ids: Vec<String> = rows.items.iter().map(|c| c.id.clone()).collect();
    let turns = traces::turns_of_calls(&state.db, &caller.tenant_id, &ids).await?;
    let media = traces::metrics_of_calls(&state.db, &caller.tenant_id, &ids).await?;
    let sessions = PageRows {
        has_more: rows.has_more,
        items: rows
            .items
            .iter()
            .map(|c| {
                let t: Vec<&TraceRow> = turns.iter().filter(|t| t.call_id == c.id).collect();
                let m = media.iter().find(|m| m.call_id == c.id);
                summary(c, &t, m)
            })
            .collect(),
    };
    Ok(Json(Page::from_rows(sessions, |s| &s.id)))
}

/// Get session detail: every turn with its stage timestamps
#[utoipa::path(get, path = "/v1/observability/sessions/{id}", tag = "observability",
    params(("id" = String, Path)),
    responses((status = 200, body = SessionDetail), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<SessionDetail>> {
    let (call, turns, media) = load_session(&state, &caller, &id, false).await?;
    Ok(Json(detail(&call, &turns, media.as_ref())))
}

async fn root_cause_of(state: &AppState, caller: &Caller, id: &str) -> ApiResult<RootCause> {
    let (call, turns, media) = load_session(state, caller, id, false).await?;
    let history =
        traces::recent_turns_of_agent(&state.db, &caller.tenant_id, &call.agent_id, BASELINE_TURNS)
            .await?;
    Ok(observability::root_cause(
        &call.id,
        &call.agent_id,
        &turns,
        &Baseline::of(&history),
        media.as_ref(),
    ))
}

/// Root cause analysis: which stage dominated each slow turn, against the agent's own medians
#[utoipa::path(get, path = "/v1/observability/sessions/{id}/root-cause", tag = "observability",
    params(("id" = String, Path)),
    responses((status = 200, body = RootCause), (status = 404, body = ErrorBody)))]
pub async fn session_root_cause(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RootCause>> {
    Ok(Json(root_cause_of(&state, &caller, &id).await?))
}

/// Call root cause analysis (the same analysis, by call id)
#[utoipa::path(get, path = "/v1/observability/calls/{callId}/root-cause", tag = "observability",
    params(("callId" = String, Path)),
    responses((status = 200, body = RootCause), (status = 404, body = ErrorBody)))]
pub async fn call_root_cause(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RootCause>> {
    Ok(Json(root_cause_of(&state, &caller, &id).await?))
}

/// Get call detail: the call record, its transcript and its session traces
#[utoipa::path(get, path = "/v1/observability/calls/{callId}", tag = "observability",
    params(("callId" = String, Path)),
    responses((status = 200, body = CallDetail), (status = 404, body = ErrorBody)))]
pub async fn get_call_detail(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CallDetail>> {
    let (call, turns, media) = load_session(&state, &caller, &id, true).await?;
    let session = detail(&call, &turns, media.as_ref());
    Ok(Json(CallDetail { call, session }))
}

/// Call timeline: a waterfall of every turn's stages, speech lanes and barge-ins (SVG)
#[utoipa::path(get, path = "/v1/observability/sessions/{id}/timeline.svg", tag = "observability",
    params(("id" = String, Path)),
    responses((status = 200, description = "The timeline", content_type = "image/svg+xml"),
        (status = 404, body = ErrorBody)))]
pub async fn session_timeline(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let (call, turns, _) = load_session(&state, &caller, &id, false).await?;
    let agent_name = crate::store::agents::get(&state.db, &caller.tenant_id, &call.agent_id)
        .await
        .ok()
        .flatten()
        .map(|a| a.config.name);
    let traces: Vec<_> = turns.iter().map(TraceRow::to_trace).collect();
    let duration =
        std::time::Duration::from_secs_f64(call.duration_seconds.unwrap_or(0.0).max(0.0));
    let svg = crate::timeline::render(&crate::timeline::Timeline::from_traces(
        call.id.clone(),
        agent_name,
        duration,
        &traces,
    ));
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        svg,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct PeriodQuery {
    pub agent_id: Option<String>,
    /// Start of the period (RFC 3339 or YYYY-MM-DD; default 30 days before `to`).
    pub from: Option<String>,
    /// End of the period (default now).
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterruptionQuality {
    pub from: String,
    pub to: String,
    pub total: InterruptionStats,
    pub agents: Vec<AgentInterruptions>,
}

/// Interruption quality: barge-ins, reaction time, suppressed barge-ins and talk-overs
#[utoipa::path(get, path = "/v1/observability/sessions/interruption-quality", tag = "observability",
    params(PeriodQuery),
    responses((status = 200, body = InterruptionQuality), (status = 400, body = ErrorBody)))]
pub async fn interruption_quality(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PeriodQuery>,
) -> ApiResult<Json<InterruptionQuality>> {
    let (from, to) = period(q.from.as_deref(), q.to.as_deref())?;
    let agent = q.agent_id.as_deref();
    let turns =
        traces::turns_in_period(&state.db, &caller.tenant_id, agent, from, to, PERIOD_TURNS)
            .await?;
    let calls = traces::metrics_in_period(&state.db, &caller.tenant_id, agent, from, to).await?;
    let (total, agents) = observability::interruption_quality(&turns, &calls);
    Ok(Json(InterruptionQuality {
        from: to_rfc3339(from),
        to: to_rfc3339(to),
        total,
        agents,
    }))
}

/// Get call recording
#[utoipa::path(get, path = "/v1/recordings/{callId}", tag = "observability",
    params(("callId" = String, Path)),
    responses((status = 200, description = "The audio file", content_type = "audio/wav"),
        (status = 404, body = ErrorBody)))]
pub async fn get_recording(
    state: State<AppState>,
    caller: Caller,
    id: ApiPath<String>,
) -> ApiResult<Response> {
    super::calls::get_recording(state, caller, id).await
}
