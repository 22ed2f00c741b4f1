//! Per-frame cost of the codec layer: one 20 ms frame per iteration.
//!
//! The Opus benches need real speech: a steady tone is ~4× cheaper to
//! encode and would flatter the numbers. They use the first
//! `fixtures/*.48k.wav` if there is one, else a synthetic speech-like signal
//! (glottal pulse train through formant resonators with a moving pitch and
//! vowel), and say so.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use parley_codecs::g711;
use parley_codecs::opus::{
    Application, Channels, OpusDecoder, OpusEncoder, MAX_PACKET_BYTES, OPUS_FRAME_SAMPLES,
};
use parley_codecs::resample::{Resampler, ResamplerKind};
use parley_codecs::wav;
use parley_codecs::SampleRate::{self, Hz16000, Hz48000, Hz8000};
use std::hint::black_box;
use std::path::Path;

/// Mono 48 kHz speech: a fixture if present, else synthetic.
fn speech_48k() -> Vec<i16> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut candidates: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".48k.wav"))
        })
        .collect();
    candidates.sort();
    for path in candidates {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        match wav::parse(&bytes) {
            Ok(w) if w.sample_rate == 48_000 && w.frames() >= OPUS_FRAME_SAMPLES * 50 => {
                eprintln!("opus benches: speech from {}", path.display());
                return w.to_mono();
            }
            Ok(_) => {}
            Err(e) => eprintln!("opus benches: skipping {}: {e}", path.display()),
        }
    }
    eprintln!(
        "WARNING: no usable fixtures/*.48k.wav; Opus benches use synthetic speech-like audio"
    );
    synthetic_speech(48_000, 10)
}

/// Glottal pulses (pitch gliding 100–180 Hz) through three formant
/// resonators whose frequencies move between vowels, with syllable-rate
/// amplitude modulation and a little aspiration noise.
fn synthetic_speech(rate: u32, seconds: u32) -> Vec<i16> {
    let fs = f64::from(rate);
    let n = (rate * seconds) as usize;
    // (F1, F2, F3) of /a/, /i/, /u/, /e/.
    let vowels = [
        (730.0, 1090.0, 2440.0),
        (270.0, 2290.0, 3010.0),
        (300.0, 870.0, 2240.0),
        (530.0, 1840.0, 2480.0),
    ];
    let mut state = [[0.0f64; 2]; 3];
    let mut phase = 0.0f64;
    let mut noise: u32 = 0x9E37_79B9;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = i as f64 / fs;
        let pitch = 140.0 + 40.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
        phase += pitch / fs;
        // Rosenberg-like pulse: sharp closure once per period.
        let p = phase.fract();
        let glottal = if p < 0.4 {
            (std::f64::consts::PI * p / 0.4).sin().powi(2)
        } else {
            0.0
        };
        let derivative = glottal - if p < 0.4 { 0.5 } else { 0.0 };
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let aspiration = (f64::from(noise) / f64::from(u32::MAX) - 0.5) * 0.05;
        let syllable = t * 4.0;
        let v = vowels[syllable as usize % vowels.len()];
        let envelope = (std::f64::consts::PI * syllable.fract()).sin().max(0.0);
        let mut x = derivative + aspiration;
        for (k, f) in [v.0, v.1, v.2].into_iter().enumerate() {
            // Two-pole resonator, 80 Hz bandwidth.
            let r = (-std::f64::consts::PI * 80.0 / fs).exp();
            let a1 = 2.0 * r * (2.0 * std::f64::consts::PI * f / fs).cos();
            let a2 = -r * r;
            let y = x * (1.0 - r) + a1 * state[k][0] + a2 * state[k][1];
            state[k][1] = state[k][0];
            state[k][0] = y;
            x = y;
        }
        out.push(x * envelope);
    }
    let peak = out.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-9);
    out.iter().map(|v| (v / peak * 20_000.0) as i16).collect()
}

fn sine(rate: SampleRate, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate.hz());
            ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 12_000.0) as i16
        })
        .collect()
}

fn bench_g711(c: &mut Criterion) {
    let mut g = c.benchmark_group("g711");
    g.throughput(Throughput::Elements(160));
    let pcm = sine(Hz8000, 160);
    let mut ulaw = [0u8; 160];
    g711::encode_ulaw(&pcm, &mut ulaw);
    let mut alaw = [0u8; 160];
    g711::encode_alaw(&pcm, &mut alaw);
    let mut out = [0i16; 160];
    let mut codes = [0u8; 160];
    g.bench_function("ulaw_decode_160", |b| {
        b.iter(|| g711::decode_ulaw(black_box(&ulaw), black_box(&mut out)))
    });
    g.bench_function("alaw_decode_160", |b| {
        b.iter(|| g711::decode_alaw(black_box(&alaw), black_box(&mut out)))
    });
    g.bench_function("ulaw_encode_160", |b| {
        b.iter(|| g711::encode_ulaw(black_box(&pcm), black_box(&mut codes)))
    });
    g.finish();
}

fn bench_resample(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample_20ms");
    for (from, to) in [
        (Hz8000, Hz16000),
        (Hz16000, Hz8000),
        (Hz48000, Hz16000),
        (Hz16000, Hz48000),
    ] {
        // `new` is the low-latency kind; the `_fft` cases are the cheaper
        // FFT kind (10 ms more delay at 20 ms chunks).
        for (kind, suffix) in [
            (ResamplerKind::LowLatency, ""),
            (ResamplerKind::Fft, "_fft"),
        ] {
            let mut rs = Resampler::with_kind(from, to, from.samples_in(20), kind).unwrap();
            let input = sine(from, rs.input_len());
            let mut out = vec![0i16; rs.output_len()];
            g.bench_function(
                format!("{}k_to_{}k{suffix}", from.hz() / 1000, to.hz() / 1000),
                |b| b.iter(|| rs.process(black_box(&input), black_box(&mut out)).unwrap()),
            );
        }
    }
    g.finish();
}

fn bench_opus(c: &mut Criterion) {
    let speech = speech_48k();
    let frames: Vec<&[i16]> = speech.chunks_exact(OPUS_FRAME_SAMPLES).collect();
    let mut enc = OpusEncoder::new(Channels::Mono, Application::Voip).unwrap();
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let mut p = [0u8; MAX_PACKET_BYTES];
            let n = enc.encode(f, &mut p).unwrap();
            p[..n].to_vec()
        })
        .collect();

    let mut g = c.benchmark_group("opus_48k_mono_20ms");
    // Cycle through the speech so every iteration sees a new frame, as in a call.
    let mut enc = OpusEncoder::new(Channels::Mono, Application::Voip).unwrap();
    let mut packet = [0u8; MAX_PACKET_BYTES];
    let mut i = 0;
    g.bench_function("encode", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            enc.encode(black_box(frames[i]), black_box(&mut packet))
                .unwrap()
        })
    });
    let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
    let mut pcm = [0i16; OPUS_FRAME_SAMPLES];
    let mut j = 0;
    g.bench_function("decode", |b| {
        b.iter(|| {
            j = (j + 1) % packets.len();
            dec.decode(black_box(&packets[j]), black_box(&mut pcm))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_g711, bench_resample, bench_opus);
criterion_main!(benches);
