//! Barge-in detection while the agent speaks: does this caller sound mean "stop talking"?
//!
//! Two facts decide it fast and without false alarms:
//! - A real interruption ("wait", "no", "hold on") reaches an open vowel within a few tens
//!   of milliseconds; a backchannel ("mm-hm", "mhm") is a closed-mouth nasal hum whose
//!   energy sits below ~400 Hz. So open-vocal-tract speech ([`FrameDecision::open`]) past a
//!   short threshold interrupts at once, while closed-mouth speech must last longer than
//!   any backchannel does before it counts. Only open frames at full voice count (within
//!   [`FULL_VOICE_DB`] of the run's loudest frame): the breathy "h" inside "mm-hm" is open
//!   but weak.
//! - Noise is already rejected by the speech gate (VAD + level above the noise floor).

use std::time::Duration;

use crate::config::InterruptionConfig;
use crate::vad::FrameDecision;

/// Why a run of caller sound did not interrupt the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressReason {
    /// Speech-like, but short and closed-mouth: "mm-hm".
    Backchannel,
    /// Too short to be anything.
    Noise,
    /// It fell in the protection window at the start of the agent's utterance.
    Protected,
    /// `interruption.enabled` is false.
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeInDecision {
    /// Stop the agent: the caller began speaking at `onset`.
    Interrupt { onset: Duration, speech_ms: u32 },
    /// A run of caller sound ended without interrupting.
    Suppressed {
        onset: Duration,
        speech_ms: u32,
        reason: SuppressReason,
    },
}

#[derive(Debug, Clone, Copy)]
struct Run {
    onset: Duration,
    speech_ms: u32,
    open_ms: u32,
    gap_ms: u32,
    protected: bool,
    max_db: f32,
    /// This run already interrupted; it ends quietly.
    fired: bool,
}

/// An open frame counts toward a barge-in only this close to the run's loudest frame.
pub const FULL_VOICE_DB: f32 = 6.0;

/// Runs shorter than this are reported as noise rather than backchannel.
const BACKCHANNEL_MIN_MS: u32 = 60;
/// A gap this long ends a run of caller speech.
const RUN_GAP_MS: u32 = 60;

/// Watches caller frames while the agent speaks.
#[derive(Debug, Clone)]
pub struct BargeInDetector {
    cfg: InterruptionConfig,
    run: Option<Run>,
}

impl BargeInDetector {
    pub fn new(cfg: InterruptionConfig) -> Self {
        Self { cfg, run: None }
    }

    /// Forgets the current run (the agent stopped speaking).
    pub fn reset(&mut self) {
        self.run = None;
    }

    /// Onset and length of the caller speech run in progress, if any.
    pub fn current_run(&self) -> Option<(Duration, u32)> {
        self.run.map(|r| (r.onset, r.speech_ms))
    }

