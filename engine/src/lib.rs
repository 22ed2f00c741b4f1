//! Parley's media plane.
//!
//! The core is [`Call`], a sans-I/O state machine: time and audio are inputs; frames,
//! events and deadlines are outputs. Around it sit the pieces it is made of (VAD,
//! endpointer, barge-in detector, paced playback, latency trace) and the lock-free
//! hand-off between network tasks and the DSP threads that own calls ([`handoff`],
//! [`worker`]).

pub mod bargein;
pub mod call;
pub mod chunker;
pub mod config;
pub mod counters;
pub mod direct;
pub mod endpointer;
pub mod features;
pub mod handoff;
pub mod playback;
pub mod providers;
pub mod recorder;
pub mod session;
pub mod trace;
pub mod twilio;
pub mod vad;
pub mod worker;

pub use bargein::SuppressReason;
pub use call::{Call, CallError, CallStats, Event, Input, InputError, Output, TurnState};
pub use config::{
    CallConfig, EndpointingConfig, InterruptionConfig, PlaybackAck, PlaybackConfig, Sensitivity,
    VadConfig,
};
pub use playback::AgentFrame;
pub use trace::{Stage, TurnTrace};
