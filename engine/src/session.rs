//! The turn loop of one call: the async shell that joins a transport, the call core on a
//! DSP worker, and the STT / LLM / TTS providers.
//!
//! caller audio → core (VAD, endpointing) → STT → end of turn → LLM stream → sentence
//! chunks → TTS stream → core (paced playback) → transport. Barge-in cancels LLM and TTS at
//! once and the history keeps only what the caller heard (cut at the word the TTS said was
//! playing at `played_ms`).
//!
//! One tokio task per call runs [`run`]. It never touches DSP state: it exchanges data with
//! the core through the call's rings ([`crate::handoff`]) and is woken when outputs wait.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::call::{Event, Output};
use crate::chunker::SentenceChunker;
use crate::config::CallConfig;
use crate::handoff::{InMsg, NetworkEnd};
use crate::providers::{
    ChatMessage, ChatRequest, LlmEvent, LlmStream, Providers, Role, SttEvent, SttInput, SttRequest,
    SttStream, TtsEvent, TtsInput, TtsRequest, TtsStream,
};
use crate::trace::Stage;
use crate::worker::{WorkerError, WorkerPool};

/// How the agent behaves on a call (the engine-side image of the agent object).
#[derive(Clone)]
pub struct AgentSpec {
    pub call: CallConfig,
    pub providers: Providers,
    /// System prompt with `{{variables}}` already filled in.
    pub system_prompt: String,
    /// Spoken first when the agent speaks first.
    pub first_message: Option<String>,
    /// The agent hangs up after saying one of these.
    pub end_call_phrases: Vec<String>,
    /// Spoken when nobody has said anything for `call.max_idle`.
    pub idle_message: Option<String>,
    pub llm: ChatRequest,
    pub tts: TtsRequest,
    pub stt: SttRequest,
    /// Record the call here (stereo WAV: caller left, agent right), written as it runs.
    pub recording: Option<std::path::PathBuf>,
}

/// What happens on a transport.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportEvent {
    /// Caller audio at the call's input rate.
    Audio(Vec<i16>),
    /// The transport played up to this mark.
    MarkAck(u64),
    Dtmf(char),
    /// The far end is gone (or the transport gave up); the reason is for the record.
    Closed(String),
}

/// A media transport (Twilio Media Streams, RTP, WebRTC, a direct socket).
/// `recv` must be cancel-safe: the session polls it in a `select!`.
pub trait Transport: Send {
    fn recv(&mut self) -> impl Future<Output = TransportEvent> + Send;
    /// Sends 20 ms of agent audio at the call's output rate.
    fn send_audio(&mut self, samples: &[i16]) -> impl Future<Output = Result<(), String>> + Send;
    /// Asks to be told (as [`TransportEvent::MarkAck`]) when playback reaches this point.
    /// Transports that play on send ack at once or not at all.
    fn send_mark(&mut self, pos: u64) -> impl Future<Output = Result<(), String>> + Send;
    /// Drops agent audio buffered at the far end.
    fn send_clear(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Ends the call from our side.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// What the session reports while it runs (for the store, live transcripts, webhooks).
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A finished line of the conversation; `at` is time since the call started.
    Transcript {
        role: Role,
        text: String,
        at: Duration,
        interrupted: bool,
    },
    /// An interim hypothesis of what the caller is saying.
    Partial { text: String },
    /// Everything the call core reported (turns, barge-ins, traces, DTMF).
    Engine(Event),
    /// A provider failed; the caller heard an apology instead of silence.
    ProviderError { provider: String, message: String },
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub reason: String,
    pub history: Vec<ChatMessage>,
    pub turns: u32,
    /// The recording, when one was asked for and could be written: (path, duration ms).
    pub recording: Option<(std::path::PathBuf, u64)>,
    /// The core's final counters (frames, late frames, underruns, barge-ins), when it
    /// reported them before the session closed.
    pub stats: Option<crate::call::CallStats>,
    /// Provider failures during the call (each one was answered with an apology or skipped).
    pub provider_errors: u32,
    /// Events the observer could not take in time (it was full) and that were dropped.
    pub dropped_events: u64,
    /// Times the session's loop woke up: about one per message, frame and provider event.
    /// Far more than that (millions) would mean the loop spins on something always ready.
    pub wakeups: u64,
}

/// Said when a provider fails mid-turn, so the caller never hears dead air.
pub const APOLOGY: &str = "I'm sorry, I'm having trouble right now. Could you say that again?";

/// An agent reply in progress.
struct Reply {
    utterance: u32,
    llm: Option<LlmStream>,
    tts: TtsStream,
    chunker: SentenceChunker,
    /// Text handed to TTS so far.
    spoken: String,
    /// Word timings from TTS: (word, start ms in the utterance).
    words: Vec<(String, u32)>,
    /// Audio received from TTS and not yet taken by the core.
    audio: VecDeque<Vec<i16>>,
    audio_ms: u64,
    tts_done: bool,
    /// The TTS event channel is still open. A closed channel answers `None` at once, so
    /// polling it again would spin the loop for as long as the reply plays.
    tts_open: bool,
    end_sent: bool,
    sentences: u32,
    /// The user message this reply answers (put back if the reply is dropped unheard).
    answering: Option<String>,
    playing: bool,
    /// When its first frame went out.
    started_at: Option<Instant>,
    out_rate: u32,
    first_token_seen: bool,
}

impl Reply {
    /// The part of the reply the caller heard.
    fn heard(&self, played_ms: u32) -> String {
        if !self.words.is_empty() {
            return self
                .words
                .iter()
                .filter(|(_, start)| *start < played_ms)
                .map(|(w, _)| w.as_str())
                .collect::<Vec<_>>()
                .join(" ");
        }
        // No timings: cut proportionally, at a word boundary.
        if self.audio_ms == 0 {
            return String::new();
        }
        let frac = (played_ms as f64 / self.audio_ms as f64).min(1.0);
        let cut = (self.spoken.chars().count() as f64 * frac) as usize;
        let s: String = self.spoken.chars().take(cut).collect();
        match s.rfind(' ') {
            Some(i) if cut < self.spoken.chars().count() => s[..i].to_string(),
            _ => s,
        }
    }

