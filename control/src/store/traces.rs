//! Latency traces (one row per turn) and per-call media statistics. Written in batches by
//! [`crate::traces::TraceSink`]; read by the observability endpoints.

use std::time::Duration;

use parley_engine::{CallStats, TurnTrace};
use sqlx::any::AnyRow;

use super::{col, Db};

/// A turn as stored: offsets in microseconds since the call's media started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceRow {
    pub call_id: String,
    pub seq: i64,
    pub agent_id: String,
    pub call_started_ms: i64,
    pub turn: i64,
    pub speech_start_us: Option<i64>,
    pub speech_end_us: Option<i64>,
    pub turn_end_us: Option<i64>,
    pub stt_final_us: Option<i64>,
    pub llm_request_us: Option<i64>,
    pub llm_first_token_us: Option<i64>,
    pub first_sentence_us: Option<i64>,
    pub tts_request_us: Option<i64>,
    pub tts_first_audio_us: Option<i64>,
    pub first_audio_sent_us: Option<i64>,
    pub first_playback_ack_us: Option<i64>,
    pub playback_done_us: Option<i64>,
    pub interrupted_us: Option<i64>,
    pub barge_in_onset_us: Option<i64>,
    pub played_ms: Option<i64>,
    pub talk_over: bool,
    pub voice_to_voice_us: Option<i64>,
}

fn us(d: Option<Duration>) -> Option<i64> {
    d.map(|d| d.as_micros().min(i64::MAX as u128) as i64)
}

impl TraceRow {
    pub fn from_trace(
        call_id: &str,
        agent_id: &str,
        call_started_ms: i64,
        seq: i64,
        t: &TurnTrace,
    ) -> Self {
        TraceRow {
            call_id: call_id.to_string(),
            seq,
            agent_id: agent_id.to_string(),
            call_started_ms,
            turn: t.turn as i64,
            speech_start_us: us(t.speech_start),
            speech_end_us: us(t.speech_end),
            turn_end_us: us(t.turn_end),
            stt_final_us: us(t.stt_final),
            llm_request_us: us(t.llm_request),
            llm_first_token_us: us(t.llm_first_token),
            first_sentence_us: us(t.first_sentence),
            tts_request_us: us(t.tts_request),
            tts_first_audio_us: us(t.tts_first_audio),
            first_audio_sent_us: us(t.first_audio_sent),
            first_playback_ack_us: us(t.first_playback_ack),
            playback_done_us: us(t.playback_done),
            interrupted_us: us(t.interrupted),
            barge_in_onset_us: us(t.barge_in_onset),
            played_ms: t.played_ms.map(i64::from),
            talk_over: t.talk_over,
            voice_to_voice_us: us(t.voice_to_voice()),
        }
    }

    /// Back to the engine's shape (for the timeline and span export).
    pub fn to_trace(&self) -> TurnTrace {
        let d = |v: Option<i64>| v.map(|v| Duration::from_micros(v.max(0) as u64));
        TurnTrace {
            turn: self.turn.clamp(0, u32::MAX as i64) as u32,
            speech_start: d(self.speech_start_us),
            speech_end: d(self.speech_end_us),
            turn_end: d(self.turn_end_us),
            stt_final: d(self.stt_final_us),
            llm_request: d(self.llm_request_us),
            llm_first_token: d(self.llm_first_token_us),
            first_sentence: d(self.first_sentence_us),
            tts_request: d(self.tts_request_us),
            tts_first_audio: d(self.tts_first_audio_us),
            first_audio_sent: d(self.first_audio_sent_us),
            first_playback_ack: d(self.first_playback_ack_us),
            playback_done: d(self.playback_done_us),
            interrupted: d(self.interrupted_us),
            played_ms: self.played_ms.map(|v| v.clamp(0, u32::MAX as i64) as u32),
            barge_in_onset: d(self.barge_in_onset_us),
            talk_over: self.talk_over,
        }
    }
}

/// A row to write: the turn and the tenant it belongs to.
#[derive(Debug, Clone)]
pub struct TraceRecord {
    pub tenant_id: String,
    pub row: TraceRow,
}

