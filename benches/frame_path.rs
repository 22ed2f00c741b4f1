//! The per-frame cost of the caller-audio path, on real (synthesized) speech:
//! one 20 ms μ-law frame → decode → (resample) → VAD → endpointer, through the real
//! `Call` core; and a whole 60 s call, for CPU time per call-second (criterion's
//! throughput is in call-seconds per second; the median per call-second is printed).
//!
//! Run: `cargo bench --bench frame_path`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use parley_codecs::g711;
use parley_engine::{Call, CallConfig, Input, VadConfig};

fn speech_ulaw() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/long_call.8k.ulaw");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run fixtures/make.sh)", path.display()))
}

/// Decode + call core for one frame per iteration, cycling through a minute of speech,
/// pauses and backchannels so VAD and endpointer see real decisions.
fn bench_call_frame(c: &mut Criterion, name: &str, cfg: CallConfig) {
    let ulaw = speech_ulaw();
    let frames: Vec<&[u8]> = ulaw.chunks_exact(160).collect();
    let t0 = Instant::now();
    let mut call = Call::new(cfg, t0).unwrap();
    let mut i = 0u64;
    let mut pcm = [0i16; 160];
    let mut group = c.benchmark_group("caller_frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| {
            let frame = frames[(i % frames.len() as u64) as usize];
            i += 1;
            g711::decode_ulaw(black_box(frame), &mut pcm);
            let now = t0 + Duration::from_millis(20 * i);
            call.handle_input(now, Input::CallerAudio(&pcm)).unwrap();
            while let Some(out) = call.poll_output() {
                black_box(out);
            }
        })
    });
    group.finish();
}

fn per_frame(c: &mut Criterion) {
    // Telephony path: VAD at the native 8 kHz, nothing resampled.
    bench_call_frame(c, "ulaw_decode_vad8k_endpointer", CallConfig::default());
    // Wideband path: resample 8 → 16 kHz (rubato), VAD at 16 kHz.
    bench_call_frame(
        c,
        "ulaw_decode_resample16k_vad16k_endpointer",
        CallConfig {
            vad: VadConfig {
                wideband: true,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    // Wideband VAD plus 16 kHz frames forwarded for STT.
    bench_call_frame(
        c,
        "ulaw_decode_resample16k_vad16k_endpointer_stt_frames",
        CallConfig {
            vad: VadConfig {
                wideband: true,
                ..Default::default()
            },
            forward_caller_audio: true,
            ..Default::default()
        },
    );
}

fn whole_call(c: &mut Criterion) {
    let ulaw = speech_ulaw();
    let mut pcm = vec![0i16; ulaw.len()];
    g711::decode_ulaw(&ulaw, &mut pcm);
    let seconds = pcm.len() as u64 / 8000;
    const SAMPLES: usize = 20;
    // Per-iteration times of every sample criterion takes (warm-up first, then the
    // SAMPLES measured ones), to print the median per call-second below.
    let mut per_call: Vec<Duration> = Vec::new();
    let mut group = c.benchmark_group("whole_call");
    group.sample_size(SAMPLES);
    // One element = one second of call audio: criterion's thrpt is call-seconds per second.
    group.throughput(Throughput::Elements(seconds));
    group.bench_function(format!("{seconds}s_caller_audio"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let t0 = Instant::now();
                let mut call = Call::new(CallConfig::default(), t0).unwrap();
                for (i, chunk) in pcm.chunks(160).enumerate() {
                    let now = t0 + Duration::from_millis(20 * (i as u64 + 1));
                    call.handle_input(now, Input::CallerAudio(chunk)).unwrap();
                    while let Some(out) = call.poll_output() {
                        black_box(out);
                    }
                }
                black_box(call.stats);
            }
            let elapsed = start.elapsed();
            per_call.push(elapsed / iters as u32);
            elapsed
        })
    });
    group.finish();
    // The measured samples are the last SAMPLES (`--quick` takes fewer; `cargo test` mode
    // runs the call once and prints nothing).
    if per_call.len() > 1 {
        let n = per_call.len().min(SAMPLES);
        let mut measured = per_call[per_call.len() - n..].to_vec();
        measured.sort();
        let median = (measured[(n - 1) / 2] + measured[n / 2]) / 2;
        eprintln!(
            "whole_call: median of {n} samples {:.3} ms of CPU per {seconds} s call = {:.1} µs of CPU per call-second ({:.4} % of one core)",
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e6 / seconds as f64,
            median.as_secs_f64() * 100.0 / seconds as f64
        );
    }
}

criterion_group!(benches, per_frame, whole_call);
criterion_main!(benches);
