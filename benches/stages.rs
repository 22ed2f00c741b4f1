//! Per-stage cost, one 20 ms frame (or message) per iteration, of the stages that
//! `codecs.rs` (G.711, resampling, Opus) and `frame_path.rs` (the whole caller path, a whole
//! call) do not cover on their own:
//!
//! - `vad_20ms`: webrtc-vad alone (the engine's `WebRtcVad`) at 8 and 16 kHz, and the
//!   engine's `SpeechGate` (webrtc-vad + level, tilt and noise floor), on speech frames;
//! - `endpointer`: one `Endpointer::push`, on the speech decisions of a real minute;
//! - `twilio`: an inbound `media` message parsed (JSON + base64 + μ-law decode) and an
//!   outbound one written (μ-law encode + base64 + JSON), through `engine::twilio`;
//! - `turn_end`: the CPU time of the engine's part of a turn hand-over — the caller frame
//!   that completes the silence threshold, the `TurnEnded` it produces, an instant reply
//!   pushed (`AgentAudio` + `AgentAudioEnd`), up to the first `Output::Audio`. It also
//!   prints, once per run, the engine-added latency in *virtual* time (see
//!   `engine/tests/engine_latency.rs`, compiled in here).
//!
//! Run: `cargo bench --bench stages` (filter: `cargo bench --bench stages -- twilio`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use parley_codecs::{g711, wav, SampleRate};
use parley_engine::endpointer::Endpointer;
use parley_engine::twilio::{Inbound, MediaStream};
use parley_engine::vad::{SpeechGate, Vad, WebRtcVad};
use parley_engine::{
    Call, CallConfig, EndpointingConfig, Event, Input, Output, TurnState, VadConfig,
};

// The virtual-time latency driver, shared with its test. Bench targets are built with
// `cfg(test)`, so that file's `mod tests` comes along; its helpers go unused here.
#[allow(dead_code, unused_imports)]
#[path = "../engine/tests/engine_latency.rs"]
mod engine_latency;

fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run fixtures/make.sh)", path.display()))
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn ulaw_pcm(name: &str) -> Vec<i16> {
    let bytes = fixture(name);
    let mut pcm = vec![0; bytes.len()];
    g711::decode_ulaw(&bytes, &mut pcm);
    pcm
}

fn wav_pcm(name: &str, rate: u32) -> Vec<i16> {
    let w = wav::parse(&fixture(name)).unwrap();
    assert_eq!(w.sample_rate, rate, "{name}");
    w.to_mono()
}

/// Speech spans of a fixture (fixtures/truth.json), in seconds.
fn truth(name: &str) -> Vec<(f64, f64)> {
    let text = String::from_utf8(fixture("truth.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[name]["speech"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_f64().unwrap(), s[1].as_f64().unwrap()))
        .collect()
}

/// The 20 ms frames of `pcm` (at `rate`) that lie inside the speech spans of `turns`.
fn speech_frames(pcm: &[i16], rate: u32) -> Vec<&[i16]> {
    let n = (rate / 50) as usize;
    truth("turns")
        .into_iter()
        .flat_map(|(a, b)| {
            let (a, b) = (
                (a * f64::from(rate)) as usize,
                (b * f64::from(rate)) as usize,
            );
            pcm[a..b].chunks_exact(n)
        })
        .collect()
}

fn bench_vad(c: &mut Criterion) {
    let pcm8 = ulaw_pcm("turns.8k.ulaw");
    let pcm16 = wav_pcm("turns.16k.wav", 16_000);
    let mut g = c.benchmark_group("vad_20ms");
    g.throughput(Throughput::Elements(1));
    for (rate, pcm) in [(8000u32, &pcm8), (16_000, &pcm16)] {
        let frames = speech_frames(pcm, rate);
        let k = rate / 1000;
        // Defaults of the core: aggressiveness 3, 20 ms frames.
        let mut vad = WebRtcVad::new(rate, 20, 3).unwrap();
        let mut i = 0;
        g.bench_function(format!("webrtc_{k}k"), |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                vad.is_speech(black_box(frames[i])).unwrap()
            })
        });
        let cfg = VadConfig::default();
        let mut gate = SpeechGate::new(
            WebRtcVad::new(rate, 20, cfg.aggressiveness).unwrap(),
            cfg.min_level_dbfs,
            cfg.noise_margin_db,
            20,
        );
        let mut j = 0;
        g.bench_function(format!("speech_gate_{k}k"), |b| {
            b.iter(|| {
                j = (j + 1) % frames.len();
                gate.process(black_box(frames[j])).unwrap()
            })
        });
    }
    g.finish();
}

