//! `parley dial`: plays the Twilio side of a call against a running server.
//!
//! It calls the voice webhook like Twilio would, opens the Media Stream the TwiML names,
//! sends the caller's audio as paced 20 ms μ-law media, plays the agent's audio in real time
//! and echoes marks when playback reaches them (as Twilio does), honours `clear`, and records
//! both sides to a stereo WAV (caller left, agent right). With an API key it then prints the
//! stored transcript.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use parley_codecs::resample::Resampler;
use parley_codecs::{g711, SampleRate};
use parley_engine::{CallConfig, EndpointingConfig};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::twilio_client::{self, pacing, rand_u64, CallIds};

/// Play the caller's side of a Twilio call against a running `parley serve`.
#[derive(Debug, clap::Args)]
pub struct DialArgs {
    /// Id of the agent to call.
    #[arg(long)]
    pub agent: String,
    /// What the caller says: a WAV file (8/16/24/48 kHz; PCM, float, μ-law or A-law).
    #[arg(long)]
    pub audio: PathBuf,
    /// Base URL of the server.
    #[arg(long, env = "PARLEY_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key, to fetch the stored transcript after the call.
    #[arg(long, env = "PARLEY_API_KEY")]
    pub api_key: Option<String>,
    /// Write both sides of the call here (stereo WAV, 8 kHz: caller left, agent right).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the line open this many seconds after the audio ends.
    #[arg(long, default_value_t = 5.0)]
    pub linger_secs: f64,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// What the call looked like from the caller's side.
#[derive(Debug, Default, serde::Serialize)]
pub struct DialReport {
    pub call_sid: String,
    pub agent_frames: usize,
    /// Times (ms since the stream started) at which agent frames arrived.
    #[serde(skip)]
    pub frame_times_ms: Vec<f64>,
    pub clears_ms: Vec<f64>,
    pub marks_echoed: usize,
    /// Pacing of the agent's audio: how far each frame of a continuous run arrived from a
    /// 20 ms grid anchored at the run's median offset (ms): p50, p99 and max of |deviation|.
    pub pacing_p50_ms: f64,
    pub pacing_p99_ms: f64,
    pub pacing_max_ms: f64,
    /// Milliseconds of agent audio the caller heard.
    pub agent_audio_ms: u64,
    /// Per caller turn: end of speech (s) and the wait until the agent's audio arrived (ms).
    pub turns: Vec<serde_json::Value>,
    pub call_id: Option<String>,
    pub transcript: Vec<serde_json::Value>,
}

pub fn run(args: &DialArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    let report = rt.block_on(dial(args))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "call {}: {} agent frames ({:.1} s heard), {} clear(s), {} marks echoed",
            report.call_sid,
            report.agent_frames,
            report.agent_audio_ms as f64 / 1000.0,
            report.clears_ms.len(),
            report.marks_echoed
        );
        for t in &report.turns {
            println!(
                "turn: caller stopped at {:.2} s, agent answered after {} ms",
                t["speech_end_s"].as_f64().unwrap_or(0.0),
                t["response_ms"]
            );
        }
        for line in &report.transcript {
            println!(
                "{:>6}: {}",
                line["speaker"].as_str().unwrap_or("?"),
                line["text"].as_str().unwrap_or("")
            );
        }
        if let Some(out) = &args.out {
            println!("recording: {}", out.display());
        }
    }
    Ok(())
}

