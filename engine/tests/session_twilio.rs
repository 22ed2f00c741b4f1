//! A whole call through the Twilio Media Streams transport and the turn loop, on the real
//! clock, with scripted providers and an in-memory socket playing Twilio's part: it streams
//! a fixture as paced μ-law media, plays the agent's audio in real time and echoes marks
//! when playback reaches them, as Twilio does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use parley_engine::providers::scripted::{ScriptedLlm, ScriptedStt, ScriptedTts, ScriptedVoice};
use parley_engine::providers::{ChatRequest, Providers, Role, SttRequest, TtsRequest};
use parley_engine::session::{self, AgentSpec, SessionEvent, SessionSummary};
use parley_engine::twilio::{TextSocket, TwilioTransport};
use parley_engine::worker::WorkerPool;
use parley_engine::{CallConfig, Event};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// These tests run real-time calls; one at a time keeps them from measuring each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct ChannelSocket {
    rx: mpsc::Receiver<String>,
    tx: mpsc::Sender<String>,
}

impl TextSocket for ChannelSocket {
    async fn recv(&mut self) -> Option<Result<String, String>> {
        self.rx.recv().await.map(Ok)
    }
    async fn send(&mut self, text: String) -> Result<(), String> {
        self.tx.send(text).await.map_err(|e| e.to_string())
    }
    async fn close(&mut self) {
        self.rx.close();
    }
}

const GREETING: &str = "Hello and thanks for calling Acme support how can I help you today";

fn spec() -> AgentSpec {
    let agent = common::ulaw_fixture("agent_reply");
    AgentSpec {
        call: CallConfig::default(),
        providers: Providers {
            stt: Arc::new(ScriptedStt::new(
                vec!["I have a different question".into()],
                Duration::from_millis(50),
            )),
            llm: Arc::new(ScriptedLlm::new(
                vec!["Of course. What would you like to know?".into()],
                Duration::from_millis(50),
                Duration::ZERO,
            )),
            tts: Arc::new(ScriptedTts::new(
                ScriptedVoice::Clip {
                    samples: Arc::new(agent),
                    rate: 8000,
                },
                Duration::from_millis(20),
            )),
        },
        system_prompt: "You are a test agent.".into(),
        first_message: Some(GREETING.into()),
        end_call_phrases: vec!["goodbye".into()],
        idle_message: None,
        llm: ChatRequest::default(),
        tts: TtsRequest::default(),
        stt: SttRequest::default(),
        recording: None,
    }
}

/// What the simulated Twilio saw.
#[derive(Debug, Default)]
struct Peer {
    /// Arrival of each outbound media frame, since the stream started.
    media: Vec<Duration>,
    clears: Vec<Duration>,
    marks_echoed: usize,
}

fn media_msg(chunk: usize, ulaw: &[u8]) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{}","payload":"{}"}},"streamSid":"MZtest"}}"#,
        chunk + 1,
        chunk * 20,
        base64::engine::general_purpose::STANDARD.encode(ulaw)
    )
}