const TRACE_COLUMNS: &str = "call_id, seq, agent_id, call_started_ms, turn, speech_start_us, \
    speech_end_us, turn_end_us, stt_final_us, llm_request_us, llm_first_token_us, \
    first_sentence_us, tts_request_us, tts_first_audio_us, first_audio_sent_us, \
    first_playback_ack_us, playback_done_us, interrupted_us, barge_in_onset_us, played_ms, \
    talk_over, voice_to_voice_us";
/// Bind values per row: the columns above plus the tenant.
const PER_ROW: usize = 23;
/// Rows per INSERT statement: well under SQLite's and Postgres' bind-parameter limits.
const ROWS_PER_STATEMENT: usize = 64;

/// Writes traces, many rows per statement, in one transaction. Rows already stored (same
/// call and sequence number) are skipped.
pub async fn insert_batch(db: &Db, records: &[TraceRecord]) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let _w = db.write().await;
    let mut tx = db.pool.begin().await?;
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut sql = format!("INSERT INTO turn_traces (tenant_id, {TRACE_COLUMNS}) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 0..PER_ROW {
                if j > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", i * PER_ROW + j + 1));
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (call_id, seq) DO NOTHING");
        let mut q = sqlx::query(&sql);
        for r in chunk {
            let t = &r.row;
            q = q
                .bind(r.tenant_id.clone())
                .bind(t.call_id.clone())
                .bind(t.seq)
                .bind(t.agent_id.clone())
                .bind(t.call_started_ms)
                .bind(t.turn)
                .bind(t.speech_start_us)
                .bind(t.speech_end_us)
                .bind(t.turn_end_us)
                .bind(t.stt_final_us)
                .bind(t.llm_request_us)
                .bind(t.llm_first_token_us)
                .bind(t.first_sentence_us)
                .bind(t.tts_request_us)
                .bind(t.tts_first_audio_us)
                .bind(t.first_audio_sent_us)
                .bind(t.first_playback_ack_us)
                .bind(t.playback_done_us)
                .bind(t.interrupted_us)
                .bind(t.barge_in_onset_us)
                .bind(t.played_ms)
                .bind(t.talk_over as i64)
                .bind(t.voice_to_voice_us);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn trace_from_row(r: &AnyRow) -> Result<TraceRow, sqlx::Error> {
    Ok(TraceRow {
        call_id: col(r, "call_id")?,
        seq: col(r, "seq")?,
        agent_id: col(r, "agent_id")?,
        call_started_ms: col(r, "call_started_ms")?,
        turn: col(r, "turn")?,
        speech_start_us: col(r, "speech_start_us")?,
        speech_end_us: col(r, "speech_end_us")?,
        turn_end_us: col(r, "turn_end_us")?,
        stt_final_us: col(r, "stt_final_us")?,
        llm_request_us: col(r, "llm_request_us")?,
        llm_first_token_us: col(r, "llm_first_token_us")?,
        first_sentence_us: col(r, "first_sentence_us")?,
        tts_request_us: col(r, "tts_request_us")?,
        tts_first_audio_us: col(r, "tts_first_audio_us")?,
        first_audio_sent_us: col(r, "first_audio_sent_us")?,
        first_playback_ack_us: col(r, "first_playback_ack_us")?,
        playback_done_us: col(r, "playback_done_us")?,
        interrupted_us: col(r, "interrupted_us")?,
        barge_in_onset_us: col(r, "barge_in_onset_us")?,
        played_ms: col(r, "played_ms")?,
        talk_over: col::<i64>(r, "talk_over")? != 0,
        voice_to_voice_us: col(r, "voice_to_voice_us")?,
    })
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of `head` (`SELECT … FROM table`) for the given calls, then `tail`; none when
/// `call_ids` is empty.
async fn rows_of_calls(
    db: &Db,
    head: &str,
    tail: &str,
    tenant_id: &str,
    call_ids: &[String],
) -> Result<Vec<AnyRow>, sqlx::Error> {
    if call_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{head} WHERE tenant_id = $1 AND call_id IN ({}){tail}",
        placeholders(2, call_ids.len())
    );
    let mut q = sqlx::query(&sql).bind(tenant_id);
    for id in call_ids {
        q = q.bind(id.clone());
    }
    q.fetch_all(&db.pool).await
}

/// Rows of `head` for calls that started in `[from_ms, to_ms)`, optionally of one agent,
/// then `tail`.
async fn rows_in_period(
    db: &Db,
    head: &str,
    tail: &str,
    tenant_id: &str,
    agent_id: Option<&str>,
    (from_ms, to_ms): (i64, i64),
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let agent_cond = if agent_id.is_some() {
        " AND agent_id = $4"
    } else {
        ""
    };
    let sql = format!(
        "{head} WHERE tenant_id = $1 AND call_started_ms >= $2 AND call_started_ms < $3{agent_cond}{tail}"
    );
    let mut q = sqlx::query(&sql).bind(tenant_id).bind(from_ms).bind(to_ms);
    if let Some(a) = agent_id {
        q = q.bind(a.to_string());
    }
    q.fetch_all(&db.pool).await
}

/// Every turn of the given calls, in call and turn order.
pub async fn turns_of_calls(
    db: &Db,
    tenant_id: &str,
    call_ids: &[String],
) -> Result<Vec<TraceRow>, sqlx::Error> {
    let head = format!("SELECT {TRACE_COLUMNS} FROM turn_traces");
    rows_of_calls(db, &head, " ORDER BY call_id, seq", tenant_id, call_ids)
        .await?
        .iter()
        .map(trace_from_row)
        .collect()
}

/// The agent's most recent `limit` turns (its baseline for "slow"), newest calls first.
pub async fn recent_turns_of_agent(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    limit: usize,
) -> Result<Vec<TraceRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {TRACE_COLUMNS} FROM turn_traces WHERE tenant_id = $1 AND agent_id = $2 \
         ORDER BY call_started_ms DESC, seq DESC LIMIT {limit}"
    );
    sqlx::query(&sql)
        .bind(tenant_id)
        .bind(agent_id)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(trace_from_row)
        .collect()
}

