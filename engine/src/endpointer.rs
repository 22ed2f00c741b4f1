//! The endpointer: from frame-level speech decisions to speech start, speech end and the
//! end of the caller's turn. Pure and clock-free: every frame comes with its position in
//! the caller's audio, and every event carries the audio position it refers to.

use std::time::Duration;

use crate::config::EndpointingConfig;

/// What the endpointer saw. Positions are in caller-audio time (since the first caller sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointEvent {
    /// Speech confirmed (after `min_speech_ms`); `at` is where it began.
    SpeechStarted { at: Duration },
    /// Speech ended `hangover_ms` ago; `at` is the end of the last speech frame.
    SpeechStopped { at: Duration },
    /// `silence_ms` of silence followed the speech: the caller's turn is over.
    TurnEnded { start: Duration, end: Duration },
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    onset: Duration,
    speech_ms: u32,
    gap_ms: u32,
}

impl Candidate {
    fn new(onset: Duration) -> Self {
        Self {
            onset,
            speech_ms: 0,
            gap_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// No turn in progress; maybe a speech candidate building up.
    Idle { candidate: Option<Candidate> },
    /// A turn is in progress.
    Speaking {
        turn_start: Duration,
        last_speech_end: Duration,
        silence_ms: u32,
        /// SpeechStopped has been emitted for the current pause.
        paused: bool,
        /// Speech after a pause, not yet long enough to count as resumed.
        resume: Option<Candidate>,
    },
}

/// Turns VAD frames into [`EndpointEvent`]s.
#[derive(Debug, Clone)]
pub struct Endpointer {
    cfg: EndpointingConfig,
    state: State,
}

impl Endpointer {
    pub fn new(cfg: EndpointingConfig) -> Self {
        Self {
            cfg,
            state: State::Idle { candidate: None },
        }
    }

    /// Whether a turn is in progress.
    pub fn in_turn(&self) -> bool {
        matches!(self.state, State::Speaking { .. })
    }

    /// The caller is speaking right now but not yet long enough to hold the floor: the onset
    /// of that speech. Playback that starts now talks over the caller.
    pub fn speech_building(&self) -> Option<Duration> {
        match self.state {
            State::Idle { candidate: Some(c) } if c.gap_ms == 0 => Some(c.onset),
            _ => None,
        }
    }

    /// Forgets any candidate or turn in progress (used while the agent speaks: caller
    /// sounds then belong to the barge-in detector, not to a new turn).
    pub fn reset(&mut self) {
        self.state = State::Idle { candidate: None };
    }

    /// Starts a turn at `onset` without waiting for `min_speech_ms` (a confirmed barge-in
    /// already proved it is speech); `last_speech_end` is the end of the latest speech frame.
    pub fn force_start(&mut self, onset: Duration, last_speech_end: Duration) {
        self.state = State::Speaking {
            turn_start: onset,
            last_speech_end,
            silence_ms: 0,
            paused: false,
            resume: None,
        };
    }

    /// Feeds one frame that starts at `t` and lasts `frame_ms`.
    pub fn push(
        &mut self,
        t: Duration,
        frame_ms: u32,
        speech: bool,
        mut emit: impl FnMut(EndpointEvent),
    ) {
        let end = t + Duration::from_millis(frame_ms as u64);
        match &mut self.state {
            State::Idle { candidate } => {
                if speech {
                    let c = candidate.get_or_insert_with(|| Candidate::new(t));
                    c.speech_ms += frame_ms;
                    c.gap_ms = 0;
                    if c.speech_ms >= self.cfg.min_speech_ms {
                        let onset = c.onset;
                        emit(EndpointEvent::SpeechStarted { at: onset });
                        self.state = State::Speaking {
                            turn_start: onset,
                            last_speech_end: end,
                            silence_ms: 0,
                            paused: false,
                            resume: None,
                        };
                    }
                } else if let Some(c) = candidate {
                    c.gap_ms += frame_ms;
                    if c.gap_ms > self.cfg.hangover_ms {
                        *candidate = None;
                    }
                }
            }
            State::Speaking {
                turn_start,
                last_speech_end,
                silence_ms,
                paused,
                resume,
            } => {
                if speech {
                    if !*paused {
                        *last_speech_end = end;
                        *silence_ms = 0;
                        return;
                    }
                    // After a pause, speech must last min_speech_ms again to resume the turn,
                    // so a click in the pause does not restart the silence timer.
                    let c = resume.get_or_insert_with(|| Candidate::new(t));
                    c.speech_ms += frame_ms;
                    c.gap_ms = 0;
                    if c.speech_ms >= self.cfg.min_speech_ms {
                        emit(EndpointEvent::SpeechStarted { at: c.onset });
                        *last_speech_end = end;
                        *silence_ms = 0;
                        *paused = false;
                        *resume = None;
                        return;
                    }
                } else if let Some(c) = resume {
                    c.gap_ms += frame_ms;
                    if c.gap_ms > self.cfg.hangover_ms {
                        *resume = None;
                    }
                }
                // Silence keeps counting from the last confirmed speech.
                *silence_ms += frame_ms;
                if !*paused && *silence_ms >= self.cfg.hangover_ms {
                    *paused = true;
                    emit(EndpointEvent::SpeechStopped {
                        at: *last_speech_end,
                    });
                }
                if *silence_ms >= self.cfg.silence_ms {
                    if !*paused {
                        emit(EndpointEvent::SpeechStopped {
                            at: *last_speech_end,
                        });
                    }
                    emit(EndpointEvent::TurnEnded {
                        start: *turn_start,
                        end: *last_speech_end,
                    });
                    self.state = State::Idle { candidate: None };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Runs a pattern of (speech?, duration_ms) through 20 ms frames.
    fn run(cfg: EndpointingConfig, pattern: &[(bool, u64)]) -> Vec<EndpointEvent> {
        let mut ep = Endpointer::new(cfg);
        let mut out = Vec::new();
        let mut t = 0;
        for &(speech, len) in pattern {
            for _ in 0..len / 20 {
                ep.push(ms(t), 20, speech, |e| out.push(e));
                t += 20;
            }
        }
        out
    }

    #[test]
    fn one_utterance_gives_start_stop_and_turn_end() {
        let ev = run(
            EndpointingConfig::default(),
            &[(false, 500), (true, 1500), (false, 1000)],
        );
        assert_eq!(
            ev,
            vec![
                EndpointEvent::SpeechStarted { at: ms(500) },
                EndpointEvent::SpeechStopped { at: ms(2000) },
                EndpointEvent::TurnEnded {
                    start: ms(500),
                    end: ms(2000)
                },
            ]
        );
    }

    #[test]
    fn short_blips_do_not_start_a_turn() {
        let ev = run(
            EndpointingConfig::default(),
            &[(true, 60), (false, 200), (true, 40), (false, 1000)],
        );
        assert!(ev.is_empty(), "{ev:?}");
    }

    #[test]
    fn pause_shorter_than_silence_threshold_keeps_one_turn() {
        let ev = run(
            EndpointingConfig::default(),
            &[(true, 600), (false, 400), (true, 600), (false, 800)],
        );
        let turns: Vec<_> = ev
            .iter()
            .filter(|e| matches!(e, EndpointEvent::TurnEnded { .. }))
            .collect();
        assert_eq!(
            turns,
            vec![&EndpointEvent::TurnEnded {
                start: ms(0),
                end: ms(1600)
            }]
        );
    }

    #[test]
    fn a_click_in_the_pause_does_not_reset_the_silence_timer() {
        let ev = run(
            EndpointingConfig::default(),
            &[(true, 600), (false, 300), (true, 20), (false, 400)],
        );
        assert_eq!(
            ev.last(),
            Some(&EndpointEvent::TurnEnded {
                start: ms(0),
                end: ms(600)
            })
        );
    }

    #[test]
    fn gaps_within_hangover_are_bridged_at_speech_start() {
        let cfg = EndpointingConfig {
            min_speech_ms: 100,
            ..Default::default()
        };
        let ev = run(cfg, &[(true, 60), (false, 40), (true, 60), (false, 900)]);
        assert_eq!(ev[0], EndpointEvent::SpeechStarted { at: ms(0) });
    }

    #[test]
    fn silence_threshold_is_honoured_exactly() {
        let cfg = EndpointingConfig {
            silence_ms: 300,
            ..Default::default()
        };
        let mut ep = Endpointer::new(cfg);
        let mut turn_end_frame = None;
        for i in 0..30u64 {
            let speech = i < 10; // speech ends at 200 ms
            ep.push(ms(i * 20), 20, speech, |e| {
                if matches!(e, EndpointEvent::TurnEnded { .. }) {
                    turn_end_frame = Some(i);
                }
            });
        }
        // The frame starting at 480 ms completes 300 ms of silence (200..500 ms).
        assert_eq!(turn_end_frame, Some(24));
    }
}