/// Reads a WAV and returns it as 8 kHz mono.
fn caller_audio(path: &PathBuf) -> anyhow::Result<Vec<i16>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let wav = parley_codecs::wav::parse(&bytes)
        .with_context(|| format!("{} is not a WAV file Parley can read", path.display()))?;
    let rate = SampleRate::from_hz(wav.sample_rate).ok_or_else(|| {
        anyhow!(
            "{}: sample rate {} Hz is not supported (8/16/24/48 kHz)",
            path.display(),
            wav.sample_rate
        )
    })?;
    let mono = wav.to_mono();
    if rate == SampleRate::Hz8000 {
        return Ok(mono);
    }
    let chunk = rate.samples_in(20);
    let mut r = Resampler::new(rate, SampleRate::Hz8000, chunk).map_err(|e| anyhow!("{e}"))?;
    let mut out = Vec::with_capacity(mono.len() / 2);
    let mut buf = vec![0i16; r.output_len()];
    let mut block = vec![0i16; chunk];
    for c in mono.chunks(chunk) {
        block[..c.len()].copy_from_slice(c);
        block[c.len()..].fill(0);
        let n = r.process(&block, &mut buf).map_err(|e| anyhow!("{e}"))?;
        out.extend_from_slice(&buf[..n]);
    }
    // Drop the resampler's delay so the audio starts where the file does.
    out.drain(..r.delay_samples().min(out.len()));
    Ok(out)
}

