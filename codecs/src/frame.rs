//! The engine's fixed internal audio frame and the sample rates Parley speaks.
//!
//! Everything inside the engine is 16 kHz mono `i16` in 20 ms frames: one
//! fixed shape means no per-frame length checks, no allocation, and a frame
//! can be copied by value through lock-free queues. Edges (G.711 at 8 kHz,
//! Opus at 48 kHz, files at any rate) convert to and from this shape.

/// A sample rate Parley can resample between.
///
/// A closed set instead of a bare `u32`, so that an unsupported rate is
/// rejected once at the edge ([`SampleRate::from_hz`]) and every later stage
/// can rely on integer samples-per-millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SampleRate {
    /// Narrowband telephony (G.711).
    Hz8000,
    /// Wideband: the engine's internal rate.
    Hz16000,
    /// Super-wideband.
    Hz24000,
    /// Fullband: Opus's native rate.
    Hz48000,
}

impl SampleRate {
    /// All supported rates, lowest first (handy for exhaustive tests).
    pub const ALL: [SampleRate; 4] = [
        SampleRate::Hz8000,
        SampleRate::Hz16000,
        SampleRate::Hz24000,
        SampleRate::Hz48000,
    ];

    /// The rate in hertz.
    pub const fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8_000,
            SampleRate::Hz16000 => 16_000,
            SampleRate::Hz24000 => 24_000,
            SampleRate::Hz48000 => 48_000,
        }
    }

    /// The rate for `hz`, or `None` if Parley does not support it.
    pub const fn from_hz(hz: u32) -> Option<Self> {
        match hz {
            8_000 => Some(SampleRate::Hz8000),
            16_000 => Some(SampleRate::Hz16000),
            24_000 => Some(SampleRate::Hz24000),
            48_000 => Some(SampleRate::Hz48000),
            _ => None,
        }
    }

    /// Samples (per channel) in one millisecond; exact for every supported rate.
    pub const fn samples_per_ms(self) -> usize {
        (self.hz() / 1000) as usize
    }

    /// Samples (per channel) in `ms` milliseconds.
    pub const fn samples_in(self, ms: u32) -> usize {
        self.samples_per_ms() * ms as usize
    }
}

impl std::fmt::Display for SampleRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz", self.hz())
    }
}

/// Duration of one engine frame. 20 ms is the usual RTP packetisation for
/// both G.711 and Opus, so one engine frame maps to one packet.
pub const FRAME_MS: u32 = 20;
/// The engine's internal sample rate.
pub const FRAME_RATE: SampleRate = SampleRate::Hz16000;
/// Samples in one engine frame (16 kHz × 20 ms).
pub const FRAME_SAMPLES: usize = FRAME_RATE.samples_in(FRAME_MS);

/// One 20 ms frame of 16 kHz mono audio.
///
/// A fixed-size array (640 bytes) rather than a `Vec` so a frame is `Copy`,
/// lives on the stack or inline in a ring buffer, and never allocates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The samples, oldest first.
    pub samples: [i16; FRAME_SAMPLES],
}

impl Frame {
    /// A frame of digital silence.
    pub const fn silent() -> Self {
        Frame {
            samples: [0; FRAME_SAMPLES],
        }
    }

    /// Copies a frame out of `samples`, which must hold exactly
    /// [`FRAME_SAMPLES`] samples; any other length is a framing bug upstream
    /// and is reported as `None` instead of being padded or truncated silently.
    pub fn from_slice(samples: &[i16]) -> Option<Self> {
        let samples: [i16; FRAME_SAMPLES] = samples.try_into().ok()?;
        Some(Frame { samples })
    }

    /// Sum of squared samples. `u64` cannot overflow: 320 × 32768² < 2⁴⁰.
    pub fn energy(&self) -> u64 {
        self.samples
            .iter()
            .map(|&s| {
                let s = i64::from(s);
                (s * s) as u64
            })
            .sum()
    }

    /// Root-mean-square level in sample units (0 ..= 32768).
    pub fn rms(&self) -> f32 {
        (self.energy() as f64 / FRAME_SAMPLES as f64).sqrt() as f32
    }

    /// RMS level in dBFS (0 dB = full-scale square wave); silence gives
    /// `f32::NEG_INFINITY`. Useful for level meters and VAD thresholds.
    pub fn dbfs(&self) -> f32 {
        20.0 * (self.rms() / 32768.0).log10()
    }

    /// Largest absolute sample value (as `u16`, since |−32768| does not fit `i16`).
    pub fn peak(&self) -> u16 {
        self.samples
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap_or(0)
    }

    /// True if every sample is zero.
    pub fn is_silent(&self) -> bool {
        self.samples.iter().all(|&s| s == 0)
    }
}

impl Default for Frame {
    fn default() -> Self {
        Frame::silent()
    }
}

impl std::fmt::Debug for Frame {
    // 320 numbers are useless in a log line; show the level instead.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("rms", &self.rms())
            .field("peak", &self.peak())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_agree() {
        assert_eq!(FRAME_SAMPLES, 320);
        assert_eq!(FRAME_RATE.samples_in(FRAME_MS), FRAME_SAMPLES);
        assert_eq!(std::mem::size_of::<Frame>(), 640);
    }

    #[test]
    fn rate_round_trips() {
        for rate in SampleRate::ALL {
            assert_eq!(SampleRate::from_hz(rate.hz()), Some(rate));
            assert_eq!(rate.samples_per_ms() * 1000, rate.hz() as usize);
        }
        assert_eq!(SampleRate::from_hz(44_100), None);
        assert_eq!(SampleRate::from_hz(0), None);
        assert_eq!(SampleRate::Hz8000.samples_in(20), 160);
        assert_eq!(SampleRate::Hz48000.samples_in(20), 960);
        assert_eq!(SampleRate::Hz24000.to_string(), "24000 Hz");
    }

    #[test]
    fn from_slice_requires_exact_length() {
        assert!(Frame::from_slice(&[0; FRAME_SAMPLES - 1]).is_none());
        assert!(Frame::from_slice(&[0; FRAME_SAMPLES + 1]).is_none());
        let data: Vec<i16> = (0..FRAME_SAMPLES as i16).collect();
        let f = Frame::from_slice(&data).unwrap();
        assert_eq!(&f.samples[..], &data[..]);
    }

    #[test]
    fn levels() {
        let s = Frame::silent();
        assert!(s.is_silent());
        assert_eq!(s.energy(), 0);
        assert_eq!(s.rms(), 0.0);
        assert_eq!(s.dbfs(), f32::NEG_INFINITY);
        assert_eq!(Frame::default(), s);

        // Full-scale square wave: worst case for overflow, and 0 dBFS.
        let mut sq = Frame::silent();
        for (i, x) in sq.samples.iter_mut().enumerate() {
            *x = if i % 2 == 0 { i16::MIN } else { i16::MAX };
        }
        assert_eq!(sq.peak(), 32768);
        assert!((sq.rms() - 32767.5).abs() < 1.0);
        assert!(sq.dbfs().abs() < 0.01);

        let mut c = Frame::silent();
        c.samples.fill(-100);
        assert_eq!(c.energy(), 100 * 100 * FRAME_SAMPLES as u64);
        assert_eq!(c.rms(), 100.0);
        assert!(format!("{c:?}").contains("rms"));
    }
}
