//! The per-call state machine: the sans-I/O heart of the engine.
//!
//! A [`Call`] never reads a clock, never sleeps and never touches a socket. The shell feeds
//! it time-stamped [`Input`]s through [`Call::handle_input`], drains [`Output`]s with
//! [`Call::poll_output`], and calls [`Call::handle_input`] with [`Input::Timeout`] when
//! [`Call::poll_timeout`] says so. Tests drive a call faster than real time simply by
//! making up the timestamps.
//!
//! On the per-frame path nothing allocates: every buffer is sized in [`Call::new`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parley_codecs::resample::{Resampler, ResamplerKind};
use parley_codecs::{Frame, SampleRate};

use crate::bargein::{BargeInDecision, BargeInDetector, SuppressReason};
use crate::config::{CallConfig, ConfigError};
use crate::endpointer::{EndpointEvent, Endpointer};
use crate::playback::{AgentFrame, Playback, PlaybackOutput, PushError};
use crate::trace::{Stage, TurnTrace};
use crate::vad::{FrameDecision, SpeechGate, Vad, VadError, WebRtcVad};

/// Who holds the floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnState {
    /// Nobody is speaking; waiting for the caller.
    Listening,
    /// The caller is speaking.
    UserSpeaking,
    /// The caller's turn ended; the agent's reply is being prepared.
    AgentThinking,
    /// Agent audio is going out.
    AgentSpeaking,
    /// The call is over; inputs are refused.
    Ended,
}

/// Something the shell hands the core. Audio is borrowed: the core copies what it keeps.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Caller audio at [`CallConfig::input_rate`], any length.
    CallerAudio(&'a [i16]),
    /// Agent (TTS) audio at [`CallConfig::output_rate`] for utterance `utterance`.
    AgentAudio { utterance: u32, samples: &'a [i16] },
    /// No more audio will come for this utterance.
    AgentAudioEnd { utterance: u32 },
    /// Drop this utterance (the shell cancelled the reply, e.g. the caller went on
    /// talking before it played); if it was playing, the transport is cleared.
    CancelAgentAudio { utterance: u32 },
    /// The transport echoed a mark ([`Output::Mark`]).
    MarkAck(u64),
    /// The caller pressed a key.
    Dtmf(char),
    /// A provider-side stage of the current turn happened now.
    Stamp(Stage),
    /// A provider-side stage happened at this time (read by the shell when it saw the
    /// event, so the trace does not include the hand-off to the core). Times after `now`
    /// count as `now`.
    StampAt(Stage, Instant),
    /// Nothing but time passed (see [`Call::poll_timeout`]).
    Timeout,
    /// The call is over (caller hung up, transport closed, shell decided).
    Hangup,
}

/// Something the core asks of the shell.
///
/// Audio travels inline (a frame is at most 1.9 KB) on purpose: boxing it would put an
/// allocation on the per-frame path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub enum Output {
    /// 20 ms of agent audio to send now, at [`CallConfig::output_rate`].
    Audio(AgentFrame),
    /// Send a playback mark; echo it back as [`Input::MarkAck`] when the transport says the
    /// audio before it has been played.
    Mark(u64),
    /// Drop whatever agent audio the transport still has buffered (Twilio `clear`).
    Clear,
    /// 20 ms of caller audio at 16 kHz for speech-to-text (when enabled).
    CallerAudio(Frame),
    Event(Event),
}