    /// Feeds one caller frame starting at `t`. `protected` says the agent's utterance is
    /// still inside its protection window.
    pub fn push(
        &mut self,
        t: Duration,
        frame_ms: u32,
        frame: &FrameDecision,
        protected: bool,
    ) -> Option<BargeInDecision> {
        if frame.speech {
            let run = self.run.get_or_insert(Run {
                onset: t,
                speech_ms: 0,
                open_ms: 0,
                gap_ms: 0,
                protected: false,
                max_db: f32::MIN,
                fired: false,
            });
            run.speech_ms += frame_ms;
            let level = frame.features.level_db;
            run.max_db = run.max_db.max(level);
            if frame.open && level >= run.max_db - FULL_VOICE_DB {
                run.open_ms += frame_ms;
            }
            run.gap_ms = 0;
            run.protected |= protected;
            if run.fired || !self.cfg.enabled || protected {
                return None;
            }
            let s = self.cfg.sensitivity;
            if run.open_ms >= s.voiced_threshold_ms()
                || run.speech_ms >= s.any_speech_threshold_ms()
            {
                run.fired = true;
                return Some(BargeInDecision::Interrupt {
                    onset: run.onset,
                    speech_ms: run.speech_ms,
                });
            }
            None
        } else {
            let run = self.run.as_mut()?;
            run.gap_ms += frame_ms;
            if run.gap_ms < RUN_GAP_MS {
                return None;
            }
            let run = self.run.take()?;
            if run.fired {
                return None;
            }
            let reason = if !self.cfg.enabled {
                SuppressReason::Disabled
            } else if run.protected {
                SuppressReason::Protected
            } else if run.speech_ms >= BACKCHANNEL_MIN_MS {
                SuppressReason::Backchannel
            } else {
                SuppressReason::Noise
            };
            Some(BargeInDecision::Suppressed {
                onset: run.onset,
                speech_ms: run.speech_ms,
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FrameFeatures;

    fn frame(speech: bool, open: bool) -> FrameDecision {
        FrameDecision {
            speech,
            open,
            features: FrameFeatures {
                level_db: -20.0,
                tilt: 0.3,
            },
        }
    }

    fn feed(
        det: &mut BargeInDetector,
        pattern: &[(bool, bool, u32)],
        protected: bool,
    ) -> Vec<(u64, BargeInDecision)> {
        let mut out = Vec::new();
        let mut t = 0u64;
        for &(speech, open, len) in pattern {
            for _ in 0..len / 20 {
                if let Some(d) = det.push(
                    Duration::from_millis(t),
                    20,
                    &frame(speech, open),
                    protected,
                ) {
                    out.push((t, d));
                }
                t += 20;
            }
        }
        out
    }

    #[test]
    fn open_speech_interrupts_within_the_voiced_threshold() {
        let mut det = BargeInDetector::new(InterruptionConfig::default());
        let out = feed(&mut det, &[(false, false, 100), (true, true, 200)], false);
        // Medium: 60 ms of open speech; onset at 100 ms, decided on the frame starting at 140 ms.
        assert_eq!(
            out,
            vec![(
                140,
                BargeInDecision::Interrupt {
                    onset: Duration::from_millis(100),
                    speech_ms: 60
                }
            )]
        );
    }

    #[test]
    fn closed_mouth_hum_is_a_backchannel() {
        let mut det = BargeInDetector::new(InterruptionConfig::default());
        let out = feed(&mut det, &[(true, false, 280), (false, false, 200)], false);
        assert_eq!(out.len(), 1);
        assert!(matches!(
            out[0].1,
            BargeInDecision::Suppressed {
                reason: SuppressReason::Backchannel,
                speech_ms: 280,
                ..
            }
        ));
    }

    #[test]
    fn long_closed_mouth_speech_still_interrupts() {
        let mut det = BargeInDetector::new(InterruptionConfig::default());
        let out = feed(&mut det, &[(true, false, 600)], false);
        assert!(matches!(
            out[0].1,
            BargeInDecision::Interrupt { speech_ms: 400, .. }
        ));
    }

    #[test]
    fn disabled_and_protected_never_interrupt() {
        let mut det = BargeInDetector::new(InterruptionConfig {
            enabled: false,
            ..Default::default()
        });
        let out = feed(&mut det, &[(true, true, 1000), (false, false, 100)], false);
        assert!(matches!(
            out.as_slice(),
            [(
                _,
                BargeInDecision::Suppressed {
                    reason: SuppressReason::Disabled,
                    ..
                }
            )]
        ));
        let mut det = BargeInDetector::new(InterruptionConfig::default());
        let out = feed(&mut det, &[(true, true, 1000), (false, false, 100)], true);
        assert!(matches!(
            out.as_slice(),
            [(
                _,
                BargeInDecision::Suppressed {
                    reason: SuppressReason::Protected,
                    ..
                }
            )]
        ));
    }

    #[test]
    fn weak_open_frames_inside_a_hum_do_not_count() {
        // "mm-hm": a loud closed hum, a breathy open "h" 10 dB down, the hum again.
        let mut det = BargeInDetector::new(InterruptionConfig::default());
        let mut t = 0;
        let mut push = |speech: bool, open: bool, level_db: f32| {
            let f = FrameDecision {
                speech,
                open,
                features: FrameFeatures {
                    level_db,
                    tilt: 0.0,
                },
            };
            let d = det.push(Duration::from_millis(t), 20, &f, false);
            t += 20;
            d
        };
        for _ in 0..4 {
            assert_eq!(push(true, false, -20.0), None);
        }
        for _ in 0..4 {
            assert_eq!(push(true, true, -31.0), None);
        }
        for _ in 0..3 {
            assert_eq!(push(true, false, -20.0), None);
        }
        for _ in 0..2 {
            assert_eq!(push(false, false, -90.0), None);
        }
        assert!(matches!(
            push(false, false, -90.0),
            Some(BargeInDecision::Suppressed {
                reason: SuppressReason::Backchannel,
                ..
            })
        ));
    }

    #[test]
    fn a_blip_is_noise() {
        let mut det = BargeInDetector::new(InterruptionConfig::default());
        let out = feed(&mut det, &[(true, false, 40), (false, false, 100)], false);
        assert!(matches!(
            out.as_slice(),
            [(
                _,
                BargeInDecision::Suppressed {
                    reason: SuppressReason::Noise,
                    ..
                }
            )]
        ));
    }
}
