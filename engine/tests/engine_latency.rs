//! Engine-added turn latency, in virtual time, with zero-latency providers.
//!
//! The [`Call`] core is driven directly (no I/O, no clock): the caller's audio arrives in
//! 20 ms chunks, each at the instant its last sample was spoken; the moment the core emits
//! [`Event::TurnEnded`], a reply is pushed ([`Input::AgentAudio`] + [`Input::AgentAudioEnd`])
//! as an instant STT → LLM → TTS chain would. The transport plays agent audio in real time
//! and echoes marks when it reaches them (Twilio's behaviour).
//!
//! **Engine-added latency** = (first [`Output::Audio`] of the reply) − (end of the caller's
//! last speech frame) − `endpointing.silence_ms`: what the core adds on top of the silence
//! the agent's settings ask it to wait for.
//!
//! # The expected figure
//!
//! - The endpointer counts silence from the end of the last frame the speech gate called
//!   speech and ends the turn on the frame that completes `silence_ms` of it
//!   (`EndpointEvent::TurnEnded`). `hangover_ms` is *not* added: it only decides when
//!   `SpeechStopped` is reported and which gaps are bridged, inside the same silence count.
//!   `min_speech_ms` only delays the *start* of a turn. (A hangover shorter than the
//!   caller's own short pauses can end a turn *early*, never late: after such a pause,
//!   speech must last `min_speech_ms` again to count, so a short last word is not waited
//!   for.)
//! - Decisions fall on VAD-frame boundaries (`vad.frame_ms`, 20 ms): when speech ends
//!   inside a frame the turn end moves by less than one frame either way (the granularity).
//! - Agent audio pushed at the turn end leaves in the same `handle_input`: playback anchors
//!   its schedule at `now` and sends the first `lead_ms` at once.
//! - The VAD behind a resampler (`vad.wideband` on 8 kHz input) hears the audio
//!   `delay_samples` late (the FFT kind: 10 ms at 20 ms chunks), and its 20 ms grid is then
//!   offset by that delay from the caller's chunks: the last speech frame ends up to one
//!   frame after the speech does, and is classified one delay after it ends.
//!
//! So, with speech that ends on a 20 ms boundary (the `turns` fixture: 2.0 s and 5.0 s,
//! followed by digital silence, which the level gate never calls speech, so webrtc-vad's
//! own overhang cannot extend it):
//!
//! | path | engine-added |
//! |---|---|
//! | 8 kHz in, VAD at 8 kHz (Twilio, the default) | **0 ms** |
//! | 16 kHz in, VAD at 16 kHz (direct socket) | **0 ms** |
//! | 8 kHz in, VAD at 16 kHz behind the FFT resampler | **20 ms** = 10 ms delay + 10 ms grid offset |
//!
//! and in general `0 ≤ added ≤ frame_ms + resampler delay` for frame-aligned speech ends.
//! This is virtual time: deterministic, not a timing test. The CPU time of the turn-end
//! path (the wall-clock part of the engine's contribution) is benched in
//! `benches/stages.rs` (`turn_end`), which also prints these figures once per run.
//!
//! Everything outside `mod tests` is shared with `benches/stages.rs` (`#[path]`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parley_engine::{Call, CallConfig, Event, Input, Output};

/// One caller turn, measured in call time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnLatency {
    /// End of the caller's last speech frame (ground truth).
    pub speech_end: Duration,
    /// Where the core put the end of speech ([`Event::TurnEnded`]'s `speech_end`).
    pub detected_end: Duration,
    /// When [`Event::TurnEnded`] came out.
    pub turn_ended: Duration,
    /// When the reply's first [`Output::Audio`] came out.
    pub first_audio: Duration,
    /// `endpointing.silence_ms`.
    pub silence: Duration,
}

