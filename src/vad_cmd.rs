//! `parley vad`: run the engine's VAD and endpointer over a WAV file and print what it
//! hears, as JSON lines. For tuning settings and checking the engine on real recordings.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use parley_codecs::SampleRate;
use parley_engine::{Call, CallConfig, EndpointingConfig, Event, Input, Output, VadConfig};

/// Detect speech segments and turn ends in a WAV file.
///
/// Prints one JSON object per line: `{"type":"speech","start_s":…,"end_s":…}` for each
/// stretch of speech, and `{"type":"turn","start_s":…,"end_s":…,"turn_end_s":…}` for each
/// caller turn (speech followed by `--silence-ms` of silence). Reads 8/16/24/48 kHz WAV in
/// PCM 8/16/24/32-bit, float, μ-law or A-law; stereo is mixed down.
#[derive(Debug, clap::Args)]
pub struct VadArgs {
    /// WAV file to analyse.
    pub file: PathBuf,
    /// webrtc-vad aggressiveness, 0 (least) to 3 (most).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub aggressiveness: u8,
    /// Silence that ends a turn, in ms (the agent's `endpointing.silenceDurationMs`).
    #[arg(long, default_value_t = 700)]
    pub silence_ms: u32,
    /// Speech needed before a turn starts, in ms.
    #[arg(long, default_value_t = 100)]
    pub min_speech_ms: u32,
    /// VAD frame length in ms: 10, 20 or 30.
    #[arg(long, default_value_t = 20)]
    pub frame_ms: u32,
    /// Run the VAD on audio resampled to 16 kHz instead of the file's own rate.
    #[arg(long)]
    pub wideband: bool,
}

pub fn run(args: &VadArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let wav = parley_codecs::wav::parse(&bytes)
        .with_context(|| format!("{} is not a WAV file Parley can read", args.file.display()))?;
    let Some(rate) = SampleRate::from_hz(wav.sample_rate) else {
        bail!(
            "{}: sample rate {} Hz is not supported (use 8000, 16000, 24000 or 48000 Hz, e.g. \
             `sox in.wav -r 16000 out.wav`)",
            args.file.display(),
            wav.sample_rate
        );
    };
    let samples = wav.to_mono();
    let cfg = CallConfig {
        input_rate: rate,
        vad: VadConfig {
            aggressiveness: args.aggressiveness,
            frame_ms: args.frame_ms,
            wideband: args.wideband,
            ..Default::default()
        },
        endpointing: EndpointingConfig {
            silence_ms: args.silence_ms,
            min_speech_ms: args.min_speech_ms,
            ..Default::default()
        },
        ..Default::default()
    };
    let lines = analyse(cfg, &samples)?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// Runs the call core over `samples` (at `cfg.input_rate`) and returns the JSON lines.
pub fn analyse(cfg: CallConfig, samples: &[i16]) -> anyhow::Result<Vec<String>> {
    let chunk = (cfg.input_rate.hz() / 50) as usize;
    let silence_ms = cfg.endpointing.silence_ms;
    let t0 = Instant::now();
    let mut call = Call::new(cfg, t0).context("invalid VAD settings")?;
    // Pad with silence so speech at the very end still gets its turn end.
    let pad = vec![0i16; chunk * (silence_ms as usize / 20 + 2)];
    let mut lines = Vec::new();
    let mut speech_start: Option<Duration> = None;
    let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    for (i, c) in samples.chunks(chunk).chain(pad.chunks(chunk)).enumerate() {
        let now = t0 + Duration::from_millis(20 * (i as u64 + 1));
        call.handle_input(now, Input::CallerAudio(c))?;
        while let Some(out) = call.poll_output() {
            let Output::Event(e) = out else { continue };
            match e {
                Event::SpeechStarted { at } => speech_start = Some(at),
                Event::SpeechStopped { at } => {
                    if let Some(start) = speech_start.take() {
                        lines.push(
                            serde_json::json!({
                                "type": "speech",
                                "start_s": secs(start),
                                "end_s": secs(at),
                            })
                            .to_string(),
                        );
                    }
                }
                Event::TurnEnded {
                    speech_start,
                    speech_end,
                    ..
                } => lines.push(
                    serde_json::json!({
                        "type": "turn",
                        "start_s": secs(speech_start),
                        "end_s": secs(speech_end),
                        "turn_end_s": secs(now - t0),
                    })
                    .to_string(),
                ),
                _ => {}
            }
        }
    }
    Ok(lines)
}