/// Plays Twilio: streams `caller` (raw μ-law) in real time, then `tail_ms` more of
/// silence, then `stop`. `extra` messages are sent right after `start`.
async fn twilio_peer(
    caller: Vec<u8>,
    tail_ms: u64,
    extra: Vec<String>,
    to_server: mpsc::Sender<String>,
    mut from_server: mpsc::Receiver<String>,
) -> Peer {
    let mut peer = Peer::default();
    to_server
        .send(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.into())
        .await
        .unwrap();
    to_server.send(r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZtest","callSid":"CAtest","tracks":["inbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZtest"}"#.into()).await.unwrap();
    for m in extra {
        to_server.send(m).await.unwrap();
    }
    let start = Instant::now();
    let mut frames = caller.chunks(160).map(|c| c.to_vec()).collect::<Vec<_>>();
    frames.extend(std::iter::repeat_n(
        vec![0xFFu8; 160],
        (tail_ms / 20) as usize,
    ));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    // Twilio's playback buffer: when its queued audio ends, and marks waiting for it.
    let mut play_end = start;
    let mut marks: Vec<(Instant, String)> = Vec::new();
    let mut chunk = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                // Echo marks whose audio has played.
                let (due, later): (Vec<_>, Vec<_>) = marks.drain(..).partition(|(t, _)| *t <= now);
                marks = later;
                for (_, name) in due {
                    peer.marks_echoed += 1;
                    let _ = to_server.send(format!(r#"{{"event":"mark","sequenceNumber":"9","streamSid":"MZtest","mark":{{"name":"{name}"}}}}"#)).await;
                }
                if chunk < frames.len() {
                    chunk += 1;
                    let _ = to_server.send(media_msg(chunk, &frames[chunk - 1])).await;
                } else {
                    let _ = to_server.send(r#"{"event":"stop","sequenceNumber":"99","streamSid":"MZtest","stop":{"accountSid":"AC1","callSid":"CAtest"}}"#.into()).await;
                    return peer;
                }
            }
            msg = from_server.recv() => {
                let Some(msg) = msg else { return peer };
                let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
                let now = Instant::now();
                match v["event"].as_str().unwrap() {
                    "media" => {
                        peer.media.push(now - start);
                        play_end = play_end.max(now) + Duration::from_millis(20);
                    }
                    "mark" => marks.push((play_end, v["mark"]["name"].as_str().unwrap().to_string())),
                    "clear" => {
                        peer.clears.push(now - start);
                        play_end = now;
                        // Twilio returns the marks of cleared audio at once.
                        for (_, name) in marks.drain(..) {
                            let _ = to_server.send(format!(r#"{{"event":"mark","streamSid":"MZtest","mark":{{"name":"{name}"}}}}"#)).await;
                        }
                    }
                    other => panic!("unexpected outbound event {other}"),
                }
            }
        }
    }
}

async fn call(
    caller_fixture: &str,
    tail_ms: u64,
    extra: Vec<String>,
) -> (Peer, SessionSummary, Vec<SessionEvent>) {
    call_with(spec(), caller_fixture, tail_ms, extra).await
}

async fn call_with(
    spec: AgentSpec,
    caller_fixture: &str,
    tail_ms: u64,
    extra: Vec<String>,
) -> (Peer, SessionSummary, Vec<SessionEvent>) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let pool = WorkerPool::new(1).unwrap();
    let (to_server_tx, to_server_rx) = mpsc::channel(256);
    let (from_server_tx, from_server_rx) = mpsc::channel(256);
    let caller =
        std::fs::read(common::fixtures_dir().join(format!("{caller_fixture}.8k.ulaw"))).unwrap();
    let peer = tokio::spawn(twilio_peer(
        caller,
        tail_ms,
        extra,
        to_server_tx,
        from_server_rx,
    ));
    let socket = ChannelSocket {
        rx: to_server_rx,
        tx: from_server_tx,
    };
    let (transport, info) = TwilioTransport::accept(socket).await.unwrap();
    assert_eq!(info.call_sid, "CAtest");
    let (obs_tx, mut obs_rx) = mpsc::channel(4096);
    let summary = session::run(&pool, &spec, transport, obs_tx).await.unwrap();
    let peer = peer.await.unwrap();
    let mut events = Vec::new();
    while let Ok(e) = obs_rx.try_recv() {
        events.push(e);
    }
    (peer, summary, events)
}

fn find(events: &[SessionEvent], f: impl Fn(&Event) -> bool) -> Option<&Event> {
    events.iter().find_map(|e| match e {
        SessionEvent::Engine(ev) if f(ev) => Some(ev),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_interrupts_the_greeting_and_gets_an_answer() {
    // Caller: 1 s silence, then "wait stop I have a different question" (1.5 s), 1 s silence.
    let (peer, summary, events) = call("barge_in", 1500, vec![]).await;

    // The greeting went out paced: after the 100 ms lead burst (6 frames), one frame every
    // 20 ms. Each frame's offset from that grid is measured on this side of the socket and
    // compared with the median offset (so a late first frame does not skew the rest).
    // A loaded 2-core VM (steal time up to 20–80 %) adds its own scheduling noise: half
    // the frames must be within ±5 ms of the grid (a burst would put almost none there).
    // The load tool measures jitter properly (percentiles over many calls); this checks
    // that audio is paced, not burst.
    let offsets: Vec<i64> = peer.media[6..45]
        .iter()
        .enumerate()
        .map(|(i, t)| t.as_micros() as i64 - 20_000 * i as i64)
        .collect();
    let mut sorted = offsets.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let dev: Vec<i64> = offsets.iter().map(|o| (o - median) / 1000).collect();
    let within = dev.iter().filter(|d| d.abs() <= 5).count();
    assert!(
        within * 100 >= dev.len() * 50,
        "grid deviation (ms) {dev:?}"
    );
    assert!(peer.marks_echoed > 3);

    // Barge-in: speech onset at 1.0 s of caller audio; `clear` within 150 ms of it.
    assert!(!peer.clears.is_empty(), "no clear: {events:?}");
    let clear = peer.clears[0];
    assert!(
        clear >= Duration::from_millis(1000) && clear <= Duration::from_millis(1150),
        "clear at {clear:?}"
    );
    let Some(Event::Interrupted { played_ms, .. }) =
        find(&events, |e| matches!(e, Event::Interrupted { .. }))
    else {
        panic!("no Interrupted event")
    };
    // The greeting started at once; the caller heard it until about 1.0–1.15 s.
    assert!((850..=1200).contains(played_ms), "played {played_ms} ms");

    // History: the greeting cut to what was heard, the caller's turn, the reply.
    let h = &summary.history;
    assert_eq!(h[0].role, Role::System);
    assert_eq!(h[1].role, Role::Assistant);
    assert!(GREETING.starts_with(&h[1].content), "{:?}", h[1].content);
    assert!(
        h[1].content.len() < GREETING.len() / 2,
        "{:?}",
        h[1].content
    );
    assert_eq!(h[2].role, Role::User);
    assert_eq!(h[2].content, "I have a different question");
    assert!(events.iter().any(|e| matches!(
        e,
        SessionEvent::Transcript {
            role: Role::Assistant,
            interrupted: true,
            ..
        }
    )));
    // The reply was spoken after the turn ended (marks echoed, frames sent after the clear).
    assert!(peer
        .media
        .iter()
        .any(|t| *t > clear + Duration::from_millis(700)));
    assert_eq!(summary.reason, "caller hung up");
    // About one wake-up per message, frame and provider event (a few hundred a second of
    // call); a loop spinning on something always ready (e.g. a closed provider channel
    // while a reply plays) would make it hundreds of thousands.
    let frames = (peer.media.len() + 50 * 6) as u64;
    assert!(
        summary.wakeups < 10 * frames,
        "{} wake-ups for ~{frames} frames",
        summary.wakeups
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backchannel_does_not_clear_and_malformed_messages_do_not_end_the_call() {
    let garbage = vec![
        "{not json".to_string(),
        r#"{"event":"media","media":{"track":"inbound","chunk":"1","payload":"!!!"},"streamSid":"MZtest"}"#.to_string(),
        r#"{"event":"bogus"}"#.to_string(),
        "x".repeat(100_000),
    ];
    let (peer, summary, events) = call("backchannel", 500, garbage).await;
    assert!(peer.clears.is_empty(), "clear on a backchannel: {events:?}");
    assert!(find(&events, |e| matches!(e, Event::Interrupted { .. })).is_none());
    assert!(find(&events, |e| matches!(e, Event::TurnEnded { .. })).is_none());
    assert_eq!(summary.reason, "caller hung up");
    // The greeting kept playing through it all (3.74 s of caller audio ≈ 180 frames).
    assert!(peer.media.len() > 150, "{}", peer.media.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_hangs_up_after_saying_an_end_call_phrase() {
    let mut spec = spec();
    spec.first_message = None;
    spec.providers.llm = Arc::new(ScriptedLlm::new(
        vec!["Thanks for calling. Goodbye!".into()],
        Duration::from_millis(50),
        Duration::ZERO,
    ));
    // A tone as long as the text (40 ms a character): the reply lasts about 1.1 s.
    spec.providers.tts = Arc::new(ScriptedTts::new(
        ScriptedVoice::Tone { ms_per_char: 40 },
        Duration::from_millis(20),
    ));
    // Caller speaks 1.0–2.5 s; the turn ends at 3.2 s; the reply plays; then we hang up,
    // long before the caller's 6 s of silence would have ended the stream.
    let (peer, summary, events) = call_with(spec, "barge_in", 6000, vec![]).await;
    assert_eq!(summary.reason, "agent ended the call", "{events:#?}");
    let last = summary.history.last().unwrap();
    assert_eq!(
        (last.role, last.content.as_str()),
        (Role::Assistant, "Thanks for calling. Goodbye!")
    );
    assert!(peer.media.last().unwrap() < &Duration::from_millis(9000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_brings_the_idle_prompt() {
    let mut spec = spec();
    spec.first_message = Some("Hi".into());
    spec.call.max_idle = Some(Duration::from_millis(800));
    spec.idle_message = Some("Are you still there?".into());
    // The noise fixture: 6.5 s with no speech in it.
    let (_peer, _summary, events) = call_with(spec, "noise", 0, vec![]).await;
    let said: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Transcript {
                role: Role::Assistant,
                text,
                ..
            } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(said.len() >= 2, "{said:?}");
    assert_eq!(said[0], "Hi");
    // The scripted voice plays a 4.2 s clip for any text, so the last prompt may be cut
    // off by the end of the call: what was heard of it is a prefix.
    assert!(
        said[1..]
            .iter()
            .all(|t| !t.is_empty() && "Are you still there?".starts_with(t)),
        "{said:?}"
    );
}
