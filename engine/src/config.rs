//! Per-call settings of the engine core, the engine-side image of an agent's behavioural
//! settings (`endpointing`, `interruption`, `silenceDetection`, … of the agent object).
//!
//! Everything has a default that works for a telephone call, so `CallConfig::default()` is a
//! usable Twilio-shaped call (8 kHz in and out, marks acknowledge playback).

use std::time::Duration;

use parley_codecs::SampleRate;

/// Everything the [`crate::Call`] core needs to know about a call, fixed at creation.
#[derive(Debug, Clone, PartialEq)]
pub struct CallConfig {
    /// Rate of the caller audio handed to [`crate::Input::CallerAudio`].
    pub input_rate: SampleRate,
    /// Rate of the agent audio handed to [`crate::Input::AgentAudio`] and sent to the transport.
    pub output_rate: SampleRate,
    pub vad: VadConfig,
    pub endpointing: EndpointingConfig,
    pub interruption: InterruptionConfig,
    pub playback: PlaybackConfig,
    /// Silence (nobody speaking, agent idle) after which [`crate::Event::IdleTimeout`] fires
    /// (the agent's `silenceDetection.timeoutSeconds` / `maxIdleTimeSeconds`).
    pub max_idle: Option<Duration>,
    /// Call length after which [`crate::Event::MaxDurationReached`] fires (`maxDurationSeconds`).
    pub max_duration: Option<Duration>,
    /// Emit the caller's audio as 16 kHz [`parley_codecs::Frame`]s ([`crate::Output::CallerAudio`])
    /// for a speech-to-text consumer. Off by default: resample only where a consumer needs it.
    pub forward_caller_audio: bool,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            input_rate: SampleRate::Hz8000,
            output_rate: SampleRate::Hz8000,
            vad: VadConfig::default(),
            endpointing: EndpointingConfig::default(),
            interruption: InterruptionConfig::default(),
            playback: PlaybackConfig::default(),
            max_idle: None,
            max_duration: None,
            forward_caller_audio: false,
        }
    }
}

/// Voice activity detection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// webrtc-vad aggressiveness, 0 (quality) ..= 3 (very aggressive).
    pub aggressiveness: u8,
    /// VAD frame length: 10, 20 or 30 ms.
    pub frame_ms: u32,
    /// Run the VAD on audio resampled to 16 kHz instead of at the input's own rate.
    /// Off by default: webrtc-vad works internally at 8 kHz, so a telephone call gains
    /// nothing from upsampling first and pays for the resampler.
    pub wideband: bool,
    /// Frames quieter than this (dBFS, RMS) are never speech.
    pub min_level_dbfs: f32,
    /// Frames must stand this many dB above the tracked noise floor to count as speech.
    pub noise_margin_db: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            aggressiveness: 3,
            frame_ms: 20,
            wideband: false,
            min_level_dbfs: -55.0,
            noise_margin_db: 9.0,
        }
    }
}

/// When does the caller's turn start and end (the agent's `endpointing`).
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointingConfig {
    /// Speech must accumulate this long before a turn starts (filters clicks and blips).
    pub min_speech_ms: u32,
    /// Silence after speech that ends the turn (`endpointing.silenceDurationMs`, default 700).
    pub silence_ms: u32,
    /// Gaps in speech shorter than this are bridged: they neither break a speech start
    /// nor count as the end of speech.
    pub hangover_ms: u32,
}

impl Default for EndpointingConfig {
    fn default() -> Self {
        Self {
            min_speech_ms: 100,
            silence_ms: 700,
            hangover_ms: 120,
        }
    }
}

/// `interruption.sensitivity` of the agent object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sensitivity {
    Low,
    #[default]
    Medium,
    High,
}

impl Sensitivity {
    /// Open-mouth (vowel-like) speech needed before a barge-in fires, in ms.
    pub fn voiced_threshold_ms(self) -> u32 {
        match self {
            Sensitivity::High => 40,
            Sensitivity::Medium => 60,
            Sensitivity::Low => 120,
        }
    }

    /// Any speech this long interrupts, whatever it sounds like: no backchannel lasts this long.
    pub fn any_speech_threshold_ms(self) -> u32 {
        match self {
            Sensitivity::High => 300,
            Sensitivity::Medium => 400,
            Sensitivity::Low => 600,
        }
    }
}

/// Barge-in settings (the agent's `interruption`).
#[derive(Debug, Clone, PartialEq)]
pub struct InterruptionConfig {
    pub enabled: bool,
    pub sensitivity: Sensitivity,
    /// Caller speech in the first `protection_ms` of an agent utterance never interrupts.
    pub protection_ms: u32,
}

impl Default for InterruptionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sensitivity: Sensitivity::Medium,
            protection_ms: 200,
        }
    }
}

/// How the transport tells us what the caller has heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackAck {
    /// The transport echoes marks when playback reaches them (Twilio Media Streams).
    Marks,
    /// Audio plays as it is sent (RTP, WebRTC): the send schedule is the play schedule.
    Sent,
}

/// Outbound pacing.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaybackConfig {
    /// How far ahead of real time audio may be sent (≤ this much is queued at the transport,
    /// and so at most this much is lost to a `clear` on barge-in).
    pub lead_ms: u32,
    /// A mark goes out after this much audio (and at the end of each utterance).
    pub mark_interval_ms: u32,
    pub ack: PlaybackAck,
    /// Agent audio the core can hold, in ms at the output rate; beyond it
    /// [`crate::Input::AgentAudio`] reports a full queue and the shell keeps the rest.
    pub queue_ms: u32,
    /// With [`PlaybackAck::Marks`], how long past the scheduled end we wait for the last mark
    /// before treating the utterance as played (a transport that never echoes must not
    /// leave the call stuck in "agent speaking").
    pub ack_grace_ms: u32,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            lead_ms: 100,
            mark_interval_ms: 100,
            ack: PlaybackAck::Marks,
            queue_ms: 4000,
            ack_grace_ms: 2000,
        }
    }
}

/// A setting outside what the core supports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("vad.aggressiveness must be 0..=3, got {0}")]
    Aggressiveness(u8),
    #[error("vad.frame_ms must be 10, 20 or 30, got {0}")]
    VadFrame(u32),
    #[error("{field} must be in {min}..={max}, got {value}")]
    Range {
        field: &'static str,
        min: u32,
        max: u32,
        value: u32,
    },
}

impl CallConfig {
    /// Checks the ranges the core relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vad.aggressiveness > 3 {
            return Err(ConfigError::Aggressiveness(self.vad.aggressiveness));
        }
        if !matches!(self.vad.frame_ms, 10 | 20 | 30) {
            return Err(ConfigError::VadFrame(self.vad.frame_ms));
        }
        let range = |field, value, min, max| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::Range {
                    field,
                    min,
                    max,
                    value,
                })
            }
        };
        range(
            "endpointing.silence_ms",
            self.endpointing.silence_ms,
            100,
            5000,
        )?;
        range(
            "endpointing.min_speech_ms",
            self.endpointing.min_speech_ms,
            0,
            2000,
        )?;
        range(
            "endpointing.hangover_ms",
            self.endpointing.hangover_ms,
            0,
            1000,
        )?;
        range("playback.lead_ms", self.playback.lead_ms, 20, 1000)?;
        range(
            "playback.mark_interval_ms",
            self.playback.mark_interval_ms,
            20,
            5000,
        )?;
        range("playback.queue_ms", self.playback.queue_ms, 100, 60_000)?;
        range(
            "interruption.protection_ms",
            self.interruption.protection_ms,
            0,
            5000,
        )?;
        Ok(())
    }
}
