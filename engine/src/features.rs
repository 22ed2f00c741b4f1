//! Cheap per-frame acoustic features (one pass over the samples, no allocation) and the
//! adaptive noise floor that the speech gate compares against.

/// Level and spectral tilt of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameFeatures {
    /// RMS level in dBFS (full scale = 32768); digital silence is -120.
    pub level_db: f32,
    /// Energy after a first-order pre-emphasis (x[n] - 0.97·x[n-1]) over the energy before
    /// it: near 0 for low-frequency hums, ~0.2–0.8 for vowels, ~1.9 for white noise.
    /// Independent of level, so it tells "closed-mouth murmur" from "open speech".
    pub tilt: f32,
}

impl FrameFeatures {
    /// One pass in integer arithmetic (the pre-emphasis coefficient is 31/32), which the
    /// compiler vectorizes; the only float work is one log per frame.
    pub fn of(frame: &[i16]) -> Self {
        let mut energy: i64 = 0;
        let mut emph: i64 = 0;
        let mut prev = frame.first().copied().unwrap_or(0) as i64;
        for &s in frame {
            let x = s as i64;
            energy += x * x;
            // 32·(x − 31/32·prev), squared: 1024 × the pre-emphasized energy.
            let d = 32 * x - 31 * prev;
            emph += d * d;
            prev = x;
        }
        if frame.is_empty() || energy <= 0 {
            return Self {
                level_db: -120.0,
                tilt: 0.0,
            };
        }
        let mean = energy as f64 / frame.len() as f64;
        let level_db = (10.0 * (mean / (32768.0 * 32768.0)).log10()).max(-120.0) as f32;
        Self {
            level_db,
            tilt: (emph as f64 / 1024.0 / energy as f64) as f32,
        }
    }
}

/// A noise-floor estimate that falls at once to a quieter frame and rises slowly, so it
/// follows the background between words and not the speech itself.
#[derive(Debug, Clone)]
pub struct NoiseFloor {
    level_db: f32,
    rise_db_per_frame: f32,
    fast_rise_db_per_frame: f32,
    fast_frames_left: u32,
    seeded: bool,
}

impl NoiseFloor {
    /// Where the floor starts before the first frame.
    pub const INITIAL_DB: f32 = -70.0;
    /// The first frame seeds the floor, but never above this: a call that opens with
    /// speech must not take the speech for the background.
    pub const SEED_CAP_DB: f32 = -40.0;

    pub fn new(frame_ms: u32) -> Self {
        let frames_per_s = 1000.0 / frame_ms.max(1) as f32;
        Self {
            level_db: Self::INITIAL_DB,
            // 3 dB/s in steady state; 40 dB/s during the first 0.5 s, to find a noisy line fast.
            rise_db_per_frame: 3.0 / frames_per_s,
            fast_rise_db_per_frame: 40.0 / frames_per_s,
            fast_frames_left: (frames_per_s / 2.0) as u32,
            seeded: false,
        }
    }

    pub fn level_db(&self) -> f32 {
        self.level_db
    }

    pub fn update(&mut self, frame_db: f32) {
        if !self.seeded {
            // A line's background is there from the first frame: start from it rather
            // than climbing to it (noise at the start of a call would otherwise pass).
            self.seeded = true;
            self.level_db = frame_db.clamp(-100.0, Self::SEED_CAP_DB);
            return;
        }
        let rise = if self.fast_frames_left > 0 {
            self.fast_frames_left -= 1;
            self.fast_rise_db_per_frame
        } else {
            self.rise_db_per_frame
        };
        if frame_db < self.level_db {
            self.level_db = frame_db.max(-100.0);
        } else {
            self.level_db += (frame_db - self.level_db).min(rise);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: f32, amp: f32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate).sin()) as i16)
            .collect()
    }

    #[test]
    fn level_of_full_scale_sine_is_minus_3_db() {
        let f = FrameFeatures::of(&sine(440.0, 8000.0, 32767.0, 160));
        assert!((f.level_db + 3.0).abs() < 0.2, "{f:?}");
    }

    #[test]
    fn tilt_separates_hum_from_vowel_like_content() {
        let hum = FrameFeatures::of(&sine(200.0, 8000.0, 8000.0, 160));
        let vowel = FrameFeatures::of(&sine(1500.0, 8000.0, 8000.0, 160));
        assert!(hum.tilt < 0.05, "{hum:?}");
        assert!(vowel.tilt > 0.5, "{vowel:?}");
    }

    #[test]
    fn silence_has_floor_level() {
        assert_eq!(FrameFeatures::of(&[0; 160]).level_db, -120.0);
        assert_eq!(FrameFeatures::of(&[]).level_db, -120.0);
    }

    #[test]
    fn floor_falls_fast_and_rises_slowly() {
        let mut nf = NoiseFloor::new(20);
        nf.update(-60.0);
        assert_eq!(nf.level_db(), -60.0);
        for _ in 0..25 {
            nf.update(-40.0);
        }
        // Fast start: reaches a steady -40 dB background within half a second.
        assert!((nf.level_db() + 40.0).abs() < 0.5, "{}", nf.level_db());
        // A second of loud speech lifts it by at most ~3 dB.
        for _ in 0..50 {
            nf.update(-10.0);
        }
        assert!(nf.level_db() < -36.5, "{}", nf.level_db());
        nf.update(-60.0);
        assert_eq!(nf.level_db(), -60.0);
    }

    #[test]
    fn a_loud_first_frame_does_not_seed_a_high_floor() {
        let mut nf = NoiseFloor::new(20);
        nf.update(-15.0);
        assert_eq!(nf.level_db(), NoiseFloor::SEED_CAP_DB);
    }
}
