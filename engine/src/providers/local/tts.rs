//! [`LocalTts`]: the `local` text-to-speech provider (flite, see [`super::flite`]).
//!
//! Text is spoken sentence by sentence as it arrives: each complete sentence is
//! synthesized on a blocking thread (flite takes a few milliseconds per sentence), then
//! its word timings and its audio go out, the audio in 20 ms chunks at the requested
//! rate. Nothing waits for the whole reply, so the first audio follows the first sentence.
//! The stream's [`CancellationToken`] is checked before each sentence and between chunks;
//! a synthesis already running finishes on its thread but its result is dropped.

use std::path::{Path, PathBuf};

use parley_codecs::frame::SampleRate;
use parley_codecs::resample::Resampler;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::flite::{self, FliteVoice, Speech};
use crate::providers::{ProviderError, Tts, TtsEvent, TtsInput, TtsRequest, TtsStream};

const CHANNEL: usize = 64;
const NAME: &str = "local";

/// flite, driven through its C API. Construct with [`LocalTts::new`].
#[derive(Debug, Clone)]
pub struct LocalTts {
    models_dir: PathBuf,
    default_voice: FliteVoice,
}

fn not_configured(reason: String) -> ProviderError {
    ProviderError::NotConfigured {
        provider: format!("tts {NAME} (flite)"),
        reason,
    }
}

impl LocalTts {
    /// Loads flite and its default voice (`slt`). `models_dir/flite/` may hold private
    /// copies of the flite libraries; otherwise the system's (Debian `libflite1`) are
    /// used. Fails with [`ProviderError::NotConfigured`] naming what is missing.
    pub fn new(models_dir: &Path) -> Result<Self, ProviderError> {
        Self::with_voice(models_dir, flite::DEFAULT_VOICE)
    }

    /// Like [`new`](Self::new) with another default voice (`slt`, `rms`, `awb`, `kal16`,
    /// `kal`).
    pub fn with_voice(models_dir: &Path, voice: &str) -> Result<Self, ProviderError> {
        let default_voice = FliteVoice::load(models_dir, voice).map_err(|e| {
            not_configured(format!(
                "{e}; the flite libraries come from the Debian package libflite1 \
                 (scripts/deps.sh installs it; scripts/models.sh checks it)"
            ))
        })?;
        Ok(Self {
            models_dir: models_dir.to_path_buf(),
            default_voice,
        })
    }

    /// The voice used when a request names none.
    pub fn default_voice(&self) -> &str {
        self.default_voice.name()
    }
}

impl Tts for LocalTts {
    fn name(&self) -> &str {
        NAME
    }

    fn native_rate(&self) -> u32 {
        self.default_voice.rate()
    }

    /// Opens a stream. `req.voice` picks a flite voice by name (loaded on first use, a
    /// `dlopen` of a few milliseconds); an unknown name is an error listing the voices.
    fn start(&self, req: TtsRequest) -> Result<TtsStream, ProviderError> {
        let voice = match req.voice.as_deref().map(str::trim) {
            None | Some("") | Some("default") => self.default_voice.clone(),
            Some(v) => {
                FliteVoice::load(&self.models_dir, v).map_err(|e| ProviderError::Failed {
                    provider: NAME.into(),
                    message: e,
                })?
            }
        };
        let out_rate =
            SampleRate::from_hz(req.sample_rate).ok_or_else(|| ProviderError::Failed {
                provider: NAME.into(),
                message: format!("unsupported sample rate {} Hz", req.sample_rate),
            })?;
        let in_rate = SampleRate::from_hz(voice.rate()).ok_or_else(|| ProviderError::Failed {
            provider: NAME.into(),
            message: format!("voice rate {} Hz is not supported", voice.rate()),
        })?;
        let chunker = Chunker::new(in_rate, out_rate)?;

        let (in_tx, in_rx) = mpsc::channel::<TtsInput>(CHANNEL);
        let (ev_tx, ev_rx) = mpsc::channel(CHANNEL);
        let cancel = CancellationToken::new();
        tokio::spawn(run(voice, req.speed, chunker, in_rx, ev_tx, cancel.clone()));
        Ok(TtsStream {
            input: in_tx,
            events: ev_rx,
            cancel,
        })
    }
}

/// Turns native-rate sentences into 20 ms chunks at the output rate, carrying partial
/// chunks over to the next sentence so the audio stays continuous.
struct Chunker {
    rs: Resampler,
    carry: Vec<i16>,
    out: Vec<i16>,
    /// Native-rate samples handed in so far: the word-timing clock.
    native_samples: u64,
    native_rate: u32,
}

impl Chunker {
    fn new(from: SampleRate, to: SampleRate) -> Result<Self, ProviderError> {
        let rs =
            Resampler::new(from, to, from.samples_in(20)).map_err(|e| ProviderError::Failed {
                provider: NAME.into(),
                message: format!("resampler: {e}"),
            })?;
        let out = vec![0; rs.output_len()];
        Ok(Self {
            carry: Vec::with_capacity(rs.input_len() * 2),
            rs,
            out,
            native_samples: 0,
            native_rate: from.hz(),
        })
    }

    /// Milliseconds of audio handed in so far.
    fn offset_ms(&self) -> u32 {
        (self.native_samples * 1000 / self.native_rate as u64) as u32
    }