/// What happened, for the shell, the providers and the control plane. Times are offsets
/// from the start of the call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    StateChanged {
        from: TurnState,
        to: TurnState,
    },
    /// The caller started speaking at `at`.
    SpeechStarted {
        at: Duration,
    },
    /// The caller stopped speaking at `at` (reported after the hangover).
    SpeechStopped {
        at: Duration,
    },
    /// The caller's turn is over: reply now. Cancel nothing yet, but a new
    /// [`Event::SpeechStarted`] before the reply plays means the caller went on.
    TurnEnded {
        turn: u32,
        speech_start: Duration,
        speech_end: Duration,
    },
    /// The agent's utterance started playing.
    PlaybackStarted {
        utterance: u32,
    },
    /// The agent's utterance played out.
    PlaybackDone {
        utterance: u32,
        played_ms: u32,
    },
    /// The caller barged in: playback stopped; cancel TTS and LLM and keep only the first
    /// `played_ms` of the utterance in the conversation history.
    Interrupted {
        utterance: u32,
        played_ms: u32,
        onset: Duration,
    },
    /// The shell cancelled the utterance; the caller heard `played_ms` of it.
    PlaybackCancelled {
        utterance: u32,
        played_ms: u32,
    },
    /// Caller sound during agent speech that did not interrupt.
    BargeInSuppressed {
        reason: SuppressReason,
        speech_ms: u32,
    },
    /// Agent audio ran out mid-utterance and the caller heard a gap.
    Underrun {
        utterance: u32,
    },
    Dtmf {
        digit: char,
    },
    /// Nobody has spoken for `max_idle` (the agent's silence prompt is due).
    IdleTimeout,
    /// The call reached `max_duration`.
    MaxDurationReached,
    /// A turn is complete (reply played or interrupted, or superseded).
    TurnTrace(TurnTrace),
    /// The call is over (after [`Input::Hangup`]); its final counters. Always the last event.
    CallEnded(CallStats),
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Vad(#[from] VadError),
    #[error("resampler: {0}")]
    Resampler(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the call has ended")]
    Ended,
    #[error(transparent)]
    Playback(#[from] PushError),
    #[error("time went backwards")]
    TimeWentBackwards,
}

/// Largest block the input side handles at once: 20 ms at 48 kHz.
const MAX_BLOCK: usize = 960;
/// Largest VAD frame: 30 ms at 48 kHz.
const MAX_VAD_FRAME: usize = 1440;
/// Outputs one input produces in steady state (a frame, a mark, a few events; a burst of
/// `lead_ms` worth of frames when an utterance starts) fit in this without reallocating.
const OUTPUT_CAPACITY: usize = 24;

/// One call. See the module docs.
pub struct Call {
    cfg: CallConfig,
    start: Instant,
    now: Instant,
    state: TurnState,

    // Caller side.
    block: [i16; MAX_BLOCK],
    block_len: usize,
    block_samples: usize,
    /// Resampler to 16 kHz, when the VAD or an STT consumer needs it.
    to16k: Option<Resampler>,
    resampled: Vec<i16>,
    frame16: Frame,
    frame16_len: usize,
    vad_on_16k: bool,
    gate: SpeechGate<WebRtcVad>,
    vad_frame: [i16; MAX_VAD_FRAME],
    vad_len: usize,
    vad_frame_samples: usize,
    vad_rate: u32,
    /// VAD-rate samples classified so far.
    vad_pos: u64,
    /// Delay the resampler adds before the VAD, in VAD-rate samples.
    vad_delay: u64,
    endpointer: Endpointer,
    bargein: BargeInDetector,

    // Agent side.
    playback: Playback,

    // Turns.
    turns: u32,
    trace: Option<TurnTrace>,
    idle_since: Option<Instant>,
    idle_fired: bool,
    max_duration_fired: bool,

    out: VecDeque<Output>,
    pending_onset: Option<Duration>,
    /// Frames classified as speech, for tests and metrics.
    pub stats: CallStats,
}

/// Counters a call keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallStats {
    pub vad_frames: u64,
    pub speech_frames: u64,
    pub frames_sent: u64,
    pub underruns: u64,
    pub barge_ins: u64,
    pub suppressed_barge_ins: u64,
    /// Agent frames that left more than 20 ms after their scheduled send time.
    pub late_frames: u64,
    /// Replies that began while the caller was speaking (not yet long enough to hold the
    /// floor): the agent talked over the caller.
    pub talk_overs: u64,
}

impl Call {
    /// Creates a call that starts at `now`. All per-call memory is allocated here.
    pub fn new(cfg: CallConfig, now: Instant) -> Result<Self, CallError> {
        cfg.validate()?;
        let input_hz = cfg.input_rate.hz();
        // webrtc-vad cannot take 24 kHz; such input goes through the 16 kHz path.
        let vad_on_16k = cfg.vad.wideband || cfg.input_rate == SampleRate::Hz24000;
        let need16k = input_hz != 16_000 && (vad_on_16k || cfg.forward_caller_audio);
        let block_samples = (input_hz / 50) as usize;
        let to16k = if need16k {
            Some(
                // The FFT kind: a third of the sinc resampler's cost; its 10 ms delay does
                // not matter to VAD or STT (VAD positions are corrected for it below).
                Resampler::with_kind(
                    cfg.input_rate,
                    SampleRate::Hz16000,
                    block_samples,
                    ResamplerKind::Fft,
                )
                .map_err(|e| CallError::Resampler(e.to_string()))?,
            )
        } else {
            None
        };
        let resampled = vec![0; to16k.as_ref().map_or(0, |r| r.output_len())];
        let vad_rate = if vad_on_16k { 16_000 } else { input_hz };
        let vad_delay = if vad_on_16k {
            to16k.as_ref().map_or(0, |r| r.delay_samples() as u64)
        } else {
            0
        };
        let vad = WebRtcVad::new(vad_rate, cfg.vad.frame_ms, cfg.vad.aggressiveness)?;
        let vad_frame_samples = vad.frame_samples();
        let gate = SpeechGate::new(
            vad,
            cfg.vad.min_level_dbfs,
            cfg.vad.noise_margin_db,
            cfg.vad.frame_ms,
        );
        let playback = Playback::new(cfg.output_rate.hz(), &cfg.playback);
        Ok(Self {
            endpointer: Endpointer::new(cfg.endpointing.clone()),
            bargein: BargeInDetector::new(cfg.interruption.clone()),
            start: now,
            now,
            state: TurnState::Listening,
            block: [0; MAX_BLOCK],
            block_len: 0,
            block_samples,
            to16k,
            resampled,
            frame16: Frame::silent(),
            frame16_len: 0,
            vad_on_16k,
            gate,
            vad_frame: [0; MAX_VAD_FRAME],
            vad_len: 0,
            vad_frame_samples,
            vad_rate,
            vad_pos: 0,
            vad_delay,
            playback,
            turns: 0,
            trace: None,
            idle_since: Some(now),
            idle_fired: false,
            max_duration_fired: false,
            out: VecDeque::with_capacity(OUTPUT_CAPACITY),
            pending_onset: None,
            stats: CallStats::default(),
            cfg,
        })
    }

    pub fn config(&self) -> &CallConfig {
        &self.cfg
    }

    pub fn state(&self) -> TurnState {
        self.state
    }

    /// Time since the call started, on the shell's clock.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Free space for agent audio, in samples at the output rate.
    pub fn agent_audio_capacity(&self) -> usize {
        self.playback.capacity_left()
    }

    /// Caller audio time classified so far.
    pub fn caller_audio_time(&self) -> Duration {
        Duration::from_nanos(self.vad_pos * 1_000_000_000 / self.vad_rate as u64)
    }

    /// Handles one input at `now`. `now` must not go backwards.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), InputError> {
        if self.state == TurnState::Ended {
            return Err(InputError::Ended);
        }
        if now < self.now {
            return Err(InputError::TimeWentBackwards);
        }
        self.now = now;
        let result = match input {
            Input::CallerAudio(samples) => {
                self.caller_audio(samples);
                Ok(())
            }
            Input::AgentAudio { utterance, samples } => {
                let r = self.playback.push(utterance, samples);
                if r.is_ok() && self.playback.current() == Some(utterance) {
                    if let Some(t) = self.trace.as_mut() {
                        t.tts_first_audio.get_or_insert(now - self.start);
                    }
                }
                r.map_err(InputError::from)
            }
            Input::AgentAudioEnd { utterance } => {
                self.playback.end_of_audio(utterance);
                Ok(())
            }
            Input::CancelAgentAudio { utterance } => {
                if self.playback.current() == Some(utterance) {
                    let was_playing = self.playback.is_playing();
                    if let Some((utterance, played)) = self.playback.finish(now) {
                        let played_ms = self.playback.samples_to_ms(played);
                        if was_playing {
                            self.push_out(Output::Clear);
                        }
                        if let Some(t) = self.trace.as_mut() {
                            t.played_ms = Some(played_ms);
                        }
                        self.flush_trace();
                        self.emit(Event::PlaybackCancelled {
                            utterance,
                            played_ms,
                        });
                        if self.state == TurnState::AgentSpeaking {
                            self.set_state(TurnState::Listening);
                        }
                    }
                }
                Ok(())
            }
            Input::MarkAck(pos) => {
                self.playback.ack(now, pos);
                if let Some(t) = self.trace.as_mut() {
                    t.first_playback_ack.get_or_insert(now - self.start);
                }
                Ok(())
            }
            Input::Dtmf(digit) => {
                self.idle_since = Some(now);
                self.idle_fired = false;
                self.emit(Event::Dtmf { digit });
                Ok(())
            }
            Input::Stamp(stage) | Input::StampAt(stage, _) => {
                let when = match input {
                    Input::StampAt(_, t) => t.clamp(self.start, now),
                    _ => now,
                };
                let at = when - self.start;
                self.trace
                    .get_or_insert_with(|| TurnTrace::new(self.turns))
                    .stamp(stage, at);
                Ok(())
            }
            Input::Timeout => Ok(()),
            Input::Hangup => {
                if let Some((_, played)) = self.playback.finish(now) {
                    let played_ms = self.playback.samples_to_ms(played);
                    if let Some(t) = self.trace.as_mut() {
                        t.played_ms = Some(played_ms);
                    }
                }
                self.flush_trace();
                self.stats.late_frames = self.playback.late_frames();
                self.set_state(TurnState::Ended);
                self.emit(Event::CallEnded(self.stats));
                return Ok(());
            }
        };
        self.drive(now);
        result
    }

    /// Whether outputs are waiting to be polled.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Next output, if any. Drain after every [`Call::handle_input`].
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When the core next needs an [`Input::Timeout`], if it has a deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == TurnState::Ended {
            return None;
        }
        let mut next = self.playback.next_deadline(self.now);
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if let (Some(max), false) = (self.cfg.max_duration, self.max_duration_fired) {
            consider(self.start + max);
        }
        if let (Some(idle), Some(since), false) =
            (self.cfg.max_idle, self.idle_since, self.idle_fired)
        {
            consider(since + idle);
        }
        next
    }

    fn emit(&mut self, event: Event) {
        self.push_out(Output::Event(event));
    }

    fn push_out(&mut self, out: Output) {
        self.out.push_back(out);
    }

    fn set_state(&mut self, to: TurnState) {
        if self.state != to {
            let from = self.state;
            self.state = to;
            self.emit(Event::StateChanged { from, to });
            self.idle_since = if to == TurnState::Listening {
                Some(self.now)
            } else {
                None
            };
            self.idle_fired = false;
        }
    }

    /// Timers and paced playback.
    fn drive(&mut self, now: Instant) {
        if let (Some(max), false) = (self.cfg.max_duration, self.max_duration_fired) {
            if now >= self.start + max {
                self.max_duration_fired = true;
                self.emit(Event::MaxDurationReached);
            }
        }
        if let (Some(idle), Some(since), false) =
            (self.cfg.max_idle, self.idle_since, self.idle_fired)
        {
            if now >= since + idle {
                self.idle_fired = true;
                self.emit(Event::IdleTimeout);
            }
        }
        // The agent does not talk over a caller who holds the floor.
        if self.state != TurnState::UserSpeaking {
            while let Some(out) = self.playback.poll(now) {
                match out {
                    PlaybackOutput::Frame { frame, first, mark } => {
                        if first {
                            let utterance = frame.utterance;
                            let at = now - self.start;
                            let turn = self.turns;
                            // Starting while the caller is mid-word (too short yet to hold
                            // the floor) talks over them.
                            let talk_over = self.endpointer.speech_building().is_some();
                            if talk_over {
                                self.stats.talk_overs += 1;
                            }
                            let t = self.trace.get_or_insert_with(|| TurnTrace::new(turn));
                            t.first_audio_sent.get_or_insert(at);
                            t.talk_over |= talk_over;
                            self.bargein.reset();
                            self.set_state(TurnState::AgentSpeaking);
                            self.emit(Event::PlaybackStarted { utterance });
                        }
                        self.stats.frames_sent += 1;
                        self.stats.late_frames = self.playback.late_frames();
                        self.push_out(Output::Audio(frame));
                        if let Some(m) = mark {
                            self.push_out(Output::Mark(m));
                        }
                    }
                    PlaybackOutput::Underrun { utterance } => {
                        self.stats.underruns += 1;
                        self.emit(Event::Underrun { utterance });
                    }
                }
            }
        }
        if self.playback.is_done(now) {
            if let Some((utterance, played)) = self.playback.finish(now) {
                let played_ms = self.playback.samples_to_ms(played);
                if let Some(t) = self.trace.as_mut() {
                    t.playback_done = Some(now - self.start);
                    t.played_ms = Some(played_ms);
                }
                self.flush_trace();
                self.emit(Event::PlaybackDone {
                    utterance,
                    played_ms,
                });
                if self.state == TurnState::AgentSpeaking {
                    self.bargein.reset();
                    self.set_state(TurnState::Listening);
                }
            }
        }
    }

    fn flush_trace(&mut self) {
        if let Some(t) = self.trace.take() {
            self.emit(Event::TurnTrace(t));
        }
    }

    /// Maps a caller-audio position to call time: the frame just classified ends "now".
    fn audio_to_call_time(&self, pos: Duration) -> Duration {
        let audio_now = self.caller_audio_time();
        (self.now - self.start).saturating_sub(audio_now.saturating_sub(pos))
    }

    fn caller_audio(&mut self, mut samples: &[i16]) {
        while !samples.is_empty() {
            let take = (self.block_samples - self.block_len).min(samples.len());
            self.block[self.block_len..self.block_len + take].copy_from_slice(&samples[..take]);
            self.block_len += take;
            samples = &samples[take..];
            if self.block_len == self.block_samples {
                self.block_len = 0;
                self.caller_block();
            }
        }
    }

    /// One 20 ms block of caller audio at the input rate.
    fn caller_block(&mut self) {
        let n = self.block_samples;
        let mut resampled_len = 0;
        if let Some(r) = self.to16k.as_mut() {
            // A resampler error here would mean a bug in block sizing; audio is dropped
            // rather than the call taken down.
            resampled_len = r
                .process(&self.block[..n], &mut self.resampled)
                .unwrap_or(0);
        }
        let have16k = self.to16k.is_some();
        if self.cfg.forward_caller_audio {
            let len = if have16k { resampled_len } else { n };
            self.feed_frame16(have16k, len);
        }
        if self.vad_on_16k && have16k {
            self.feed_vad(true, resampled_len);
        } else {
            self.feed_vad(false, n);
        }
    }

    /// Moves `len` samples of the block (or of its 16 kHz version) into 16 kHz frames.
    fn feed_frame16(&mut self, resampled: bool, len: usize) {
        let mut off = 0;
        while off < len {
            let take = (self.frame16.samples.len() - self.frame16_len).min(len - off);
            let src = if resampled {
                &self.resampled[off..off + take]
            } else {
                &self.block[off..off + take]
            };
            self.frame16.samples[self.frame16_len..self.frame16_len + take].copy_from_slice(src);
            self.frame16_len += take;
            off += take;
            if self.frame16_len == self.frame16.samples.len() {
                self.frame16_len = 0;
                let f = self.frame16;
                self.push_out(Output::CallerAudio(f));
            }
        }
    }

    /// Moves `len` samples of the block (or of its 16 kHz version) into VAD frames and
    /// classifies each full one.
    fn feed_vad(&mut self, resampled: bool, len: usize) {
        let size = self.vad_frame_samples;
        let mut off = 0;
        while off < len {
            let take = (size - self.vad_len).min(len - off);
            let src = if resampled {
                &self.resampled[off..off + take]
            } else {
                &self.block[off..off + take]
            };
            self.vad_frame[self.vad_len..self.vad_len + take].copy_from_slice(src);
            self.vad_len += take;
            off += take;
            if self.vad_len == size {
                self.vad_len = 0;
                match self.gate.process(&self.vad_frame[..size]) {
                    Ok(d) => self.vad_decision(d),
                    Err(_) => debug_assert!(false, "VAD frame sizing"),
                }
            }
        }
    }

    fn vad_decision(&mut self, d: FrameDecision) {
        let frame_ms = self.cfg.vad.frame_ms;
        // Position of this frame's start in true caller-audio time (resampler delay removed).
        let start_pos = self.vad_pos.saturating_sub(self.vad_delay);
        self.vad_pos += self.vad_frame_samples as u64;
        let t = Duration::from_nanos(start_pos * 1_000_000_000 / self.vad_rate as u64);
        self.stats.vad_frames += 1;
        if d.speech {
            self.stats.speech_frames += 1;
        }

        if self.state == TurnState::AgentSpeaking {
            let protected = self.playback.started_at().is_some_and(|s| {
                self.now < s + Duration::from_millis(self.cfg.interruption.protection_ms as u64)
            });
            match self.bargein.push(t, frame_ms, &d, protected) {
                Some(BargeInDecision::Interrupt { onset, .. }) => {
                    self.interrupt(onset, t + Duration::from_millis(frame_ms as u64));
                }
                Some(BargeInDecision::Suppressed {
                    reason, speech_ms, ..
                }) => {
                    self.stats.suppressed_barge_ins += 1;
                    self.emit(Event::BargeInSuppressed { reason, speech_ms });
                }
                None => {}
            }
            return;
        }

        let mut events: [Option<EndpointEvent>; 3] = [None; 3];
        let mut n = 0;
        self.endpointer.push(t, frame_ms, d.speech, |e| {
            events[n] = Some(e);
            n += 1;
        });
        for e in events.into_iter().flatten() {
            self.endpoint_event(e);
        }
    }

    fn interrupt(&mut self, onset: Duration, speech_end: Duration) {
        let now = self.now;
        if let Some((utterance, played)) = self.playback.finish(now) {
            let played_ms = self.playback.samples_to_ms(played);
            self.stats.barge_ins += 1;
            self.push_out(Output::Clear);
            let onset_call = self.audio_to_call_time(onset);
            if let Some(t) = self.trace.as_mut() {
                t.interrupted = Some(now - self.start);
                t.played_ms = Some(played_ms);
                t.barge_in_onset = Some(onset_call);
            }
            self.flush_trace();
            self.emit(Event::Interrupted {
                utterance,
                played_ms,
                onset: onset_call,
            });
        }
        // The interruption is the start of the caller's next turn.
        self.endpointer.force_start(onset, speech_end);
        self.set_state(TurnState::UserSpeaking);
        let at = self.audio_to_call_time(onset);
        self.pending_onset = Some(at);
        self.emit(Event::SpeechStarted { at });
    }

    fn endpoint_event(&mut self, e: EndpointEvent) {
        match e {
            EndpointEvent::SpeechStarted { at } => {
                let at = self.audio_to_call_time(at);
                self.pending_onset = Some(at);
                self.emit(Event::SpeechStarted { at });
                self.set_state(TurnState::UserSpeaking);
            }
            EndpointEvent::SpeechStopped { at } => {
                let at = self.audio_to_call_time(at);
                self.emit(Event::SpeechStopped { at });
            }
            EndpointEvent::TurnEnded { start, end } => {
                // A reply still pending from the previous turn is superseded.
                self.flush_trace();
                self.turns += 1;
                let speech_start = self.audio_to_call_time(start);
                let speech_end = self.audio_to_call_time(end);
                let mut trace = TurnTrace::new(self.turns);
                trace.speech_start = Some(speech_start);
                trace.speech_end = Some(speech_end);
                trace.turn_end = Some(self.now - self.start);
                self.trace = Some(trace);
                self.pending_onset = None;
                self.emit(Event::TurnEnded {
                    turn: self.turns,
                    speech_start,
                    speech_end,
                });
                self.set_state(TurnState::AgentThinking);
            }
        }
    }
}
