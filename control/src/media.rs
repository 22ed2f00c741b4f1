//! The media plane as the control plane sees it: the DSP workers, the providers an agent
//! object names, the live calls of this node, and the glue that runs a call's session and
//! records it (call record, transcript, end) through [`crate::lifecycle`].
//!
//! The engine knows nothing of agents, SQL or HTTP; this module translates an
//! [`AgentConfig`] into the engine's [`AgentSpec`] and a session's events into store writes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use parley_engine::providers::local::{LocalLlm, LocalStt, LocalTts};
use parley_engine::providers::scripted::{ScriptedLlm, ScriptedStt, ScriptedTts, ScriptedVoice};
use parley_engine::providers::{
    CancellationToken, ChatRequest, Llm, Providers, Role, Stt, SttRequest, Tts, TtsRequest,
};
use parley_engine::session::{self, AgentSpec, SessionEvent, Transport, TransportEvent};
use parley_engine::worker::WorkerPool;
use parley_engine::{CallConfig, EndpointingConfig, InterruptionConfig, Sensitivity};

use crate::dispatch::{CallDispatcher, DispatchFuture, OutboundCall};
use crate::lifecycle;
use crate::model::agent::{
    AgentConfig, FirstMessageMode, LlmProvider, Script, Sensitivity as AgentSensitivity,
    SttProvider, VoiceProvider,
};
use crate::state::AppState;
use crate::store::calls::NewCall;
use crate::store::traces::{self, CallMetrics, TraceRecord, TraceRow};

/// DSP workers (started on first use), live calls, and where offline models live.
pub struct MediaPlane {
    pool: OnceLock<Result<WorkerPool, String>>,
    /// The embedded recognizer and synthesizer load their libraries and model once.
    local_stt: OnceLock<Result<Arc<LocalStt>, String>>,
    local_tts: OnceLock<Result<Arc<LocalTts>, String>>,
    live: Mutex<HashMap<String, CancellationToken>>,
    /// Folder of the embedded offline models (`PARLEY_MODELS`, default `./models`).
    pub models_dir: PathBuf,
    /// Where call recordings go (`PARLEY_RECORDINGS`, default `./recordings`).
    pub recordings_dir: PathBuf,
}