/// Turns in a period (by call start), optionally of one agent; at most `limit` rows.
pub async fn turns_in_period(
    db: &Db,
    tenant_id: &str,
    agent_id: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
) -> Result<Vec<TraceRow>, sqlx::Error> {
    let head = format!("SELECT {TRACE_COLUMNS} FROM turn_traces");
    let tail = format!(" ORDER BY call_started_ms DESC, seq LIMIT {limit}");
    rows_in_period(db, &head, &tail, tenant_id, agent_id, (from_ms, to_ms))
        .await?
        .iter()
        .map(trace_from_row)
        .collect()
}

/// What a call ran on and what its media did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallMetrics {
    pub call_id: String,
    pub agent_id: String,
    pub call_started_ms: i64,
    pub stt_provider: String,
    pub llm_provider: String,
    pub llm_model: Option<String>,
    pub tts_provider: String,
    pub silence_ms: i64,
    /// The call's media has ended and the counters below are final.
    pub ended: bool,
    pub turns: i64,
    pub stats: CallStats,
    pub provider_errors: i64,
    pub events_dropped: i64,
    pub traces_dropped: i64,
}

const METRIC_COLUMNS: &str = "call_id, agent_id, call_started_ms, stt_provider, llm_provider, \
    llm_model, tts_provider, silence_ms, ended, turns, caller_frames, frames_sent, late_frames, \
    underruns, barge_ins, suppressed_barge_ins, talk_overs, provider_errors, events_dropped, \
    traces_dropped";

fn metrics_from_row(r: &AnyRow) -> Result<CallMetrics, sqlx::Error> {
    let n = |name: &str| -> Result<u64, sqlx::Error> { Ok(col::<i64>(r, name)?.max(0) as u64) };
    Ok(CallMetrics {
        call_id: col(r, "call_id")?,
        agent_id: col(r, "agent_id")?,
        call_started_ms: col(r, "call_started_ms")?,
        stt_provider: col(r, "stt_provider")?,
        llm_provider: col(r, "llm_provider")?,
        llm_model: col(r, "llm_model")?,
        tts_provider: col(r, "tts_provider")?,
        silence_ms: col(r, "silence_ms")?,
        ended: col::<i64>(r, "ended")? != 0,
        turns: col(r, "turns")?,
        stats: CallStats {
            vad_frames: n("caller_frames")?,
            speech_frames: 0,
            frames_sent: n("frames_sent")?,
            underruns: n("underruns")?,
            barge_ins: n("barge_ins")?,
            suppressed_barge_ins: n("suppressed_barge_ins")?,
            late_frames: n("late_frames")?,
            talk_overs: n("talk_overs")?,
        },
        provider_errors: col(r, "provider_errors")?,
        events_dropped: col(r, "events_dropped")?,
        traces_dropped: col(r, "traces_dropped")?,
    })
}

