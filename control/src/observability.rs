//! What the observability endpoints say about stored traces: stage durations per turn, an
//! agent's baseline (its own medians), root-cause findings for slow turns, and barge-in
//! quality. Pure functions over [`TraceRow`]s and [`CallMetrics`]; the routes only load rows.
//!
//! The stages partition the caller's wait, from the end of their speech to the agent's first
//! frame: endpointing (the silence threshold), STT final, LLM first token, first sentence,
//! TTS first audio, engine (queueing and pacing until the first frame left). Small gaps
//! between them (e.g. STT final → LLM request) are the turn loop's own work.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::traces::{CallMetrics, TraceRow};

/// One stage of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Endpointing,
    Stt,
    LlmFirstToken,
    FirstSentence,
    TtsFirstAudio,
    Engine,
    PlaybackAck,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Endpointing,
        Stage::Stt,
        Stage::LlmFirstToken,
        Stage::FirstSentence,
        Stage::TtsFirstAudio,
        Stage::Engine,
        Stage::PlaybackAck,
    ];

    /// The stages after the turn-end decision that the caller waits through: where a slow
    /// turn's time went (endpointing is the configured silence, not a cause).
    pub const RESPONSE: [Stage; 5] = [
        Stage::Stt,
        Stage::LlmFirstToken,
        Stage::FirstSentence,
        Stage::TtsFirstAudio,
        Stage::Engine,
    ];

    /// Machine name (JSON keys, metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Endpointing => "endpointing",
            Stage::Stt => "stt",
            Stage::LlmFirstToken => "llm_first_token",
            Stage::FirstSentence => "first_sentence",
            Stage::TtsFirstAudio => "tts_first_audio",
            Stage::Engine => "engine",
            Stage::PlaybackAck => "playback_ack",
        }
    }

    /// Words for findings.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Endpointing => "Endpointing (silence wait)",
            Stage::Stt => "STT final",
            Stage::LlmFirstToken => "LLM first token",
            Stage::FirstSentence => "First sentence",
            Stage::TtsFirstAudio => "TTS first audio",
            Stage::Engine => "Engine (queue to first frame)",
            Stage::PlaybackAck => "Playback acknowledgement",
        }
    }

    /// Start and end stamps of the stage in a turn, in µs since the call started.
    fn bounds(self, t: &TraceRow) -> (Option<i64>, Option<i64>) {
        match self {
            Stage::Endpointing => (t.speech_end_us, t.turn_end_us),
            Stage::Stt => (t.turn_end_us, t.stt_final_us),
            Stage::LlmFirstToken => (t.llm_request_us, t.llm_first_token_us),
            Stage::FirstSentence => (t.llm_first_token_us, t.first_sentence_us),
            Stage::TtsFirstAudio => (t.tts_request_us, t.tts_first_audio_us),
            Stage::Engine => (t.tts_first_audio_us, t.first_audio_sent_us),
            Stage::PlaybackAck => (t.first_audio_sent_us, t.first_playback_ack_us),
        }
    }

    /// How long the stage took in this turn, in µs, when both of its stamps are there.
    pub fn duration_us(self, t: &TraceRow) -> Option<i64> {
        match self.bounds(t) {
            (Some(a), Some(b)) => Some((b - a).max(0)),
            _ => None,
        }
    }
}

/// Caller-visible response time beyond the silence threshold: turn end → first agent frame.
pub fn response_us(t: &TraceRow) -> Option<i64> {
    Some((t.first_audio_sent_us? - t.turn_end_us?).max(0))
}

/// Caller onset → playback stopped, for an interrupted reply.
pub fn barge_in_reaction_us(t: &TraceRow) -> Option<i64> {
    Some((t.interrupted_us? - t.barge_in_onset_us?).max(0))
}

fn ms(us: i64) -> f64 {
    (us as f64 / 100.0).round() / 10.0
}

fn opt_ms(us: Option<i64>) -> Option<f64> {
    us.map(ms)
}

