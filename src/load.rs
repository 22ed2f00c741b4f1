//! `parley load`: many concurrent Twilio calls against a running `parley serve`, measured
//! from the caller's side, to find how many calls one server carries at voice quality.
//!
//! Every call plays Twilio exactly as `parley dial` does (voice webhook → TwiML → Media
//! Stream, 20 ms μ-law frames at real-time pace, marks echoed when playback reaches them,
//! `clear` honoured), but against an agent whose providers are all `scripted` with no delay,
//! so that only the engine and its transport are measured: the server never waits on a model.
//!
//! The caller reacts to the agent rather than replaying a fixed recording, so every call
//! keeps the agent talking whatever the server's latency: the agent greets; after each
//! utterance plays out the caller says "hello …" (from `fixtures/turns.8k`), and the agent
//! answers; every other utterance the caller talks over it instead ("wait stop …", from
//! `fixtures/barge_in.8k`, [`BARGE_OFFSET`] after its first frame), which must `clear` it.
//! The scripted voice is a tone of [`MS_PER_CHAR`] per character, so each utterance's length
//! in frames is known in advance.
//!
//! What is measured (on frames that arrive while the steady-state window is open):
//! - **Pacing jitter**: |arrival − 20 ms grid| of each frame of an utterance after its
//!   playback lead, the grid anchored at the utterance's median offset
//!   ([`twilio_client::pacing_deviations`], the same measure as `parley dial`).
//! - **Late frame**: a frame, other than an utterance's first, that arrives after the
//!   caller's playout of the frames before it has finished — Twilio starts playing at the
//!   first frame, so the caller heard a gap. This needs the server to be more than its
//!   playback lead (100 ms) behind.
//! - **Missing frames**: for an utterance that ends neither by `clear` nor by the hang-up,
//!   expected − received frames. It ends when all expected frames came, when no frame came
//!   for [`STALL`] (the caller stays silent meanwhile, so a late tail is still counted as
//!   this utterance's, and as late), or when the agent answers the caller's next turn
//!   before it finished (possible only after a missed barge-in).
//! - **Barge-in reaction**: from sending the first frame of the caller's interruption to
//!   receiving `clear` (the speech starts on that frame).
//! - **Errors**: webhook failures (no answer, non-2xx, no `<Stream>`), WebSocket connect
//!   failures, WebSocket errors mid-call, the server closing a stream before `stop`, and
//!   protocol errors (bad JSON, unknown events, wrong `streamSid`, a payload that is not
//!   160 bytes of base64).
//! - **Server CPU and memory**: `process_cpu_seconds_total` and
//!   `process_resident_memory_bytes` from `GET /metrics`, or `/proc/PID` with
//!   `--server-pid`.
//! - **Client send lag**: how late this tool sent its own frames (from the 20 ms tick it
//!   meant to send them at). Arrival times are taken by the same runtime, so when this lag is
//!   high the client, not the server, may be the one that was late.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use futures_util::{Sink, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::twilio_client::{self, CallIds};

/// Load-test a running server with concurrent Twilio calls.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Base URL of the server.
    #[arg(long, env = "PARLEY_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key (write scope) to create, and at the end delete, the load-test agent.
    #[arg(long, env = "PARLEY_API_KEY")]
    pub api_key: String,
    /// Concurrent calls (with --ramp: the largest step; with --sequential: calls at a time).
    #[arg(long, default_value_t = 10)]
    pub calls: usize,
    /// Seconds of steady state with all calls up (after they have connected), per step.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Find the capacity: steps of 50, 100, 200, 400, … up to --calls, each for --duration,
    /// stopping at the first step over a quality limit.
    #[arg(long)]
    pub ramp: bool,
    /// Quality limit for --ramp: p99 pacing jitter above this fails a step.
    #[arg(long, default_value_t = 10.0)]
    pub max_p99_jitter_ms: f64,
    /// Quality limit for --ramp: more late frames than this fails a step.
    #[arg(long, default_value_t = 0)]
    pub max_late_frames: u64,
    /// Run COUNT short calls (--call-secs each), --calls at a time, and report the server's
    /// RSS at the start, after every 10% of them and at the end: is memory flat?
    #[arg(long, value_name = "COUNT", conflicts_with = "ramp")]
    pub sequential: Option<usize>,
    /// Length of each call with --sequential, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub call_secs: f64,
    /// New calls per second while connecting.
    #[arg(long, default_value_t = 100.0)]
    pub connect_rate: f64,
    /// The server's process id, to read its CPU and memory from /proc when it has no
    /// /metrics endpoint.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Threads of this tool's runtime.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

// ------------------------------------------------------------------ the script

/// What the agent says first. No sentence punctuation: the chunker hands it to TTS whole,
/// so its length is exactly `chars × MS_PER_CHAR`.
pub const GREETING: &str = "Hello and thanks for calling the load test line how can I help";
/// What the scripted LLM answers every turn (again one sentence, for a known length).
pub const REPLY: &str = "Sure I can help with that and here is a long answer so that you keep hearing the agent speak for a good few seconds";
/// What the scripted STT hears every turn.
const TRANSCRIPT: &str = "I have a question";
/// The scripted voice's tone length per character (its default).
pub const MS_PER_CHAR: u32 = 60;

/// The caller's clips, compiled in so the tool runs from anywhere: raw 8 kHz μ-law, the
/// very bytes Twilio sends.
const TURNS_ULAW: &[u8] = include_bytes!("../fixtures/turns.8k.ulaw");
const BARGE_ULAW: &[u8] = include_bytes!("../fixtures/barge_in.8k.ulaw");
/// "hello I would like to check my account balance": turns.8k, speech at [0.5 s, 2.0 s).
const HELLO: (usize, usize) = (4000, 16000);
/// "wait stop I have a different question": barge_in.8k, speech at [1.0 s, 2.5 s). Its
/// speech starts on its first frame, which is what barge-in reaction is timed from.
const WAIT: (usize, usize) = (8000, 20000);

/// The caller starts talking over an utterance this long after its first frame arrived.
pub const BARGE_OFFSET: Duration = Duration::from_millis(800);
/// The caller answers this long after the agent's audio has played out.
const PAUSE: Duration = Duration::from_millis(300);
/// An utterance with no frame for this long is over, short. Long, because an overloaded
/// server (or machine) can pause a call for seconds and then deliver the rest: those frames
/// are late, not missing, and must not be taken for the next utterance.
pub const STALL: Duration = Duration::from_secs(10);
/// The caller speaks again when no answer came this long after it stopped talking.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// A quiet gap after which a frame belongs to a new utterance if the caller spoke since.
const NEW_UTTERANCE_GAP: Duration = Duration::from_millis(500);
const FRAME: Duration = Duration::from_millis(20);
/// A tick this late means the tool itself was starved of CPU.
const STARVED: Duration = Duration::from_millis(100);
/// Read buffer per stream: a few dozen of the server's messages.
const READ_BUFFER: usize = 8 * 1024;

/// Frames of scripted tone for `text` at 8 kHz: `MS_PER_CHAR` ms (8 samples per ms) per
/// character, the last frame padded.
pub fn expected_frames(text: &str) -> u32 {
    (text.chars().count() as u32 * MS_PER_CHAR * 8).div_ceil(160)
}

/// The agent the tool creates: scripted STT, LLM and voice with no delays, the agent
/// speaking first, no idle prompt, a short end of turn so the conversation keeps moving.
pub fn agent_body() -> serde_json::Value {
    json!({
        "name": "parley-load",
        "persona": {"name": "Load"},
        "voice": {"provider": "scripted", "voiceId": "tone",
            "script": {"delayMs": 0, "intervalMs": MS_PER_CHAR}},
        "llm": {"provider": "scripted", "model": "scripted",
            "script": {"lines": [REPLY], "delayMs": 0}},
        "transcription": {"provider": "scripted",
            "script": {"lines": [TRANSCRIPT], "delayMs": 0}},
        "systemPromptTemplate": "You are the load-test agent.",
        "firstMessage": GREETING,
        "firstMessageMode": "assistant_speaks_first",
        "maxDurationSeconds": 3600,
        "maxIdleTimeSeconds": 60,
        "silenceDetection": {"enabled": false},
        "endpointing": {"silenceDurationMs": 300},
        "tags": ["load-test"]
    })
}

/// The caller's audio, base64-encoded once: every call sends the same frames.
pub struct Plan {
    pub greeting_frames: u32,
    pub reply_frames: u32,
    silence: String,
    hello: Vec<String>,
    wait: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clip {
    Hello,
    Wait,
}

impl Plan {
    pub fn new(greeting_frames: u32, reply_frames: u32) -> Self {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let frames =
            |src: &[u8], (from, to): (usize, usize)| src[from..to].chunks(160).map(b64).collect();
        Plan {
            greeting_frames,
            reply_frames,
            silence: b64(&[0xFF; 160]),
            hello: frames(TURNS_ULAW, HELLO),
            wait: frames(BARGE_ULAW, WAIT),
        }
    }

