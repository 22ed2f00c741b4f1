//! [`LocalStt`]: the `local` speech-to-text provider (Moonshine tiny-en, see
//! [`super::moonshine`]).
//!
//! Moonshine tiny is an utterance model, not a streaming one: it reads a whole segment
//! of speech. So a stream buffers the caller's audio and, on [`SttInput::Finalize`] (the
//! engine's end of turn), transcribes the buffered turn on a blocking thread and answers
//! with `Final { turn_final: true }`. With [`LocalStt::with_partials`] it also
//! re-transcribes the growing buffer every so often and sends `Partial`s; that is off by
//! default because every partial costs a full pass over the turn so far, and (one
//! transcriber, one mutex) a partial still running delays the final that the turn loop is
//! waiting for.
//!
//! A turn longer than [`MAX_TURN_S`] is transcribed as it reaches that length and sent as
//! `Final { turn_final: false }`, so the buffer stays bounded whatever the engine sends.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parley_codecs::frame::SampleRate;
use parley_codecs::resample::{Resampler, ResamplerKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::moonshine::Moonshine;
use crate::providers::{ProviderError, Stt, SttEvent, SttInput, SttRequest, SttStream};

const CHANNEL: usize = 64;
const NAME: &str = "local";
/// Longest stretch of audio transcribed at once (Moonshine is trained on utterances up
/// to about 30 s).
pub const MAX_TURN_S: u32 = 25;

/// Moonshine tiny-en behind the [`Stt`] trait. One model is shared by all streams.
#[derive(Debug, Clone)]
pub struct LocalStt {
    engine: Arc<Moonshine>,
    partial_every: Option<Duration>,
}

impl LocalStt {
    /// Loads Moonshine from `models_dir/moonshine/` (a few hundred milliseconds: do it
    /// once, at start-up). Fails with [`ProviderError::NotConfigured`] naming what is
    /// missing and how to install it.
    pub fn new(models_dir: &Path) -> Result<Self, ProviderError> {
        let dir = models_dir.join("moonshine");
        let engine = Moonshine::load(&dir).map_err(|e| ProviderError::NotConfigured {
            provider: format!("stt {NAME} (moonshine)"),
            reason: format!(
                "{e}; run scripts/models.sh {} to install libmoonshine, ONNX Runtime and the \
                 tiny-en model from the PyPI wheel moonshine-voice==0.0.73",
                models_dir.display()
            ),
        })?;
        Ok(Self {
            engine: Arc::new(engine),
            partial_every: None,
        })
    }

    /// Also send `Partial`s, re-transcribing the turn after every `every` of new audio
    /// (see the module docs for the cost).
    pub fn with_partials(mut self, every: Duration) -> Self {
        self.partial_every = Some(every);
        self
    }

    /// Transcribes one utterance of mono i16 audio at `rate` (blocking: for tests and
    /// tools; streams run this on a blocking thread).
    pub fn transcribe(&self, audio: &[i16], rate: u32) -> Result<String, ProviderError> {
        let rate = SampleRate::from_hz(rate)
            .ok_or_else(|| failed(format!("unsupported rate {rate} Hz")))?;
        transcribe_turn(&self.engine, audio, rate).map_err(failed)
    }
}

fn failed(message: String) -> ProviderError {
    ProviderError::Failed {
        provider: NAME.into(),
        message,
    }
}

/// Silence kept before the first loud frame of a turn, in seconds.
const LEAD_S: f32 = 0.25;
/// Silence kept after the last loud frame of a turn, in seconds.
const TAIL_S: f32 = 0.5;

/// Cuts a turn's leading and trailing silence down to [`LEAD_S`] / [`TAIL_S`].
///
/// Why: the engine hands over whole turns, often with seconds of silence around the
/// speech; the encoder's cost grows with the audio, and tiny-en is sensitive to how much
/// silence precedes the first word (on fixtures/barge_in, a 300 ms lead-in turned "stop,
/// I have a different" into "start by heaven"). Of the margins tried (100–300 ms before,
/// 200–500 ms after) 250 ms / 500 ms gave the lowest word error rate on the fixtures.
///
/// "Loud" is a 20 ms frame whose RMS is within 40 dB of the loudest frame's and above
/// -50 dBFS; audio with no such frame is returned whole.
fn trim_silence(audio: &[f32]) -> &[f32] {
    const FRAME: usize = 320;
    let rms: Vec<f32> = audio
        .chunks(FRAME)
        .map(|f| (f.iter().map(|x| x * x).sum::<f32>() / f.len() as f32).sqrt())
        .collect();
    let peak = rms.iter().copied().fold(0.0, f32::max);
    let threshold = (peak * 0.01).max(0.003);
    let (Some(first), Some(last)) = (
        rms.iter().position(|&r| r > threshold),
        rms.iter().rposition(|&r| r > threshold),
    ) else {
        return audio;
    };
    let start = (first * FRAME).saturating_sub((LEAD_S * 16_000.0) as usize);
    let end = ((last + 1) * FRAME + (TAIL_S * 16_000.0) as usize).min(audio.len());
    &audio[start..end]
}

/// Transcribes a turn: to 16 kHz f32, silence trimmed, through Moonshine.
fn transcribe_turn(engine: &Moonshine, audio: &[i16], rate: SampleRate) -> Result<String, String> {
    let pcm = to_16k_f32(audio, rate);
    engine.transcribe(trim_silence(&pcm))
}

/// Converts mono i16 at `rate` to f32 at 16 kHz (what Moonshine reads), resampling with
/// the FFT resampler in 20 ms chunks (the last one padded with silence).
fn to_16k_f32(audio: &[i16], rate: SampleRate) -> Vec<f32> {
    let resampled;
    let pcm: &[i16] = if rate == SampleRate::Hz16000 {
        audio
    } else {
        let chunk = rate.samples_in(20);
        match Resampler::with_kind(rate, SampleRate::Hz16000, chunk, ResamplerKind::Fft) {
            Ok(mut rs) => {
                let mut out = Vec::with_capacity(audio.len() * 16_000 / rate.hz() as usize + 640);
                let mut buf = vec![0i16; rs.output_len()];
                let mut padded = [0i16; 960];
                for piece in audio.chunks(chunk) {
                    let input = if piece.len() == chunk {
                        piece
                    } else {
                        padded[..piece.len()].copy_from_slice(piece);
                        padded[piece.len()..chunk].fill(0);
                        &padded[..chunk]
                    };
                    if let Ok(k) = rs.process(input, &mut buf) {
                        out.extend_from_slice(&buf[..k]);
                    }
                }
                // Drop the resampler's delay so the audio starts where it did.
                let d = rs.delay_samples().min(out.len());
                out.drain(..d);
                resampled = out;
                &resampled
            }
            Err(_) => audio,
        }
    };
    pcm.iter().map(|&s| s as f32 / 32768.0).collect()
}

impl Stt for LocalStt {
    fn name(&self) -> &str {
        NAME
    }

    fn start(&self, req: SttRequest) -> Result<SttStream, ProviderError> {
        let rate = SampleRate::from_hz(req.sample_rate)
            .ok_or_else(|| failed(format!("unsupported sample rate {} Hz", req.sample_rate)))?;
        let (in_tx, in_rx) = mpsc::channel(CHANNEL);
        let (ev_tx, ev_rx) = mpsc::channel(CHANNEL);
        let cancel = CancellationToken::new();
        tokio::spawn(run(self.clone(), rate, in_rx, ev_tx, cancel.clone()));
        Ok(SttStream {
            input: in_tx,
            events: ev_rx,
            cancel,
        })
    }
}

type Job = JoinHandle<Result<String, String>>;

fn spawn(engine: &Arc<Moonshine>, audio: Vec<i16>, rate: SampleRate) -> Job {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || transcribe_turn(&engine, &audio, rate))
}