/// The `q` quantile (0–1) of `values` by nearest rank; `None` when empty.
pub fn percentile(values: &[i64], q: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// "1.4 s" or "300 ms".
pub fn human(us: i64) -> String {
    if us >= 1_000_000 {
        format!("{:.1} s", us as f64 / 1e6)
    } else {
        format!("{} ms", (us as f64 / 1000.0).round() as i64)
    }
}

// ------------------------------------------------------------------ turn views

/// Every stamp of a turn, in ms since the call's media started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnTimestamps {
    pub speech_start_ms: Option<f64>,
    pub speech_end_ms: Option<f64>,
    pub turn_end_ms: Option<f64>,
    pub stt_final_ms: Option<f64>,
    pub llm_request_ms: Option<f64>,
    pub llm_first_token_ms: Option<f64>,
    pub first_sentence_ms: Option<f64>,
    pub tts_request_ms: Option<f64>,
    pub tts_first_audio_ms: Option<f64>,
    pub first_audio_sent_ms: Option<f64>,
    pub first_playback_ack_ms: Option<f64>,
    pub playback_done_ms: Option<f64>,
    pub interrupted_ms: Option<f64>,
    pub barge_in_onset_ms: Option<f64>,
}

/// One stage's time in a turn.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageTime {
    /// `endpointing`, `stt`, `llm_first_token`, `first_sentence`, `tts_first_audio`,
    /// `engine` or `playback_ack`.
    pub stage: &'static str,
    pub duration_ms: f64,
    /// Share of the voice-to-voice latency (endpointing … engine), 0–1.
    pub share: Option<f64>,
}

/// A turn with its stamps and derived latencies.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnView {
    /// Turn number (0: the agent's greeting).
    pub turn: i64,
    /// Order of the trace in the call.
    pub seq: i64,
    pub timestamps: TurnTimestamps,
    pub stages: Vec<StageTime>,
    /// Caller speech end → first agent audio sent.
    pub voice_to_voice_ms: Option<f64>,
    /// Turn-end decision → first agent audio sent (voice-to-voice minus the silence wait).
    pub response_ms: Option<f64>,
    pub interrupted: bool,
    /// How much of the reply the caller heard.
    pub played_ms: Option<i64>,
    /// Caller onset → playback stopped, when the reply was interrupted.
    pub barge_in_reaction_ms: Option<f64>,
    /// The caller had started before the reply began (the agent talked over them).
    pub talk_over: bool,
}

pub fn turn_view(t: &TraceRow) -> TurnView {
    let v2v = t.voice_to_voice_us;
    let stages = Stage::ALL
        .iter()
        .filter_map(|s| {
            let d = s.duration_us(t)?;
            let share = match (s, v2v) {
                (Stage::PlaybackAck, _) | (_, None) | (_, Some(0)) => None,
                (_, Some(total)) => Some(((d as f64 / total as f64) * 1000.0).round() / 1000.0),
            };
            Some(StageTime {
                stage: s.name(),
                duration_ms: ms(d),
                share,
            })
        })
        .collect();
    TurnView {
        turn: t.turn,
        seq: t.seq,
        timestamps: TurnTimestamps {
            speech_start_ms: opt_ms(t.speech_start_us),
            speech_end_ms: opt_ms(t.speech_end_us),
            turn_end_ms: opt_ms(t.turn_end_us),
            stt_final_ms: opt_ms(t.stt_final_us),
            llm_request_ms: opt_ms(t.llm_request_us),
            llm_first_token_ms: opt_ms(t.llm_first_token_us),
            first_sentence_ms: opt_ms(t.first_sentence_us),
            tts_request_ms: opt_ms(t.tts_request_us),
            tts_first_audio_ms: opt_ms(t.tts_first_audio_us),
            first_audio_sent_ms: opt_ms(t.first_audio_sent_us),
            first_playback_ack_ms: opt_ms(t.first_playback_ack_us),
            playback_done_ms: opt_ms(t.playback_done_us),
            interrupted_ms: opt_ms(t.interrupted_us),
            barge_in_onset_ms: opt_ms(t.barge_in_onset_us),
        },
        stages,
        voice_to_voice_ms: opt_ms(v2v),
        response_ms: opt_ms(response_us(t)),
        interrupted: t.interrupted_us.is_some(),
        played_ms: t.played_ms,
        barge_in_reaction_ms: opt_ms(barge_in_reaction_us(t)),
        talk_over: t.talk_over,
    }
}

/// Latency summary of a set of turns.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    /// Turns with a caller utterance and a reply (the greeting is not counted).
    pub answered_turns: usize,
    pub voice_to_voice_p50_ms: Option<f64>,
    pub voice_to_voice_p95_ms: Option<f64>,
    pub voice_to_voice_max_ms: Option<f64>,
    pub response_p50_ms: Option<f64>,
}