/// Records what a call runs on, as its media starts (counters at zero).
pub async fn start_call(db: &Db, tenant_id: &str, m: &CallMetrics) -> Result<(), sqlx::Error> {
    let _w = db.write().await;
    sqlx::query(&format!(
        "INSERT INTO call_metrics (tenant_id, {METRIC_COLUMNS}) VALUES ({})",
        placeholders(1, 21)
    ))
    .bind(tenant_id)
    .bind(m.call_id.clone())
    .bind(m.agent_id.clone())
    .bind(m.call_started_ms)
    .bind(m.stt_provider.clone())
    .bind(m.llm_provider.clone())
    .bind(m.llm_model.clone())
    .bind(m.tts_provider.clone())
    .bind(m.silence_ms)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .bind(0i64)
    .execute(&db.pool)
    .await?;
    Ok(())
}

fn int(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// Stores a call's final counters.
pub async fn finish_call(db: &Db, tenant_id: &str, m: &CallMetrics) -> Result<(), sqlx::Error> {
    let s = &m.stats;
    let _w = db.write().await;
    sqlx::query(
        "UPDATE call_metrics SET ended = 1, turns = $1, caller_frames = $2, frames_sent = $3, \
         late_frames = $4, underruns = $5, barge_ins = $6, suppressed_barge_ins = $7, \
         talk_overs = $8, provider_errors = $9, events_dropped = $10, traces_dropped = $11 \
         WHERE tenant_id = $12 AND call_id = $13",
    )
    .bind(m.turns)
    .bind(int(s.vad_frames))
    .bind(int(s.frames_sent))
    .bind(int(s.late_frames))
    .bind(int(s.underruns))
    .bind(int(s.barge_ins))
    .bind(int(s.suppressed_barge_ins))
    .bind(int(s.talk_overs))
    .bind(m.provider_errors)
    .bind(m.events_dropped)
    .bind(m.traces_dropped)
    .bind(tenant_id)
    .bind(m.call_id.clone())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The metrics rows of the given calls.
pub async fn metrics_of_calls(
    db: &Db,
    tenant_id: &str,
    call_ids: &[String],
) -> Result<Vec<CallMetrics>, sqlx::Error> {
    let head = format!("SELECT {METRIC_COLUMNS} FROM call_metrics");
    rows_of_calls(db, &head, "", tenant_id, call_ids)
        .await?
        .iter()
        .map(metrics_from_row)
        .collect()
}

/// Metrics rows of calls in a period (by call start), optionally of one agent.
pub async fn metrics_in_period(
    db: &Db,
    tenant_id: &str,
    agent_id: Option<&str>,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<CallMetrics>, sqlx::Error> {
    let head = format!("SELECT {METRIC_COLUMNS} FROM call_metrics");
    rows_in_period(db, &head, "", tenant_id, agent_id, (from_ms, to_ms))
        .await?
        .iter()
        .map(metrics_from_row)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_rows_round_trip() {
        let ms = Duration::from_millis;
        let mut t = TurnTrace::new(3);
        t.speech_start = Some(ms(500));
        t.speech_end = Some(ms(1500));
        t.turn_end = Some(ms(2200));
        t.first_audio_sent = Some(Duration::from_micros(2_700_123));
        t.interrupted = Some(ms(3000));
        t.barge_in_onset = Some(ms(2900));
        t.played_ms = Some(300);
        t.talk_over = true;
        let row = TraceRow::from_trace("call_x", "agt_y", 42, 7, &t);
        assert_eq!(row.voice_to_voice_us, Some(1_200_123));
        assert_eq!(row.seq, 7);
        assert_eq!(row.to_trace(), t);
    }

    #[test]
    fn placeholders_number_from_first() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
    }
}