    fn clip(&self, c: Clip) -> &[String] {
        match c {
            Clip::Hello => &self.hello,
            Clip::Wait => &self.wait,
        }
    }
}

// ------------------------------------------------------------------ histograms

/// A fixed-resolution histogram of milliseconds (values past its range are counted and only
/// their maximum kept), so that millions of samples merge and give quantiles cheaply.
#[derive(Debug, Clone)]
pub struct Hist {
    res_ms: f64,
    buckets: Vec<u64>,
    over: u64,
    count: u64,
    max: f64,
}

impl Hist {
    pub fn new(res_ms: f64, range_ms: f64) -> Self {
        Hist {
            res_ms,
            buckets: vec![0; (range_ms / res_ms).ceil() as usize],
            over: 0,
            count: 0,
            max: 0.0,
        }
    }

    pub fn add(&mut self, v: f64) {
        let v = v.max(0.0);
        self.count += 1;
        self.max = self.max.max(v);
        match self.buckets.get_mut((v / self.res_ms) as usize) {
            Some(b) => *b += 1,
            None => self.over += 1,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> f64 {
        self.max
    }

    /// The `p` quantile, as the upper edge of its bucket (never above the maximum): 0 when
    /// empty.
    pub fn quantile(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((self.count as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= rank {
                return ((i + 1) as f64 * self.res_ms).min(self.max);
            }
        }
        self.max
    }

    pub fn clear(&mut self) {
        self.buckets.fill(0);
        (self.over, self.count, self.max) = (0, 0, 0.0);
    }
}

// ------------------------------------------------------------------ one call, sans I/O

/// The counters of a call (and, summed, of a run).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Counters {
    pub frames_sent: u64,
    pub frames_received: u64,
    pub late_frames: u64,
    pub missing_frames: u64,
    pub utterances_complete: u64,
    pub utterances_cleared: u64,
    pub utterances_short: u64,
    pub barge_ins: u64,
    pub barge_in_missed: u64,
    pub no_reply: u64,
    pub marks_echoed: u64,
    pub protocol_errors: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.frames_sent += o.frames_sent;
        self.frames_received += o.frames_received;
        self.late_frames += o.late_frames;
        self.missing_frames += o.missing_frames;
        self.utterances_complete += o.utterances_complete;
        self.utterances_cleared += o.utterances_cleared;
        self.utterances_short += o.utterances_short;
        self.barge_ins += o.barge_ins;
        self.barge_in_missed += o.barge_in_missed;
        self.no_reply += o.no_reply;
        self.marks_echoed += o.marks_echoed;
        self.protocol_errors += o.protocol_errors;
    }
}

/// An agent utterance as the caller receives it.
#[derive(Debug)]
struct Utterance {
    /// 0 for the greeting, then one per reply.
    index: u32,
    expected: u32,
    received: u32,
    last_at: Instant,
    /// The caller talks over this one.
    barge: bool,
    /// Arrival times (ms since the call started) of its frames that came in the window.
    times_ms: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Complete,
    Cleared,
    /// Over before all its frames came (stalled, or the agent moved on): why.
    Short(&'static str),
    HangUp,
}

/// What the server sends on the stream, borrowed from the message text.
#[derive(Deserialize)]
struct ServerMsg<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
    #[serde(rename = "streamSid", default, borrow)]
    stream_sid: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    media: Option<ServerMedia<'a>>,
    #[serde(default)]
    mark: Option<ServerMark>,
}

#[derive(Deserialize)]
struct ServerMedia<'a> {
    #[serde(borrow)]
    payload: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct ServerMark {
    name: String,
}

/// One call's caller script and measurements. No clock, no socket: the task feeds it the
/// time of each tick and message, so the maths is tested with made-up times.
pub struct CallState {
    t0: Instant,
    plan: Arc<Plan>,
    stream_sid: String,
    /// Utterance `i` is talked over when `(i + barge_parity)` is odd.
    barge_parity: u32,
    /// Count what happens now (the steady-state window is open).
    pub measuring: bool,
    seq: u64,
    chunk: u64,
    speaking: Option<(Clip, usize)>,
    next_clip: Option<(Instant, Clip)>,
    clip_ended_at: Option<Instant>,
    awaiting_reply_since: Option<Instant>,
    /// When the caller's interruption began, until `clear` answers it.
    barge_onset: Option<Instant>,
    utt: Option<Utterance>,
    utterances: u32,
    /// When the caller's playout of what it has received ends (Twilio plays on arrival).
    play_end: Instant,
    marks: VecDeque<(Instant, String)>,
    pub counters: Counters,
    pub max_late_ms: f64,
    /// This call's pacing deviations.
    pub jitter: Hist,
    /// Not yet handed to the run's totals.
    fresh_devs: Vec<f64>,
    fresh_lags: Vec<f64>,
    fresh_barge: Vec<f64>,
    fresh_short: Vec<String>,
    flushed: Counters,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl CallState {
    pub fn new(t0: Instant, call: usize, stream_sid: String, plan: Arc<Plan>) -> Self {
        CallState {
            t0,
            plan,
            stream_sid,
            barge_parity: (call % 2) as u32,
            measuring: true,
            seq: 1,
            chunk: 0,
            speaking: None,
            next_clip: None,
            clip_ended_at: None,
            awaiting_reply_since: None,
            barge_onset: None,
            utt: None,
            utterances: 0,
            play_end: t0,
            marks: VecDeque::new(),
            counters: Counters::default(),
            max_late_ms: 0.0,
            jitter: Hist::new(0.1, 100.0),
            fresh_devs: Vec::new(),
            fresh_lags: Vec::new(),
            fresh_barge: Vec::new(),
            fresh_short: Vec::new(),
            flushed: Counters::default(),
        }
    }

    /// The 20 ms tick that was due at `due` runs at `now`: time-outs, due mark echoes, and
    /// the caller's next frame (speech or silence). Messages to send go to `out`.
    pub fn on_tick(&mut self, now: Instant, due: Instant, out: &mut Vec<String>) {
        if self.measuring {
            self.fresh_lags.push(ms(now.saturating_duration_since(due)));
        }
        // Time-outs are judged only on a tick that runs on time: a late one means this
        // tool was starved, and the server's messages may be waiting unread.
        let timely = now.saturating_duration_since(due) < STARVED;
        if timely
            && self
                .utt
                .as_ref()
                .is_some_and(|u| now.saturating_duration_since(u.last_at) > STALL)
        {
            self.end_utterance(now, End::Short("no frame for 10 s"));
        }
        if timely
            && self
                .awaiting_reply_since
                .is_some_and(|t| now.saturating_duration_since(t) > REPLY_TIMEOUT)
        {
            self.awaiting_reply_since = None;
            self.count(|c| c.no_reply += 1);
            self.schedule(now, Clip::Hello);
        }
        while self.marks.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, name)) = self.marks.pop_front() {
                out.push(twilio_client::mark_message(&self.stream_sid, &name));
                self.counters.marks_echoed += 1;
            }
        }
        if self.speaking.is_none() {
            if let Some((_, clip)) = self.next_clip.filter(|(at, _)| *at <= now) {
                self.next_clip = None;
                self.speaking = Some((clip, 0));
                if clip == Clip::Wait && self.utt.as_ref().is_some_and(|u| u.barge) {
                    self.barge_onset = Some(now);
                }
            }
        }
        self.seq += 1;
        self.chunk += 1;
        let payload: &str = match self.speaking {
            Some((clip, i)) => &self.plan.clip(clip)[i],
            None => &self.plan.silence,
        };
        let mut msg = String::with_capacity(payload.len() + 200);
        let _ = write!(
            msg,
            r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{payload}"}},"streamSid":"{}"}}"#,
            self.seq,
            self.chunk,
            (self.chunk - 1) * 20,
            self.stream_sid
        );
        out.push(msg);
        if self.measuring {
            self.counters.frames_sent += 1;
        }
        if let Some((clip, i)) = self.speaking.as_mut() {
            *i += 1;
            if *i == self.plan.clip(*clip).len() {
                self.speaking = None;
                self.clip_ended_at = Some(now);
                self.awaiting_reply_since = Some(now);
            }
        }
    }

