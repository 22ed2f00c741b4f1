//! The direct agent socket, sans-I/O: the protocol a custom client speaks to an agent over
//! one WebSocket, and [`DirectTransport`], the [`Transport`] over any [`FrameSocket`].
//!
//! Binary frames are PCM16 little-endian mono at the rate negotiated when the socket
//! opened, both ways: caller audio in (any length; a trailing odd byte waits for the next
//! frame), agent audio out (20 ms frames, paced by the engine). Text frames are JSON:
//!
//! - client → server: `{"type":"dtmf","digit":"5"}`, `{"type":"end"}`. Anything else is
//!   answered with an `error` event and the call carries on.
//! - server → client: `session.started`, `transcript.partial`, `transcript.final`,
//!   `turn.ended`, `interrupted`, `latency`, `dtmf`, `clear`, `error`, `session.ended`
//!   (built by the functions here; the server decides when to send the session ones).
//!
//! The client plays audio as it receives it, so marks are acknowledged at once (run the call
//! with [`crate::PlaybackAck::Sent`]), and `clear` asks it to drop what it has queued.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::call::Event;
use crate::providers::Role;
use crate::session::{SessionEvent, Transport, TransportEvent};
use crate::trace::TurnTrace;

/// Consecutive malformed client messages after which the socket is given up.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 50;

/// One WebSocket message of the direct protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Binary(Vec<u8>),
    Text(String),
}

/// A WebSocket reduced to what the direct protocol needs: binary and text frames in and
/// out. The HTTP server implements it for its socket, tests for in-memory channels.
pub trait FrameSocket: Send {
    /// Next frame; `None` when the socket closed, `Err` when it failed. Cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Option<Result<Frame, String>>> + Send;
    fn send(&mut self, frame: Frame) -> impl Future<Output = Result<(), String>> + Send;
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Something the client asked for in a text frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage {
    Dtmf(char),
    End,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("unknown message type {0:?} (expected \"dtmf\" or \"end\")")]
    UnknownType(String),
    #[error("bad DTMF digit {0:?} (one of 0-9, *, #, A-D)")]
    Digit(String),
}

#[derive(Deserialize)]
struct Msg {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    digit: Option<Value>,
}

/// Parses one text frame from the client.
pub fn parse_client(text: &str) -> Result<ClientMessage, ClientError> {
    let msg: Msg = serde_json::from_str(text).map_err(|e| ClientError::Json(e.to_string()))?;
    match msg.kind.as_str() {
        "dtmf" => {
            let raw = match &msg.digit {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(other) => return Err(ClientError::Digit(short(&other.to_string()))),
                None => return Err(ClientError::Digit(String::new())),
            };
            let mut chars = raw.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') => {
                    Ok(ClientMessage::Dtmf(c))
                }
                _ => Err(ClientError::Digit(short(&raw))),
            }
        }
        "end" => Ok(ClientMessage::End),
        other => Err(ClientError::UnknownType(short(other))),
    }
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Turns a stream of bytes into PCM16 little-endian samples, whatever the frame boundaries.
#[derive(Debug, Default)]
pub struct PcmDecoder {
    carry: Option<u8>,
}

impl PcmDecoder {
    /// Samples in `bytes` (after any byte left over from the previous call).
    pub fn decode(&mut self, bytes: &[u8]) -> Vec<i16> {
        let mut out = Vec::with_capacity(bytes.len() / 2 + 1);
        let mut rest = bytes;
        if let Some(lo) = self.carry.take() {
            match rest.split_first() {
                Some((&hi, tail)) => {
                    out.push(i16::from_le_bytes([lo, hi]));
                    rest = tail;
                }
                None => {
                    self.carry = Some(lo);
                    return out;
                }
            }
        }
        let mut pairs = rest.chunks_exact(2);
        out.extend(pairs.by_ref().map(|p| i16::from_le_bytes([p[0], p[1]])));
        self.carry = pairs.remainder().first().copied();
        out
    }
}

