//! Twilio Media Streams, sans-I/O: parse the JSON messages Twilio sends over the stream's
//! WebSocket, and write the ones we send back. No socket here; the transport adapter
//! (`session`) moves text frames.
//!
//! Inbound: `connected`, `start` (streamSid, callSid, customParameters, mediaFormat),
//! `media` (base64 μ-law 8 kHz, with chunk number and timestamp), `dtmf`, `mark`, `stop`.
//! Outbound: `media` (20 ms μ-law frames), `mark` (Twilio echoes it once the audio before
//! it has played), `clear` (drop buffered audio: barge-in).
//!
//! Malformed input never panics: bad JSON, bad base64, media before `start`, duplicate or
//! out-of-order chunks are reported as errors or dropped, and counted in [`StreamStats`].

use std::collections::HashMap;
use std::future::Future;

use base64::Engine as _;
use serde::Deserialize;

use parley_codecs::g711;

use crate::session::{Transport, TransportEvent};

/// Largest media payload accepted, in decoded bytes (Twilio sends 160; one second is plenty).
pub const MAX_MEDIA_BYTES: usize = 8000;
/// Prefix of the mark names we send; the rest is the playback position.
const MARK_PREFIX: &str = "p";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("media before start")]
    MediaBeforeStart,
    #[error("bad base64 in media payload")]
    Base64,
    #[error("media payload of {0} bytes is over the {MAX_MEDIA_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("unsupported media format {encoding} at {sample_rate} Hz")]
    Format { encoding: String, sample_rate: u32 },
    #[error("second start message")]
    DuplicateStart,
}

/// What the `start` message told us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartInfo {
    pub stream_sid: String,
    pub call_sid: String,
    pub account_sid: String,
    pub custom_parameters: HashMap<String, String>,
}

/// One parsed inbound message.
#[derive(Debug, PartialEq)]
pub enum Inbound<'a> {
    Connected,
    Start(StartInfo),
    /// Caller audio decoded to linear PCM, 8 kHz. `gap_samples` of silence should be
    /// inserted before it: chunks were missing.
    Media {
        samples: &'a [i16],
        gap_samples: usize,
    },
    Dtmf(char),
    /// A mark we sent came back: the audio before it has played. `Some(position)` when
    /// it is one of ours.
    Mark(Option<u64>),
    Stop,
    /// A duplicate or out-of-order chunk, dropped.
    Dropped,
}

/// Counters of what the stream got wrong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamStats {
    pub messages: u64,
    pub media: u64,
    pub bad_json: u64,
    pub bad_base64: u64,
    pub media_before_start: u64,
    pub duplicate_chunks: u64,
    pub missing_chunks: u64,
    pub unknown_events: u64,
}