/// Waits for a job unless cancelled; `None` when cancelled.
async fn finish(job: Job, c: &CancellationToken) -> Option<Result<String, ProviderError>> {
    tokio::select! {
        _ = c.cancelled() => None,
        r = job => Some(match r {
            Ok(r) => r.map_err(failed),
            Err(e) => Err(failed(format!("transcription thread: {e}"))),
        }),
    }
}

async fn run(
    stt: LocalStt,
    rate: SampleRate,
    mut in_rx: mpsc::Receiver<SttInput>,
    ev_tx: mpsc::Sender<SttEvent>,
    c: CancellationToken,
) {
    let max = rate.samples_in(MAX_TURN_S * 1000);
    let partial_every = stt
        .partial_every
        .map(|d| (d.as_millis() as usize * rate.hz() as usize / 1000).max(1));
    let mut buf: Vec<i16> = Vec::new();
    let mut since_partial = 0usize;
    let mut partial: Option<Job> = None;
    let mut last_partial = String::new();
    loop {
        let input = tokio::select! {
            _ = c.cancelled() => return,
            r = async { partial.as_mut().expect("guarded").await }, if partial.is_some() => {
                partial = None;
                if let Ok(Ok(text)) = r {
                    if !text.is_empty() && text != last_partial {
                        last_partial = text.clone();
                        if ev_tx.send(SttEvent::Partial { text }).await.is_err() {
                            return;
                        }
                    }
                }
                // Audio that arrived while that pass ran is due for the next one.
                if partial_every.is_some_and(|every| since_partial >= every) {
                    since_partial = 0;
                    partial = Some(spawn(&stt.engine, buf.clone(), rate));
                }
                continue;
            }
            i = in_rx.recv() => i,
        };
        match input {
            None => return,
            Some(SttInput::Audio(samples)) => {
                buf.extend_from_slice(&samples);
                since_partial += samples.len();
                if buf.len() >= max {
                    let audio = std::mem::take(&mut buf);
                    since_partial = 0;
                    last_partial.clear();
                    let Some(r) = finish(spawn(&stt.engine, audio, rate), &c).await else {
                        return;
                    };
                    let ev = match r {
                        Ok(text) => SttEvent::Final {
                            text,
                            turn_final: false,
                        },
                        Err(e) => SttEvent::Error(e),
                    };
                    if ev_tx.send(ev).await.is_err() {
                        return;
                    }
                } else if let Some(every) = partial_every {
                    // Half a second of audio at least: shorter is rarely a word yet.
                    if partial.is_none()
                        && since_partial >= every
                        && buf.len() >= rate.samples_in(500)
                    {
                        since_partial = 0;
                        partial = Some(spawn(&stt.engine, buf.clone(), rate));
                    }
                }
            }
            Some(SttInput::Finalize) => {
                // A partial still running is superseded by the final.
                partial = None;
                since_partial = 0;
                last_partial.clear();
                let audio = std::mem::take(&mut buf);
                let r = if audio.is_empty() {
                    Ok(String::new())
                } else {
                    match finish(spawn(&stt.engine, audio, rate), &c).await {
                        Some(r) => r,
                        None => return,
                    }
                };
                let ev = match r {
                    Ok(text) => SttEvent::Final {
                        text,
                        turn_final: true,
                    },
                    Err(e) => SttEvent::Error(e),
                };
                if ev_tx.send(ev).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_silence_to_the_margins() {
        let mut a = vec![0.0f32; 32_000];
        a[16_000..19_200].fill(0.3);
        let t = trim_silence(&a);
        assert_eq!(t.len(), 4_000 + 3_200 + 8_000);
        assert_eq!(t[4_000], 0.3);
        let silent = vec![0.0f32; 1_000];
        assert_eq!(trim_silence(&silent).len(), 1_000);
    }

    #[test]
    fn converts_8k_to_16k_keeping_the_timing() {
        let a: Vec<i16> = (0..8_000)
            .map(|i| if i >= 4_000 { 8_000 } else { 0 })
            .collect();
        let b = to_16k_f32(&a, SampleRate::Hz8000);
        assert!((b.len() as i64 - 16_000).abs() <= 320, "{}", b.len());
        let onset = b.iter().position(|&x| x > 0.1).unwrap();
        assert!((onset as i64 - 8_000).abs() < 40, "{onset}");
    }
}
