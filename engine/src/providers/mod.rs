//! Speech-to-text, text-to-speech and LLM providers behind small streaming traits.
//!
//! Each provider starts a *stream* for one request and hands back the two ends of it: a
//! sender for input (audio for STT, text for input-streaming TTS) and a receiver of events.
//! The work runs in a tokio task (or a blocking thread for local models) owned by the
//! provider. Every stream carries a [`CancellationToken`]: cancelling it (barge-in, hang-up)
//! stops the work at once, and dropping the receiver has the same effect.
//!
//! The shapes fit the hosted APIs the later clients speak: Deepgram's live WebSocket
//! (audio in, interim/final transcripts out), ElevenLabs' input-streaming WebSocket (text
//! in, audio chunks with character alignment out), OpenAI-compatible SSE chat completions
//! (tokens and tool calls out).

use std::sync::Arc;

use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

pub mod local;
pub mod scripted;

/// What went wrong in a provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider}: not configured: {reason}")]
    NotConfigured { provider: String, reason: String },
    #[error("{provider}: {message}")]
    Failed { provider: String, message: String },
    #[error("{provider}: timed out")]
    Timeout { provider: String },
    #[error("cancelled")]
    Cancelled,
}

// ---------------------------------------------------------------- STT

/// Settings for one recognition stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttRequest {
    /// Sample rate of the audio that will be sent (16 kHz unless the provider says otherwise).
    pub sample_rate: u32,
    pub language: String,
    pub model: Option<String>,
}

impl Default for SttRequest {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            language: "en-US".into(),
            model: None,
        }
    }
}

/// Input to a recognition stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SttInput {
    /// Caller audio, mono i16 at [`SttRequest::sample_rate`].
    Audio(Vec<i16>),
    /// The engine decided the caller's turn is over: finalize what you have now.
    Finalize,
}

/// Output of a recognition stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// A hypothesis that may still change.
    Partial {
        text: String,
    },
    /// Text that will not change. `turn_final` marks the answer to [`SttInput::Finalize`].
    Final {
        text: String,
        turn_final: bool,
    },
    Error(ProviderError),
}

/// The caller's ends of a recognition stream.
pub struct SttStream {
    pub input: mpsc::Sender<SttInput>,
    pub events: mpsc::Receiver<SttEvent>,
    pub cancel: CancellationToken,
}

/// A speech-to-text provider.
pub trait Stt: Send + Sync {
    fn name(&self) -> &str;
    /// Opens a stream for one call.
    fn start(&self, req: SttRequest) -> Result<SttStream, ProviderError>;
}

// ---------------------------------------------------------------- TTS

/// Settings for one synthesis stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TtsRequest {
    pub voice: Option<String>,
    /// Rate the audio should come out at; providers resample if they must.
    pub sample_rate: u32,
    pub speed: f32,
}

impl Default for TtsRequest {
    fn default() -> Self {
        Self {
            voice: None,
            sample_rate: 16_000,
            speed: 1.0,
        }
    }
}

/// Input to a synthesis stream: text as it arrives (sentence by sentence from the LLM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtsInput {
    Text(String),
    /// No more text: synthesize what is left and finish.
    Flush,
}

/// Output of a synthesis stream.
#[derive(Debug, Clone, PartialEq)]
pub enum TtsEvent {
    /// Mono i16 audio at [`TtsRequest::sample_rate`].
    Audio(Vec<i16>),
    /// `text` is spoken from `start_ms` (relative to the stream's first sample) for
    /// `duration_ms`; lets the engine cut history at the word the caller heard.
    Word {
        text: String,
        start_ms: u32,
        duration_ms: u32,
    },
    /// All text flushed has been synthesized.
    Done,
    Error(ProviderError),
}

/// The caller's ends of a synthesis stream.
pub struct TtsStream {
    pub input: mpsc::Sender<TtsInput>,
    pub events: mpsc::Receiver<TtsEvent>,
    pub cancel: CancellationToken,
}

/// A text-to-speech provider.
pub trait Tts: Send + Sync {
    fn name(&self) -> &str;
    /// The rate this provider produces natively (what to ask for to avoid resampling).
    fn native_rate(&self) -> u32;
    fn start(&self, req: TtsRequest) -> Result<TtsStream, ProviderError>;
}

// ---------------------------------------------------------------- LLM

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A function the model may call (OpenAI "tools" shape; `parameters` is a JSON schema).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// Next piece of the reply text.
    Token(String),
    /// The model asks for a tool call (`arguments` is JSON text).
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    Done,
    Error(ProviderError),
}

pub struct LlmStream {
    pub events: mpsc::Receiver<LlmEvent>,
    pub cancel: CancellationToken,
}

/// A chat model.
pub trait Llm: Send + Sync {
    fn name(&self) -> &str;
    fn start(&self, req: ChatRequest) -> Result<LlmStream, ProviderError>;
}

/// The three providers one agent uses.
#[derive(Clone)]
pub struct Providers {
    pub stt: Arc<dyn Stt>,
    pub tts: Arc<dyn Tts>,
    pub llm: Arc<dyn Llm>,
}