    /// Adds samples; returns the whole 20 ms output chunks now ready.
    fn push(&mut self, samples: &[i16]) -> Vec<Vec<i16>> {
        self.native_samples += samples.len() as u64;
        self.carry.extend_from_slice(samples);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Vec<i16>> {
        let n = self.rs.input_len();
        let mut chunks = Vec::new();
        let mut at = 0;
        while self.carry.len() - at >= n {
            if let Ok(k) = self.rs.process(&self.carry[at..at + n], &mut self.out) {
                chunks.push(self.out[..k].to_vec());
            }
            at += n;
        }
        self.carry.drain(..at);
        chunks
    }

    /// Pads the tail with silence to whole chunks, plus one more chunk when the
    /// resampler holds samples back (its delay), and returns the rest of the audio.
    fn finish(&mut self) -> Vec<Vec<i16>> {
        let n = self.rs.input_len();
        if !self.carry.is_empty() {
            let pad = n - self.carry.len() % n;
            self.carry.resize(self.carry.len() + pad % n, 0);
        }
        if self.rs.delay_samples() > 0 {
            self.carry.resize(self.carry.len() + n, 0);
        }
        self.drain()
    }
}

/// Splits off the complete sentences at the front of `pending`: text up to `.`, `!`,
/// `?` or `;` followed by whitespace, or up to a newline.
fn take_sentences(pending: &mut String) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let b = pending.as_bytes();
        let mut cut = None;
        for i in 0..b.len() {
            let end_mark = matches!(b[i], b'.' | b'!' | b'?' | b';');
            if b[i] == b'\n' || (end_mark && i + 1 < b.len() && b[i + 1].is_ascii_whitespace()) {
                cut = Some(i + 1);
                break;
            }
        }
        let Some(c) = cut else { break };
        let s: String = pending.drain(..c).collect();
        if !s.trim().is_empty() {
            out.push(s.trim().to_string());
        }
    }
    out
}

async fn run(
    voice: FliteVoice,
    speed: f32,
    mut chunker: Chunker,
    mut in_rx: mpsc::Receiver<TtsInput>,
    ev_tx: mpsc::Sender<TtsEvent>,
    c: CancellationToken,
) {
    let mut pending = String::new();
    loop {
        let input = tokio::select! {
            _ = c.cancelled() => return,
            i = in_rx.recv() => i,
        };
        match input {
            None => return,
            Some(TtsInput::Text(t)) => {
                pending.push_str(&t);
                for s in take_sentences(&mut pending) {
                    if !speak(&voice, speed, &s, &mut chunker, &ev_tx, &c).await {
                        return;
                    }
                }
            }
            Some(TtsInput::Flush) => {
                let rest = std::mem::take(&mut pending);
                if !rest.trim().is_empty()
                    && !speak(&voice, speed, rest.trim(), &mut chunker, &ev_tx, &c).await
                {
                    return;
                }
                for chunk in chunker.finish() {
                    if c.is_cancelled() || ev_tx.send(TtsEvent::Audio(chunk)).await.is_err() {
                        return;
                    }
                }
                let _ = ev_tx.send(TtsEvent::Done).await;
                return;
            }
        }
    }
}

/// Synthesizes one sentence and sends its words and audio; false when the stream is over
/// (cancelled, receiver gone, or flite failed).
async fn speak(
    voice: &FliteVoice,
    speed: f32,
    text: &str,
    chunker: &mut Chunker,
    ev_tx: &mpsc::Sender<TtsEvent>,
    c: &CancellationToken,
) -> bool {
    if c.is_cancelled() {
        return false;
    }
    let v = voice.clone();
    let t = text.to_string();
    let job = tokio::task::spawn_blocking(move || v.synthesize(&t, speed));
    let result = tokio::select! {
        _ = c.cancelled() => return false,
        r = job => r,
    };
    let speech: Speech = match result {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let _ = ev_tx
                .send(TtsEvent::Error(ProviderError::Failed {
                    provider: NAME.into(),
                    message: e,
                }))
                .await;
            return false;
        }
        Err(e) => {
            let _ = ev_tx
                .send(TtsEvent::Error(ProviderError::Failed {
                    provider: NAME.into(),
                    message: format!("synthesis thread: {e}"),
                }))
                .await;
            return false;
        }
    };
    let base = chunker.offset_ms();
    for w in &speech.words {
        let start = (w.start_s * 1000.0).round() as u32;
        let end = (w.end_s * 1000.0).round() as u32;
        let ev = TtsEvent::Word {
            text: w.text.clone(),
            start_ms: base + start,
            duration_ms: end.saturating_sub(start),
        };
        if ev_tx.send(ev).await.is_err() {
            return false;
        }
    }
    for chunk in chunker.push(&speech.samples) {
        if c.is_cancelled() || ev_tx.send(TtsEvent::Audio(chunk)).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_end_marks_followed_by_space() {
        let mut p = String::from("Hello there. How are you? I am fi");
        assert_eq!(take_sentences(&mut p), vec!["Hello there.", "How are you?"]);
        assert_eq!(p, " I am fi");
        p.push_str("ne. $2.50 is the price");
        assert_eq!(take_sentences(&mut p), vec!["I am fine."]);
        assert_eq!(p, " $2.50 is the price");
    }

    #[test]
    fn chunker_emits_whole_20ms_chunks_and_flushes_the_tail() {
        let mut c = Chunker::new(SampleRate::Hz16000, SampleRate::Hz8000).unwrap();
        let chunks = c.push(&vec![1000; 700]);
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.len() == 160));
        let tail = c.finish();
        assert!(!tail.is_empty());
        assert!(tail.iter().all(|c| c.len() == 160));
        assert_eq!(c.offset_ms(), 43);
    }
}