    fn cancel(&mut self) {
        if let Some(l) = &self.llm {
            l.cancel.cancel();
        }
        self.tts.cancel.cancel();
        self.audio.clear();
    }
}

/// Waits on an optional receiver; never resolves when there is none.
async fn next<T>(rx: Option<&mut mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

struct Session<'a, T: Transport> {
    spec: &'a AgentSpec,
    transport: T,
    net: NetworkEnd,
    observer: mpsc::Sender<SessionEvent>,
    start: Instant,
    history: Vec<ChatMessage>,
    stt: Option<SttStream>,
    reply: Option<Reply>,
    pending_user: String,
    next_utterance: u32,
    turns: u32,
    hangup_after_playback: bool,
    ended: Option<String>,
    recorder: Option<crate::recorder::Recorder>,
    /// Control messages for the core that did not fit in its inbox yet, in order. Nothing
    /// may be dropped: a lost end-of-audio would leave the call "speaking" for good.
    outq: VecDeque<InMsg>,
    stats: Option<crate::call::CallStats>,
    wakeups: u64,
    provider_errors: std::cell::Cell<u32>,
    dropped_events: std::cell::Cell<u64>,
}

/// Runs a call on `pool` until the transport closes or the agent hangs up.
pub async fn run<T: Transport>(
    pool: &WorkerPool,
    spec: &AgentSpec,
    transport: T,
    observer: mpsc::Sender<SessionEvent>,
) -> Result<SessionSummary, WorkerError> {
    let mut cfg = spec.call.clone();
    cfg.forward_caller_audio = true;
    let net = pool.add_call(cfg)?;
    let mut start_errors = 0;
    let stt = match spec.providers.stt.start(spec.stt.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            start_errors += 1;
            let _ = observer.try_send(SessionEvent::ProviderError {
                provider: spec.providers.stt.name().to_string(),
                message: e.to_string(),
            });
            None
        }
    };
    let mut s = Session {
        spec,
        transport,
        net,
        observer,
        start: Instant::now(),
        history: vec![ChatMessage::new(Role::System, spec.system_prompt.clone())],
        stt,
        reply: None,
        pending_user: String::new(),
        next_utterance: 1,
        turns: 0,
        hangup_after_playback: false,
        ended: None,
        recorder: None,
        outq: VecDeque::new(),
        stats: None,
        wakeups: 0,
        provider_errors: std::cell::Cell::new(start_errors),
        dropped_events: std::cell::Cell::new(0),
    };
    if let Some(path) = &spec.recording {
        match crate::recorder::Recorder::create(path, spec.call.input_rate.hz()) {
            Ok(r) => s.recorder = Some(r),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot record the call"),
        }
    }
    s.run().await;
    let rate = spec.call.input_rate.hz() as u64;
    let recording = match s.recorder.take() {
        Some(r) => {
            let path = r.path().to_path_buf();
            match r.finish() {
                Ok(samples) => Some((path, samples * 1000 / rate)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "recording incomplete");
                    None
                }
            }
        }
        None => None,
    };
    Ok(SessionSummary {
        reason: s.ended.unwrap_or_default(),
        history: s.history,
        turns: s.turns,
        recording,
        stats: s.stats,
        provider_errors: s.provider_errors.get(),
        dropped_events: s.dropped_events.get(),
        wakeups: s.wakeups,
    })
}