pub fn latency_summary(turns: &[&TraceRow]) -> LatencySummary {
    let v2v: Vec<i64> = turns.iter().filter_map(|t| t.voice_to_voice_us).collect();
    let resp: Vec<i64> = turns.iter().filter_map(|t| response_us(t)).collect();
    LatencySummary {
        answered_turns: v2v.len(),
        voice_to_voice_p50_ms: opt_ms(percentile(&v2v, 0.5)),
        voice_to_voice_p95_ms: opt_ms(percentile(&v2v, 0.95)),
        voice_to_voice_max_ms: opt_ms(v2v.iter().copied().max()),
        response_p50_ms: opt_ms(percentile(&resp, 0.5)),
    }
}

// ------------------------------------------------------------------ root cause

/// An agent's typical turn: the medians slow turns are measured against.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub turns: usize,
    pub response_p50_us: Option<i64>,
    pub voice_to_voice_p50_us: Option<i64>,
    pub stage_p50_us: BTreeMap<Stage, i64>,
}

impl Baseline {
    pub fn of(rows: &[TraceRow]) -> Baseline {
        let answered: Vec<&TraceRow> = rows.iter().filter(|t| response_us(t).is_some()).collect();
        let collect = |f: &dyn Fn(&TraceRow) -> Option<i64>| -> Vec<i64> {
            answered.iter().filter_map(|t| f(t)).collect()
        };
        let stage_p50_us = Stage::ALL
            .iter()
            .filter_map(|s| Some((*s, percentile(&collect(&|t| s.duration_us(t)), 0.5)?)))
            .collect();
        Baseline {
            turns: answered.len(),
            response_p50_us: percentile(&collect(&response_us), 0.5),
            voice_to_voice_p50_us: percentile(&collect(&|t| t.voice_to_voice_us), 0.5),
            stage_p50_us,
        }
    }
}

/// Below this many turns the agent has no baseline worth comparing to; only the absolute
/// limit marks a turn slow.
pub const MIN_BASELINE_TURNS: usize = 5;
/// A turn is slow when its response takes this many times the agent's median…
pub const SLOW_FACTOR: f64 = 1.5;
/// …and at least this much longer (µs), so that 30 ms vs 20 ms is not "slow".
pub const SLOW_MIN_EXCESS_US: i64 = 150_000;
/// A response this long (µs) is slow whatever the agent usually does: callers notice.
pub const SLOW_ABSOLUTE_US: i64 = 1_500_000;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BaselineView {
    /// Turns of this agent the medians come from (its most recent ones).
    pub turns: usize,
    pub response_p50_ms: Option<f64>,
    pub voice_to_voice_p50_ms: Option<f64>,
    /// Median duration per stage, by stage name.
    pub stage_p50_ms: BTreeMap<String, f64>,
}

/// What dominated one turn.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnCause {
    pub turn: i64,
    pub seq: i64,
    /// Slower than the agent's usual (see `findings` for why).
    pub slow: bool,
    pub voice_to_voice_ms: Option<f64>,
    pub response_ms: Option<f64>,
    /// The stage that took the most time beyond its usual (or the most time, without a
    /// baseline).
    pub dominant_stage: Option<&'static str>,
    pub dominant_ms: Option<f64>,
    /// That stage's median for this agent.
    pub agent_median_ms: Option<f64>,
    /// `dominant_ms / agent_median_ms`.
    pub ratio: Option<f64>,
    /// Who ran the stage: the provider's name (and model), or the engine.
    pub provider: Option<String>,
    /// Plain-language finding, on slow turns.
    pub finding: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootCause {
    pub call_id: String,
    pub agent_id: String,
    pub baseline: BaselineView,
    pub turns: Vec<TurnCause>,
    pub slow_turns: usize,
    /// One line per slow turn.
    pub findings: Vec<String>,
    pub summary: String,
}

fn provider_of(stage: Stage, m: Option<&CallMetrics>) -> String {
    let Some(m) = m else {
        return "unknown".into();
    };
    match stage {
        Stage::Stt => m.stt_provider.clone(),
        Stage::LlmFirstToken | Stage::FirstSentence => match &m.llm_model {
            Some(model) if !model.is_empty() => format!("{} ({model})", m.llm_provider),
            _ => m.llm_provider.clone(),
        },
        Stage::TtsFirstAudio => m.tts_provider.clone(),
        Stage::Engine => "parley engine".into(),
        Stage::Endpointing => format!("silence threshold {} ms", m.silence_ms),
        Stage::PlaybackAck => "transport".into(),
    }
}

