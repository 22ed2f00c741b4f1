//! Pure DSP for Parley: no async, no I/O, no dependency on any other Parley crate.
//!
//! - [`g711`]: μ-law and A-law (ITU-T G.711), table driven.
//! - [`opus`]: 20 ms Opus frames at 48 kHz through libopus (the `opus` crate).
//! - [`resample`]: streaming, stateful resampling between 8, 16, 24 and 48 kHz (rubato).
//! - [`convert`]: sample-format conversion (i16 ⇄ f32, channel down-mix).
//! - [`wav`]: WAV bytes in and out (parsing only; reading files is the caller's job).
//! - [`frame`]: the engine's fixed internal frame (16 kHz mono i16, 20 ms).
//! - [`error`]: [`CodecError`], shared by the Opus and resampler wrappers.

pub mod convert;
pub mod error;
pub mod frame;
pub mod g711;
pub mod opus;
pub mod resample;
pub mod wav;

pub use error::CodecError;
pub use frame::{Frame, SampleRate, FRAME_MS, FRAME_RATE, FRAME_SAMPLES};
