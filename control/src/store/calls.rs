//! Calls (one row per session on any channel) and their transcripts. The API reads them; the
//! engine writes them through [`crate::lifecycle`].

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, Db, ListQuery, PageRows};
use crate::timestamps::{now_ms, opt_rfc3339, to_rfc3339};

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub id: String,
    pub agent_id: String,
    pub task_id: Option<String>,
    /// `phone`, `sip`, `webrtc` or `websocket`.
    pub channel: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `initiated`, `in_progress`, `completed` or `failed`.
    pub status: String,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_seconds: Option<f64>,
    pub end_reason: Option<String>,
    pub has_recording: bool,
    /// The transcript (on single-call reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Vec<TranscriptEntry>>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    pub seq: i64,
    /// `agent`, `user` or `system`.
    pub speaker: String,
    pub text: String,
    pub at: String,
}

/// What the engine (or `execute`) knows when a call starts.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub id: String,
    pub agent_id: String,
    pub task_id: Option<String>,
    pub channel: String,
    pub direction: String,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
}

pub const COLUMNS: &str = "SELECT id, agent_id, task_id, channel, direction, status, from_number, to_number, \
     started_at, ended_at, duration_ms, end_reason, recording_path, created_at, updated_at FROM calls";

pub fn from_row(r: &sqlx::any::AnyRow) -> Result<Call, sqlx::Error> {
    let duration_ms: Option<i64> = col(r, "duration_ms")?;
    let recording: Option<String> = col(r, "recording_path")?;
    Ok(Call {
        id: col(r, "id")?,
        agent_id: col(r, "agent_id")?,
        task_id: col(r, "task_id")?,
        channel: col(r, "channel")?,
        direction: col(r, "direction")?,
        status: col(r, "status")?,
        from_number: col(r, "from_number")?,
        to_number: col(r, "to_number")?,
        started_at: to_rfc3339(col(r, "started_at")?),
        ended_at: opt_rfc3339(col(r, "ended_at")?),
        duration_seconds: duration_ms.map(|ms| ms as f64 / 1000.0),
        end_reason: col(r, "end_reason")?,
        has_recording: recording.is_some(),
        transcript: None,
        created_at: to_rfc3339(col(r, "created_at")?),
        updated_at: to_rfc3339(col(r, "updated_at")?),
    })
}

pub async fn insert(db: &Db, tenant_id: &str, call: &NewCall) -> Result<Call, sqlx::Error> {
    let now = now_ms();
    {
        let _w = db.write().await;
        sqlx::query(
            "INSERT INTO calls (id, tenant_id, agent_id, task_id, channel, direction, status, from_number, \
             to_number, started_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'initiated', $7, $8, $9, $9, $9)",
        )
        .bind(&call.id)
        .bind(tenant_id)
        .bind(&call.agent_id)
        .bind(call.task_id.clone())
        .bind(&call.channel)
        .bind(&call.direction)
        .bind(call.from_number.clone())
        .bind(call.to_number.clone())
        .bind(now)
        .execute(&db.pool)
        .await?;
    }
    get(db, tenant_id, &call.id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

pub async fn get(db: &Db, tenant_id: &str, id: &str) -> Result<Option<Call>, sqlx::Error> {
    sqlx::query(&format!("{COLUMNS} WHERE tenant_id = $1 AND id = $2"))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// Finds a call by id alone, for the engine, which knows calls but not tenants.
pub async fn tenant_of(db: &Db, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT tenant_id FROM calls WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| col(&r, "tenant_id"))
        .transpose()
}

pub struct CallFilter<'a> {
    pub agent_id: Option<&'a str>,
    pub task_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub channel: Option<&'a str>,
}

pub async fn list(
    db: &Db,
    tenant_id: &str,
    f: &CallFilter<'_>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<Call>, sqlx::Error> {
    let rows = ListQuery::new(COLUMNS, tenant_id)
        .cond_opt_text("agent_id", f.agent_id)
        .cond_opt_text("task_id", f.task_id)
        .cond_opt_text("status", f.status)
        .cond_opt_text("channel", f.channel)
        .cursor(cursor)
        .fetch(db, limit)
        .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(PageRows::from_overfetch(items, limit))
}

/// initiated → in_progress (the callee answered / the session connected).
pub async fn mark_in_progress(db: &Db, tenant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let r = sqlx::query(
        "UPDATE calls SET status = 'in_progress', updated_at = $1 \
         WHERE tenant_id = $2 AND id = $3 AND status = 'initiated'",
    )
    .bind(now_ms())
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Ends a live call as `completed` or `failed`; `false` if it had already ended.
pub async fn finish(
    db: &Db,
    tenant_id: &str,
    id: &str,
    status: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let _w = db.write().await;
    let r = sqlx::query(
        "UPDATE calls SET status = $1, end_reason = $2, ended_at = $3, duration_ms = $3 - started_at, \
         updated_at = $3 WHERE tenant_id = $4 AND id = $5 AND status IN ('initiated', 'in_progress')",
    )
    .bind(status)
    .bind(reason)
    .bind(now)
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn append_transcript(
    db: &Db,
    tenant_id: &str,
    call_id: &str,
    speaker: &str,
    text: &str,
) -> Result<i64, sqlx::Error> {
    let _w = db.write().await;
    let row =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM transcript_entries WHERE call_id = $1")
            .bind(call_id)
            .fetch_one(&db.pool)
            .await?;
    let seq: i64 = col::<i64>(&row, "n")? + 1;
    sqlx::query(
        "INSERT INTO transcript_entries (call_id, tenant_id, seq, speaker, text, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(call_id)
    .bind(tenant_id)
    .bind(seq)
    .bind(speaker)
    .bind(text)
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    Ok(seq)
}

/// Transcript entries after `after_seq`, in order.
pub async fn transcript(
    db: &Db,
    tenant_id: &str,
    call_id: &str,
    after_seq: i64,
) -> Result<Vec<TranscriptEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, speaker, text, at_ms FROM transcript_entries \
         WHERE tenant_id = $1 AND call_id = $2 AND seq > $3 ORDER BY seq",
    )
    .bind(tenant_id)
    .bind(call_id)
    .bind(after_seq)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TranscriptEntry {
                seq: col(r, "seq")?,
                speaker: col(r, "speaker")?,
                text: col(r, "text")?,
                at: to_rfc3339(col(r, "at_ms")?),
            })
        })
        .collect()
}

pub async fn set_recording(
    db: &Db,
    tenant_id: &str,
    call_id: &str,
    path: &str,
    content_type: &str,
) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let r = sqlx::query(
        "UPDATE calls SET recording_path = $1, recording_content_type = $2, updated_at = $3 \
         WHERE tenant_id = $4 AND id = $5",
    )
    .bind(path)
    .bind(content_type)
    .bind(now_ms())
    .bind(tenant_id)
    .bind(call_id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The recording's file path and content type, if the engine stored one.
pub async fn recording(
    db: &Db,
    tenant_id: &str,
    call_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT recording_path, recording_content_type FROM calls WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(call_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let path: Option<String> = col(&row, "recording_path")?;
    let ct: Option<String> = col(&row, "recording_content_type")?;
    Ok(path.map(|p| (p, ct.unwrap_or_else(|| "audio/wav".into()))))
}