/// Finds, for each turn of a call, the stage that dominated it, and says which turns were
/// slow against the agent's own medians.
pub fn root_cause(
    call_id: &str,
    agent_id: &str,
    turns: &[TraceRow],
    baseline: &Baseline,
    metrics: Option<&CallMetrics>,
) -> RootCause {
    let with_baseline = baseline.turns >= MIN_BASELINE_TURNS;
    let mut causes = Vec::new();
    let mut findings = Vec::new();
    for t in turns {
        let response = response_us(t);
        let slow = response.is_some_and(|r| {
            r >= SLOW_ABSOLUTE_US
                || (with_baseline
                    && baseline.response_p50_us.is_some_and(|p| {
                        r as f64 > p as f64 * SLOW_FACTOR && r - p >= SLOW_MIN_EXCESS_US
                    }))
        });
        // Dominant: biggest excess over its median (with a baseline), else biggest share.
        let dominant = Stage::RESPONSE
            .iter()
            .filter_map(|s| {
                let d = s.duration_us(t)?;
                let p50 = baseline.stage_p50_us.get(s).copied();
                let key = match (with_baseline, p50) {
                    (true, Some(p)) => d - p,
                    _ => d,
                };
                Some((key, *s, d, p50))
            })
            .max_by_key(|(key, ..)| *key);
        let mut cause = TurnCause {
            turn: t.turn,
            seq: t.seq,
            slow,
            voice_to_voice_ms: opt_ms(t.voice_to_voice_us),
            response_ms: opt_ms(response),
            dominant_stage: None,
            dominant_ms: None,
            agent_median_ms: None,
            ratio: None,
            provider: None,
            finding: None,
        };
        if let Some((_, stage, d, p50)) = dominant {
            let provider = provider_of(stage, metrics);
            let ratio = p50
                .filter(|p| *p > 0)
                .map(|p| ((d as f64 / p as f64) * 10.0).round() / 10.0);
            if slow {
                let compared = match (ratio, p50) {
                    (Some(r), Some(p)) if with_baseline => {
                        format!("{r}× this agent's median ({})", human(p))
                    }
                    _ => match response {
                        Some(r) if r > 0 => format!(
                            "{}% of a {} response",
                            (d as f64 * 100.0 / r as f64).round() as i64,
                            human(r)
                        ),
                        _ => "no baseline yet".into(),
                    },
                };
                let f = format!(
                    "Turn {}: {} {}, {compared}: provider {provider}",
                    t.turn,
                    stage.label(),
                    human(d)
                );
                findings.push(f.clone());
                cause.finding = Some(f);
            }
            cause.dominant_stage = Some(stage.name());
            cause.dominant_ms = Some(ms(d));
            cause.agent_median_ms = p50.map(ms);
            cause.ratio = ratio;
            cause.provider = Some(provider);
        }
        causes.push(cause);
    }
    let slow_turns = causes.iter().filter(|c| c.slow).count();
    let summary = if turns.is_empty() {
        "No turns recorded for this call.".to_string()
    } else if slow_turns == 0 {
        match baseline.response_p50_us {
            Some(p) => format!(
                "No slow turns: every response within {SLOW_FACTOR}× this agent's median ({}).",
                human(p)
            ),
            None => "No slow turns.".to_string(),
        }
    } else {
        let mut by_stage: BTreeMap<&str, usize> = BTreeMap::new();
        for c in causes.iter().filter(|c| c.slow) {
            if let Some(s) = c.dominant_stage {
                *by_stage.entry(s).or_default() += 1;
            }
        }
        let (stage, n) = by_stage
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(s, n)| (*s, *n))
            .unwrap_or(("unknown", 0));
        format!("{slow_turns} slow turn(s); {n} dominated by {stage}.")
    };
    RootCause {
        call_id: call_id.to_string(),
        agent_id: agent_id.to_string(),
        baseline: BaselineView {
            turns: baseline.turns,
            response_p50_ms: opt_ms(baseline.response_p50_us),
            voice_to_voice_p50_ms: opt_ms(baseline.voice_to_voice_p50_us),
            stage_p50_ms: baseline
                .stage_p50_us
                .iter()
                .map(|(s, v)| (s.name().to_string(), ms(*v)))
                .collect(),
        },
        turns: causes,
        slow_turns,
        findings,
        summary,
    }
}

