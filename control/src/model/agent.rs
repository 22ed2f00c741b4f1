//! The agent object: the behavioural settings the engine runs a call with, and their
//! validation (ranges follow the Voisnap-style agent reference in the seeds).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::validate::{template_variables, Checker};

/// Everything a client sets on an agent. `PUT` replaces it whole; `PATCH` merges into it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentConfig {
    /// Display name, 1–100 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub persona: Persona,
    pub voice: Voice,
    pub llm: Llm,
    pub transcription: Transcription,
    /// System prompt; `{{variable}}` placeholders are filled from task/instance context.
    pub system_prompt_template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_message: Option<String>,
    #[serde(default)]
    pub first_message_mode: FirstMessageMode,
    /// Phrases that end the call when the caller or agent says them (≤ 20).
    #[serde(default)]
    pub end_call_phrases: Vec<String>,
    /// Maximum call length, 30–3600 s.
    #[serde(default = "default_max_duration")]
    #[schema(minimum = 30, maximum = 3600, default = 600)]
    pub max_duration_seconds: i64,
    /// Caller silence after which the call ends, 5–60 s.
    #[serde(default = "default_max_idle")]
    #[schema(minimum = 5, maximum = 60, default = 15)]
    pub max_idle_time_seconds: i64,
    #[serde(default)]
    pub dtmf_enabled: bool,
    #[serde(default)]
    pub hipaa_compliant: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_disclosure_message: Option<String>,
    #[serde(default)]
    pub silence_detection: SilenceDetection,
    #[serde(default)]
    pub endpointing: Endpointing,
    #[serde(default)]
    pub interruption: Interruption,
    #[serde(default)]
    pub voicemail_detection: VoicemailDetection,
    #[serde(default)]
    pub recording: Recording,
    /// Knowledge collection ids the agent may search (≤ 50).
    #[serde(default)]
    pub knowledge_base_ids: Vec<String>,
    /// Free-form labels (≤ 20, each 1–50 characters).
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_max_duration() -> i64 {
    600
}
fn default_max_idle() -> i64 {
    15
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Persona {
    /// The name the agent speaks as.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VoiceProvider {
    /// The offline synthesizer bundled with Parley (also accepted as `local`).
    #[serde(alias = "local")]
    Embedded,
    /// Fixed output with set delays, for tests, load tools and demos (see `script`).
    Scripted,
    Elevenlabs,
    Openai,
    Google,
    Aws,
    Azure,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Voice {
    pub provider: VoiceProvider,
    pub voice_id: String,
    #[serde(default = "half")]
    #[schema(minimum = 0, maximum = 1)]
    pub stability: f64,
    #[serde(default = "three_quarters")]
    #[schema(minimum = 0, maximum = 1)]
    pub similarity_boost: f64,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1)]
    pub style: f64,
    #[serde(default = "yes")]
    pub use_speaker_boost: bool,
    /// Speaking rate, 0.5–2.0.
    #[serde(default = "one")]
    #[schema(minimum = 0.5, maximum = 2.0)]
    pub speed: f64,
    /// For `scripted`: `delayMs` before the first audio of each text, `intervalMs` of tone
    /// per character of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
}

