//! Voice activity detection: a small trait, the webrtc-vad implementation, and the
//! [`SpeechGate`] that combines a VAD decision with the frame's level against a tracked
//! noise floor.
//!
//! webrtc-vad's `Vad` holds a raw pointer, so it is neither `Send` nor `Sync`: a call's DSP
//! state lives on the thread that created it (see `worker`).

use crate::features::{FrameFeatures, NoiseFloor};

/// Frame-level speech/non-speech decisions.
pub trait Vad {
    /// Sample rate the detector expects.
    fn sample_rate(&self) -> u32;
    /// Samples per frame it expects.
    fn frame_samples(&self) -> usize;
    /// Whether this frame holds speech. `frame.len()` must equal [`Vad::frame_samples`].
    fn is_speech(&mut self, frame: &[i16]) -> Result<bool, VadError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VadError {
    #[error("VAD frame must be {expected} samples, got {got}")]
    FrameLength { expected: usize, got: usize },
    #[error("webrtc-vad supports 8, 16, 32 and 48 kHz, not {0} Hz")]
    Rate(u32),
    #[error("webrtc-vad supports 10, 20 and 30 ms frames, not {0} ms")]
    FrameMs(u32),
    #[error("webrtc-vad aggressiveness must be 0..=3, not {0}")]
    Aggressiveness(u8),
}

/// The WebRTC GMM voice activity detector (libfvad, through the `webrtc-vad` crate).
pub struct WebRtcVad {
    inner: webrtc_vad::Vad,
    rate: u32,
    frame_samples: usize,
}

impl WebRtcVad {
    pub fn new(rate: u32, frame_ms: u32, aggressiveness: u8) -> Result<Self, VadError> {
        use webrtc_vad::{SampleRate, VadMode};
        let sr = match rate {
            8000 => SampleRate::Rate8kHz,
            16000 => SampleRate::Rate16kHz,
            32000 => SampleRate::Rate32kHz,
            48000 => SampleRate::Rate48kHz,
            other => return Err(VadError::Rate(other)),
        };
        if !matches!(frame_ms, 10 | 20 | 30) {
            return Err(VadError::FrameMs(frame_ms));
        }
        let mode = match aggressiveness {
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
            3 => VadMode::VeryAggressive,
            other => return Err(VadError::Aggressiveness(other)),
        };
        Ok(Self {
            inner: webrtc_vad::Vad::new_with_rate_and_mode(sr, mode),
            rate,
            frame_samples: (rate * frame_ms / 1000) as usize,
        })
    }
}

impl Vad for WebRtcVad {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    fn is_speech(&mut self, frame: &[i16]) -> Result<bool, VadError> {
        // The crate indexes `frame[0]`: check the length before it can panic.
        if frame.len() != self.frame_samples {
            return Err(VadError::FrameLength {
                expected: self.frame_samples,
                got: frame.len(),
            });
        }
        self.inner
            .is_voice_segment(frame)
            .map_err(|()| VadError::FrameLength {
                expected: self.frame_samples,
                got: frame.len(),
            })
    }
}

/// What the gate decided about one VAD frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameDecision {
    /// Speech: the VAD says voice *and* the level clears the absolute and noise-floor gates.
    pub speech: bool,
    /// The frame's spectrum looks like an open vocal tract (vowels, fricatives), as opposed
    /// to a closed-mouth hum ("mm", "mm-hm"). Only meaningful when `speech` is true.
    pub open: bool,
    pub features: FrameFeatures,
}

/// VAD plus level gates: webrtc-vad alone calls some steady noise speech; a frame must also
/// be loud enough in absolute terms and stand above the call's own noise floor.
pub struct SpeechGate<V: Vad = WebRtcVad> {
    vad: V,
    floor: NoiseFloor,
    min_level_db: f32,
    margin_db: f32,
    first: bool,
}

/// Pre-emphasis energy ratio above which a frame counts as "open" (see [`FrameDecision::open`]).
/// A nasal murmur (energy below ~400 Hz) sits near 0.05; vowels with formants at 1–2.5 kHz
/// sit at 0.2 and above.
pub const OPEN_TILT: f32 = 0.12;

impl<V: Vad> SpeechGate<V> {
    pub fn new(vad: V, min_level_dbfs: f32, noise_margin_db: f32, frame_ms: u32) -> Self {
        Self {
            vad,
            floor: NoiseFloor::new(frame_ms),
            min_level_db: min_level_dbfs,
            margin_db: noise_margin_db,
            first: true,
        }
    }

    pub fn frame_samples(&self) -> usize {
        self.vad.frame_samples()
    }

    pub fn sample_rate(&self) -> u32 {
        self.vad.sample_rate()
    }

    /// Classifies one frame of exactly [`SpeechGate::frame_samples`] samples.
    pub fn process(&mut self, frame: &[i16]) -> Result<FrameDecision, VadError> {
        let voiced = self.vad.is_speech(frame)?;
        let features = FrameFeatures::of(frame);
        // The first frame seeds the floor; judge it against the seeded value.
        if self.first {
            self.first = false;
            self.floor.update(features.level_db);
        }
        let floor = self.floor.level_db();
        let speech = voiced
            && features.level_db >= self.min_level_db
            && features.level_db >= floor + self.margin_db;
        self.floor.update(features.level_db);
        Ok(FrameDecision {
            speech,
            open: features.tilt >= OPEN_TILT,
            features,
        })
    }

    /// The tracked noise floor in dBFS.
    pub fn noise_floor_db(&self) -> f32 {
        self.floor.level_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_frame_length_without_panicking() {
        let mut vad = WebRtcVad::new(8000, 20, 3).unwrap();
        assert_eq!(vad.frame_samples(), 160);
        assert!(matches!(
            vad.is_speech(&[]),
            Err(VadError::FrameLength {
                expected: 160,
                got: 0
            })
        ));
        assert!(vad.is_speech(&[0; 161]).is_err());
        assert_eq!(vad.is_speech(&[0; 160]), Ok(false));
    }

    #[test]
    fn rejects_unsupported_settings() {
        assert_eq!(
            WebRtcVad::new(24000, 20, 3).err(),
            Some(VadError::Rate(24000))
        );
        assert_eq!(
            WebRtcVad::new(8000, 25, 3).err(),
            Some(VadError::FrameMs(25))
        );
        assert_eq!(
            WebRtcVad::new(8000, 20, 4).err(),
            Some(VadError::Aggressiveness(4))
        );
    }

    #[test]
    fn silence_is_never_speech() {
        let vad = WebRtcVad::new(16000, 10, 0).unwrap();
        let mut gate = SpeechGate::new(vad, -55.0, 9.0, 10);
        for _ in 0..100 {
            assert!(!gate.process(&[0; 160]).unwrap().speech);
        }
    }
}