// ------------------------------------------------------------------ interruptions

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterruptionStats {
    /// Calls in the period (with media statistics).
    pub calls: usize,
    /// Turns traced in the period.
    pub turns: usize,
    /// Replies the caller interrupted (playback stopped).
    pub barge_ins: usize,
    /// Caller onset → playback stopped.
    pub reaction_p50_ms: Option<f64>,
    pub reaction_p95_ms: Option<f64>,
    pub reaction_max_ms: Option<f64>,
    /// Caller sound during agent speech that did not interrupt (noise, backchannels).
    pub suppressed_barge_ins: u64,
    /// Replies that started while the caller was already speaking (agent talked over them).
    pub talk_overs: usize,
    /// Share of replies the caller interrupted.
    pub barge_in_rate: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentInterruptions {
    pub agent_id: String,
    #[serde(flatten)]
    pub stats: InterruptionStats,
}

fn interruption_stats(turns: &[&TraceRow], calls: &[&CallMetrics]) -> InterruptionStats {
    let reactions: Vec<i64> = turns
        .iter()
        .filter_map(|t| barge_in_reaction_us(t))
        .collect();
    let replies = turns
        .iter()
        .filter(|t| t.first_audio_sent_us.is_some())
        .count();
    let barge_ins = turns.iter().filter(|t| t.interrupted_us.is_some()).count();
    InterruptionStats {
        calls: calls.len(),
        turns: turns.len(),
        barge_ins,
        reaction_p50_ms: opt_ms(percentile(&reactions, 0.5)),
        reaction_p95_ms: opt_ms(percentile(&reactions, 0.95)),
        reaction_max_ms: opt_ms(reactions.iter().copied().max()),
        suppressed_barge_ins: calls.iter().map(|c| c.stats.suppressed_barge_ins).sum(),
        talk_overs: turns.iter().filter(|t| t.talk_over).count(),
        barge_in_rate: (replies > 0)
            .then(|| ((barge_ins as f64 / replies as f64) * 1000.0).round() / 1000.0),
    }
}

/// Barge-in quality per agent and in total.
pub fn interruption_quality(
    turns: &[TraceRow],
    calls: &[CallMetrics],
) -> (InterruptionStats, Vec<AgentInterruptions>) {
    let mut agents: BTreeMap<&str, (Vec<&TraceRow>, Vec<&CallMetrics>)> = BTreeMap::new();
    for t in turns {
        agents.entry(&t.agent_id).or_default().0.push(t);
    }
    for c in calls {
        agents.entry(&c.agent_id).or_default().1.push(c);
    }
    let per_agent = agents
        .iter()
        .map(|(a, (t, c))| AgentInterruptions {
            agent_id: a.to_string(),
            stats: interruption_stats(t, c),
        })
        .collect();
    let all_turns: Vec<&TraceRow> = turns.iter().collect();
    let all_calls: Vec<&CallMetrics> = calls.iter().collect();
    (interruption_stats(&all_turns, &all_calls), per_agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A turn at `base` (µs) with the given stage durations (ms).
    fn turn(seq: i64, stt: i64, llm: i64, tts: i64) -> TraceRow {
        let mut t = TraceRow {
            call_id: "call_1".into(),
            seq,
            agent_id: "agt_1".into(),
            turn: seq,
            ..Default::default()
        };
        let mut at = seq * 10_000_000;
        t.speech_start_us = Some(at);
        at += 1_000_000;
        t.speech_end_us = Some(at);
        at += 700_000;
        t.turn_end_us = Some(at);
        at += stt * 1000;
        t.stt_final_us = Some(at);
        t.llm_request_us = Some(at);
        at += llm * 1000;
        t.llm_first_token_us = Some(at);
        t.first_sentence_us = Some(at + 10_000);
        t.tts_request_us = Some(at + 10_000);
        at += 10_000 + tts * 1000;
        t.tts_first_audio_us = Some(at);
        at += 5_000;
        t.first_audio_sent_us = Some(at);
        t.voice_to_voice_us = Some(at - t.speech_end_us.unwrap());
        t
    }

    fn metrics() -> CallMetrics {
        CallMetrics {
            stt_provider: "deepgram".into(),
            llm_provider: "openai".into(),
            llm_model: Some("gpt-4o-mini".into()),
            tts_provider: "elevenlabs".into(),
            silence_ms: 700,
            ..Default::default()
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[5], 0.95), Some(5));
        assert_eq!(percentile(&[4, 1, 3, 2], 0.5), Some(2));
        assert_eq!(percentile(&(1..=100).collect::<Vec<_>>(), 0.95), Some(95));
    }

    #[test]
    fn stages_partition_the_wait() {
        let t = turn(1, 150, 300, 200);
        let v = turn_view(&t);
        let get = |name: &str| {
            v.stages
                .iter()
                .find(|s| s.stage == name)
                .unwrap()
                .duration_ms
        };
        assert_eq!(get("endpointing"), 700.0);
        assert_eq!(get("stt"), 150.0);
        assert_eq!(get("llm_first_token"), 300.0);
        assert_eq!(get("first_sentence"), 10.0);
        assert_eq!(get("tts_first_audio"), 200.0);
        assert_eq!(get("engine"), 5.0);
        assert_eq!(v.voice_to_voice_ms, Some(1365.0));
        assert_eq!(v.response_ms, Some(665.0));
        let shares: f64 = v.stages.iter().filter_map(|s| s.share).sum();
        assert!((shares - 1.0).abs() < 0.01, "{shares}");
    }

    #[test]
    fn slow_turn_names_the_stage_and_provider_against_the_agent_median() {
        let history: Vec<TraceRow> = (1..=9).map(|i| turn(i, 150, 300, 200)).collect();
        let baseline = Baseline::of(&history);
        assert_eq!(baseline.turns, 9);
        assert_eq!(baseline.stage_p50_us[&Stage::TtsFirstAudio], 200_000);
        let call = vec![turn(1, 150, 300, 200), turn(2, 160, 310, 1400)];
        let rc = root_cause("call_1", "agt_1", &call, &baseline, Some(&metrics()));
        assert_eq!(rc.slow_turns, 1);
        assert!(!rc.turns[0].slow);
        let slow = &rc.turns[1];
        assert!(slow.slow);
        assert_eq!(slow.dominant_stage, Some("tts_first_audio"));
        assert_eq!(slow.provider.as_deref(), Some("elevenlabs"));
        assert_eq!(slow.ratio, Some(7.0));
        assert_eq!(
            rc.findings,
            vec!["Turn 2: TTS first audio 1.4 s, 7× this agent's median (200 ms): provider elevenlabs"]
        );
        assert!(rc.summary.contains("tts_first_audio"), "{}", rc.summary);
    }

    #[test]
    fn without_a_baseline_only_long_waits_are_slow() {
        let call = vec![turn(1, 150, 300, 200), turn(2, 150, 2000, 200)];
        let baseline = Baseline::of(&call);
        let rc = root_cause("call_1", "agt_1", &call, &baseline, Some(&metrics()));
        assert!(!rc.turns[0].slow);
        assert!(rc.turns[1].slow);
        assert_eq!(rc.turns[1].dominant_stage, Some("llm_first_token"));
        assert_eq!(
            rc.turns[1].provider.as_deref(),
            Some("openai (gpt-4o-mini)")
        );
        assert!(
            rc.findings[0].contains("of a 2.4 s response"),
            "{:?}",
            rc.findings
        );
        // Not slow, still says where the time went.
        assert_eq!(rc.turns[0].dominant_stage, Some("llm_first_token"));
    }

    #[test]
    fn empty_calls_say_so() {
        let rc = root_cause("c", "a", &[], &Baseline::default(), None);
        assert_eq!(rc.slow_turns, 0);
        assert!(rc.summary.contains("No turns"));
    }

    #[test]
    fn interruption_quality_counts_per_agent() {
        let mut a = turn(1, 100, 100, 100);
        a.interrupted_us = Some(a.first_audio_sent_us.unwrap() + 900_000);
        a.barge_in_onset_us = Some(a.interrupted_us.unwrap() - 80_000);
        let mut b = turn(2, 100, 100, 100);
        b.talk_over = true;
        b.interrupted_us = Some(b.first_audio_sent_us.unwrap() + 100_000);
        b.barge_in_onset_us = Some(b.interrupted_us.unwrap() - 120_000);
        let mut c = turn(3, 100, 100, 100);
        c.agent_id = "agt_2".into();
        let mut m1 = metrics();
        m1.agent_id = "agt_1".into();
        m1.stats.suppressed_barge_ins = 2;
        let (total, per) = interruption_quality(&[a, b, c], &[m1]);
        assert_eq!(total.barge_ins, 2);
        assert_eq!(total.talk_overs, 1);
        assert_eq!(total.reaction_p50_ms, Some(80.0));
        assert_eq!(total.reaction_max_ms, Some(120.0));
        assert_eq!(total.suppressed_barge_ins, 2);
        assert_eq!(per.len(), 2);
        assert_eq!(per[0].stats.barge_ins, 2);
        assert_eq!(per[1].stats.barge_ins, 0);
        assert_eq!(per[1].stats.barge_in_rate, Some(0.0));
    }
}