    /// A text message from the server arrived at `now`.
    pub fn on_text(&mut self, now: Instant, text: &str, out: &mut Vec<String>) {
        let Ok(msg) = serde_json::from_str::<ServerMsg>(text) else {
            self.counters.protocol_errors += 1;
            return;
        };
        if msg.stream_sid.as_deref() != Some(self.stream_sid.as_str()) {
            self.counters.protocol_errors += 1;
        }
        match msg.event.as_ref() {
            "media" => {
                let mut buf = [0u8; 320];
                let len = msg.media.as_ref().and_then(|m| {
                    base64::engine::general_purpose::STANDARD
                        .decode_slice(m.payload.as_bytes(), &mut buf)
                        .ok()
                });
                if len == Some(160) {
                    self.on_agent_frame(now);
                } else {
                    self.counters.protocol_errors += 1;
                }
            }
            "mark" => match msg.mark {
                // Echoed once the audio before it has played, as Twilio does.
                Some(m) => self.marks.push_back((self.play_end.max(now), m.name)),
                None => self.counters.protocol_errors += 1,
            },
            "clear" => self.on_clear(now, out),
            _ => self.counters.protocol_errors += 1,
        }
    }

    /// An agent frame arrived at `now`.
    pub fn on_agent_frame(&mut self, now: Instant) {
        // The agent answering the caller's latest turn while an utterance was still open
        // (it went quiet before its end): that one is over, short.
        let moved_on = self.utt.as_ref().is_some_and(|u| {
            self.clip_ended_at.is_some_and(|c| c > u.last_at)
                && now.saturating_duration_since(u.last_at) > NEW_UTTERANCE_GAP
        });
        if moved_on {
            self.end_utterance(now, End::Short("the agent answered the next turn"));
        }
        if self.utt.is_none() {
            let index = self.utterances;
            self.utterances += 1;
            let barge = (index + self.barge_parity) % 2 == 1;
            self.utt = Some(Utterance {
                index,
                expected: if index == 0 {
                    self.plan.greeting_frames
                } else {
                    self.plan.reply_frames
                },
                received: 0,
                last_at: now,
                barge,
                times_ms: Vec::with_capacity(64),
            });
            self.awaiting_reply_since = None;
            self.play_end = now;
            if barge {
                self.schedule(now + BARGE_OFFSET, Clip::Wait);
            }
        }
        let measuring = self.measuring;
        let t_ms = ms(now - self.t0);
        let Some(u) = self.utt.as_mut() else { return };
        if u.received > 0 && now > self.play_end {
            // The caller's playout ran dry before this frame came: a gap was heard.
            if measuring {
                self.counters.late_frames += 1;
                self.max_late_ms = self.max_late_ms.max(ms(now - self.play_end));
            }
        }
        self.play_end = self.play_end.max(now) + FRAME;
        u.received += 1;
        u.last_at = now;
        if measuring {
            self.counters.frames_received += 1;
            u.times_ms.push(t_ms);
        }
        if u.received >= u.expected {
            self.end_utterance(now, End::Complete);
        }
    }

    /// `clear`: the caller's buffered agent audio is dropped and pending marks come back at
    /// once (as Twilio does); the utterance is over.
    pub fn on_clear(&mut self, now: Instant, out: &mut Vec<String>) {
        for (_, name) in self.marks.drain(..) {
            out.push(twilio_client::mark_message(&self.stream_sid, &name));
            self.counters.marks_echoed += 1;
        }
        self.play_end = now;
        if let Some(onset) = self.barge_onset.take() {
            if self.measuring {
                self.counters.barge_ins += 1;
                self.fresh_barge
                    .push(ms(now.saturating_duration_since(onset)));
            }
        }
        if self.utt.is_some() {
            self.end_utterance(now, End::Cleared);
        }
    }

    /// The caller hangs up.
    pub fn finish(&mut self, now: Instant) {
        if self.utt.is_some() {
            self.end_utterance(now, End::HangUp);
        }
    }

    fn count(&mut self, f: impl FnOnce(&mut Counters)) {
        if self.measuring {
            f(&mut self.counters);
        }
    }

    /// The caller will say `clip` at `at` (replacing what it meant to say before).
    fn schedule(&mut self, at: Instant, clip: Clip) {
        self.next_clip = Some((at, clip));
    }

    fn end_utterance(&mut self, now: Instant, end: End) {
        let Some(u) = self.utt.take() else { return };
        let missing = u.expected.saturating_sub(u.received) as u64;
        match end {
            End::Complete => self.count(|c| c.utterances_complete += 1),
            End::Cleared => self.count(|c| c.utterances_cleared += 1),
            End::Short(why) => {
                if self.measuring {
                    self.counters.utterances_short += 1;
                    self.counters.missing_frames += missing;
                    self.fresh_short.push(format!(
                        "{} utterance {}: {} of {} frames ({why})",
                        self.stream_sid, u.index, u.received, u.expected
                    ));
                }
            }
            End::HangUp => {}
        }
        if matches!(end, End::Complete | End::Short(_)) && self.barge_onset.take().is_some() {
            self.count(|c| c.barge_in_missed += 1);
        }
        for d in twilio_client::pacing_deviations(&u.times_ms) {
            self.jitter.add(d);
            self.fresh_devs.push(d);
        }
        // Answer once the agent's audio has played out, unless the caller is already
        // talking or about to.
        if end != End::HangUp && self.speaking.is_none() && self.next_clip.is_none() {
            self.schedule(self.play_end.max(now) + PAUSE, Clip::Hello);
        }
    }
}

// ------------------------------------------------------------------ a run's totals

/// Everything a run adds up across its calls, behind one lock taken about once a second per
/// call (and at each call's end).
struct Totals {
    counters: Counters,
    max_late_ms: f64,
    jitter: Hist,
    jitter_recent: Hist,
    lag: Hist,
    lag_recent: Hist,
    barge: Vec<f64>,
    errors: ErrorCounts,
    error_samples: Vec<String>,
    short_samples: Vec<String>,
}

/// Calls that failed, by how.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ErrorCounts {
    /// The webhook could not be reached, answered non-2xx, or had no `<Stream>`.
    pub webhook: u64,
    /// The WebSocket could not be opened.
    pub connect: u64,
    /// The WebSocket failed mid-call.
    pub ws: u64,
    /// The server closed the stream before the caller hung up.
    pub closed_early: u64,
    /// Malformed or unexpected messages from the server.
    pub protocol: u64,
}

impl ErrorCounts {
    fn total(&self) -> u64 {
        self.webhook + self.connect + self.ws + self.closed_early + self.protocol
    }
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Webhook,
    Connect,
    Ws,
    ClosedEarly,
}

/// One run (a step of a ramp, or the whole run otherwise).
struct Run {
    measuring: AtomicBool,
    up: AtomicUsize,
    started: AtomicUsize,
    failed: AtomicUsize,
    done: AtomicUsize,
    totals: Mutex<Totals>,
}

impl Run {
    fn new() -> Self {
        Run {
            measuring: AtomicBool::new(false),
            up: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            totals: Mutex::new(Totals {
                counters: Counters::default(),
                max_late_ms: 0.0,
                jitter: Hist::new(0.01, 500.0),
                jitter_recent: Hist::new(0.01, 500.0),
                lag: Hist::new(0.01, 500.0),
                lag_recent: Hist::new(0.01, 500.0),
                barge: Vec::new(),
                errors: ErrorCounts::default(),
                error_samples: Vec::new(),
                short_samples: Vec::new(),
            }),
        }
    }

    fn totals(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, how: Failure, message: String) {
        let mut t = self.totals();
        match how {
            Failure::Webhook => t.errors.webhook += 1,
            Failure::Connect => t.errors.connect += 1,
            Failure::Ws => t.errors.ws += 1,
            Failure::ClosedEarly => t.errors.closed_early += 1,
        }
        if t.error_samples.len() < 5 {
            t.error_samples.push(message);
        }
    }

    /// Hands what `call` gathered since its last flush to the totals.
    fn flush(&self, call: &mut CallState) {
        let mut delta = call.counters;
        let f = call.flushed;
        delta.frames_sent -= f.frames_sent;
        delta.frames_received -= f.frames_received;
        delta.late_frames -= f.late_frames;
        delta.missing_frames -= f.missing_frames;
        delta.utterances_complete -= f.utterances_complete;
        delta.utterances_cleared -= f.utterances_cleared;
        delta.utterances_short -= f.utterances_short;
        delta.barge_ins -= f.barge_ins;
        delta.barge_in_missed -= f.barge_in_missed;
        delta.no_reply -= f.no_reply;
        delta.marks_echoed -= f.marks_echoed;
        delta.protocol_errors -= f.protocol_errors;
        call.flushed = call.counters;
        let mut t = self.totals();
        t.counters.add(&delta);
        t.errors.protocol += delta.protocol_errors;
        t.max_late_ms = t.max_late_ms.max(call.max_late_ms);
        for d in call.fresh_devs.drain(..) {
            t.jitter.add(d);
            t.jitter_recent.add(d);
        }
        for l in call.fresh_lags.drain(..) {
            t.lag.add(l);
            t.lag_recent.add(l);
        }
        t.barge.append(&mut call.fresh_barge);
        for s in call.fresh_short.drain(..) {
            if t.short_samples.len() < 5 {
                t.short_samples.push(s);
            }
        }
    }
}