/// Samples as PCM16 little-endian bytes.
pub fn encode_pcm(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// `session.started`: the call is recorded and the agent is listening.
pub fn started_message(call_id: &str, sample_rate: u32) -> String {
    json!({"type": "session.started", "callId": call_id, "sampleRate": sample_rate}).to_string()
}

/// `session.ended`, the last message before the server closes the socket.
pub fn ended_message(reason: &str) -> String {
    json!({"type": "session.ended", "reason": reason}).to_string()
}

/// `error`: something went wrong; unless `session.ended` follows, the call goes on.
pub fn error_message(message: &str) -> String {
    json!({"type": "error", "message": message}).to_string()
}

/// `clear`: drop the agent audio queued at the client (the caller barged in).
pub fn clear_message() -> String {
    r#"{"type":"clear"}"#.to_string()
}

/// The `latency` message of a finished turn: speech end → first agent audio sent, and
/// every stage the trace stamped (ms since the call started).
pub fn latency_message(t: &TurnTrace) -> String {
    let mut stages = Map::new();
    let all = [
        ("speechStart", t.speech_start),
        ("speechEnd", t.speech_end),
        ("turnEnd", t.turn_end),
        ("sttFinal", t.stt_final),
        ("llmRequest", t.llm_request),
        ("llmFirstToken", t.llm_first_token),
        ("firstSentence", t.first_sentence),
        ("ttsRequest", t.tts_request),
        ("ttsFirstAudio", t.tts_first_audio),
        ("firstAudioSent", t.first_audio_sent),
        ("firstPlaybackAck", t.first_playback_ack),
        ("playbackDone", t.playback_done),
        ("interrupted", t.interrupted),
    ];
    for (name, at) in all {
        if let Some(at) = at {
            stages.insert(name.into(), ms(at).into());
        }
    }
    json!({
        "type": "latency",
        "turn": t.turn,
        "speechEndToFirstAudioMs": t.voice_to_voice().map(ms),
        "playedMs": t.played_ms,
        "stages": stages,
    })
    .to_string()
}

/// The JSON event a session event becomes for the client, if it is one the protocol carries.
pub fn event_message(ev: &SessionEvent) -> Option<String> {
    let v = match ev {
        SessionEvent::Partial { text } => {
            json!({"type": "transcript.partial", "role": "user", "text": text})
        }
        SessionEvent::Transcript {
            role,
            text,
            at,
            interrupted,
        } => json!({
            "type": "transcript.final",
            "role": match role { Role::User => "user", _ => "agent" },
            "text": text,
            "interrupted": interrupted,
            "atMs": ms(*at),
        }),
        SessionEvent::ProviderError { provider, message } => json!({
            "type": "error",
            "message": format!("{provider}: {message}"),
            "provider": provider,
        }),
        SessionEvent::Engine(e) => match e {
            Event::TurnEnded {
                turn,
                speech_start,
                speech_end,
            } => json!({
                "type": "turn.ended",
                "turn": turn,
                "speechStartMs": ms(*speech_start),
                "speechEndMs": ms(*speech_end),
            }),
            Event::Interrupted {
                utterance,
                played_ms,
                onset,
            } => json!({
                "type": "interrupted",
                "utterance": utterance,
                "playedMs": played_ms,
                "onsetMs": ms(*onset),
            }),
            Event::Dtmf { digit } => json!({"type": "dtmf", "digit": digit.to_string()}),
            Event::TurnTrace(t) => return Some(latency_message(t)),
            _ => return None,
        },
    };
    Some(v.to_string())
}

/// Counters of what the client sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectStats {
    pub audio_frames: u64,
    pub text_messages: u64,
    pub malformed: u64,
}

/// A direct agent socket as a [`Transport`] for the session. Session events other than
/// audio, `clear` and malformed-input errors are the server's to send (see
/// [`event_message`]) through the same socket.
pub struct DirectTransport<S> {
    socket: S,
    pcm: PcmDecoder,
    /// Marks to acknowledge: the client plays audio as it arrives.
    acks: VecDeque<u64>,
    /// An `error` event still to be sent to the client.
    pending_error: Option<String>,
    consecutive_errors: u32,
    pub stats: DirectStats,
}

impl<S: FrameSocket> DirectTransport<S> {
    pub fn new(socket: S) -> Self {
        Self {
            socket,
            pcm: PcmDecoder::default(),
            acks: VecDeque::new(),
            pending_error: None,
            consecutive_errors: 0,
            stats: DirectStats::default(),
        }
    }
}

