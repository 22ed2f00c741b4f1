//! Scripted providers: fixed transcripts, replies and audio with configurable delays.
//!
//! They speak the same stream protocol as real providers, so tests, the load tool and demos
//! exercise the real turn loop with known timing: "STT answers 150 ms after the turn ends,
//! the LLM's first token comes 300 ms after the request, TTS audio 200 ms after the text".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    ChatRequest, Llm, LlmEvent, LlmStream, ProviderError, Stt, SttEvent, SttInput, SttRequest,
    SttStream, Tts, TtsEvent, TtsInput, TtsRequest, TtsStream,
};

const CHANNEL: usize = 64;

/// Picks items in turn, wrapping around; shared by all streams of a provider so that
/// successive turns of a call get successive items.
#[derive(Debug)]
struct Cycle {
    items: Vec<String>,
    next: AtomicUsize,
}

impl Cycle {
    fn new(items: Vec<String>) -> Self {
        Self {
            items,
            next: AtomicUsize::new(0),
        }
    }

    fn next(&self) -> String {
        if self.items.is_empty() {
            return String::new();
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.items.len();
        self.items[i].clone()
    }
}

/// Sleeps unless cancelled first; false when cancelled.
async fn wait(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

// ---------------------------------------------------------------- STT

/// Answers each end of turn with the next scripted transcript, `delay` after
/// [`SttInput::Finalize`].
#[derive(Debug, Clone)]
pub struct ScriptedStt {
    transcripts: Arc<Cycle>,
    delay: Duration,
}

impl ScriptedStt {
    pub fn new(transcripts: Vec<String>, delay: Duration) -> Self {
        Self {
            transcripts: Arc::new(Cycle::new(transcripts)),
            delay,
        }
    }
}

impl Stt for ScriptedStt {
    fn name(&self) -> &str {
        "scripted"
    }

    fn start(&self, _req: SttRequest) -> Result<SttStream, ProviderError> {
        let (in_tx, mut in_rx) = mpsc::channel(CHANNEL);
        let (ev_tx, ev_rx) = mpsc::channel(CHANNEL);
        let cancel = CancellationToken::new();
        let me = self.clone();
        let c = cancel.clone();
        tokio::spawn(async move {
            loop {
                let input = tokio::select! {
                    _ = c.cancelled() => return,
                    i = in_rx.recv() => i,
                };
                match input {
                    None => return,
                    Some(SttInput::Audio(_)) => {}
                    Some(SttInput::Finalize) => {
                        if !wait(me.delay, &c).await {
                            return;
                        }
                        let text = me.transcripts.next();
                        if ev_tx
                            .send(SttEvent::Final {
                                text,
                                turn_final: true,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        Ok(SttStream {
            input: in_tx,
            events: ev_rx,
            cancel,
        })
    }
}

// ---------------------------------------------------------------- LLM

/// Replies with the next scripted reply, word by word: the first token `first_token`
/// after the request, then one word every `per_token`.
#[derive(Debug, Clone)]
pub struct ScriptedLlm {
    replies: Arc<Cycle>,
    first_token: Duration,
    per_token: Duration,
}

impl ScriptedLlm {
    pub fn new(replies: Vec<String>, first_token: Duration, per_token: Duration) -> Self {
        Self {
            replies: Arc::new(Cycle::new(replies)),
            first_token,
            per_token,
        }
    }
}

impl Llm for ScriptedLlm {
    fn name(&self) -> &str {
        "scripted"
    }

    fn start(&self, _req: ChatRequest) -> Result<LlmStream, ProviderError> {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let reply = self.replies.next();
        let (first, per) = (self.first_token, self.per_token);
        tokio::spawn(async move {
            if !wait(first, &c).await {
                return;
            }
            let mut words = reply.split_inclusive(' ').peekable();
            while let Some(w) = words.next() {
                if tx.send(LlmEvent::Token(w.to_string())).await.is_err() {
                    return;
                }
                if words.peek().is_some() && !per.is_zero() && !wait(per, &c).await {
                    return;
                }
            }
            let _ = tx.send(LlmEvent::Done).await;
        });
        Ok(LlmStream { events: rx, cancel })
    }
}

// ---------------------------------------------------------------- TTS

/// What the scripted TTS plays.
#[derive(Debug, Clone)]
pub enum ScriptedVoice {
    /// The same clip for every piece of text (e.g. a fixture), at `rate`.
    Clip { samples: Arc<Vec<i16>>, rate: u32 },
    /// A soft tone, `ms_per_char` per character of text: duration follows the text.
    Tone { ms_per_char: u32 },
}

/// Speaks each text it receives `first_audio` after receiving it, all at once (faster
/// than real time, as real TTS does), with even word timings.
#[derive(Debug, Clone)]
pub struct ScriptedTts {
    voice: ScriptedVoice,
    first_audio: Duration,
}

impl ScriptedTts {
    pub fn new(voice: ScriptedVoice, first_audio: Duration) -> Self {
        Self { voice, first_audio }
    }

    fn render(&self, text: &str, rate: u32) -> Vec<i16> {
        match &self.voice {
            ScriptedVoice::Clip { samples, rate: r } => {
                if *r == rate {
                    samples.to_vec()
                } else {
                    // Nearest-sample rate change: test audio only, quality does not matter.
                    let n = samples.len() as u64 * rate as u64 / *r as u64;
                    (0..n)
                        .map(|i| samples[(i * *r as u64 / rate as u64) as usize])
                        .collect()
                }
            }
            ScriptedVoice::Tone { ms_per_char } => {
                let n = (text.chars().count() as u64 * *ms_per_char as u64 * rate as u64 / 1000)
                    as usize;
                (0..n)
                    .map(|i| {
                        let t = i as f32 / rate as f32;
                        (3000.0 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()) as i16
                    })
                    .collect()
            }
        }
    }
}

impl Tts for ScriptedTts {
    fn name(&self) -> &str {
        "scripted"
    }

    fn native_rate(&self) -> u32 {
        match self.voice {
            ScriptedVoice::Clip { rate, .. } => rate,
            ScriptedVoice::Tone { .. } => 16_000,
        }
    }

    fn start(&self, req: TtsRequest) -> Result<TtsStream, ProviderError> {
        let (in_tx, mut in_rx) = mpsc::channel::<TtsInput>(CHANNEL);
        let (ev_tx, ev_rx) = mpsc::channel(CHANNEL);
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let me = self.clone();
        tokio::spawn(async move {
            let mut offset_ms = 0u32;
            loop {
                let input = tokio::select! {
                    _ = c.cancelled() => return,
                    i = in_rx.recv() => i,
                };
                match input {
                    None => return,
                    Some(TtsInput::Flush) => {
                        let _ = ev_tx.send(TtsEvent::Done).await;
                        return;
                    }
                    Some(TtsInput::Text(text)) => {
                        if text.trim().is_empty() {
                            continue;
                        }
                        if !wait(me.first_audio, &c).await {
                            return;
                        }
                        let audio = me.render(&text, req.sample_rate);
                        let dur_ms = (audio.len() as u64 * 1000 / req.sample_rate as u64) as u32;
                        let words: Vec<&str> = text.split_whitespace().collect();
                        let per = dur_ms / words.len().max(1) as u32;
                        for (i, w) in words.iter().enumerate() {
                            let ev = TtsEvent::Word {
                                text: w.to_string(),
                                start_ms: offset_ms + per * i as u32,
                                duration_ms: per,
                            };
                            if ev_tx.send(ev).await.is_err() {
                                return;
                            }
                        }
                        // 20 ms chunks, as streaming TTS delivers them.
                        let chunk = (req.sample_rate / 50) as usize;
                        for piece in audio.chunks(chunk) {
                            if c.is_cancelled()
                                || ev_tx.send(TtsEvent::Audio(piece.to_vec())).await.is_err()
                            {
                                return;
                            }
                        }
                        offset_ms += dur_ms;
                    }
                }
            }
        });
        Ok(TtsStream {
            input: in_tx,
            events: ev_rx,
            cancel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{ChatMessage, Role};
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn stt_answers_finalize_after_its_delay_in_turn() {
        let stt = ScriptedStt::new(vec!["one".into(), "two".into()], Duration::from_millis(150));
        let mut s = stt.start(SttRequest::default()).unwrap();
        for want in ["one", "two", "one"] {
            s.input.send(SttInput::Audio(vec![0; 320])).await.unwrap();
            let t = Instant::now();
            s.input.send(SttInput::Finalize).await.unwrap();
            let ev = s.events.recv().await.unwrap();
            assert_eq!(t.elapsed(), Duration::from_millis(150));
            assert_eq!(
                ev,
                SttEvent::Final {
                    text: want.into(),
                    turn_final: true
                }
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn llm_streams_words_and_can_be_cancelled() {
        let llm = ScriptedLlm::new(
            vec!["hello there caller".into()],
            Duration::from_millis(300),
            Duration::from_millis(10),
        );
        let req = ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "hi")],
            ..Default::default()
        };
        let t = Instant::now();
        let mut s = llm.start(req.clone()).unwrap();
        assert_eq!(
            s.events.recv().await,
            Some(LlmEvent::Token("hello ".into()))
        );
        assert_eq!(t.elapsed(), Duration::from_millis(300));
        assert_eq!(
            s.events.recv().await,
            Some(LlmEvent::Token("there ".into()))
        );
        assert_eq!(
            s.events.recv().await,
            Some(LlmEvent::Token("caller".into()))
        );
        assert_eq!(s.events.recv().await, Some(LlmEvent::Done));

        let mut s = llm.start(req).unwrap();
        s.cancel.cancel();
        assert_eq!(s.events.recv().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn tts_speaks_each_text_with_word_timings() {
        let tts = ScriptedTts::new(
            ScriptedVoice::Tone { ms_per_char: 10 },
            Duration::from_millis(200),
        );
        let mut s = tts
            .start(TtsRequest {
                sample_rate: 8000,
                ..Default::default()
            })
            .unwrap();
        s.input.send(TtsInput::Text("ab cd".into())).await.unwrap();
        s.input.send(TtsInput::Flush).await.unwrap();
        let t = Instant::now();
        let mut audio = 0;
        let mut words = Vec::new();
        loop {
            match s.events.recv().await.unwrap() {
                TtsEvent::Audio(a) => {
                    assert_eq!(t.elapsed(), Duration::from_millis(200));
                    audio += a.len();
                }
                TtsEvent::Word { text, start_ms, .. } => words.push((text, start_ms)),
                TtsEvent::Done => break,
                TtsEvent::Error(e) => panic!("{e}"),
            }
        }
        assert_eq!(audio, 400); // 5 chars × 10 ms at 8 kHz
        assert_eq!(words, vec![("ab".into(), 0), ("cd".into(), 25)]);
    }
}