#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
    #[serde(default)]
    start: Option<StartMsg>,
    #[serde(default, borrow)]
    media: Option<MediaMsg<'a>>,
    #[serde(default)]
    dtmf: Option<DtmfMsg>,
    #[serde(default)]
    mark: Option<MarkMsg>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartMsg {
    #[serde(default)]
    stream_sid: String,
    #[serde(default)]
    call_sid: String,
    #[serde(default)]
    account_sid: String,
    #[serde(default)]
    custom_parameters: HashMap<String, String>,
    #[serde(default)]
    media_format: Option<MediaFormat>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    encoding: String,
    sample_rate: u32,
    #[serde(default = "one")]
    channels: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
struct MediaMsg<'a> {
    #[serde(default)]
    track: Option<String>,
    #[serde(default)]
    chunk: Option<String>,
    #[serde(borrow)]
    payload: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct DtmfMsg {
    digit: String,
}

#[derive(Deserialize)]
struct MarkMsg {
    name: String,
}

/// The inbound and outbound halves of one Media Streams connection.
pub struct MediaStream {
    started: Option<StartInfo>,
    stopped: bool,
    last_chunk: Option<u64>,
    bytes: Vec<u8>,
    pcm: Vec<i16>,
    pub stats: StreamStats,
}

impl Default for MediaStream {
    fn default() -> Self {
        Self::new()
    }
}

impl MediaStream {
    pub fn new() -> Self {
        Self {
            started: None,
            stopped: false,
            last_chunk: None,
            bytes: Vec::with_capacity(MAX_MEDIA_BYTES),
            pcm: vec![0; MAX_MEDIA_BYTES],
            stats: StreamStats::default(),
        }
    }

    pub fn start_info(&self) -> Option<&StartInfo> {
        self.started.as_ref()
    }

    pub fn stream_sid(&self) -> &str {
        self.started.as_ref().map_or("", |s| s.stream_sid.as_str())
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Parses one text message.
    pub fn parse(&mut self, text: &str) -> Result<Inbound<'_>, TwilioError> {
        self.stats.messages += 1;
        let msg: Msg = serde_json::from_str(text).map_err(|e| {
            self.stats.bad_json += 1;
            TwilioError::Json(e.to_string())
        })?;
        match msg.event.as_ref() {
            "connected" => Ok(Inbound::Connected),
            "start" => {
                if self.started.is_some() {
                    return Err(TwilioError::DuplicateStart);
                }
                let s = msg.start.ok_or_else(|| {
                    self.stats.bad_json += 1;
                    TwilioError::Json("start message without \"start\" object".into())
                })?;
                if let Some(f) = &s.media_format {
                    if f.encoding != "audio/x-mulaw" || f.sample_rate != 8000 || f.channels != 1 {
                        return Err(TwilioError::Format {
                            encoding: f.encoding.clone(),
                            sample_rate: f.sample_rate,
                        });
                    }
                }
                let info = StartInfo {
                    stream_sid: s.stream_sid,
                    call_sid: s.call_sid,
                    account_sid: s.account_sid,
                    custom_parameters: s.custom_parameters,
                };
                self.started = Some(info.clone());
                Ok(Inbound::Start(info))
            }
            "media" => {
                if self.started.is_none() {
                    self.stats.media_before_start += 1;
                    return Err(TwilioError::MediaBeforeStart);
                }
                let m = msg.media.ok_or_else(|| {
                    self.stats.bad_json += 1;
                    TwilioError::Json("media message without \"media\" object".into())
                })?;
                // Only the caller's side is audio for us (outbound echo tracks are ignored).
                if m.track
                    .as_deref()
                    .is_some_and(|t| t != "inbound" && t != "inbound_track")
                {
                    return Ok(Inbound::Dropped);
                }
                let mut gap_chunks = 0u64;
                if let Some(chunk) = m.chunk.as_deref().and_then(|c| c.parse::<u64>().ok()) {
                    if let Some(last) = self.last_chunk {
                        if chunk <= last {
                            self.stats.duplicate_chunks += 1;
                            return Ok(Inbound::Dropped);
                        }
                        gap_chunks = chunk - last - 1;
                        self.stats.missing_chunks += gap_chunks;
                    }
                    self.last_chunk = Some(chunk);
                }
                let payload = m.payload.as_bytes();
                if base64::decoded_len_estimate(payload.len()) > MAX_MEDIA_BYTES + 3 {
                    return Err(TwilioError::TooLarge(base64::decoded_len_estimate(
                        payload.len(),
                    )));
                }
                self.bytes.clear();
                base64::engine::general_purpose::STANDARD
                    .decode_vec(payload, &mut self.bytes)
                    .map_err(|_| {
                        self.stats.bad_base64 += 1;
                        TwilioError::Base64
                    })?;
                if self.bytes.len() > MAX_MEDIA_BYTES {
                    return Err(TwilioError::TooLarge(self.bytes.len()));
                }
                self.stats.media += 1;
                let n = g711::decode_ulaw(&self.bytes, &mut self.pcm);
                // A missing chunk is as long as this one; cap the silence at one second.
                let gap = (gap_chunks as usize * n).min(8000);
                Ok(Inbound::Media {
                    samples: &self.pcm[..n],
                    gap_samples: gap,
                })
            }
            "dtmf" => {
                let d = msg
                    .dtmf
                    .ok_or_else(|| TwilioError::Json("dtmf without digit".into()))?;
                let digit = d
                    .digit
                    .chars()
                    .next()
                    .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
                    .ok_or_else(|| TwilioError::Json(format!("bad DTMF digit {:?}", d.digit)))?;
                Ok(Inbound::Dtmf(digit))
            }
            "mark" => {
                let m = msg
                    .mark
                    .ok_or_else(|| TwilioError::Json("mark without name".into()))?;
                Ok(Inbound::Mark(parse_mark(&m.name)))
            }
            "stop" => {
                self.stopped = true;
                Ok(Inbound::Stop)
            }
            other => {
                self.stats.unknown_events += 1;
                Err(TwilioError::UnknownEvent(other.chars().take(40).collect()))
            }
        }
    }

    /// A `media` message carrying `samples` (8 kHz linear PCM) as μ-law.
    pub fn media_message(&self, samples: &[i16]) -> String {
        let mut ulaw = [0u8; 960];
        let n = g711::encode_ulaw(samples, &mut ulaw);
        let payload = base64::engine::general_purpose::STANDARD.encode(&ulaw[..n]);
        format!(
            r#"{{"event":"media","streamSid":"{}","media":{{"payload":"{payload}"}}}}"#,
            json_escape(self.stream_sid())
        )
    }

    /// A `mark` message for playback position `pos`.
    pub fn mark_message(&self, pos: u64) -> String {
        format!(
            r#"{{"event":"mark","streamSid":"{}","mark":{{"name":"{MARK_PREFIX}{pos}"}}}}"#,
            json_escape(self.stream_sid())
        )
    }

    /// A `clear` message.
    pub fn clear_message(&self) -> String {
        format!(
            r#"{{"event":"clear","streamSid":"{}"}}"#,
            json_escape(self.stream_sid())
        )
    }
}

fn parse_mark(name: &str) -> Option<u64> {
    name.strip_prefix(MARK_PREFIX)?.parse().ok()
}

fn json_escape(s: &str) -> String {
    let v = serde_json::Value::String(s.to_string()).to_string();
    v[1..v.len() - 1].to_string()
}

/// A WebSocket reduced to what Media Streams needs: text frames in and out. The HTTP
/// server implements it for its socket type, tests for in-memory channels.
pub trait TextSocket: Send {
    /// Next text frame; `None` when the socket closed, `Err` when it failed. Cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Option<Result<String, String>>> + Send;
    fn send(&mut self, text: String) -> impl Future<Output = Result<(), String>> + Send;
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Consecutive malformed messages after which the stream is given up.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 50;

/// A Media Streams connection as a [`Transport`] for the session.
pub struct TwilioTransport<S> {
    socket: S,
    stream: MediaStream,
    consecutive_errors: u32,
}

impl<S: TextSocket> TwilioTransport<S> {
    /// Reads messages up to and including `start`. Media before `start` and other
    /// malformed messages are logged and skipped; a socket that closes first is an error.
    pub async fn accept(mut socket: S) -> Result<(Self, StartInfo), String> {
        let mut stream = MediaStream::new();
        let mut errors = 0;
        loop {
            let text = match socket.recv().await {
                None => return Err("stream closed before start".into()),
                Some(Err(e)) => return Err(format!("stream failed before start: {e}")),
                Some(Ok(t)) => t,
            };
            match stream.parse(&text) {
                Ok(Inbound::Start(info)) => {
                    return Ok((
                        Self {
                            socket,
                            stream,
                            consecutive_errors: 0,
                        },
                        info,
                    ))
                }
                Ok(Inbound::Stop) => return Err("stream stopped before start".into()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "twilio: bad message before start");
                    errors += 1;
                    if errors > MAX_CONSECUTIVE_ERRORS {
                        return Err(format!("too many malformed messages before start ({e})"));
                    }
                }
            }
        }
    }

    pub fn stats(&self) -> StreamStats {
        self.stream.stats
    }
}

impl<S: TextSocket> Transport for TwilioTransport<S> {
    async fn recv(&mut self) -> TransportEvent {
        loop {
            let text = match self.socket.recv().await {
                None => return TransportEvent::Closed("websocket closed".into()),
                Some(Err(e)) => return TransportEvent::Closed(format!("websocket error: {e}")),
                Some(Ok(t)) => t,
            };
            let ev = match self.stream.parse(&text) {
                Ok(Inbound::Media {
                    samples,
                    gap_samples,
                }) => {
                    let mut v = vec![0i16; gap_samples];
                    v.extend_from_slice(samples);
                    Some(TransportEvent::Audio(v))
                }
                Ok(Inbound::Mark(Some(pos))) => Some(TransportEvent::MarkAck(pos)),
                Ok(Inbound::Dtmf(d)) => Some(TransportEvent::Dtmf(d)),
                Ok(Inbound::Stop) => Some(TransportEvent::Closed("caller hung up".into())),
                Ok(_) => None,
                Err(e) => {
                    self.consecutive_errors += 1;
                    tracing::warn!(stream = self.stream.stream_sid(), error = %e, "twilio: bad message");
                    if self.consecutive_errors > MAX_CONSECUTIVE_ERRORS {
                        return TransportEvent::Closed(format!(
                            "too many malformed messages (last: {e})"
                        ));
                    }
                    continue;
                }
            };
            self.consecutive_errors = 0;
            if let Some(ev) = ev {
                return ev;
            }
        }
    }

    async fn send_audio(&mut self, samples: &[i16]) -> Result<(), String> {
        let msg = self.stream.media_message(samples);
        self.socket.send(msg).await
    }

    async fn send_mark(&mut self, pos: u64) -> Result<(), String> {
        let msg = self.stream.mark_message(pos);
        self.socket.send(msg).await
    }

    async fn send_clear(&mut self) -> Result<(), String> {
        let msg = self.stream.clear_message();
        self.socket.send(msg).await
    }

    async fn close(&mut self) {
        self.socket.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> &'static str {
        r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{"agentId":"agt_1"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#
    }

    fn media(chunk: u64, payload: &str) -> String {
        format!(
            r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{}","payload":"{payload}"}},"streamSid":"MZ1"}}"#,
            chunk + 2,
            chunk * 20
        )
    }

    fn silence_b64() -> String {
        base64::engine::general_purpose::STANDARD.encode([0xFFu8; 160])
    }

    #[test]
    fn a_normal_stream() {
        let mut s = MediaStream::new();
        assert_eq!(
            s.parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#),
            Ok(Inbound::Connected)
        );
        let Ok(Inbound::Start(info)) = s.parse(start()) else {
            panic!()
        };
        assert_eq!(info.stream_sid, "MZ1");
        assert_eq!(info.custom_parameters["agentId"], "agt_1");
        let Ok(Inbound::Media {
            samples,
            gap_samples,
        }) = s.parse(&media(1, &silence_b64()))
        else {
            panic!()
        };
        assert_eq!((samples.len(), gap_samples), (160, 0));
        assert!(samples.iter().all(|&x| x == 0));
        assert_eq!(
            s.parse(r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"7"}}"#),
            Ok(Inbound::Dtmf('7'))
        );
        assert_eq!(
            s.parse(
                r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"p1600"}}"#
            ),
            Ok(Inbound::Mark(Some(1600)))
        );
        assert_eq!(
            s.parse(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"someone else's"}}"#),
            Ok(Inbound::Mark(None))
        );
        assert_eq!(s.parse(r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#), Ok(Inbound::Stop));
        assert!(s.is_stopped());
    }

    #[test]
    fn duplicates_and_gaps_are_handled() {
        let mut s = MediaStream::new();
        s.parse(start()).unwrap();
        let b = silence_b64();
        assert!(matches!(
            s.parse(&media(1, &b)),
            Ok(Inbound::Media { gap_samples: 0, .. })
        ));
        assert_eq!(s.parse(&media(1, &b)), Ok(Inbound::Dropped));
        assert!(matches!(
            s.parse(&media(4, &b)),
            Ok(Inbound::Media {
                gap_samples: 320,
                ..
            })
        ));
        assert_eq!(s.parse(&media(3, &b)), Ok(Inbound::Dropped));
        assert_eq!(s.stats.duplicate_chunks, 2);
        assert_eq!(s.stats.missing_chunks, 2);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut s = MediaStream::new();
        assert!(matches!(s.parse("{not json"), Err(TwilioError::Json(_))));
        assert_eq!(
            s.parse(&media(1, &silence_b64())),
            Err(TwilioError::MediaBeforeStart)
        );
        s.parse(start()).unwrap();
        assert_eq!(s.parse(start()), Err(TwilioError::DuplicateStart));
        assert_eq!(
            s.parse(&media(2, "!!!not base64!!!")),
            Err(TwilioError::Base64)
        );
        let huge = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 100_000]);
        assert!(matches!(
            s.parse(&media(3, &huge)),
            Err(TwilioError::TooLarge(_))
        ));
        assert!(matches!(
            s.parse(r#"{"event":"bogus"}"#),
            Err(TwilioError::UnknownEvent(_))
        ));
        assert!(s.parse(r#"{"event":"media","streamSid":"MZ1"}"#).is_err());
        assert!(s.parse(r#"{"event":"dtmf","dtmf":{"digit":"x"}}"#).is_err());
        assert!(s.parse("[]").is_err());
        assert!(s.parse("").is_err());
        assert_eq!(s.stats.bad_base64, 1);
        // Still works afterwards.
        assert!(matches!(
            s.parse(&media(4, &silence_b64())),
            Ok(Inbound::Media { .. })
        ));
    }

    #[test]
    fn a_wrong_media_format_is_refused() {
        let mut s = MediaStream::new();
        let msg = start().replace("audio/x-mulaw", "audio/l16");
        assert!(matches!(s.parse(&msg), Err(TwilioError::Format { .. })));
    }

    #[test]
    fn outbound_messages_round_trip() {
        let mut s = MediaStream::new();
        s.parse(start()).unwrap();
        let samples: Vec<i16> = (0..160).map(|i| (i * 100) as i16).collect();
        let msg: serde_json::Value = serde_json::from_str(&s.media_message(&samples)).unwrap();
        assert_eq!(msg["event"], "media");
        assert_eq!(msg["streamSid"], "MZ1");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(msg["media"]["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes.len(), 160);
        let mark: serde_json::Value = serde_json::from_str(&s.mark_message(8000)).unwrap();
        assert_eq!(
            parse_mark(mark["mark"]["name"].as_str().unwrap()),
            Some(8000)
        );
        let clear: serde_json::Value = serde_json::from_str(&s.clear_message()).unwrap();
        assert_eq!(clear["event"], "clear");
    }
}