async fn dial(args: &DialArgs) -> anyhow::Result<DialReport> {
    let caller = caller_audio(&args.audio)?;
    let server = args.server.trim_end_matches('/');
    let http = twilio_client::http_client()?;
    let call_sid = format!("CAdial{:016x}", rand_u64());
    let stream_sid = format!("MZdial{:016x}", rand_u64());
    let ids = CallIds {
        call_sid: &call_sid,
        account_sid: "ACdial",
        stream_sid: &stream_sid,
    };
    let (url, params) = twilio_client::answer(&http, server, &args.agent, &ids).await?;
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .with_context(|| format!("cannot open the media stream {url}"))?;
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::text(twilio_client::connected_message()))
        .await?;
    tx.send(Message::text(twilio_client::start_message(&ids, &params)))
        .await?;

    let linger = (args.linger_secs.max(0.0) * 50.0) as usize;
    let total_frames = caller.len().div_ceil(160) + linger;
    let mut report = DialReport {
        call_sid: call_sid.clone(),
        ..Default::default()
    };
    // Timeline of what the agent said, placed where the caller heard it (8 kHz).
    let mut agent_track = vec![0i16; (total_frames + 50) * 160];
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut sent = 0usize;
    // Twilio's playback: when its queued audio ends (samples since start), pending marks.
    let mut play_end = 0usize;
    let mut marks: Vec<(usize, String)> = Vec::new();
    let now_samples = |start: Instant| start.elapsed().as_micros() as usize * 8 / 1000;
    let mut closed = false;
    while !closed {
        tokio::select! {
            _ = tick.tick() => {
                let now = now_samples(start);
                let (due, later): (Vec<_>, Vec<_>) = marks.drain(..).partition(|(at, _)| *at <= now);
                marks = later;
                for (_, name) in due {
                    report.marks_echoed += 1;
                    tx.send(Message::text(twilio_client::mark_message(&stream_sid, &name))).await?;
                }
                if sent >= total_frames {
                    tx.send(Message::text(twilio_client::stop_message(&ids))).await?;
                    let _ = tx.send(Message::Close(None)).await;
                    break;
                }
                let mut frame = [0xFFu8; 160];
                let from = sent * 160;
                if from < caller.len() {
                    let end = (from + 160).min(caller.len());
                    g711::encode_ulaw(&caller[from..end], &mut frame);
                }
                sent += 1;
                tx.send(Message::text(json!({
                    "event": "media", "sequenceNumber": (sent + 1).to_string(), "streamSid": stream_sid,
                    "media": {"track": "inbound", "chunk": sent.to_string(), "timestamp": ((sent - 1) * 20).to_string(),
                        "payload": base64::engine::general_purpose::STANDARD.encode(frame)}
                }).to_string())).await?;
            }
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { closed = true; continue };
                let Message::Text(text) = msg else { continue };
                let v: serde_json::Value = serde_json::from_str(&text).context("server sent bad JSON")?;
                let now = now_samples(start);
                match v["event"].as_str().unwrap_or("") {
                    "media" => {
                        let payload = v["media"]["payload"].as_str().unwrap_or("");
                        let bytes = base64::engine::general_purpose::STANDARD.decode(payload).context("server sent bad base64")?;
                        let at = play_end.max(now);
                        if at + bytes.len() <= agent_track.len() {
                            g711::decode_ulaw(&bytes, &mut agent_track[at..at + bytes.len()]);
                        }
                        play_end = at + bytes.len();
                        report.agent_frames += 1;
                        report.frame_times_ms.push(now as f64 / 8.0);
                    }
                    "mark" => marks.push((play_end.max(now), v["mark"]["name"].as_str().unwrap_or("").to_string())),
                    "clear" => {
                        report.clears_ms.push(now as f64 / 8.0);
                        // Audio not yet played is dropped.
                        if play_end > now {
                            let end = play_end.min(agent_track.len());
                            agent_track[now.min(end)..end].fill(0);
                        }
                        play_end = now;
                        for (_, name) in marks.drain(..) {
                            report.marks_echoed += 1;
                            tx.send(Message::text(twilio_client::mark_message(&stream_sid, &name))).await?;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    report.agent_audio_ms = agent_track.iter().filter(|&&s| s != 0).count() as u64 / 8;
    (
        report.pacing_p50_ms,
        report.pacing_p99_ms,
        report.pacing_max_ms,
    ) = pacing(&report.frame_times_ms);

    // Per-turn latency as the caller experienced it: the engine's own endpointer finds the
    // ends of the caller's speech; the wait is until the next agent frame arrived.
    let cfg = CallConfig {
        endpointing: EndpointingConfig::default(),
        ..Default::default()
    };
    for line in crate::vad_cmd::analyse(cfg, &caller)? {
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if v["type"] != "turn" {
            continue;
        }
        let end_ms = v["end_s"].as_f64().unwrap_or(0.0) * 1000.0;
        let answer = report.frame_times_ms.iter().find(|&&t| t > end_ms);
        report.turns.push(json!({
            "speech_end_s": v["end_s"],
            "response_ms": answer.map(|t| (t - end_ms).round()),
        }));
    }

    if let Some(out) = &args.out {
        let n = agent_track.len().max(caller.len());
        let mut stereo = Vec::with_capacity(n * 2);
        for i in 0..n {
            stereo.push(caller.get(i).copied().unwrap_or(0));
            stereo.push(agent_track.get(i).copied().unwrap_or(0));
        }
        std::fs::write(out, parley_codecs::wav::write_pcm16(8000, 2, &stereo))
            .with_context(|| format!("cannot write {}", out.display()))?;
    }

    if let Some(key) = &args.api_key {
        fetch_transcript(&http, server, key, &args.agent, &mut report).await?;
    }
    Ok(report)
}

/// Waits for the server to close the call record, then reads its transcript.
async fn fetch_transcript(
    http: &reqwest::Client,
    server: &str,
    key: &str,
    agent: &str,
    report: &mut DialReport,
) -> anyhow::Result<()> {
    for _ in 0..50 {
        let list = http
            .get(format!("{server}/v1/calls?agentId={agent}&limit=1"))
            .bearer_auth(key)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let list: serde_json::Value = serde_json::from_str(&list)?;
        let Some(call) = list["data"].get(0) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if call["status"] == "initiated" || call["status"] == "in_progress" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let id = call["id"].as_str().unwrap_or_default().to_string();
        let t = http
            .get(format!("{server}/v1/calls/{id}/transcript"))
            .bearer_auth(key)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let t: serde_json::Value = serde_json::from_str(&t)?;
        report.transcript = t["entries"].as_array().cloned().unwrap_or_default();
        report.call_id = Some(id);
        return Ok(());
    }
    bail!("the call record did not close within 5 s")
}