// ------------------------------------------------------------------ one call, with I/O

/// What the tool shares with every call.
struct Shared {
    http: reqwest::Client,
    server: String,
    agent: String,
    plan: Arc<Plan>,
}

/// When a call hangs up.
enum StopWhen {
    Signal(watch::Receiver<bool>),
    After(Duration),
}

/// A call's own figures, for the per-call list.
#[derive(Debug, Clone, Serialize)]
pub struct CallSummary {
    pub call: usize,
    pub frames_received: u64,
    pub late_frames: u64,
    pub missing_frames: u64,
    pub p99_jitter_ms: f64,
    pub max_jitter_ms: f64,
    pub barge_ins: u64,
    pub protocol_errors: u64,
}

async fn send_all<S>(tx: &mut S, msgs: &mut Vec<String>) -> Result<(), String>
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    for m in msgs.drain(..) {
        tx.feed(Message::text(m)).await.map_err(|e| e.to_string())?;
    }
    tx.flush().await.map_err(|e| e.to_string())
}

/// Places call number `k` at `start_at` and runs it until told to hang up. `None` when it
/// never got going (counted as a failure in the run).
async fn run_call(
    shared: Arc<Shared>,
    run: Arc<Run>,
    k: usize,
    start_at: Instant,
    mut stop: StopWhen,
) -> Option<CallSummary> {
    tokio::time::sleep_until(start_at).await;
    if let StopWhen::Signal(rx) = &stop {
        if *rx.borrow() {
            return None;
        }
    }
    let tag = twilio_client::rand_u64() ^ k as u64;
    let call_sid = format!("CAload{tag:016x}");
    let stream_sid = format!("MZload{tag:016x}");
    let ids = CallIds {
        call_sid: &call_sid,
        account_sid: "ACload",
        stream_sid: &stream_sid,
    };
    let failed = |how, msg: String| {
        run.fail(how, msg);
        run.failed.fetch_add(1, Ordering::Relaxed);
        None
    };
    let (url, params) =
        match twilio_client::answer(&shared.http, &shared.server, &shared.agent, &ids).await {
            Ok(x) => x,
            Err(e) => return failed(Failure::Webhook, format!("webhook: {e:#}")),
        };
    // A small read buffer: tungstenite zero-fills its whole read buffer (128 KiB by
    // default) on every read poll (snapview/tungstenite-rs#547), which for 250-byte
    // messages at 50 a second per call would make this tool the bottleneck. Nagle off:
    // each frame must leave when it is sent, as Twilio's do.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true);
    let ws = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return failed(Failure::Connect, format!("connect: {e}")),
        Err(_) => return failed(Failure::Connect, "connect: timed out after 10 s".into()),
    };
    let (mut tx, mut rx) = ws.split();
    let mut out = vec![
        twilio_client::connected_message(),
        twilio_client::start_message(&ids, &params),
    ];
    if let Err(e) = send_all(&mut tx, &mut out).await {
        return failed(Failure::Ws, format!("start: {e}"));
    }
    run.started.fetch_add(1, Ordering::Relaxed);
    run.up.fetch_add(1, Ordering::Relaxed);

    let t0 = Instant::now();
    let mut call = CallState::new(t0, k, stream_sid.clone(), shared.plan.clone());
    call.measuring = run.measuring.load(Ordering::Relaxed);
    // Burst: a late tick sends the frames it owes at once, so the caller's audio stays in
    // real time on average, as a network that bunched packets would deliver it.
    let mut tick = tokio::time::interval_at(t0, FRAME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let stop_signal = async {
        match &mut stop {
            StopWhen::Signal(rx) => {
                let _ = rx.wait_for(|s| *s).await;
            }
            StopWhen::After(d) => tokio::time::sleep_until(t0 + *d).await,
        }
    };
    tokio::pin!(stop_signal);
    let mut ticks = 0u32;
    let outcome: Result<(), (Failure, String)> = loop {
        // Biased, messages before ticks: after a stall of this task everything the server
        // sent is taken in (and timestamped) before the time-outs of the tick are judged.
        tokio::select! {
            biased;
            _ = &mut stop_signal => break Ok(()),
            msg = rx.next() => {
                let now = Instant::now();
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        call.on_text(now, t.as_str(), &mut out);
                        if !out.is_empty() {
                            if let Err(e) = send_all(&mut tx, &mut out).await {
                                break Err((Failure::Ws, format!("send: {e}")));
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => call.counters.protocol_errors += 1,
                    Some(Ok(Message::Close(_))) | None => {
                        break Err((Failure::ClosedEarly, "the server closed the stream before stop".into()))
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Err((Failure::Ws, format!("receive: {e}"))),
                }
            }
            due = tick.tick() => {
                let now = Instant::now();
                call.measuring = run.measuring.load(Ordering::Relaxed);
                call.on_tick(now, due, &mut out);
                if let Err(e) = send_all(&mut tx, &mut out).await {
                    break Err((Failure::Ws, format!("send: {e}")));
                }
                ticks += 1;
                if ticks % 50 == 0 {
                    run.flush(&mut call);
                }
            }
        }
    };
    let now = Instant::now();
    call.finish(now);
    run.flush(&mut call);
    run.up.fetch_sub(1, Ordering::Relaxed);
    match outcome {
        Ok(()) => {
            // Hang up as Twilio does, then let the server close; what comes now is not
            // counted.
            out.push(twilio_client::stop_message(&ids));
            let _ = send_all(&mut tx, &mut out).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(m)) = rx.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            let _ = tx.close().await;
        }
        Err((how, msg)) => run.fail(how, msg),
    }
    run.done.fetch_add(1, Ordering::Relaxed);
    Some(CallSummary {
        call: k,
        frames_received: call.counters.frames_received,
        late_frames: call.counters.late_frames,
        missing_frames: call.counters.missing_frames,
        p99_jitter_ms: round2(call.jitter.quantile(0.99)),
        max_jitter_ms: round2(call.jitter.max()),
        barge_ins: call.counters.barge_ins,
        protocol_errors: call.counters.protocol_errors,
    })
}

// ------------------------------------------------------------------ server resources

/// The server's CPU time and resident memory at one moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sample {
    pub cpu_s: Option<f64>,
    pub rss_bytes: Option<u64>,
}

/// Where the server's CPU and memory figures come from.
enum Probe {
    /// `GET /metrics` (Prometheus text).
    Metrics {
        http: reqwest::Client,
        url: String,
    },
    /// `/proc/PID/stat` and `/proc/PID/status` (same machine only).
    Proc {
        pid: u32,
        ticks_per_s: f64,
    },
    None,
}

/// The value of the first sample of metric `name` in Prometheus' text exposition format
/// (whatever its labels); `None` when there is none.
pub fn prometheus_value(text: &str, name: &str) -> Option<f64> {
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = if let Some(labels) = rest.strip_prefix('{') {
            // Skip the labels; a quoted value may hold `}`.
            let (mut quoted, mut escaped, mut end) = (false, false, None);
            for (i, c) in labels.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '}' if !quoted => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            match end {
                Some(e) => &labels[e + 1..],
                None => continue,
            }
        } else if rest.starts_with(char::is_whitespace) {
            rest
        } else {
            // Another metric whose name starts with this one.
            continue;
        };
        let value = rest.split_whitespace().next()?;
        return match value {
            "+Inf" | "Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            v => v.parse().ok(),
        };
    }
    None
}

/// CPU seconds (user + system) from the text of `/proc/PID/stat`.
pub fn proc_stat_cpu_s(stat: &str, ticks_per_s: f64) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses:
    // fields are counted from the last `)`. utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_s)
}