/// What a `scripted` provider produces and when.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Script {
    /// Transcripts (speech-to-text) or replies (LLM), used in turn and cycled.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Delay of the first output: transcript after the turn ends, first LLM token after
    /// the request, first audio after the text. 0–60000.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 60000)]
    pub delay_ms: u32,
    /// LLM: delay between words. Voice: tone length per character (default 60). 0–10000.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10000)]
    pub interval_ms: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LlmProvider {
    /// The offline responder bundled with Parley (also accepted as `local`).
    #[serde(alias = "local")]
    Embedded,
    /// Fixed output with set delays, for tests, load tools and demos (see `script`).
    Scripted,
    Openai,
    /// Any OpenAI-compatible server (llama.cpp, vLLM, Ollama).
    OpenaiCompatible,
    Anthropic,
    Google,
    Cohere,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Llm {
    pub provider: LlmProvider,
    pub model: String,
    #[serde(default = "seven_tenths")]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: f64,
    #[serde(default = "default_max_tokens")]
    #[schema(minimum = 1, maximum = 16384)]
    pub max_tokens: i64,
    #[serde(default = "one")]
    #[schema(minimum = 0, maximum = 1)]
    pub top_p: f64,
    #[serde(default)]
    #[schema(minimum = -2, maximum = 2)]
    pub frequency_penalty: f64,
    #[serde(default)]
    #[schema(minimum = -2, maximum = 2)]
    pub presence_penalty: f64,
    /// Base URL for `openai_compatible` providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// For `scripted`: the replies, first-token delay and per-word interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SttProvider {
    /// The offline recognizer bundled with Parley (also accepted as `local`).
    #[serde(alias = "local")]
    Embedded,
    /// Fixed output with set delays, for tests, load tools and demos (see `script`).
    Scripted,
    Deepgram,
    Openai,
    Assemblyai,
    Google,
    Aws,
    Azure,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Transcription {
    pub provider: SttProvider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// BCP 47 language tag such as `en-US`.
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default = "yes")]
    pub smart_format: bool,
    #[serde(default = "yes")]
    pub punctuate: bool,
    #[serde(default)]
    pub profanity_filter: bool,
    /// For `scripted`: the transcripts and the delay after each end of turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FirstMessageMode {
    #[default]
    AssistantSpeaksFirst,
    WaitForUser,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SilenceDetection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds of caller silence before the prompt is spoken, 1–60.
    #[serde(default = "default_silence_timeout")]
    #[schema(minimum = 1, maximum = 60)]
    pub timeout_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Default for SilenceDetection {
    fn default() -> Self {
        SilenceDetection {
            enabled: true,
            timeout_seconds: default_silence_timeout(),
            message: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndpointingProvider {
    /// The engine's own VAD + endpointer.
    #[default]
    Vad,
    /// The STT provider's end-of-utterance events.
    Stt,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpointing {
    #[serde(default)]
    pub provider: EndpointingProvider,
    /// Trailing silence that ends a caller turn, 100–5000 ms.
    #[serde(default = "default_silence_ms")]
    #[schema(minimum = 100, maximum = 5000)]
    pub silence_duration_ms: i64,
    /// Hard end of utterance, 200–10000 ms and ≥ silenceDurationMs.
    #[serde(default = "default_utterance_end_ms")]
    #[schema(minimum = 200, maximum = 10000)]
    pub utterance_end_ms: i64,
}

impl Default for Endpointing {
    fn default() -> Self {
        Endpointing {
            provider: EndpointingProvider::Vad,
            silence_duration_ms: default_silence_ms(),
            utterance_end_ms: default_utterance_end_ms(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    Low,
    #[default]
    Medium,
    High,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Interruption {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub sensitivity: Sensitivity,
}

impl Default for Interruption {
    fn default() -> Self {
        Interruption {
            enabled: true,
            sensitivity: Sensitivity::Medium,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailAction {
    #[default]
    HangUp,
    LeaveMessage,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VoicemailDetection {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub action: VoicemailAction,
    /// Required when `action` is `leave_message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecordingFormat {
    /// 16-bit PCM WAV.
    #[default]
    Wav,
    /// G.711 μ-law in a WAV container, as received on phone lines.
    Mulaw,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Recording {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub format: RecordingFormat,
    /// Days recordings are kept, 1–3650.
    #[serde(default = "default_retention")]
    #[schema(minimum = 1, maximum = 3650)]
    pub storage_retention_days: i64,
    #[serde(default)]
    pub stereo: bool,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            enabled: false,
            format: RecordingFormat::Wav,
            storage_retention_days: default_retention(),
            stereo: false,
        }
    }
}

fn yes() -> bool {
    true
}
fn half() -> f64 {
    0.5
}
fn three_quarters() -> f64 {
    0.75
}
fn one() -> f64 {
    1.0
}
fn seven_tenths() -> f64 {
    0.7
}
fn default_max_tokens() -> i64 {
    300
}
fn default_language() -> String {
    "en-US".into()
}
fn default_silence_timeout() -> i64 {
    8
}
fn default_silence_ms() -> i64 {
    700
}
fn default_utterance_end_ms() -> i64 {
    1000
}
fn default_retention() -> i64 {
    90
}

fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    (2..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl AgentConfig {
    /// Checks every range and cross-field rule, reporting all problems with their paths.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checker::default();
        c.text("name", &self.name, 1, 100);
        c.opt_text("description", self.description.as_deref(), 1000);
        c.text("persona.name", &self.persona.name, 1, 100);
        c.opt_text(
            "persona.personality",
            self.persona.personality.as_deref(),
            500,
        );
        c.opt_text("persona.role", self.persona.role.as_deref(), 200);

        c.text("voice.voiceId", &self.voice.voice_id, 1, 200);
        c.range_f64("voice.stability", Some(self.voice.stability), 0.0, 1.0);
        c.range_f64(
            "voice.similarityBoost",
            Some(self.voice.similarity_boost),
            0.0,
            1.0,
        );
        c.range_f64("voice.style", Some(self.voice.style), 0.0, 1.0);
        c.range_f64("voice.speed", Some(self.voice.speed), 0.5, 2.0);

        for (section, script) in [
            ("voice", &self.voice.script),
            ("llm", &self.llm.script),
            ("transcription", &self.transcription.script),
        ] {
            if let Some(sc) = script {
                let f = |name: &str| format!("{section}.script.{name}");
                c.range_i64(&f("delayMs"), Some(sc.delay_ms as i64), 0, 60_000);
                c.range_i64(&f("intervalMs"), Some(sc.interval_ms as i64), 0, 10_000);
                if sc.lines.len() > 100 {
                    c.range_i64(&f("lines"), Some(sc.lines.len() as i64), 0, 100);
                }
                for (i, line) in sc.lines.iter().enumerate() {
                    c.text(&format!("{section}.script.lines[{i}]"), line, 0, 2000);
                }
            }
        }
        c.text("llm.model", &self.llm.model, 1, 100);
        c.range_f64("llm.temperature", Some(self.llm.temperature), 0.0, 2.0);
        c.range_i64("llm.maxTokens", Some(self.llm.max_tokens), 1, 16384);
        c.range_f64("llm.topP", Some(self.llm.top_p), 0.0, 1.0);
        c.range_f64(
            "llm.frequencyPenalty",
            Some(self.llm.frequency_penalty),
            -2.0,
            2.0,
        );
        c.range_f64(
            "llm.presencePenalty",
            Some(self.llm.presence_penalty),
            -2.0,
            2.0,
        );
        match (&self.llm.base_url, self.llm.provider) {
            (Some(u), _) => c.url("llm.baseUrl", u),
            (None, LlmProvider::OpenaiCompatible) => c.fail(
                "llm.baseUrl",
                "is required for the openai_compatible provider",
            ),
            _ => {}
        }

        c.opt_text(
            "transcription.model",
            self.transcription.model.as_deref(),
            100,
        );
        if !is_language_tag(&self.transcription.language) {
            c.fail(
                "transcription.language",
                "must be a BCP 47 language tag such as en-US",
            );
        }

        c.text(
            "systemPromptTemplate",
            &self.system_prompt_template,
            1,
            20_000,
        );
        if let Err(e) = template_variables(&self.system_prompt_template) {
            c.fail("systemPromptTemplate", e);
        }
        c.opt_text("firstMessage", self.first_message.as_deref(), 1000);
        if let Some(m) = &self.first_message {
            if let Err(e) = template_variables(m) {
                c.fail("firstMessage", e);
            }
        }
        c.string_list("endCallPhrases", &self.end_call_phrases, 20, 100);
        c.range_i64(
            "maxDurationSeconds",
            Some(self.max_duration_seconds),
            30,
            3600,
        );
        c.range_i64(
            "maxIdleTimeSeconds",
            Some(self.max_idle_time_seconds),
            5,
            60,
        );
        c.opt_text(
            "aiDisclosureMessage",
            self.ai_disclosure_message.as_deref(),
            500,
        );

        c.range_i64(
            "silenceDetection.timeoutSeconds",
            Some(self.silence_detection.timeout_seconds),
            1,
            60,
        );
        c.opt_text(
            "silenceDetection.message",
            self.silence_detection.message.as_deref(),
            500,
        );

        c.range_i64(
            "endpointing.silenceDurationMs",
            Some(self.endpointing.silence_duration_ms),
            100,
            5000,
        );
        c.range_i64(
            "endpointing.utteranceEndMs",
            Some(self.endpointing.utterance_end_ms),
            200,
            10_000,
        );
        if self.endpointing.utterance_end_ms < self.endpointing.silence_duration_ms {
            c.fail(
                "endpointing.utteranceEndMs",
                "must be at least endpointing.silenceDurationMs",
            );
        }

        c.opt_text(
            "voicemailDetection.message",
            self.voicemail_detection.message.as_deref(),
            1000,
        );
        if self.voicemail_detection.enabled
            && self.voicemail_detection.action == VoicemailAction::LeaveMessage
            && self.voicemail_detection.message.is_none()
        {
            c.fail(
                "voicemailDetection.message",
                "is required when action is leave_message",
            );
        }
        c.range_i64(
            "recording.storageRetentionDays",
            Some(self.recording.storage_retention_days),
            1,
            3650,
        );
        c.string_list("knowledgeBaseIds", &self.knowledge_base_ids, 50, 64);
        c.string_list("tags", &self.tags, 20, 50);
        c.finish()
    }

    /// The `{{variables}}` of the prompt and first message.
    pub fn variables(&self) -> Vec<String> {
        let mut v = template_variables(&self.system_prompt_template).unwrap_or_default();
        if let Some(m) = &self.first_message {
            for x in template_variables(m).unwrap_or_default() {
                if !v.contains(&x) {
                    v.push(x);
                }
            }
        }
        v
    }
}

/// Merges a JSON merge-patch (RFC 7386) into `target`: objects merge recursively, `null`
/// removes a key (restoring its default), anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Names of the top-level settings that differ, for version change summaries.
pub fn changed_fields(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = o
        .keys()
        .chain(n.keys())
        .filter(|k| o.get(*k) != n.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Defaults that make an agent runnable offline, used by `provision` for omitted sections.
pub fn offline_defaults() -> serde_json::Value {
    serde_json::json!({
        "persona": { "name": "Assistant" },
        "voice": { "provider": "embedded", "voiceId": "default" },
        "llm": { "provider": "embedded", "model": "default" },
        "transcription": { "provider": "embedded" },
        "systemPromptTemplate": "You are a helpful voice assistant. Keep answers short."
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> serde_json::Value {
        json!({
            "name": "Aria",
            "persona": {"name": "Aria"},
            "voice": {"provider": "elevenlabs", "voiceId": "v1"},
            "llm": {"provider": "openai", "model": "gpt-4o"},
            "transcription": {"provider": "deepgram"},
            "systemPromptTemplate": "You help {{customer}}."
        })
    }

    #[test]
    fn defaults_fill_in_and_validate() {
        let a: AgentConfig = serde_json::from_value(minimal()).unwrap();
        assert_eq!(a.max_duration_seconds, 600);
        assert_eq!(a.endpointing.silence_duration_ms, 700);
        a.validate().unwrap();
        assert_eq!(a.variables(), vec!["customer"]);
    }

    #[test]
    fn out_of_range_values_are_all_reported() {
        let mut v = minimal();
        v["maxDurationSeconds"] = json!(10);
        v["llm"]["temperature"] = json!(3.5);
        let a: AgentConfig = serde_json::from_value(v).unwrap();
        let e = a.validate().unwrap_err();
        let fields: Vec<_> = e.details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, vec!["llm.temperature", "maxDurationSeconds"]);
    }

    #[test]
    fn merge_patch_is_deep() {
        let mut t = json!({"llm": {"model": "a", "temperature": 0.7}, "description": "x"});
        merge_patch(
            &mut t,
            &json!({"llm": {"temperature": 0.2}, "description": null}),
        );
        assert_eq!(t, json!({"llm": {"model": "a", "temperature": 0.2}}));
    }
}