fn bench_endpointer(c: &mut Criterion) {
    // The gate's decisions over a whole minute of turns, pauses and backchannels.
    let pcm = ulaw_pcm("long_call.8k.ulaw");
    let mut gate = SpeechGate::new(WebRtcVad::new(8000, 20, 3).unwrap(), -55.0, 9.0, 20);
    let decisions: Vec<bool> = pcm
        .chunks_exact(160)
        .map(|f| gate.process(f).unwrap().speech)
        .collect();
    let mut ep = Endpointer::new(EndpointingConfig::default());
    let mut i = 0u64;
    let mut g = c.benchmark_group("endpointer");
    g.throughput(Throughput::Elements(1));
    g.bench_function("step_20ms", |b| {
        b.iter(|| {
            let speech = decisions[(i % decisions.len() as u64) as usize];
            ep.push(Duration::from_millis(20 * i), 20, black_box(speech), |e| {
                black_box(e);
            });
            i += 1;
        })
    });
    g.finish();
}

const STREAM_SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

/// The `start` message Twilio sends (shape from Twilio's Media Streams docs).
fn twilio_start() -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC5c6ba5bbd5a10f4dc4ff6b1d1b6c2f27","streamSid":"{STREAM_SID}","callSid":"CA2f12a8d8bf1e9e2b5f4e09f1fc7e4b3a","tracks":["inbound"],"customParameters":{{"agentId":"agt_01J5Z8"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":"{STREAM_SID}"}}"#
    )
}

/// An inbound `media` message as Twilio sends it: 20 ms of μ-law, base64.
fn twilio_media(chunk: u64, ulaw: &[u8]) -> String {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD.encode(ulaw);
    format!(
        r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{}","payload":"{payload}"}},"streamSid":"{STREAM_SID}"}}"#,
        chunk + 1,
        chunk * 20
    )
}

fn bench_twilio(c: &mut Criterion) {
    let caller = fixture("turns.8k.ulaw");
    let caller: Vec<&[u8]> = caller.chunks_exact(160).collect();
    let agent = ulaw_pcm("agent_reply.8k.ulaw");
    let agent: Vec<&[i16]> = agent.chunks_exact(160).collect();
    let mut g = c.benchmark_group("twilio");
    g.throughput(Throughput::Elements(1));

    // Inbound: `MediaStream::parse` (the transport's own path): JSON, base64, μ-law decode.
    // Chunk numbers must grow (a repeated chunk is dropped before decoding), so each
    // iteration gets a fresh message, built outside the timed part.
    let mut inbound = MediaStream::new();
    inbound.parse(&twilio_start()).unwrap();
    let mut chunk = 0u64;
    g.bench_function("inbound_media_parse_decode", |b| {
        b.iter_batched(
            || {
                chunk += 1;
                twilio_media(chunk, caller[chunk as usize % caller.len()])
            },
            |msg| {
                match inbound.parse(black_box(&msg)) {
                    Ok(Inbound::Media { samples, .. }) => {
                        black_box(samples);
                    }
                    other => panic!("{other:?}"),
                }
                msg
            },
            BatchSize::SmallInput,
        )
    });

    // Outbound: `MediaStream::media_message`: μ-law encode, base64, JSON.
    let mut outbound = MediaStream::new();
    outbound.parse(&twilio_start()).unwrap();
    let mut i = 0;
    g.bench_function("outbound_media_encode", |b| {
        b.iter(|| {
            i = (i + 1) % agent.len();
            outbound.media_message(black_box(agent[i]))
        })
    });
    g.finish();
}