/// Resident memory in bytes from the text of `/proc/PID/status` (its `VmRSS`, in kB).
pub fn proc_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Probe {
    async fn detect(http: &reqwest::Client, server: &str, pid: Option<u32>) -> Probe {
        let url = format!("{server}/metrics");
        let metrics = Probe::Metrics {
            http: http.clone(),
            url,
        };
        let s = metrics.sample().await;
        if s.cpu_s.is_some() || s.rss_bytes.is_some() {
            return metrics;
        }
        match pid {
            Some(pid) => Probe::Proc {
                pid,
                ticks_per_s: clock_ticks(),
            },
            None => Probe::None,
        }
    }

    fn source(&self) -> Option<&'static str> {
        match self {
            Probe::Metrics { .. } => Some("metrics"),
            Probe::Proc { .. } => Some("proc"),
            Probe::None => None,
        }
    }

    async fn sample(&self) -> Sample {
        match self {
            Probe::Metrics { http, url } => {
                let text = match http.get(url).send().await {
                    Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
                    _ => return Sample::default(),
                };
                Sample {
                    cpu_s: prometheus_value(&text, "process_cpu_seconds_total"),
                    rss_bytes: prometheus_value(&text, "process_resident_memory_bytes")
                        .map(|b| b as u64),
                }
            }
            Probe::Proc { pid, ticks_per_s } => Sample {
                cpu_s: std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| proc_stat_cpu_s(&s, *ticks_per_s)),
                rss_bytes: std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .ok()
                    .and_then(|s| proc_status_rss(&s)),
            },
            Probe::None => Sample::default(),
        }
    }
}

/// Clock ticks per second for /proc's CPU times: `getconf CLK_TCK` (libc is not a direct
/// dependency of this crate, so sysconf is not called), else Linux's usual 100.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

// ------------------------------------------------------------------ reports

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The figures of one run (or one step of a ramp).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Concurrent calls asked for.
    pub calls: usize,
    /// Calls that connected and streamed.
    pub calls_connected: usize,
    /// Length of the steady-state window (s).
    pub duration_s: f64,
    /// Time it took to connect all the calls (s).
    pub ramp_up_s: f64,
    #[serde(flatten)]
    pub counters: Counters,
    pub max_late_ms: f64,
    pub p50_jitter_ms: f64,
    pub p99_jitter_ms: f64,
    pub max_jitter_ms: f64,
    pub jitter_samples: u64,
    pub barge_in_p50_ms: Option<f64>,
    pub barge_in_p99_ms: Option<f64>,
    pub errors: u64,
    pub error_kinds: ErrorCounts,
    pub error_samples: Vec<String>,
    /// The first few utterances that came short: which, how many frames, why.
    pub short_utterance_samples: Vec<String>,
    pub client_send_lag_p50_ms: f64,
    pub client_send_lag_p99_ms: f64,
    pub client_send_lag_max_ms: f64,
    /// Where the server's figures come from: "metrics", "proc" or null.
    pub server_stats_source: Option<&'static str>,
    /// Server CPU during the window per call per second of the window (ms).
    pub cpu_ms_per_call_second: Option<f64>,
    /// Server CPU during the window, in percent of one core.
    pub server_cpu_percent: Option<f64>,
    pub rss_before_kib: Option<u64>,
    pub rss_during_kib: Option<u64>,
    /// (RSS with the calls up − RSS before them) / calls. Meaningful on a freshly started
    /// server: the allocator keeps what earlier calls freed, and later runs reuse it (down to
    /// 0 or below).
    pub rss_kib_per_call: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_call: Vec<CallSummary>,
}

struct Resources {
    before: Sample,
    window_start: Sample,
    window_end: Sample,
}

fn report(
    calls: usize,
    connected: usize,
    window_s: f64,
    ramp_up_s: f64,
    run: &Run,
    res: &Resources,
    source: Option<&'static str>,
) -> Report {
    let t = run.totals();
    let mut barge = t.barge.clone();
    barge.sort_by(|a, b| a.total_cmp(b));
    let bq = |p| (!barge.is_empty()).then(|| twilio_client::quantile(&barge, p).round());
    let cpu_s = match (res.window_start.cpu_s, res.window_end.cpu_s) {
        (Some(a), Some(b)) if window_s > 0.0 => Some(b - a),
        _ => None,
    };
    let kib = |s: &Sample| s.rss_bytes.map(|b| b / 1024);
    let errors = t.errors;
    Report {
        calls,
        calls_connected: connected,
        duration_s: round2(window_s),
        ramp_up_s: round2(ramp_up_s),
        counters: t.counters,
        max_late_ms: round2(t.max_late_ms),
        p50_jitter_ms: round2(t.jitter.quantile(0.5)),
        p99_jitter_ms: round2(t.jitter.quantile(0.99)),
        max_jitter_ms: round2(t.jitter.max()),
        jitter_samples: t.jitter.count(),
        barge_in_p50_ms: bq(0.5),
        barge_in_p99_ms: bq(0.99),
        errors: errors.total(),
        error_kinds: errors,
        error_samples: t.error_samples.clone(),
        short_utterance_samples: t.short_samples.clone(),
        client_send_lag_p50_ms: round2(t.lag.quantile(0.5)),
        client_send_lag_p99_ms: round2(t.lag.quantile(0.99)),
        client_send_lag_max_ms: round2(t.lag.max()),
        server_stats_source: source,
        cpu_ms_per_call_second: cpu_s
            .filter(|_| calls > 0)
            .map(|c| (c * 1000.0 / (calls as f64 * window_s) * 1000.0).round() / 1000.0),
        server_cpu_percent: cpu_s.map(|c| (c / window_s * 1000.0).round() / 10.0),
        rss_before_kib: kib(&res.before),
        rss_during_kib: kib(&res.window_end),
        rss_kib_per_call: match (kib(&res.before), kib(&res.window_end)) {
            (Some(a), Some(b)) if calls > 0 => Some(round2((b as f64 - a as f64) / calls as f64)),
            _ => None,
        },
        per_call: Vec::new(),
    }
}

/// One line of progress on stderr.
fn progress(label: &str, elapsed: Duration, run: &Run, of: usize, last: &mut Counters) {
    let mut t = run.totals();
    let c = t.counters;
    let line = format!(
        "[{label} {:>5.1}s] up {}/{of}  rx {} fr/s  tx {} fr/s  late {}  missing {}  jitter p99 {:.2} ms (utterances ended in the last s)  send lag p99 {:.2} ms  barge-ins {}  errors {}",
        elapsed.as_secs_f64(),
        run.up.load(Ordering::Relaxed),
        c.frames_received - last.frames_received,
        c.frames_sent - last.frames_sent,
        c.late_frames,
        c.missing_frames,
        t.jitter_recent.quantile(0.99),
        t.lag_recent.quantile(0.99),
        c.barge_ins,
        t.errors.total(),
    );
    t.jitter_recent.clear();
    t.lag_recent.clear();
    *last = c;
    drop(t);
    eprintln!("{line}");
}

// ------------------------------------------------------------------ modes

/// Interrupted by Ctrl-C: finish the current step cleanly and stop.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `calls` concurrent calls: connect them at `connect_rate`, measure `window` with all up,
/// hang up.
async fn run_step(
    shared: &Arc<Shared>,
    probe: &Probe,
    calls: usize,
    window: Duration,
    connect_rate: f64,
    label: &str,
) -> Report {
    let run = Arc::new(Run::new());
    let before = probe.sample().await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let t_start = Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|k| {
            let start_at = t_start + Duration::from_secs_f64(k as f64 / connect_rate);
            tokio::spawn(run_call(
                shared.clone(),
                run.clone(),
                k,
                start_at,
                StopWhen::Signal(stop_rx.clone()),
            ))
        })
        .collect();
    let mut last = Counters::default();
    let mut tick =
        tokio::time::interval_at(t_start + Duration::from_secs(1), Duration::from_secs(1));
    // Connecting: until every call is up or has failed (each fails within its timeouts).
    while run.started.load(Ordering::Relaxed) + run.failed.load(Ordering::Relaxed) < calls
        && !INTERRUPTED.load(Ordering::Relaxed)
    {
        tokio::select! {
            _ = tick.tick() => progress(&format!("{label} connecting"), t_start.elapsed(), &run, calls, &mut last),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let ramp_up = t_start.elapsed();
    // Steady state.
    let window_start = probe.sample().await;
    let w0 = Instant::now();
    run.measuring.store(true, Ordering::Relaxed);
    let mut tick = tokio::time::interval_at(w0 + Duration::from_secs(1), Duration::from_secs(1));
    let end = w0 + window;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = tick.tick() => progress(label, w0.elapsed(), &run, calls, &mut last),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if INTERRUPTED.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
    }
    run.measuring.store(false, Ordering::Relaxed);
    let window_s = w0.elapsed().as_secs_f64();
    let window_end = probe.sample().await;
    let connected = run.started.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut per_call = Vec::with_capacity(calls);
    for t in tasks {
        if let Ok(Some(s)) = t.await {
            per_call.push(s);
        }
    }
    let mut r = report(
        calls,
        connected,
        window_s,
        ramp_up.as_secs_f64(),
        &run,
        &Resources {
            before,
            window_start,
            window_end,
        },
        probe.source(),
    );
    r.per_call = per_call;
    r
}