impl<T: Transport> Session<'_, T> {
    async fn run(&mut self) {
        if let Some(first) = self
            .spec
            .first_message
            .clone()
            .filter(|m| !m.trim().is_empty())
        {
            self.speak(&first);
        }
        while self.ended.is_none() {
            self.flush_msgs();
            let retry =
                !self.outq.is_empty() || self.reply.as_ref().is_some_and(|r| !r.audio.is_empty());
            let (llm_rx, tts_rx) = match self.reply.as_mut() {
                Some(r) => (
                    r.llm.as_mut().map(|l| &mut l.events),
                    r.tts_open.then_some(&mut r.tts.events),
                ),
                None => (None, None),
            };
            tokio::select! {
                ev = self.transport.recv() => self.on_transport(ev).await,
                _ = self.net.ready() => self.drain_core().await,
                ev = next(self.stt.as_mut().map(|s| &mut s.events)) => self.on_stt(ev),
                ev = next(llm_rx) => self.on_llm(ev),
                ev = next(tts_rx) => self.on_tts(ev),
                // The core's agent-audio ring was full: try again shortly. (The timer is
                // made only when this branch runs: building one per loop costs a runtime
                // handle lookup on every frame.)
                _ = async { tokio::time::sleep(Duration::from_millis(10)).await }, if retry => {}
            }
            self.feed_audio();
            self.wakeups += 1;
        }
        // A reply cut off by the hang-up: keep what was heard (playback is real-time from
        // its first frame; the core stops counting once the call is over).
        if let Some(r) = self.reply.as_ref() {
            let u = r.utterance;
            let heard = r
                .started_at
                .map(|t| t.elapsed().as_millis().min(u32::MAX as u128) as u32);
            self.finish_reply(u, Some(heard.unwrap_or(0)));
        }
        if let Some(s) = &self.stt {
            s.cancel.cancel();
        }
        // The core must hear the hang-up, or its DSP worker would keep the call: wait for
        // room in its inbox (it drains every few milliseconds).
        self.outq.push_back(InMsg::Hangup);
        for _ in 0..500 {
            self.flush_msgs();
            if self.outq.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The core answers the hang-up with its final counters; wait briefly for them (the
        // worker services the call within a few milliseconds).
        let deadline = Instant::now() + Duration::from_millis(250);
        while self.stats.is_none() && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, self.net.ready()).await {
                Ok(()) => {
                    while let Some(out) = self.net.recv() {
                        if let Output::Event(e) = out {
                            self.on_final_event(e);
                        }
                    }
                }
                Err(_) => break,
            }
        }
        self.transport.close().await;
    }

    fn report(&self, ev: SessionEvent) {
        if matches!(ev, SessionEvent::ProviderError { .. }) {
            self.provider_errors.set(self.provider_errors.get() + 1);
        }
        // Never block the media path on a slow consumer: drop and count.
        if self.observer.try_send(ev).is_err() {
            self.dropped_events.set(self.dropped_events.get() + 1);
        }
    }

    /// Events that still matter once the call is over: the last turn's trace and the
    /// core's final counters.
    fn on_final_event(&mut self, e: Event) {
        match e {
            Event::CallEnded(stats) => self.stats = Some(stats),
            Event::TurnTrace(_) => self.report(SessionEvent::Engine(e)),
            _ => {}
        }
    }

    /// Sends a control message to the core, keeping order with what is already waiting.
    fn send_msg(&mut self, msg: InMsg) {
        if !self.outq.is_empty() || self.net.send(msg).is_err() {
            self.outq.push_back(msg);
        }
    }

    /// Moves waiting control messages into the core's inbox as room allows.
    fn flush_msgs(&mut self) {
        while let Some(&m) = self.outq.front() {
            if self.net.send(m).is_err() {
                break;
            }
            self.outq.pop_front();
        }
    }

    fn stamp(&mut self, stage: Stage) {
        self.send_msg(InMsg::Stamp(stage, Instant::now().into_std()));
    }

    async fn on_transport(&mut self, ev: TransportEvent) {
        match ev {
            TransportEvent::Audio(samples) => {
                self.net.send_caller_audio(&samples);
                if let Some(r) = self.recorder.as_mut() {
                    r.caller(&samples);
                }
            }
            TransportEvent::MarkAck(pos) => {
                self.send_msg(InMsg::MarkAck(pos));
            }
            TransportEvent::Dtmf(d) => {
                self.send_msg(InMsg::Dtmf(d));
            }
            TransportEvent::Closed(reason) => self.ended = Some(reason),
        }
    }

    async fn drain_core(&mut self) {
        while let Some(out) = self.net.recv() {
            let sent = match out {
                Output::Audio(frame) => {
                    if let Some(r) = self.recorder.as_mut() {
                        r.agent(frame.samples());
                    }
                    self.transport.send_audio(frame.samples()).await
                }
                Output::Mark(m) => self.transport.send_mark(m).await,
                Output::Clear => self.transport.send_clear().await,
                Output::CallerAudio(frame) => {
                    if let Some(stt) = &self.stt {
                        let _ = stt.input.try_send(SttInput::Audio(frame.samples.to_vec()));
                    }
                    Ok(())
                }
                Output::Event(e) => {
                    self.on_event(e);
                    Ok(())
                }
            };
            if let Err(e) = sent {
                self.ended = Some(format!("transport: {e}"));
                return;
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        if let Event::CallEnded(stats) = e {
            self.stats = Some(stats);
        }
        self.report(SessionEvent::Engine(e));
        match e {
            Event::TurnEnded { .. } => {
                self.turns += 1;
                match &self.stt {
                    Some(stt) => {
                        let _ = stt.input.try_send(SttInput::Finalize);
                    }
                    None => self.start_reply(String::new()),
                }
            }
            // The caller went on before the reply played: drop it unheard and answer the
            // whole turn later.
            Event::SpeechStarted { .. } if self.reply.as_ref().is_some_and(|r| !r.playing) => {
                let mut r = self.reply.take().unwrap();
                r.cancel();
                self.send_msg(InMsg::CancelAgentAudio {
                    utterance: r.utterance,
                });
                if let Some(user) = r.answering.take() {
                    if self.history.last().is_some_and(|m| m.role == Role::User) {
                        self.history.pop();
                    }
                    self.pending_user = format!("{user} {}", self.pending_user).trim().to_string();
                }
            }
            Event::PlaybackStarted { utterance } => {
                if let Some(r) = self.reply.as_mut().filter(|r| r.utterance == utterance) {
                    r.playing = true;
                    r.started_at = Some(Instant::now());
                }
            }
            Event::Interrupted {
                utterance,
                played_ms,
                ..
            } => self.finish_reply(utterance, Some(played_ms)),
            Event::PlaybackDone { utterance, .. } => {
                self.finish_reply(utterance, None);
                if self.hangup_after_playback && self.reply.is_none() {
                    self.ended = Some("agent ended the call".into());
                }
            }
            Event::PlaybackCancelled {
                utterance,
                played_ms,
            } => self.finish_reply(utterance, Some(played_ms)),
            Event::IdleTimeout if self.reply.is_none() => {
                if let Some(m) = self.spec.idle_message.clone() {
                    self.speak(&m);
                }
            }
            Event::MaxDurationReached => self.ended = Some("max duration reached".into()),
            _ => {}
        }
    }

    /// Ends reply `utterance`: the caller heard all of it, or `played_ms` of it.
    fn finish_reply(&mut self, utterance: u32, played_ms: Option<u32>) {
        if self.reply.as_ref().is_none_or(|r| r.utterance != utterance) {
            return;
        }
        let mut r = self.reply.take().unwrap();
        r.cancel();
        let (text, interrupted) = match played_ms {
            Some(ms) if (ms as u64) < r.audio_ms || !r.tts_done => (r.heard(ms), true),
            _ => (r.spoken.clone(), false),
        };
        if !text.is_empty() {
            self.history
                .push(ChatMessage::new(Role::Assistant, text.clone()));
        }
        self.report(SessionEvent::Transcript {
            role: Role::Assistant,
            text,
            at: self.start.elapsed(),
            interrupted,
        });
        if !interrupted && self.said_goodbye(&r.spoken) {
            self.hangup_after_playback = true;
        }
    }

    fn said_goodbye(&self, text: &str) -> bool {
        let t = text.to_lowercase();
        self.spec
            .end_call_phrases
            .iter()
            .any(|p| !p.trim().is_empty() && t.contains(&p.to_lowercase()))
    }

    fn on_stt(&mut self, ev: Option<SttEvent>) {
        match ev {
            None => self.stt = None,
            Some(SttEvent::Partial { text }) => self.report(SessionEvent::Partial { text }),
            Some(SttEvent::Final { text, turn_final }) => {
                if !text.trim().is_empty() {
                    if !self.pending_user.is_empty() {
                        self.pending_user.push(' ');
                    }
                    self.pending_user.push_str(text.trim());
                }
                if turn_final {
                    self.stamp(Stage::SttFinal);
                    let user = std::mem::take(&mut self.pending_user);
                    self.start_reply(user);
                }
            }
            Some(SttEvent::Error(e)) => {
                self.report(SessionEvent::ProviderError {
                    provider: self.spec.providers.stt.name().to_string(),
                    message: e.to_string(),
                });
                self.stt = None;
                self.speak(APOLOGY);
            }
        }
    }

    /// Answers `user` through the LLM.
    fn start_reply(&mut self, user: String) {
        if let Some(mut old) = self.reply.take() {
            old.cancel();
            self.send_msg(InMsg::CancelAgentAudio {
                utterance: old.utterance,
            });
        }
        self.history
            .push(ChatMessage::new(Role::User, user.clone()));
        self.report(SessionEvent::Transcript {
            role: Role::User,
            text: user.clone(),
            at: self.start.elapsed(),
            interrupted: false,
        });
        let mut req = self.spec.llm.clone();
        req.messages = self.history.clone();
        self.stamp(Stage::LlmRequest);
        let llm = match self.spec.providers.llm.start(req) {
            Ok(l) => Some(l),
            Err(e) => {
                self.report(SessionEvent::ProviderError {
                    provider: self.spec.providers.llm.name().to_string(),
                    message: e.to_string(),
                });
                None
            }
        };
        let failed = llm.is_none();
        if self.open_reply(llm, Some(user)) && failed {
            self.say_in_reply(APOLOGY);
        }
    }

    /// Speaks fixed text (greeting, idle prompt, apology) without the LLM.
    fn speak(&mut self, text: &str) {
        if self.reply.is_some() {
            return;
        }
        if self.open_reply(None, None) {
            self.say_in_reply(text);
        }
    }

    fn say_in_reply(&mut self, text: &str) {
        if let Some(r) = self.reply.as_mut() {
            let _ = r.tts.input.try_send(TtsInput::Text(text.to_string()));
            let _ = r.tts.input.try_send(TtsInput::Flush);
            r.spoken.push_str(text);
            r.sentences += 1;
        }
        self.stamp(Stage::TtsRequest);
    }

    fn open_reply(&mut self, llm: Option<LlmStream>, answering: Option<String>) -> bool {
        let out_rate = self.spec.call.output_rate.hz();
        let mut req = self.spec.tts.clone();
        req.sample_rate = out_rate;
        match self.spec.providers.tts.start(req) {
            Ok(tts) => {
                let utterance = self.next_utterance;
                self.next_utterance += 1;
                self.reply = Some(Reply {
                    utterance,
                    llm,
                    tts,
                    chunker: SentenceChunker::new(),
                    spoken: String::new(),
                    words: Vec::new(),
                    audio: VecDeque::new(),
                    audio_ms: 0,
                    tts_done: false,
                    tts_open: true,
                    end_sent: false,
                    sentences: 0,
                    answering,
                    playing: false,
                    started_at: None,
                    out_rate,
                    first_token_seen: false,
                });
                true
            }
            Err(e) => {
                if let Some(l) = llm {
                    l.cancel.cancel();
                }
                self.report(SessionEvent::ProviderError {
                    provider: self.spec.providers.tts.name().to_string(),
                    message: e.to_string(),
                });
                false
            }
        }
    }

    fn on_llm(&mut self, ev: Option<LlmEvent>) {
        let Some(r) = self.reply.as_mut() else { return };
        let mut stamps = Vec::new();
        match ev {
            Some(LlmEvent::Token(t)) => {
                if !r.first_token_seen {
                    r.first_token_seen = true;
                    stamps.push(Stage::LlmFirstToken);
                }
                for sentence in r.chunker.push(&t) {
                    if r.sentences == 0 {
                        stamps.push(Stage::FirstSentence);
                        stamps.push(Stage::TtsRequest);
                    }
                    r.sentences += 1;
                    if !r.spoken.is_empty() {
                        r.spoken.push(' ');
                    }
                    r.spoken.push_str(&sentence);
                    let _ = r.tts.input.try_send(TtsInput::Text(sentence));
                }
            }
            Some(LlmEvent::Done) | None => {
                if let Some(rest) = r.chunker.finish() {
                    if r.sentences == 0 {
                        stamps.push(Stage::FirstSentence);
                        stamps.push(Stage::TtsRequest);
                    }
                    r.sentences += 1;
                    if !r.spoken.is_empty() {
                        r.spoken.push(' ');
                    }
                    r.spoken.push_str(&rest);
                    let _ = r.tts.input.try_send(TtsInput::Text(rest));
                }
                let _ = r.tts.input.try_send(TtsInput::Flush);
                r.llm = None;
            }
            Some(LlmEvent::ToolCall { name, .. }) => {
                // Tool execution arrives with the tools issue; say so rather than hang.
                self.report(SessionEvent::ProviderError {
                    provider: self.spec.providers.llm.name().to_string(),
                    message: format!("tool call {name:?} is not supported yet"),
                });
            }
            Some(LlmEvent::Error(e)) => {
                r.llm = None;
                let msg = e.to_string();
                if r.sentences == 0 {
                    let _ = r.tts.input.try_send(TtsInput::Text(APOLOGY.into()));
                    r.spoken.push_str(APOLOGY);
                    r.sentences += 1;
                }
                let _ = r.tts.input.try_send(TtsInput::Flush);
                self.report(SessionEvent::ProviderError {
                    provider: self.spec.providers.llm.name().to_string(),
                    message: msg,
                });
            }
        }
        for s in stamps {
            self.stamp(s);
        }
    }

    fn on_tts(&mut self, ev: Option<TtsEvent>) {
        let Some(r) = self.reply.as_mut() else { return };
        match ev {
            Some(TtsEvent::Audio(a)) => {
                let first = r.audio_ms == 0 && r.audio.is_empty();
                r.audio_ms += a.len() as u64 * 1000 / r.out_rate as u64;
                r.audio.push_back(a);
                if first {
                    self.stamp(Stage::TtsFirstAudio);
                }
            }
            Some(TtsEvent::Word { text, start_ms, .. }) => r.words.push((text, start_ms)),
            Some(TtsEvent::Done) => r.tts_done = true,
            None => {
                r.tts_done = true;
                r.tts_open = false;
            }
            Some(TtsEvent::Error(e)) => {
                r.tts_done = true;
                let msg = e.to_string();
                self.report(SessionEvent::ProviderError {
                    provider: self.spec.providers.tts.name().to_string(),
                    message: msg,
                });
            }
        }
    }

    /// Moves TTS audio into the core as room allows; ends the utterance when all is in.
    fn feed_audio(&mut self) {
        // Audio goes after the control messages queued before it (e.g. the previous
        // utterance's end), never around them.
        self.flush_msgs();
        if !self.outq.is_empty() {
            return;
        }
        let Some(r) = self.reply.as_mut() else { return };
        while let Some(front) = r.audio.front() {
            if self.net.agent_audio_room() < front.len() {
                break;
            }
            let chunk = r.audio.pop_front().unwrap();
            let _ = self.net.send_agent_audio(r.utterance, &chunk);
        }
        if r.tts_done && r.audio.is_empty() && !r.end_sent {
            r.end_sent = true;
            if r.audio_ms == 0 {
                // Nothing to play: the reply is over as soon as it began.
                let u = r.utterance;
                self.finish_reply(u, None);
                if self.hangup_after_playback {
                    self.ended = Some("agent ended the call".into());
                }
                return;
            }
            let u = r.utterance;
            self.send_msg(InMsg::AgentAudioEnd { utterance: u });
        }
    }
}