/// Prints the engine-added latency in virtual time (deterministic; asserted by
/// `engine/tests/engine_latency.rs`).
fn print_virtual_latency() {
    let ends: Vec<Duration> = truth("turns")
        .into_iter()
        .map(|(_, e)| Duration::from_secs_f64(e))
        .collect();
    let narrowband = CallConfig::default();
    let wideband_vad = CallConfig {
        vad: VadConfig {
            wideband: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let wideband_in = CallConfig {
        input_rate: SampleRate::Hz16000,
        output_rate: SampleRate::Hz16000,
        ..Default::default()
    };
    let caller8 = ulaw_pcm("turns.8k.ulaw");
    let reply8 = &ulaw_pcm("agent_reply.8k.ulaw")[..1600];
    let caller16 = wav_pcm("turns.16k.wav", 16_000);
    let reply16 = &wav_pcm("agent_reply.16k.wav", 16_000)[..3200];
    for (label, cfg, caller, reply) in [
        ("8 kHz in, VAD 8 kHz", &narrowband, &caller8, reply8),
        (
            "8 kHz in, VAD 16 kHz (FFT resampler)",
            &wideband_vad,
            &caller8,
            reply8,
        ),
        ("16 kHz in, VAD 16 kHz", &wideband_in, &caller16, reply16),
    ] {
        let turns = engine_latency::turn_latencies(cfg, caller, &ends, reply);
        eprintln!(
            "engine-added latency (virtual time, `turns`, silence_ms {}), {label}:",
            cfg.endpointing.silence_ms
        );
        for t in turns {
            eprintln!(
                "  speech ends {:.3} s, VAD end {:.3} s, TurnEnded {:.3} s, first audio {:.3} s: {:+} ms",
                t.speech_end.as_secs_f64(),
                t.detected_end.as_secs_f64(),
                t.turn_ended.as_secs_f64(),
                t.first_audio.as_secs_f64(),
                t.engine_added_ms()
            );
        }
    }
}

/// CPU time of the engine's part of a hand-over, on the telephone path (8 kHz, VAD 8 kHz).
///
/// Each iteration (untimed) plays speech frames until a turn starts, then digital silence;
/// the frame that ends the turn is timed from `handle_input` to the first `Output::Audio`
/// (its `TurnEnded` → 200 ms reply pushed at once → paced playback's first frames). The
/// reply is then cancelled (untimed) and the call is listening again. `silence_ms` is 100
/// so that an iteration is 10 frames, not 40; the endpointer's cost does not depend on it.
fn bench_turn_end(c: &mut Criterion) {
    print_virtual_latency();

    let pcm = ulaw_pcm("turns.8k.ulaw");
    // 200 ms from the middle of the first utterance: clearly speech, frame after frame.
    let speech: Vec<&[i16]> = pcm[8 * 700..8 * 900].chunks_exact(160).collect();
    let silence = [0i16; 160];
    let reply = &ulaw_pcm("agent_reply.8k.ulaw")[..1600];
    let cfg = CallConfig {
        endpointing: EndpointingConfig {
            silence_ms: 100,
            ..Default::default()
        },
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut call = Call::new(cfg, t0).unwrap();
    let mut t = Duration::ZERO;
    let mut utterance = 0u32;

    let mut g = c.benchmark_group("turn_end");
    g.throughput(Throughput::Elements(1));
    g.bench_function("turn_end_to_first_audio_8k", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                for f in &speech {
                    t += Duration::from_millis(20);
                    call.handle_input(t0 + t, Input::CallerAudio(f)).unwrap();
                    while call.poll_output().is_some() {}
                }
                assert_eq!(call.state(), TurnState::UserSpeaking);
                loop {
                    t += Duration::from_millis(20);
                    let now = t0 + t;
                    let start = Instant::now();
                    call.handle_input(now, Input::CallerAudio(&silence))
                        .unwrap();
                    let mut ended = false;
                    let mut first_audio = None;
                    while let Some(out) = call.poll_output() {
                        match out {
                            Output::Event(Event::TurnEnded { .. }) => {
                                ended = true;
                                utterance += 1;
                                call.handle_input(
                                    now,
                                    Input::AgentAudio {
                                        utterance,
                                        samples: reply,
                                    },
                                )
                                .unwrap();
                                call.handle_input(now, Input::AgentAudioEnd { utterance })
                                    .unwrap();
                            }
                            Output::Audio(frame) => {
                                first_audio = Some(start.elapsed());
                                black_box(frame);
                                break;
                            }
                            other => {
                                black_box(other);
                            }
                        }
                    }
                    if let Some(d) = first_audio {
                        timed += d;
                    }
                    while call.poll_output().is_some() {}
                    if ended {
                        assert!(first_audio.is_some(), "reply did not start");
                        break;
                    }
                }
                call.handle_input(t0 + t, Input::CancelAgentAudio { utterance })
                    .unwrap();
                while call.poll_output().is_some() {}
                assert_eq!(call.state(), TurnState::Listening);
            }
            timed
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_vad,
    bench_endpointer,
    bench_twilio,
    bench_turn_end
);
criterion_main!(benches);