/// The calls of each ramp step: 50, 100, 200, … below `max`, then `max`.
pub fn ramp_steps(max: usize) -> Vec<usize> {
    let mut steps = Vec::new();
    let mut n = 50;
    while n < max {
        steps.push(n);
        n *= 2;
    }
    steps.push(max);
    steps
}

/// Why a step fails the quality limits; `None` when it passes.
fn over_limit(r: &Report, max_p99: f64, max_late: u64) -> Option<String> {
    let mut why = Vec::new();
    if r.p99_jitter_ms > max_p99 {
        why.push(format!("p99 jitter {} ms > {max_p99} ms", r.p99_jitter_ms));
    }
    if r.counters.late_frames > max_late {
        why.push(format!(
            "{} late frames > {max_late}",
            r.counters.late_frames
        ));
    }
    if r.errors > 0 {
        why.push(format!("{} errors", r.errors));
    }
    (!why.is_empty()).then(|| why.join(", "))
}

#[derive(Debug, Serialize)]
struct Step {
    passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_because: Option<String>,
    #[serde(flatten)]
    report: Report,
}

#[derive(Debug, Serialize)]
struct RssSample {
    calls_done: usize,
    elapsed_s: f64,
    rss_kib: Option<u64>,
}

/// `count` calls of `call_secs` each, `concurrency` at a time, with the server's RSS after
/// every tenth of them.
async fn run_sequential(
    shared: &Arc<Shared>,
    probe: &Probe,
    count: usize,
    concurrency: usize,
    call_secs: f64,
) -> serde_json::Value {
    let run = Arc::new(Run::new());
    run.measuring.store(true, Ordering::Relaxed);
    let before = probe.sample().await;
    let t_start = Instant::now();
    let mut rss = vec![RssSample {
        calls_done: 0,
        elapsed_s: 0.0,
        rss_kib: before.rss_bytes.map(|b| b / 1024),
    }];
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency.min(count))
        .map(|w| {
            let (shared, run, next) = (shared.clone(), run.clone(), next.clone());
            // Spread the workers' first calls over the connect rate's worth of time.
            let start = t_start + Duration::from_millis(w as u64 * 10);
            tokio::spawn(async move {
                tokio::time::sleep_until(start).await;
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= count || INTERRUPTED.load(Ordering::Relaxed) {
                        break;
                    }
                    let stop = StopWhen::After(Duration::from_secs_f64(call_secs));
                    if run_call(shared.clone(), run.clone(), k, Instant::now(), stop)
                        .await
                        .is_none()
                    {
                        run.done.fetch_add(1, Ordering::Relaxed);
                        // A failed call must not spin: the server may be down.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    let mut last = Counters::default();
    let mut tick =
        tokio::time::interval_at(t_start + Duration::from_secs(1), Duration::from_secs(1));
    let mut next_mark = 1;
    loop {
        let done = run.done.load(Ordering::Relaxed);
        while next_mark <= 10 && done * 10 >= count * next_mark {
            let s = probe.sample().await;
            rss.push(RssSample {
                calls_done: done,
                elapsed_s: round2(t_start.elapsed().as_secs_f64()),
                rss_kib: s.rss_bytes.map(|b| b / 1024),
            });
            next_mark += 1;
        }
        if done >= count || workers.iter().all(|w| w.is_finished()) {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                let label = format!("sequential {done}/{count}");
                progress(&label, t_start.elapsed(), &run, concurrency, &mut last);
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    for w in workers {
        let _ = w.await;
    }
    let wall = t_start.elapsed().as_secs_f64();
    let end = probe.sample().await;
    // Give the server a moment to close the last calls' records and free their memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = probe.sample().await;
    let done = run.done.load(Ordering::Relaxed);
    let mut r = report(
        concurrency,
        run.started.load(Ordering::Relaxed),
        wall,
        0.0,
        &run,
        &Resources {
            before,
            window_start: before,
            window_end: end,
        },
        probe.source(),
    );
    // CPU per call-second over the calls' own time, not the wall clock.
    r.cpu_ms_per_call_second = match (before.cpu_s, end.cpu_s) {
        (Some(a), Some(b)) if done > 0 => {
            Some(((b - a) * 1000.0 / (done as f64 * call_secs) * 1000.0).round() / 1000.0)
        }
        _ => None,
    };
    r.rss_kib_per_call = None;
    let mut v = serde_json::to_value(&r).unwrap_or_default();
    v["mode"] = json!("sequential");
    v["sequential"] = json!(count);
    v["calls_done"] = json!(done);
    v["call_secs"] = json!(call_secs);
    v["rss_samples"] = serde_json::to_value(&rss).unwrap_or_default();
    v["rss_start_kib"] = json!(before.rss_bytes.map(|b| b / 1024));
    v["rss_end_kib"] = json!(end.rss_bytes.map(|b| b / 1024));
    v["rss_settled_kib"] = json!(settled.rss_bytes.map(|b| b / 1024));
    v
}

// ------------------------------------------------------------------ entry point

pub fn run(args: &LoadArgs) -> anyhow::Result<()> {
    // The agent's maxDurationSeconds is 3600: every call must end well before it.
    let seconds = |v: f64| v > 0.0 && v <= 3000.0;
    if args.calls == 0 {
        bail!("--calls must be at least 1");
    }
    if !seconds(args.duration) || !seconds(args.call_secs) {
        bail!("--duration and --call-secs must be above 0 and at most 3000 seconds");
    }
    if args.connect_rate.is_nan() || args.connect_rate <= 0.0 {
        bail!("--connect-rate must be above 0");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let out = rt.block_on(load(args))?;
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print_table(&out);
    }
    Ok(())
}

async fn load(args: &LoadArgs) -> anyhow::Result<serde_json::Value> {
    let server = args.server.trim_end_matches('/').to_string();
    let http = twilio_client::http_client()?;
    let probe = Probe::detect(&http, &server, args.server_pid).await;
    if probe.source().is_none() {
        eprintln!(
            "note: no {server}/metrics and no --server-pid: server CPU and memory will be null"
        );
    }
    let agent = create_agent(&http, &server, &args.api_key).await?;
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing the current step");
            INTERRUPTED.store(true, Ordering::Relaxed);
        }
    });
    let shared = Arc::new(Shared {
        http: http.clone(),
        server: server.clone(),
        agent: agent.clone(),
        plan: Arc::new(Plan::new(expected_frames(GREETING), expected_frames(REPLY))),
    });
    let window = Duration::from_secs_f64(args.duration);
    let out = if let Some(count) = args.sequential {
        run_sequential(&shared, &probe, count, args.calls, args.call_secs).await
    } else if args.ramp {
        let mut steps: Vec<Step> = Vec::new();
        for n in ramp_steps(args.calls) {
            if INTERRUPTED.load(Ordering::Relaxed) {
                break;
            }
            if !steps.is_empty() {
                // Let the server wind the last step's calls down first.
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let mut report = run_step(
                &shared,
                &probe,
                n,
                window,
                args.connect_rate,
                &format!("ramp {n}"),
            )
            .await;
            report.per_call.clear();
            let why = over_limit(&report, args.max_p99_jitter_ms, args.max_late_frames);
            eprintln!(
                "step {n}: {}",
                why.as_deref()
                    .map_or("passed".to_string(), |w| format!("failed ({w})"))
            );
            let failed = why.is_some();
            steps.push(Step {
                passed: !failed,
                failed_because: why,
                report,
            });
            if failed {
                break;
            }
        }
        let capacity = steps
            .iter()
            .filter(|s| s.passed)
            .map(|s| s.report.calls)
            .max()
            .unwrap_or(0);
        // The top-level figures are those of the step at capacity (or the first step).
        let at = steps
            .iter()
            .rev()
            .find(|s| s.passed)
            .or(steps.first())
            .map(|s| serde_json::to_value(&s.report).unwrap_or_default())
            .unwrap_or_else(|| json!({}));
        let mut v = at;
        v["mode"] = json!("ramp");
        v["capacity"] = json!(capacity);
        v["max_p99_jitter_ms"] = json!(args.max_p99_jitter_ms);
        v["max_late_frames"] = json!(args.max_late_frames);
        v["steps"] = serde_json::to_value(&steps)?;
        v
    } else {
        let r = run_step(
            &shared,
            &probe,
            args.calls,
            window,
            args.connect_rate,
            "load",
        )
        .await;
        let mut v = serde_json::to_value(&r)?;
        v["mode"] = json!("concurrent");
        v
    };
    // Calls have hung up; the agent can go (its call records stay, as for any agent).
    if let Err(e) = delete_agent(&http, &server, &args.api_key, &agent).await {
        eprintln!("warning: the load-test agent {agent} was not deleted: {e:#}");
    }
    Ok(out)
}

async fn create_agent(http: &reqwest::Client, server: &str, key: &str) -> anyhow::Result<String> {
    let r = http
        .post(format!("{server}/v1/agents"))
        .bearer_auth(key)
        .json(&agent_body())
        .send()
        .await
        .with_context(|| format!("cannot reach {server}"))?;
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() {
        bail!("creating the load-test agent: {status}: {body}");
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    v["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("the agent has no id: {body}"))
}

async fn delete_agent(
    http: &reqwest::Client,
    server: &str,
    key: &str,
    agent: &str,
) -> anyhow::Result<()> {
    // The server closes call records just after the streams end; deleting is refused only
    // while tasks are open, which the load test never makes.
    let r = http
        .delete(format!("{server}/v1/agents/{agent}"))
        .bearer_auth(key)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("{}: {}", r.status(), r.text().await.unwrap_or_default());
    }
    Ok(())
}

fn fmt_opt(v: &serde_json::Value, unit: &str) -> String {
    match v.as_f64() {
        Some(x) => format!("{x}{unit}"),
        None => "n/a".into(),
    }
}

fn print_table(v: &serde_json::Value) {
    let row = |name: &str, value: String| println!("  {name:<28} {value}");
    let summary = |v: &serde_json::Value| {
        row(
            "calls (connected)",
            format!("{} ({})", v["calls"], v["calls_connected"]),
        );
        row(
            "frames sent / received",
            format!("{} / {}", v["frames_sent"], v["frames_received"]),
        );
        row(
            "late frames",
            format!(
                "{} (worst {} ms behind)",
                v["late_frames"], v["max_late_ms"]
            ),
        );
        row(
            "missing frames",
            format!(
                "{} ({} utterances short, {} complete, {} cleared)",
                v["missing_frames"],
                v["utterances_short"],
                v["utterances_complete"],
                v["utterances_cleared"]
            ),
        );
        row(
            "jitter p50 / p99 / max",
            format!(
                "{} / {} / {} ms ({} frames)",
                v["p50_jitter_ms"], v["p99_jitter_ms"], v["max_jitter_ms"], v["jitter_samples"]
            ),
        );
        row(
            "barge-in p50 / p99",
            format!(
                "{} / {} ({} barge-ins, {} missed)",
                fmt_opt(&v["barge_in_p50_ms"], " ms"),
                fmt_opt(&v["barge_in_p99_ms"], " ms"),
                v["barge_ins"],
                v["barge_in_missed"]
            ),
        );
        let k = &v["error_kinds"];
        row(
            "errors",
            format!(
                "{} (webhook {}, connect {}, ws {}, closed early {}, protocol {})",
                v["errors"], k["webhook"], k["connect"], k["ws"], k["closed_early"], k["protocol"]
            ),
        );
        row(
            "client send lag p50/p99/max",
            format!(
                "{} / {} / {} ms",
                v["client_send_lag_p50_ms"],
                v["client_send_lag_p99_ms"],
                v["client_send_lag_max_ms"]
            ),
        );
        row(
            "server CPU",
            format!(
                "{} per call-second ({} of a core), from {}",
                fmt_opt(&v["cpu_ms_per_call_second"], " ms"),
                fmt_opt(&v["server_cpu_percent"], "%"),
                v["server_stats_source"].as_str().unwrap_or("nowhere")
            ),
        );
        row(
            "server RSS",
            format!(
                "{} per call ({} → {} KiB)",
                fmt_opt(&v["rss_kib_per_call"], " KiB"),
                v["rss_before_kib"],
                v["rss_during_kib"]
            ),
        );
        for e in v["error_samples"].as_array().into_iter().flatten() {
            row("error", e.as_str().unwrap_or("").to_string());
        }
        for e in v["short_utterance_samples"]
            .as_array()
            .into_iter()
            .flatten()
        {
            row("short utterance", e.as_str().unwrap_or("").to_string());
        }
    };
    match v["mode"].as_str() {
        Some("ramp") => {
            println!(
                "{:>6} {:<6} {:>6} {:>8} {:>7} {:>7} {:>7} {:>9} {:>6} {:>10} {:>10} {:>9}",
                "calls",
                "result",
                "late",
                "missing",
                "p50 ms",
                "p99 ms",
                "max ms",
                "barge p50",
                "errors",
                "cpu ms/c·s",
                "rss KiB/c",
                "lag p99"
            );
            for s in v["steps"].as_array().into_iter().flatten() {
                println!(
                    "{:>6} {:<6} {:>6} {:>8} {:>7} {:>7} {:>7} {:>9} {:>6} {:>10} {:>10} {:>9}",
                    // serde_json's Display ignores widths: pad strings.
                    s["calls"].to_string(),
                    if s["passed"] == true { "pass" } else { "FAIL" },
                    s["late_frames"].to_string(),
                    s["missing_frames"].to_string(),
                    s["p50_jitter_ms"].to_string(),
                    s["p99_jitter_ms"].to_string(),
                    s["max_jitter_ms"].to_string(),
                    fmt_opt(&s["barge_in_p50_ms"], ""),
                    s["errors"].to_string(),
                    fmt_opt(&s["cpu_ms_per_call_second"], ""),
                    fmt_opt(&s["rss_kib_per_call"], ""),
                    s["client_send_lag_p99_ms"].to_string(),
                );
                if let Some(w) = s["failed_because"].as_str() {
                    println!("       {w}");
                }
            }
            println!(
                "capacity: {} calls (limits: p99 jitter ≤ {} ms, late frames ≤ {}, no errors; {} s per step)",
                v["capacity"], v["max_p99_jitter_ms"], v["max_late_frames"], v["duration_s"]
            );
        }
        Some("sequential") => {
            println!(
                "parley load --sequential: {} of {} calls of {} s, {} at a time, in {} s",
                v["calls_done"], v["sequential"], v["call_secs"], v["calls"], v["duration_s"]
            );
            summary(v);
            println!("  server RSS over the run:");
            for s in v["rss_samples"].as_array().into_iter().flatten() {
                println!(
                    "    after {:>7} calls ({:>7} s): {} KiB",
                    s["calls_done"].to_string(),
                    s["elapsed_s"].to_string(),
                    s["rss_kib"]
                );
            }
            println!(
                "    at the end: {} KiB; 2 s later: {} KiB",
                v["rss_end_kib"], v["rss_settled_kib"]
            );
        }
        _ => {
            println!(
                "parley load: {} calls, {} s steady state (connected in {} s)",
                v["calls"], v["duration_s"], v["ramp_up_s"]
            );
            summary(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(t0: Instant, greeting: u32, reply: u32, k: usize) -> CallState {
        CallState::new(t0, k, "MZ1".into(), Arc::new(Plan::new(greeting, reply)))
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn frame_counts_follow_the_text() {
        assert_eq!(expected_frames("abc"), 9); // 3 × 60 ms = 180 ms
        assert_eq!(expected_frames(GREETING), 3 * GREETING.len() as u32);
    }

    #[test]
    fn a_frame_is_late_only_when_the_playout_ran_dry() {
        let t0 = Instant::now();
        let mut c = call(t0, 30, 30, 0);
        // The lead: 6 frames at once (120 ms of audio), then one every 20 ms.
        for _ in 0..6 {
            c.on_agent_frame(at(t0, 1000));
        }
        for k in 1..=4 {
            c.on_agent_frame(at(t0, 1000 + 20 * k));
        }
        // Playout ends at 1000 + 200 ms. A frame 90 ms behind its grid slot (due at 1100,
        // comes at 1190) is still in time…
        c.on_agent_frame(at(t0, 1190));
        assert_eq!(c.counters.late_frames, 0);
        // …one after the buffer ran dry (playout ended at 1220) is late, by 30 ms.
        c.on_agent_frame(at(t0, 1250));
        assert_eq!(c.counters.late_frames, 1);
        assert_eq!(c.max_late_ms, 30.0);
        // The caller restarted playing from that frame: the next one in time is fine.
        c.on_agent_frame(at(t0, 1260));
        assert_eq!(c.counters.late_frames, 1);
        assert_eq!(c.counters.frames_received, 13);
    }

    #[test]
    fn a_short_utterance_counts_its_missing_frames_after_the_stall() {
        let t0 = Instant::now();
        let mut c = call(t0, 20, 30, 0);
        let mut out = Vec::new();
        for k in 0..15 {
            c.on_agent_frame(at(t0, 20 * k));
        }
        c.on_tick(at(t0, 9000), at(t0, 9000), &mut out);
        assert_eq!(c.counters.missing_frames, 0);
        c.on_tick(at(t0, 10_300), at(t0, 10_300), &mut out);
        assert_eq!(c.counters.missing_frames, 5);
        assert_eq!(c.counters.utterances_short, 1);
        // And the caller speaks up to get the conversation going again.
        c.on_tick(at(t0, 10_600), at(t0, 10_600), &mut out);
        assert!(matches!(c.speaking, Some((Clip::Hello, 1))));
    }

    #[test]
    fn a_starved_tick_does_not_judge_time_outs() {
        let t0 = Instant::now();
        let mut c = call(t0, 20, 30, 0);
        let mut out = Vec::new();
        for k in 0..15 {
            c.on_agent_frame(at(t0, 20 * k));
        }
        // This tool ran 1.5 s late: frames may be waiting unread, so no verdict yet.
        c.on_tick(at(t0, 10_500), at(t0, 9000), &mut out);
        assert_eq!(c.counters.utterances_short, 0);
        c.on_tick(at(t0, 10_510), at(t0, 10_500), &mut out);
        assert_eq!(c.counters.utterances_short, 1);
    }

    #[test]
    fn a_tail_that_comes_seconds_late_is_late_not_missing() {
        let t0 = Instant::now();
        let mut c = call(t0, 20, 30, 0);
        let mut out = Vec::new();
        for k in 0..15 {
            c.on_agent_frame(at(t0, 20 * k));
        }
        for k in 1..250 {
            c.on_tick(at(t0, 20 * k), at(t0, 20 * k), &mut out);
        }
        assert!(c.speaking.is_none(), "the caller waits for the rest");
        for k in 0..5 {
            c.on_agent_frame(at(t0, 5000 + 20 * k));
        }
        assert_eq!(c.counters.utterances_complete, 1);
        assert_eq!(c.counters.missing_frames, 0);
        assert_eq!(c.counters.late_frames, 1);
        assert_eq!(c.max_late_ms, 5000.0 - 300.0);
    }

    #[test]
    fn a_complete_utterance_makes_the_caller_answer_after_it_played() {
        let t0 = Instant::now();
        let mut c = call(t0, 10, 30, 0);
        let mut out = Vec::new();
        for k in 0..10 {
            c.on_agent_frame(at(t0, 20 * k));
        }
        assert_eq!(c.counters.utterances_complete, 1);
        assert_eq!(c.counters.missing_frames, 0);
        // Playout ends at 180 + 20 ms; the caller starts 300 ms later.
        c.on_tick(at(t0, 480), at(t0, 480), &mut out);
        assert!(c.speaking.is_none());
        c.on_tick(at(t0, 500), at(t0, 500), &mut out);
        assert!(matches!(c.speaking, Some((Clip::Hello, 1))));
        // Every tick sends one media frame: the first silence, the second speech.
        assert_eq!(out.len(), 2);
        let m: serde_json::Value = serde_json::from_str(&out[1]).unwrap();
        assert_eq!(m["media"]["payload"].as_str().unwrap(), c.plan.hello[0]);
        assert_eq!(m["media"]["chunk"], "2");
        assert_eq!(m["streamSid"], "MZ1");
    }

    #[test]
    fn barge_in_is_timed_from_the_first_frame_of_speech_to_clear() {
        let t0 = Instant::now();
        // Call 1 talks over the greeting (utterance 0).
        let mut c = call(t0, 100, 100, 1);
        let mut out = Vec::new();
        c.on_text(
            at(t0, 100),
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"//////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////8="}}"#,
            &mut out,
        );
        assert_eq!(
            c.counters.frames_received, 0,
            "payload is 160 bytes? {out:?}"
        );
        assert_eq!(c.counters.protocol_errors, 1);
        let payload = base64::engine::general_purpose::STANDARD.encode([0xFFu8; 160]);
        let frame =
            format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{payload}"}}}}"#);
        for k in 0..50 {
            c.on_text(at(t0, 100 + 20 * k), &frame, &mut out);
        }
        c.on_text(
            at(t0, 1080),
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"p8000"}}"#,
            &mut out,
        );
        assert_eq!(c.counters.frames_received, 50);
        c.on_tick(at(t0, 899), at(t0, 899), &mut out);
        assert!(c.speaking.is_none());
        c.on_tick(at(t0, 901), at(t0, 900), &mut out);
        assert!(matches!(c.speaking, Some((Clip::Wait, 1))));
        out.clear();
        c.on_text(
            at(t0, 1021),
            r#"{"event":"clear","streamSid":"MZ1"}"#,
            &mut out,
        );
        assert_eq!(c.counters.barge_ins, 1);
        assert_eq!(c.fresh_barge, vec![120.0]);
        assert_eq!(c.counters.utterances_cleared, 1);
        assert_eq!(c.counters.missing_frames, 0);
        // The pending mark is echoed at once on clear.
        assert_eq!(out.len(), 1);
        assert!(out[0].contains(r#""name":"p8000""#));
    }

    #[test]
    fn marks_are_echoed_when_playout_reaches_them() {
        let t0 = Instant::now();
        let mut c = call(t0, 100, 100, 0);
        let mut out = Vec::new();
        for _ in 0..6 {
            c.on_agent_frame(t0);
        }
        c.on_text(
            t0,
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"p960"}}"#,
            &mut out,
        );
        c.on_tick(at(t0, 100), at(t0, 100), &mut out);
        assert!(!out.iter().any(|m| m.contains("p960")));
        c.on_tick(at(t0, 120), at(t0, 120), &mut out);
        assert!(out.iter().any(|m| m.contains("p960")));
        assert_eq!(c.counters.marks_echoed, 1);
    }

    #[test]
    fn nothing_is_counted_outside_the_window() {
        let t0 = Instant::now();
        let mut c = call(t0, 10, 10, 0);
        c.measuring = false;
        let mut out = Vec::new();
        for k in 0..8 {
            c.on_agent_frame(at(t0, 20 * k));
        }
        c.on_tick(at(t0, 5000), at(t0, 5000), &mut out);
        assert_eq!(c.counters.frames_received, 0);
        assert_eq!(c.counters.missing_frames, 0);
        assert_eq!(c.counters.frames_sent, 0);
    }

    #[test]
    fn the_histogram_gives_quantiles() {
        let mut h = Hist::new(0.01, 10.0);
        for i in 0..100 {
            h.add(i as f64 * 0.1);
        }
        h.add(50.0);
        assert_eq!(h.count(), 101);
        assert!((h.quantile(0.5) - 5.0).abs() < 0.02, "{}", h.quantile(0.5));
        assert!(
            (h.quantile(0.99) - 9.9).abs() < 0.02,
            "{}",
            h.quantile(0.99)
        );
        assert_eq!(h.quantile(1.0), 50.0);
        assert_eq!(h.max(), 50.0);
        h.clear();
        assert_eq!(h.quantile(0.99), 0.0);
    }

    #[test]
    fn prometheus_text_is_read() {
        let text = r#"# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2345e+08
process_cpu_seconds_total_extra 99
parley_calls_live{channel="twilio",note="a } b"} 7 1700000000000
parley_odd{x="1"} +Inf
"#;
        assert_eq!(
            prometheus_value(text, "process_cpu_seconds_total"),
            Some(12.34)
        );
        assert_eq!(
            prometheus_value(text, "process_resident_memory_bytes"),
            Some(123_450_000.0)
        );
        assert_eq!(prometheus_value(text, "parley_calls_live"), Some(7.0));
        assert_eq!(prometheus_value(text, "parley_odd"), Some(f64::INFINITY));
        assert_eq!(prometheus_value(text, "process_open_fds"), None);
        assert_eq!(prometheus_value("", "x"), None);
    }

    #[test]
    fn proc_files_are_read() {
        let stat = "4242 (parley (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 9 0 100 2000000 5000";
        assert_eq!(proc_stat_cpu_s(stat, 100.0), Some(3.8));
        let status = "Name:\tparley\nVmPeak:\t  200000 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n";
        assert_eq!(proc_status_rss(status), Some(51200 * 1024));
        assert_eq!(proc_status_rss("Name: x"), None);
    }

    #[test]
    fn ramp_steps_double_up_to_the_limit() {
        assert_eq!(ramp_steps(1000), vec![50, 100, 200, 400, 800, 1000]);
        assert_eq!(ramp_steps(400), vec![50, 100, 200, 400]);
        assert_eq!(ramp_steps(30), vec![30]);
    }
}