impl MediaPlane {
    pub fn from_env() -> Self {
        Self {
            pool: OnceLock::new(),
            local_stt: OnceLock::new(),
            local_tts: OnceLock::new(),
            live: Mutex::new(HashMap::new()),
            models_dir: std::env::var_os("PARLEY_MODELS")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("models")),
            recordings_dir: std::env::var_os("PARLEY_RECORDINGS")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("recordings")),
        }
    }

    /// The worker pool, one DSP thread per core, started on the first call.
    pub fn pool(&self) -> Result<&WorkerPool, String> {
        self.pool
            .get_or_init(|| {
                WorkerPool::per_core().map_err(|e| format!("cannot start DSP workers: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Logs which embedded offline providers are ready (and what to run if not).
    pub fn log_provider_status(&self) {
        for p in parley_engine::providers::local::status(&self.models_dir) {
            match &p.ready {
                Ok(()) => tracing::info!(kind = %p.kind, name = %p.name, "provider ready"),
                Err(e) => tracing::warn!(kind = %p.kind, name = %p.name, error = %e,
                    "provider not ready (scripts/models.sh installs the embedded models)"),
            }
        }
    }

    fn embedded_stt(&self) -> Result<Arc<LocalStt>, String> {
        self.local_stt
            .get_or_init(|| {
                LocalStt::new(&self.models_dir)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    fn embedded_tts(&self) -> Result<Arc<LocalTts>, String> {
        self.local_tts
            .get_or_init(|| {
                LocalTts::new(&self.models_dir)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// Number of calls with live media on this node.
    pub fn live_calls(&self) -> usize {
        self.live.lock().map_or(0, |l| l.len())
    }

    /// Hangs up a live call; false when it has no live media here.
    pub fn hang_up(&self, call_id: &str) -> bool {
        match self.live.lock().ok().and_then(|l| l.get(call_id).cloned()) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    fn register(&self, call_id: &str) -> CancellationToken {
        let t = CancellationToken::new();
        if let Ok(mut l) = self.live.lock() {
            l.insert(call_id.to_string(), t.clone());
        }
        t
    }

    fn unregister(&self, call_id: &str) {
        if let Ok(mut l) = self.live.lock() {
            l.remove(call_id);
        }
    }

    /// The engine's view of an agent, for a transport at `rate`: behaviour settings mapped
    /// to the call core, providers built from the agent's choices, the prompt filled in.
    pub fn agent_spec(
        &self,
        agent: &AgentConfig,
        variables: &HashMap<String, String>,
        rate: parley_codecs::SampleRate,
    ) -> Result<AgentSpec, String> {
        let providers = Providers {
            stt: self.stt(agent)?,
            tts: self.tts(agent)?,
            llm: self.llm(agent)?,
        };
        let call = CallConfig {
            input_rate: rate,
            output_rate: rate,
            endpointing: EndpointingConfig {
                silence_ms: agent.endpointing.silence_duration_ms.clamp(100, 5000) as u32,
                ..Default::default()
            },
            interruption: InterruptionConfig {
                enabled: agent.interruption.enabled,
                sensitivity: match agent.interruption.sensitivity {
                    AgentSensitivity::Low => Sensitivity::Low,
                    AgentSensitivity::Medium => Sensitivity::Medium,
                    AgentSensitivity::High => Sensitivity::High,
                },
                ..Default::default()
            },
            max_idle: agent.silence_detection.enabled.then(|| {
                Duration::from_secs(agent.silence_detection.timeout_seconds.max(1) as u64)
            }),
            max_duration: Some(Duration::from_secs(agent.max_duration_seconds.max(1) as u64)),
            ..Default::default()
        };
        let first_message = match agent.first_message_mode {
            FirstMessageMode::AssistantSpeaksFirst => {
                agent.first_message.as_deref().map(|m| fill(m, variables))
            }
            FirstMessageMode::WaitForUser => None,
        };
        Ok(AgentSpec {
            call,
            providers,
            system_prompt: fill(&agent.system_prompt_template, variables),
            first_message,
            end_call_phrases: agent.end_call_phrases.clone(),
            idle_message: agent
                .silence_detection
                .message
                .clone()
                .or_else(|| Some("Are you still there?".into())),
            llm: ChatRequest {
                model: Some(agent.llm.model.clone()),
                temperature: Some(agent.llm.temperature as f32),
                max_tokens: Some(agent.llm.max_tokens.clamp(1, 16384) as u32),
                ..Default::default()
            },
            tts: TtsRequest {
                // The embedded synthesizer takes flite voice names; "default" means its own.
                voice: Some(agent.voice.voice_id.clone()).filter(|v| {
                    !(agent.voice.provider == VoiceProvider::Embedded && v == "default")
                }),
                sample_rate: rate.hz(),
                speed: agent.voice.speed as f32,
            },
            stt: SttRequest {
                language: agent.transcription.language.clone(),
                model: agent.transcription.model.clone(),
                ..Default::default()
            },
            // Set per call by `run_call`, which knows the call's id.
            recording: None,
        })
    }

    fn stt(&self, agent: &AgentConfig) -> Result<Arc<dyn Stt>, String> {
        let t = &agent.transcription;
        match t.provider {
            SttProvider::Scripted => {
                let s = t.script.clone().unwrap_or_default();
                Ok(Arc::new(ScriptedStt::new(s.lines, ms(s.delay_ms))))
            }
            SttProvider::Embedded => Ok(self.embedded_stt()? as Arc<dyn Stt>),
            other => Err(unsupported("transcription", &other)),
        }
    }

    fn llm(&self, agent: &AgentConfig) -> Result<Arc<dyn Llm>, String> {
        let l = &agent.llm;
        match l.provider {
            LlmProvider::Scripted => {
                let s = l.script.clone().unwrap_or_default();
                Ok(Arc::new(ScriptedLlm::new(
                    s.lines,
                    ms(s.delay_ms),
                    ms(s.interval_ms),
                )))
            }
            LlmProvider::Embedded => Ok(Arc::new(LocalLlm::new())),
            other => Err(unsupported("llm", &other)),
        }
    }

    fn tts(&self, agent: &AgentConfig) -> Result<Arc<dyn Tts>, String> {
        let v = &agent.voice;
        match v.provider {
            VoiceProvider::Scripted => {
                let s: Script = v.script.clone().unwrap_or_default();
                let per_char = if s.interval_ms == 0 {
                    60
                } else {
                    s.interval_ms
                };
                Ok(Arc::new(ScriptedTts::new(
                    ScriptedVoice::Tone {
                        ms_per_char: per_char,
                    },
                    ms(s.delay_ms),
                )))
            }
            VoiceProvider::Embedded => Ok(self.embedded_tts()? as Arc<dyn Tts>),
            other => Err(unsupported("voice", &other)),
        }
    }
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(v as u64)
}

fn unsupported(section: &str, provider: &impl std::fmt::Debug) -> String {
    format!(
        "{section}.provider {} is not available on this server yet (use \"embedded\" or \"scripted\")",
        format!("{provider:?}").to_lowercase()
    )
}

/// Fills `{{name}}` placeholders; unknown names are left as they are.
pub fn fill(template: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A transport that also ends when the call is hung up through the API.
struct Hangable<T> {
    inner: T,
    cancel: CancellationToken,
}

impl<T: Transport> Transport for Hangable<T> {
    async fn recv(&mut self) -> TransportEvent {
        tokio::select! {
            _ = self.cancel.cancelled() => TransportEvent::Closed("ended via API".into()),
            ev = self.inner.recv() => ev,
        }
    }
    async fn send_audio(&mut self, samples: &[i16]) -> Result<(), String> {
        self.inner.send_audio(samples).await
    }
    async fn send_mark(&mut self, pos: u64) -> Result<(), String> {
        self.inner.send_mark(pos).await
    }
    async fn send_clear(&mut self) -> Result<(), String> {
        self.inner.send_clear().await
    }
    async fn close(&mut self) {
        self.inner.close().await
    }
}

/// Who is calling whom, for the call record.
pub struct CallParties {
    pub channel: &'static str,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A copy of a call's progress for a transport that reports it to its own client (the
/// direct agent socket).
pub struct CallTap {
    /// Gets the call's id once the call is recorded, just before its session starts.
    pub started: tokio::sync::oneshot::Sender<String>,
    /// Gets a copy of every session event (never waited on: a full channel drops).
    pub events: tokio::sync::mpsc::Sender<SessionEvent>,
}

/// Runs one call end to end: records it, runs the session on this node's DSP workers,
/// writes the transcript as it happens, and closes the record with the end reason, which
/// it returns.
#[allow(clippy::too_many_arguments)]
pub async fn run_call<T: Transport>(
    state: AppState,
    tenant_id: String,
    agent_id: String,
    mut spec: AgentSpec,
    record: bool,
    parties: CallParties,
    transport: T,
    tap: Option<CallTap>,
) -> String {
    let media = state.media.clone();
    let pool = match media.pool() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "media: no DSP workers");
            return format!("media error: {e}");
        }
    };
    let new = NewCall {
        id: crate::ids::new_id("call"),
        agent_id: agent_id.clone(),
        task_id: None,
        channel: parties.channel.to_string(),
        direction: "inbound".into(),
        from_number: parties.from,
        to_number: parties.to,
    };
    let call = match lifecycle::call_started(&state, &tenant_id, &new).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "media: cannot record the call");
            return "internal error: cannot record the call".into();
        }
    };
    let call_id = call.id.clone();
    let _ = lifecycle::call_answered(&state, &call_id).await;
    if record {
        spec.recording = Some(media.recordings_dir.join(format!("{call_id}.wav")));
    }
    let cancel = media.register(&call_id);
    tracing::info!(call = %call_id, agent = %agent_id, "call started");
    let tap_events = tap.map(|t| {
        let _ = t.started.send(call_id.clone());
        t.events
    });

    // What the call runs on, for root-cause findings ("provider elevenlabs").
    let started_ms = crate::timestamps::now_ms();
    let mut metrics = CallMetrics {
        call_id: call_id.clone(),
        agent_id: agent_id.clone(),
        call_started_ms: started_ms,
        stt_provider: spec.providers.stt.name().to_string(),
        llm_provider: spec.providers.llm.name().to_string(),
        llm_model: spec.llm.model.clone(),
        tts_provider: spec.providers.tts.name().to_string(),
        silence_ms: spec.call.endpointing.silence_ms as i64,
        ..Default::default()
    };
    if let Err(e) = traces::start_call(&state.db, &tenant_id, &metrics).await {
        tracing::warn!(call = %call_id, error = %e, "call metrics not stored");
    }

    // Transcript lines and traces are handled in order by one task; the media path never
    // waits on it (the session drops and counts events when this falls behind).
    let (obs_tx, mut obs_rx) = tokio::sync::mpsc::channel::<SessionEvent>(1024);
    let writer_state = state.clone();
    let writer_call = call_id.clone();
    let writer_agent = agent_id.clone();
    let writer_tenant = tenant_id.clone();
    let writer = tokio::spawn(async move {
        let mut seq = 0i64;
        let mut traces_dropped = 0i64;
        while let Some(ev) = obs_rx.recv().await {
            if let Some(tap) = &tap_events {
                let _ = tap.try_send(ev.clone());
            }
            match ev {
                SessionEvent::Engine(parley_engine::Event::TurnTrace(t)) => {
                    seq += 1;
                    crate::metrics::global().observe_turn(&t);
                    crate::otel::log_turn(&writer_call, &writer_agent, &t);
                    writer_state.traces.export(|| crate::otel::TurnSpans {
                        call_id: writer_call.clone(),
                        agent_id: writer_agent.clone(),
                        call_started_unix_nanos: (started_ms.max(0) as u64) * 1_000_000,
                        trace: t,
                    });
                    let row =
                        TraceRow::from_trace(&writer_call, &writer_agent, started_ms, seq, &t);
                    if writer_state.traces.enabled()
                        && !writer_state.traces.record(TraceRecord {
                            tenant_id: writer_tenant.clone(),
                            row,
                        })
                    {
                        traces_dropped += 1;
                    }
                }
                SessionEvent::Transcript { role, text, .. } if !text.is_empty() => {
                    let speaker = match role {
                        Role::User => "user",
                        _ => "agent",
                    };
                    if let Err(e) =
                        lifecycle::transcript(&writer_state, &writer_call, speaker, &text).await
                    {
                        tracing::warn!(call = %writer_call, error = %e, "transcript not stored");
                    }
                }
                SessionEvent::ProviderError { provider, message } => {
                    crate::metrics::global().provider_error(&provider);
                    tracing::warn!(call = %writer_call, %provider, %message, "provider error");
                }
                _ => {}
            }
        }
        traces_dropped
    });
    let result = session::run(
        pool,
        &spec,
        Hangable {
            inner: transport,
            cancel,
        },
        obs_tx,
    )
    .await;
    let traces_dropped = writer.await.unwrap_or(0);
    media.unregister(&call_id);
    if let Ok(summary) = &result {
        metrics.turns = summary.turns as i64;
        metrics.stats = summary.stats.unwrap_or_default();
        metrics.provider_errors = summary.provider_errors as i64;
        metrics.events_dropped = summary.dropped_events.min(i64::MAX as u64) as i64;
    }
    metrics.traces_dropped = traces_dropped;
    if let Err(e) = traces::finish_call(&state.db, &tenant_id, &metrics).await {
        tracing::warn!(call = %call_id, error = %e, "call metrics not stored");
    }
    if let Ok(session::SessionSummary {
        recording: Some((path, _)),
        ..
    }) = &result
    {
        // Stored as an absolute path so the API can stream it whatever its working folder.
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        if let Err(e) =
            lifecycle::recording_stored(&state, &call_id, &path.to_string_lossy(), "audio/wav")
                .await
        {
            tracing::warn!(call = %call_id, error = %e, "recording not stored");
        }
    }
    let (ok, reason) = match &result {
        Ok(summary) => (true, summary.reason.clone()),
        Err(e) => (false, format!("media error: {e}")),
    };
    tracing::info!(call = %call_id, %reason, "call ended");
    if let Err(e) = lifecycle::call_ended(&state, &call_id, ok, &reason).await {
        tracing::warn!(call = %call_id, error = %e, "call end not stored");
    }
    reason
}

/// Places calls through the configured outbound dispatcher and ends live calls here.
pub struct MediaDispatcher {
    pub media: Arc<MediaPlane>,
    pub outbound: Arc<dyn CallDispatcher>,
}

impl CallDispatcher for MediaDispatcher {
    fn place_call(&self, call: OutboundCall) -> DispatchFuture<'_> {
        self.outbound.place_call(call)
    }

    fn end_call(&self, call_id: &str) -> DispatchFuture<'_> {
        let ended = self.media.hang_up(call_id);
        let id = call_id.to_string();
        Box::pin(async move {
            if ended {
                Ok(())
            } else {
                self.outbound.end_call(&id).await
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_known_variables_only() {
        let vars = HashMap::from([("name".to_string(), "Ada".to_string())]);
        assert_eq!(
            fill("Hi {{ name }}, re {{order}}.", &vars),
            "Hi Ada, re {{order}}."
        );
        assert_eq!(fill("broken {{name", &vars), "broken {{name");
    }
}