impl<S: FrameSocket> Transport for DirectTransport<S> {
    async fn recv(&mut self) -> TransportEvent {
        if let Some(pos) = self.acks.pop_front() {
            return TransportEvent::MarkAck(pos);
        }
        loop {
            // Sent before reading on, and cleared only once sent: cancel-safe.
            if let Some(msg) = self.pending_error.clone() {
                if let Err(e) = self.socket.send(Frame::Text(msg)).await {
                    return TransportEvent::Closed(format!("websocket error: {e}"));
                }
                self.pending_error = None;
            }
            let frame = match self.socket.recv().await {
                None => return TransportEvent::Closed("websocket closed".into()),
                Some(Err(e)) => return TransportEvent::Closed(format!("websocket error: {e}")),
                Some(Ok(f)) => f,
            };
            match frame {
                Frame::Binary(bytes) => {
                    self.stats.audio_frames += 1;
                    let samples = self.pcm.decode(&bytes);
                    if !samples.is_empty() {
                        return TransportEvent::Audio(samples);
                    }
                }
                Frame::Text(text) => {
                    self.stats.text_messages += 1;
                    match parse_client(&text) {
                        Ok(m) => {
                            self.consecutive_errors = 0;
                            return match m {
                                ClientMessage::Dtmf(d) => TransportEvent::Dtmf(d),
                                ClientMessage::End => {
                                    TransportEvent::Closed("client ended the session".into())
                                }
                            };
                        }
                        Err(e) => {
                            self.stats.malformed += 1;
                            self.consecutive_errors += 1;
                            tracing::warn!(error = %e, "direct socket: bad message");
                            if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                                return TransportEvent::Closed(format!(
                                    "too many malformed messages (last: {e})"
                                ));
                            }
                            self.pending_error = Some(error_message(&e.to_string()));
                        }
                    }
                }
            }
        }
    }

    async fn send_audio(&mut self, samples: &[i16]) -> Result<(), String> {
        self.socket.send(Frame::Binary(encode_pcm(samples))).await
    }

    async fn send_mark(&mut self, pos: u64) -> Result<(), String> {
        self.acks.push_back(pos);
        Ok(())
    }

    async fn send_clear(&mut self) -> Result<(), String> {
        self.socket.send(Frame::Text(clear_message())).await
    }

    async fn close(&mut self) {
        self.socket.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse() {
        assert_eq!(
            parse_client(r#"{"type":"dtmf","digit":"5"}"#),
            Ok(ClientMessage::Dtmf('5'))
        );
        assert_eq!(
            parse_client(r##"{"type":"dtmf","digit":"#"}"##),
            Ok(ClientMessage::Dtmf('#'))
        );
        assert_eq!(
            parse_client(r#"{"type":"dtmf","digit":7}"#),
            Ok(ClientMessage::Dtmf('7'))
        );
        assert_eq!(parse_client(r#"{"type":"end"}"#), Ok(ClientMessage::End));
        // Extra fields are tolerated (clients add ids, timestamps).
        assert_eq!(
            parse_client(r#"{"type":"end","id":3}"#),
            Ok(ClientMessage::End)
        );
    }

    #[test]
    fn malformed_client_messages_are_errors_not_panics() {
        assert!(matches!(
            parse_client("{not json"),
            Err(ClientError::Json(_))
        ));
        assert!(matches!(parse_client(""), Err(ClientError::Json(_))));
        assert!(matches!(parse_client("[]"), Err(ClientError::Json(_))));
        assert!(matches!(
            parse_client(r#"{"digit":"5"}"#),
            Err(ClientError::Json(_))
        ));
        assert!(matches!(
            parse_client(r#"{"type":5}"#),
            Err(ClientError::Json(_))
        ));
        assert!(matches!(
            parse_client(r#"{"type":"bogus"}"#),
            Err(ClientError::UnknownType(t)) if t == "bogus"
        ));
        for bad in [
            r#"{"type":"dtmf"}"#,
            r#"{"type":"dtmf","digit":"x"}"#,
            r#"{"type":"dtmf","digit":"55"}"#,
            r#"{"type":"dtmf","digit":""}"#,
            r#"{"type":"dtmf","digit":null}"#,
            r#"{"type":"dtmf","digit":12}"#,
            r#"{"type":"dtmf","digit":["5"]}"#,
        ] {
            assert!(
                matches!(parse_client(bad), Err(ClientError::Digit(_))),
                "{bad}"
            );
        }
        let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(10_000));
        let Err(ClientError::UnknownType(t)) = parse_client(&long) else {
            panic!()
        };
        assert_eq!(t.len(), 40);
    }

    #[test]
    fn pcm_survives_any_framing() {
        let samples: Vec<i16> = (0..321).map(|i| (i * 97 - 15000) as i16).collect();
        let bytes = encode_pcm(&samples);
        assert_eq!(bytes.len(), 642);
        assert_eq!(&bytes[..2], &samples[0].to_le_bytes());
        for split in [1usize, 3, 7, 640, 641] {
            let mut d = PcmDecoder::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(split) {
                got.extend(d.decode(chunk));
            }
            assert_eq!(got, samples, "chunks of {split}");
        }
        let mut d = PcmDecoder::default();
        assert!(d.decode(&[]).is_empty());
        assert!(d.decode(&[1]).is_empty());
        assert!(d.decode(&[]).is_empty());
        assert_eq!(d.decode(&[2]), vec![i16::from_le_bytes([1, 2])]);
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn session_events_become_client_events() {
        let ms = Duration::from_millis;
        let v = parse(
            &event_message(&SessionEvent::Transcript {
                role: Role::User,
                text: "I have a \"different\" question".into(),
                at: ms(2500),
                interrupted: false,
            })
            .unwrap(),
        );
        assert_eq!(v["type"], "transcript.final");
        assert_eq!(v["role"], "user");
        assert_eq!(v["text"], "I have a \"different\" question");
        assert_eq!(v["interrupted"], false);
        assert_eq!(v["atMs"], 2500);
        let v = parse(
            &event_message(&SessionEvent::Transcript {
                role: Role::Assistant,
                text: "Hello".into(),
                at: ms(1),
                interrupted: true,
            })
            .unwrap(),
        );
        assert_eq!(
            (v["role"].as_str(), v["interrupted"].as_bool()),
            (Some("agent"), Some(true))
        );
        let v = parse(
            &event_message(&SessionEvent::Partial {
                text: "I have".into(),
            })
            .unwrap(),
        );
        assert_eq!(
            (v["type"].as_str(), v["text"].as_str()),
            (Some("transcript.partial"), Some("I have"))
        );
        let v = parse(
            &event_message(&SessionEvent::Engine(Event::Interrupted {
                utterance: 1,
                played_ms: 1040,
                onset: ms(1020),
            }))
            .unwrap(),
        );
        assert_eq!(
            (v["type"].as_str(), v["playedMs"].as_u64()),
            (Some("interrupted"), Some(1040))
        );
        let v = parse(
            &event_message(&SessionEvent::Engine(Event::TurnEnded {
                turn: 1,
                speech_start: ms(1000),
                speech_end: ms(2500),
            }))
            .unwrap(),
        );
        assert_eq!(
            (v["type"].as_str(), v["speechEndMs"].as_u64()),
            (Some("turn.ended"), Some(2500))
        );
        let v = parse(&event_message(&SessionEvent::Engine(Event::Dtmf { digit: '#' })).unwrap());
        assert_eq!(
            (v["type"].as_str(), v["digit"].as_str()),
            (Some("dtmf"), Some("#"))
        );
        let v = parse(
            &event_message(&SessionEvent::ProviderError {
                provider: "scripted".into(),
                message: "boom".into(),
            })
            .unwrap(),
        );
        assert_eq!(v["type"], "error");
        assert!(v["message"].as_str().unwrap().contains("boom"));
        assert_eq!(
            event_message(&SessionEvent::Engine(Event::PlaybackStarted {
                utterance: 1
            })),
            None
        );
    }

    #[test]
    fn a_turn_trace_becomes_a_latency_event() {
        let ms = Duration::from_millis;
        let mut t = TurnTrace::new(2);
        t.speech_start = Some(ms(1000));
        t.speech_end = Some(ms(2500));
        t.turn_end = Some(ms(3200));
        t.first_audio_sent = Some(ms(3350));
        t.played_ms = Some(900);
        let v = parse(&event_message(&SessionEvent::Engine(Event::TurnTrace(t))).unwrap());
        assert_eq!(v["type"], "latency");
        assert_eq!(v["turn"], 2);
        assert_eq!(v["speechEndToFirstAudioMs"], 850);
        assert_eq!(v["playedMs"], 900);
        let stages = v["stages"].as_object().unwrap();
        assert_eq!(stages.len(), 4, "{stages:?}");
        assert_eq!(stages["turnEnd"], 3200);
        assert!(!stages.contains_key("sttFinal"));
        // The greeting's turn has no caller speech: no voice-to-voice figure.
        let v = parse(&latency_message(&TurnTrace::new(0)));
        assert!(v["speechEndToFirstAudioMs"].is_null());
    }

    #[test]
    fn fixed_messages() {
        let v = parse(&started_message("call_1", 16000));
        assert_eq!(
            (
                v["type"].as_str(),
                v["callId"].as_str(),
                v["sampleRate"].as_u64()
            ),
            (Some("session.started"), Some("call_1"), Some(16000))
        );
        assert_eq!(
            parse(&ended_message("client ended the session"))["reason"],
            "client ended the session"
        );
        assert_eq!(parse(&error_message("x\"y"))["message"], "x\"y");
        assert_eq!(parse(&clear_message())["type"], "clear");
    }

    /// A socket over channels: frames in from `rx`, frames out to `tx`.
    struct ChanSocket {
        rx: tokio::sync::mpsc::Receiver<Frame>,
        tx: tokio::sync::mpsc::Sender<Frame>,
    }

    impl FrameSocket for ChanSocket {
        async fn recv(&mut self) -> Option<Result<Frame, String>> {
            self.rx.recv().await.map(Ok)
        }
        async fn send(&mut self, frame: Frame) -> Result<(), String> {
            self.tx.send(frame).await.map_err(|e| e.to_string())
        }
        async fn close(&mut self) {}
    }

    #[tokio::test]
    async fn the_transport_maps_frames_to_events() {
        use tokio::sync::mpsc;
        let (in_tx, in_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        let mut t = DirectTransport::new(ChanSocket {
            rx: in_rx,
            tx: out_tx,
        });
        in_tx
            .send(Frame::Binary(encode_pcm(&[1, -2, 3])))
            .await
            .unwrap();
        assert_eq!(t.recv().await, TransportEvent::Audio(vec![1, -2, 3]));

        // Malformed text: an error event goes back, the call goes on.
        in_tx.send(Frame::Text("{oops".into())).await.unwrap();
        in_tx
            .send(Frame::Text(r#"{"type":"dtmf","digit":"9"}"#.into()))
            .await
            .unwrap();
        assert_eq!(t.recv().await, TransportEvent::Dtmf('9'));
        let Some(Frame::Text(err)) = out_rx.recv().await else {
            panic!()
        };
        assert_eq!(parse(&err)["type"], "error");
        assert_eq!(t.stats.malformed, 1);

        // Marks are acknowledged at once; audio goes out as PCM bytes; clear as JSON.
        t.send_mark(3200).await.unwrap();
        assert_eq!(t.recv().await, TransportEvent::MarkAck(3200));
        t.send_audio(&[5; 320]).await.unwrap();
        let Some(Frame::Binary(b)) = out_rx.recv().await else {
            panic!()
        };
        assert_eq!(b.len(), 640);
        t.send_clear().await.unwrap();
        assert_eq!(out_rx.recv().await, Some(Frame::Text(clear_message())));

        in_tx
            .send(Frame::Text(r#"{"type":"end"}"#.into()))
            .await
            .unwrap();
        assert!(matches!(t.recv().await, TransportEvent::Closed(r) if r.contains("client ended")));
        drop(in_tx);
        assert!(matches!(t.recv().await, TransportEvent::Closed(r) if r.contains("closed")));
    }
}