impl TurnLatency {
    /// First reply audio − end of speech − silence threshold, in ms.
    pub fn engine_added_ms(&self) -> i64 {
        ms(self.first_audio) - ms(self.speech_end) - ms(self.silence)
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Runs `caller` (at `cfg.input_rate`) through a call, replying with `reply` (at
/// `cfg.output_rate`) the instant each turn ends. `speech_ends` are the true ends of the
/// caller's speech spans; each turn is measured from the last one before it ended.
pub fn turn_latencies(
    cfg: &CallConfig,
    caller: &[i16],
    speech_ends: &[Duration],
    reply: &[i16],
) -> Vec<TurnLatency> {
    let t0 = Instant::now();
    let mut call = Call::new(cfg.clone(), t0).expect("valid call config");
    let chunk = (cfg.input_rate.hz() / 50) as usize;
    let mut sim = Sim {
        t0,
        out_rate: u64::from(cfg.output_rate.hz()),
        silence: Duration::from_millis(u64::from(cfg.endpointing.silence_ms)),
        speech_ends,
        reply,
        utterance: 0,
        pending: None,
        play_end: Duration::ZERO,
        marks: VecDeque::new(),
        turns: Vec::new(),
    };
    let total_ms = (caller.len() / chunk) as u64 * 20;
    // 1 ms steps: caller chunks on 20 ms boundaries, mark echoes and core deadlines between.
    for t in 1..=total_ms {
        let at = Duration::from_millis(t);
        let now = t0 + at;
        let mut fed = false;
        while sim.marks.front().is_some_and(|&(due, _)| due <= at) {
            let (_, m) = sim.marks.pop_front().unwrap();
            call.handle_input(now, Input::MarkAck(m)).unwrap();
            sim.drain(&mut call, at);
            fed = true;
        }
        if t % 20 == 0 {
            let i = (t / 20 - 1) as usize * chunk;
            call.handle_input(now, Input::CallerAudio(&caller[i..i + chunk]))
                .unwrap();
            sim.drain(&mut call, at);
            fed = true;
        }
        if !fed && call.poll_timeout().is_some_and(|d| d <= now) {
            call.handle_input(now, Input::Timeout).unwrap();
            sim.drain(&mut call, at);
        }
    }
    sim.turns
}

struct Sim<'a> {
    t0: Instant,
    out_rate: u64,
    silence: Duration,
    speech_ends: &'a [Duration],
    reply: &'a [i16],
    utterance: u32,
    /// A turn that ended and waits for its first reply frame: (detected end, turn end).
    pending: Option<(Duration, Duration)>,
    /// When the transport will have played what it has (call time).
    play_end: Duration,
    /// Marks the transport will echo: (when, position).
    marks: VecDeque<(Duration, u64)>,
    turns: Vec<TurnLatency>,
}

impl Sim<'_> {
    fn drain(&mut self, call: &mut Call, at: Duration) {
        let now = self.t0 + at;
        while let Some(out) = call.poll_output() {
            match out {
                Output::Event(Event::TurnEnded { speech_end, .. }) => {
                    // The instant provider: the whole reply, now.
                    self.utterance += 1;
                    self.pending = Some((speech_end, at));
                    let utterance = self.utterance;
                    call.handle_input(
                        now,
                        Input::AgentAudio {
                            utterance,
                            samples: self.reply,
                        },
                    )
                    .expect("reply fits the agent-audio queue");
                    call.handle_input(now, Input::AgentAudioEnd { utterance })
                        .unwrap();
                }
                Output::Audio(frame) => {
                    if let Some((detected_end, turn_ended)) = self.pending.take() {
                        let speech_end = self
                            .speech_ends
                            .iter()
                            .copied()
                            .filter(|&e| e <= turn_ended)
                            .max()
                            .unwrap_or_default();
                        self.turns.push(TurnLatency {
                            speech_end,
                            detected_end,
                            turn_ended,
                            first_audio: at,
                            silence: self.silence,
                        });
                    }
                    let start = self.play_end.max(at);
                    self.play_end = start
                        + Duration::from_nanos(
                            frame.samples().len() as u64 * 1_000_000_000 / self.out_rate,
                        );
                }
                Output::Mark(m) => self.marks.push_back((self.play_end, m)),
                Output::Clear => {
                    self.marks.clear();
                    self.play_end = at;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;

    use parley_codecs::{g711, wav, SampleRate};
    use parley_engine::{EndpointingConfig, VadConfig};

    /// A reply shorter than the 1 s pause between the fixture's two utterances, so it has
    /// played out (and the call is listening again) before the caller's second turn.
    const REPLY_MS: usize = 200;

    fn fixture(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn ulaw(name: &str) -> Vec<i16> {
        let bytes = fixture(name);
        let mut pcm = vec![0; bytes.len()];
        g711::decode_ulaw(&bytes, &mut pcm);
        pcm
    }

    fn pcm16k(name: &str) -> Vec<i16> {
        let w = wav::parse(&fixture(name)).unwrap();
        assert_eq!(w.sample_rate, 16_000);
        w.to_mono()
    }

    /// Ends of the speech spans of `turns` (fixtures/truth.json).
    fn turns_speech_ends() -> Vec<Duration> {
        let text = String::from_utf8(fixture("truth.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["turns"]["speech"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Duration::from_secs_f64(s[1].as_f64().unwrap()))
            .collect()
    }

    fn run(cfg: &CallConfig) -> Vec<TurnLatency> {
        let (caller, reply) = match cfg.input_rate {
            SampleRate::Hz8000 => (
                ulaw("turns.8k.ulaw"),
                ulaw("agent_reply.8k.ulaw")[..8 * REPLY_MS].to_vec(),
            ),
            SampleRate::Hz16000 => (
                pcm16k("turns.16k.wav"),
                pcm16k("agent_reply.16k.wav")[..16 * REPLY_MS].to_vec(),
            ),
            other => panic!("no fixture at {other:?}"),
        };
        let turns = turn_latencies(cfg, &caller, &turns_speech_ends(), &reply);
        assert_eq!(turns.len(), 2, "two turns in `turns`: {turns:?}");
        turns
    }

    fn added(turns: &[TurnLatency]) -> Vec<i64> {
        turns.iter().map(TurnLatency::engine_added_ms).collect()
    }

    /// The contract: within one VAD frame plus the resampler's delay of the threshold, and
    /// never early (the speech ends on a frame boundary).
    fn assert_within_contract(turns: &[TurnLatency], frame_ms: i64, delay_ms: i64) {
        for t in turns {
            let a = t.engine_added_ms();
            assert!(
                (0..=frame_ms + delay_ms).contains(&a),
                "engine added {a} ms (frame {frame_ms} ms, delay {delay_ms} ms): {t:?}"
            );
        }
    }

    #[test]
    fn telephone_path_adds_nothing_to_the_silence_threshold() {
        let cfg = CallConfig::default();
        let turns = run(&cfg);
        assert_within_contract(&turns, 20, 0);
        assert_eq!(added(&turns), [0, 0], "{turns:?}");
        for t in &turns {
            // The VAD found the true end, the turn ended one threshold later, and the reply's
            // first frame left in the same instant.
            assert_eq!(t.detected_end, t.speech_end, "{t:?}");
            assert_eq!(t.turn_ended, t.speech_end + t.silence, "{t:?}");
            assert_eq!(t.first_audio, t.turn_ended, "{t:?}");
        }
    }

    #[test]
    fn the_figure_does_not_depend_on_the_threshold_or_hangover() {
        // (The fixture's pause is 1 s: a longer threshold would merge its two turns.)
        for (silence_ms, hangover_ms) in [(300, 120), (500, 120), (700, 200), (700, 400)] {
            let cfg = CallConfig {
                endpointing: EndpointingConfig {
                    silence_ms,
                    hangover_ms,
                    ..Default::default()
                },
                ..Default::default()
            };
            let turns = run(&cfg);
            assert_eq!(
                added(&turns),
                [0, 0],
                "silence {silence_ms} ms, hangover {hangover_ms} ms: {turns:?}"
            );
        }
    }

    /// A hangover shorter than the speaker's own short pauses (espeak's, up to ~70 ms) can
    /// only make the turn end *earlier*: after such a pause, speech must last
    /// `min_speech_ms` again to count, so a short last word is not waited for.
    #[test]
    fn no_hangover_can_end_a_turn_early_never_late() {
        let cfg = CallConfig {
            endpointing: EndpointingConfig {
                hangover_ms: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        for t in run(&cfg) {
            assert!(t.engine_added_ms() <= 0, "{t:?}");
            assert_eq!(t.first_audio, t.detected_end + t.silence, "{t:?}");
        }
    }

    #[test]
    fn wideband_input_adds_nothing() {
        let cfg = CallConfig {
            input_rate: SampleRate::Hz16000,
            output_rate: SampleRate::Hz16000,
            ..Default::default()
        };
        let turns = run(&cfg);
        assert_within_contract(&turns, 20, 0);
        assert_eq!(added(&turns), [0, 0], "{turns:?}");
    }

    #[test]
    fn vad_behind_the_resampler_adds_its_delay_and_grid_offset() {
        let cfg = CallConfig {
            vad: VadConfig {
                wideband: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let turns = run(&cfg);
        // FFT resampler, 20 ms chunks: 10 ms delay (codecs::resample docs).
        assert_within_contract(&turns, 20, 10);
        assert_eq!(added(&turns), [20, 20], "{turns:?}");
        for t in &turns {
            // The last speech frame on the VAD's shifted grid ends 10 ms after the speech…
            assert_eq!(t.detected_end, t.speech_end + Duration::from_millis(10));
            // …and is classified 10 ms after it ends.
            assert_eq!(
                t.turn_ended,
                t.detected_end + t.silence + Duration::from_millis(10)
            );
            assert_eq!(t.first_audio, t.turn_ended);
        }
    }
}
