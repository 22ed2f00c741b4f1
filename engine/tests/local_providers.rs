//! The embedded offline providers against real models and the audio fixtures.
//!
//! The STT and TTS tests need `scripts/models.sh` to have run (the test script runs it)
//! and the Debian package libflite1; without them they fail saying so. Set
//! `PARLEY_SKIP_LOCAL_MODELS=1` to skip them on purpose. The LLM tests need nothing.
//!
//! Word error rates and real-time factors are printed (`--nocapture` shows them).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parley_codecs::frame::SampleRate;
use parley_codecs::resample::{Resampler, ResamplerKind};
use parley_engine::providers::local::{self, LocalLlm, LocalStt, LocalTts};
use parley_engine::providers::{
    ChatMessage, ChatRequest, Llm, LlmEvent, ProviderError, Role, Stt, SttEvent, SttInput,
    SttRequest, Tts, TtsEvent, TtsInput, TtsRequest,
};

// ---------------------------------------------------------------- set-up

fn models_dir() -> PathBuf {
    match std::env::var_os("PARLEY_MODELS").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"),
    }
}

/// False (and a note) when the caller opted out with `PARLEY_SKIP_LOCAL_MODELS=1`.
fn models_wanted() -> bool {
    if std::env::var("PARLEY_SKIP_LOCAL_MODELS").as_deref() == Ok("1") {
        eprintln!("PARLEY_SKIP_LOCAL_MODELS=1: skipping a test that needs the local models");
        return false;
    }
    true
}

fn need<T>(r: Result<T, ProviderError>) -> T {
    r.unwrap_or_else(|e| {
        panic!(
            "{e}\n\nThe embedded offline providers are not installed: run `scripts/models.sh` \
             (and scripts/deps.sh for libflite1), or set PARLEY_SKIP_LOCAL_MODELS=1 to skip."
        )
    })
}

fn stt() -> &'static LocalStt {
    static STT: OnceLock<LocalStt> = OnceLock::new();
    STT.get_or_init(|| need(LocalStt::new(&models_dir())))
}

fn tts() -> &'static LocalTts {
    static TTS: OnceLock<LocalTts> = OnceLock::new();
    TTS.get_or_init(|| need(LocalTts::new(&models_dir())))
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn wav16k(name: &str) -> Vec<i16> {
    let bytes = std::fs::read(fixtures().join(format!("{name}.16k.wav"))).unwrap();
    let w = parley_codecs::wav::parse(&bytes).unwrap();
    assert_eq!(w.sample_rate, 16_000);
    w.to_mono()
}

/// A fixture's 8 kHz μ-law file, decoded and resampled to 16 kHz.
fn ulaw_to_16k(name: &str) -> Vec<i16> {
    let bytes = std::fs::read(fixtures().join(format!("{name}.8k.ulaw"))).unwrap();
    let mut pcm8 = vec![0i16; bytes.len()];
    parley_codecs::g711::decode_ulaw(&bytes, &mut pcm8);
    let mut rs = Resampler::with_kind(
        SampleRate::Hz8000,
        SampleRate::Hz16000,
        160,
        ResamplerKind::Fft,
    )
    .unwrap();
    let mut out = Vec::with_capacity(pcm8.len() * 2);
    let mut buf = vec![0i16; rs.output_len()];
    for chunk in pcm8.chunks(160) {
        let mut c = chunk.to_vec();
        c.resize(160, 0);
        let n = rs.process(&c, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out.drain(..rs.delay_samples());
    out
}

/// Speech spans (seconds) from fixtures/truth.json.
fn truth(name: &str) -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(fixtures().join("truth.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[name]["speech"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_f64().unwrap(), s[1].as_f64().unwrap()))
        .collect()
}

// ---------------------------------------------------------------- scoring

fn norm_words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Word error rate of `hyp` against `reference`.
fn wer(reference: &str, hyp: &str) -> f64 {
    let r = norm_words(reference);
    edit_distance(&r, &norm_words(hyp)) as f64 / r.len().max(1) as f64
}

/// WER against the best prefix of `reference` (at least `min_words` long): the fixtures
/// cut sentences mid-word, so the words actually spoken are a prefix of the text, the
/// last one possibly clipped.
fn wer_cut(reference: &str, hyp: &str, min_words: usize) -> (f64, String) {
    let r = norm_words(reference);
    let h = norm_words(hyp);
    (min_words..=r.len())
        .map(|n| {
            (
                edit_distance(&r[..n], &h) as f64 / n as f64,
                r[..n].join(" "),
            )
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap()
}

const MAX_TURN_WER: f64 = 0.6;

// Texts of fixtures/make.sh's segments.
const HELLO: &str = "hello I would like to check my account balance please";
const REFUND: &str = "I was charged twice for the same order last month and I need a refund";
const WAIT: &str = "wait stop I have a different question";

// ---------------------------------------------------------------- STT

/// Streams `audio` (16 kHz) to a fresh STT stream in 20 ms frames, finalizes, and returns
/// the transcript and the time from Finalize to the answer.
async fn transcribe_stream(audio: &[i16], rate: u32) -> (String, Duration) {
    let mut s = stt()
        .start(SttRequest {
            sample_rate: rate,
            ..Default::default()
        })
        .unwrap();
    for f in audio.chunks(rate as usize / 50) {
        s.input.send(SttInput::Audio(f.to_vec())).await.unwrap();
    }
    let t = Instant::now();
    s.input.send(SttInput::Finalize).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), s.events.recv())
            .await
            .unwrap()
        {
            Some(SttEvent::Final {
                text,
                turn_final: true,
            }) => return (text, t.elapsed()),
            Some(SttEvent::Error(e)) => panic!("{e}"),
            Some(_) => {}
            None => panic!("stream ended without a final"),
        }
    }
}

/// The turns of a fixture as an endpointer would hand them over: the audio is cut in
/// the middle of each silence between speech spans, so every turn carries the silence
/// around its speech (and the first and last turns the fixture's leading and trailing
/// silence).
fn turns_of(audio: &[i16], spans: &[(f64, f64)]) -> Vec<Vec<i16>> {
    let at = |t: f64| ((t * 16_000.0) as usize).min(audio.len());
    (0..spans.len())
        .map(|i| {
            let s = if i == 0 {
                0.0
            } else {
                (spans[i - 1].1 + spans[i].0) / 2.0
            };
            let e = if i + 1 == spans.len() {
                audio.len() as f64 / 16_000.0
            } else {
                (spans[i].1 + spans[i + 1].0) / 2.0
            };
            audio[at(s)..at(e)].to_vec()
        })
        .collect()
}

/// Transcribes each turn of a fixture, prints WER and RTF, checks the fixture's overall
/// WER ≤ `max_wer` and each turn's ≤ [`MAX_TURN_WER`].
///
/// Per-turn WER on a cut six-word sentence moves in steps of 0.15, and Moonshine tiny
/// hears espeak's "hello" as "the Lord", hence the looser per-turn bound.
async fn check_fixture(
    label: &str,
    audio: Vec<i16>,
    spans: &[(f64, f64)],
    refs: &[&str],
    max_wer: f64,
) {
    let turns = turns_of(&audio, spans);
    assert_eq!(turns.len(), refs.len());
    let mut errors = 0.0;
    let mut words = 0.0;
    for (turn, reference) in turns.iter().zip(refs) {
        let (hyp, took) = transcribe_stream(turn, 16_000).await;
        let (w, spoken) = wer_cut(reference, &hyp, 3);
        let secs = turn.len() as f64 / 16_000.0;
        println!(
            "stt {label}: {secs:.2} s in {:.3} s (RTF {:.3}), WER {:.2}: heard \"{hyp}\" / spoken \"{spoken}…\"",
            took.as_secs_f64(),
            took.as_secs_f64() / secs,
            w
        );
        let n = norm_words(&spoken).len() as f64;
        errors += w * n;
        words += n;
        assert!(
            w <= MAX_TURN_WER,
            "{label}: WER {w:.2} > {MAX_TURN_WER} (heard \"{hyp}\", spoken \"{spoken}\")"
        );
    }
    let overall = errors / words;
    println!("stt {label}: overall WER {overall:.3}");
    assert!(
        overall <= max_wer,
        "{label}: overall WER {overall:.3} > {max_wer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_transcribes_the_turns_fixture() {
    if !models_wanted() {
        return;
    }
    check_fixture(
        "turns.16k",
        wav16k("turns"),
        &truth("turns"),
        &[HELLO, REFUND],
        0.3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_transcribes_the_barge_in_fixture() {
    if !models_wanted() {
        return;
    }
    check_fixture(
        "barge_in.16k",
        wav16k("barge_in"),
        &truth("barge_in"),
        &[WAIT],
        0.3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_transcribes_after_8k_ulaw() {
    if !models_wanted() {
        return;
    }
    check_fixture(
        "turns.8k.ulaw",
        ulaw_to_16k("turns"),
        &truth("turns"),
        &[HELLO, REFUND],
        0.45,
    )
    .await;
    check_fixture(
        "barge_in.8k.ulaw",
        ulaw_to_16k("barge_in"),
        &truth("barge_in"),
        &[WAIT],
        0.45,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_accepts_8k_streams_and_resamples_itself() {
    if !models_wanted() {
        return;
    }
    let bytes = std::fs::read(fixtures().join("barge_in.8k.ulaw")).unwrap();
    let mut pcm8 = vec![0i16; bytes.len()];
    parley_codecs::g711::decode_ulaw(&bytes, &mut pcm8);
    let (hyp, _) = transcribe_stream(&pcm8, 8_000).await;
    let (w, _) = wer_cut(WAIT, &hyp, 3);
    println!("stt barge_in 8 kHz stream: \"{hyp}\" WER {w:.2}");
    assert!(w <= 0.4, "heard \"{hyp}\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_answers_an_empty_turn_with_an_empty_final_and_stops_when_cancelled() {
    if !models_wanted() {
        return;
    }
    let (text, _) = transcribe_stream(&[], 16_000).await;
    assert_eq!(text, "");
    let (text, _) = transcribe_stream(&vec![0; 16_000], 16_000).await;
    assert!(
        norm_words(&text).len() <= 1,
        "silence transcribed as \"{text}\""
    );

    let mut s = stt().start(SttRequest::default()).unwrap();
    s.input
        .send(SttInput::Audio(wav16k("barge_in")))
        .await
        .unwrap();
    s.input.send(SttInput::Finalize).await.unwrap();
    s.cancel.cancel();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = s.events.recv().await {
            assert!(!matches!(ev, SttEvent::Error(_)));
        }
    })
    .await;
    assert!(end.is_ok(), "the stream did not end after cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_sends_partials_when_asked() {
    if !models_wanted() {
        return;
    }
    let stt = stt().clone().with_partials(Duration::from_millis(500));
    let turn = &turns_of(&wav16k("turns"), &truth("turns"))[1];
    let mut s = stt.start(SttRequest::default()).unwrap();
    for f in turn.chunks(320) {
        s.input.send(SttInput::Audio(f.to_vec())).await.unwrap();
    }
    let ev = tokio::time::timeout(Duration::from_secs(30), s.events.recv())
        .await
        .unwrap()
        .unwrap();
    let SttEvent::Partial { text } = ev else {
        panic!("expected a partial, got {ev:?}")
    };
    assert!(!text.is_empty());
    s.input.send(SttInput::Finalize).await.unwrap();
    loop {
        match s.events.recv().await.unwrap() {
            SttEvent::Final { text, turn_final } => {
                assert!(turn_final);
                assert!(wer_cut(REFUND, &text, 3).0 <= 0.35, "final \"{text}\"");
                break;
            }
            SttEvent::Partial { .. } => {}
            e => panic!("{e:?}"),
        }
    }
}

// ---------------------------------------------------------------- TTS

struct Spoken {
    audio: Vec<i16>,
    chunks: Vec<usize>,
    words: Vec<(String, u32, u32)>,
    took: Duration,
}

async fn speak(req: TtsRequest, pieces: &[&str]) -> Spoken {
    let mut s = tts().start(req).unwrap();
    let t = Instant::now();
    for p in pieces {
        s.input.send(TtsInput::Text(p.to_string())).await.unwrap();
    }
    s.input.send(TtsInput::Flush).await.unwrap();
    let mut out = Spoken {
        audio: Vec::new(),
        chunks: Vec::new(),
        words: Vec::new(),
        took: Duration::ZERO,
    };
    loop {
        match tokio::time::timeout(Duration::from_secs(30), s.events.recv())
            .await
            .unwrap()
        {
            Some(TtsEvent::Audio(a)) => {
                out.chunks.push(a.len());
                out.audio.extend(a);
            }
            Some(TtsEvent::Word {
                text,
                start_ms,
                duration_ms,
            }) => out.words.push((text, start_ms, duration_ms)),
            Some(TtsEvent::Done) => break,
            Some(TtsEvent::Error(e)) => panic!("{e}"),
            None => panic!("stream ended without Done"),
        }
    }
    out.took = t.elapsed();
    out
}

/// Seconds of 20 ms frames louder than -40 dBFS.
fn voiced_secs(audio: &[i16], rate: u32) -> f64 {
    let n = rate as usize / 50;
    let loud = audio
        .chunks(n)
        .filter(|f| {
            let e: f64 = f.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / f.len() as f64;
            e.sqrt() > 32768.0 * 0.01
        })
        .count();
    loud as f64 * 0.02
}

const REPLY: &str = "Sure, I can help you with that. Your current balance is two hundred and forty dollars. Is there anything else?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tts_speaks_streamed_text_with_word_timings() {
    if !models_wanted() {
        return;
    }
    // Text arrives in LLM-sized pieces, split mid-sentence.
    let pieces = [
        "Sure, I can ",
        "help you with that. Your current ",
        "balance is two hundred and forty dollars.",
        " Is there anything else?",
    ];
    let s = speak(TtsRequest::default(), &pieces).await;
    let secs = s.audio.len() as f64 / 16_000.0;
    let voiced = voiced_secs(&s.audio, 16_000);
    let n_words = REPLY.split_whitespace().count();
    println!(
        "tts slt 16 kHz: {secs:.2} s of audio ({voiced:.2} s voiced) in {:.3} s: RTF {:.3}",
        s.took.as_secs_f64(),
        s.took.as_secs_f64() / secs
    );
    assert!(voiced >= 0.5, "only {voiced:.2} s of speech");
    // 2 to 5 words a second is speech; 19 words.
    assert!(
        secs > n_words as f64 / 5.0 && secs < n_words as f64 / 2.0,
        "{secs:.2} s for {n_words} words"
    );
    assert!(
        s.chunks.iter().all(|&n| n == 320),
        "chunks not 20 ms: {:?}",
        s.chunks
    );

    let words: Vec<&str> = s.words.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(words, REPLY.split_whitespace().collect::<Vec<_>>());
    let mut last_end = 0;
    for (w, start, dur) in &s.words {
        assert!(
            *start + 1 >= last_end,
            "{w} starts at {start} before {last_end}"
        );
        assert!(*dur > 0 && *dur < 1500, "{w}: {dur} ms");
        last_end = start + dur;
    }
    assert!(last_end as f64 <= secs * 1000.0 + 1.0);
    // "balance" is in the second sentence: its time must include the first's audio.
    let balance = s.words.iter().find(|w| w.0 == "balance").unwrap();
    assert!(balance.1 > 1000, "balance at {} ms", balance.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tts_resamples_to_the_requested_rate() {
    if !models_wanted() {
        return;
    }
    let base = speak(TtsRequest::default(), &["Your balance is forty dollars."]).await;
    for rate in [8_000u32, 24_000, 48_000] {
        let s = speak(
            TtsRequest {
                sample_rate: rate,
                ..Default::default()
            },
            &["Your balance is forty dollars."],
        )
        .await;
        assert!(
            s.chunks.iter().all(|&n| n == rate as usize / 50),
            "{rate}: {:?}",
            s.chunks
        );
        let d0 = base.audio.len() as f64 / 16_000.0;
        let d = s.audio.len() as f64 / rate as f64;
        assert!((d - d0).abs() <= 0.041, "{rate}: {d:.3} s vs {d0:.3} s");
        assert!(voiced_secs(&s.audio, rate) >= 0.5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tts_voices_are_chosen_by_name() {
    if !models_wanted() {
        return;
    }
    for v in ["awb", "cmu_us_rms", "kal"] {
        let s = speak(
            TtsRequest {
                voice: Some(v.into()),
                ..Default::default()
            },
            &["Hello there."],
        )
        .await;
        assert!(voiced_secs(&s.audio, 16_000) >= 0.3, "voice {v}");
    }
    let err = tts()
        .start(TtsRequest {
            voice: Some("nobody".into()),
            ..Default::default()
        })
        .err()
        .unwrap();
    assert!(err.to_string().contains("slt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tts_stops_when_cancelled() {
    if !models_wanted() {
        return;
    }
    let mut s = tts().start(TtsRequest::default()).unwrap();
    for _ in 0..20 {
        s.input
            .send(TtsInput::Text(format!("{REPLY} ")))
            .await
            .unwrap();
    }
    s.input.send(TtsInput::Flush).await.unwrap();
    // First audio, then cancel: the stream ends without Done, long before 20 replies.
    loop {
        if let Some(TtsEvent::Audio(_)) = s.events.recv().await {
            break;
        }
    }
    s.cancel.cancel();
    let mut after = 0usize;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = s.events.recv().await {
            match ev {
                TtsEvent::Audio(a) => after += a.len(),
                TtsEvent::Done => panic!("Done after cancel"),
                _ => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream did not end after cancel");
    // At most what was already queued in the channel (64 events), not 20 × 7 s.
    assert!(after <= 64 * 320, "{after} samples after cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_tts_then_stt() {
    if !models_wanted() {
        return;
    }
    let text = "I would like to pay my bill on Friday morning.";
    let s = speak(TtsRequest::default(), &[text]).await;
    let (hyp, took) = transcribe_stream(&s.audio, 16_000).await;
    let w = wer(text, &hyp);
    println!(
        "round trip: \"{text}\" -> \"{hyp}\": WER {w:.2}, STT {:.3} s for {:.2} s",
        took.as_secs_f64(),
        s.audio.len() as f64 / 16_000.0
    );
    assert!(w <= 0.2, "heard \"{hyp}\"");
}

#[test]
fn status_reports_every_provider() {
    let st = local::status(&models_dir());
    let kinds: Vec<_> = st.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, ["stt", "tts", "llm"]);
    if models_wanted() {
        for s in &st {
            assert!(
                s.ready.is_ok(),
                "{} {}: {:?} (run scripts/models.sh)",
                s.kind,
                s.name,
                s.ready
            );
        }
    }
}

#[test]
fn missing_models_are_reported_with_the_fix() {
    let empty = std::env::temp_dir().join(format!("parley-no-models-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let err = LocalStt::new(&empty).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ProviderError::NotConfigured { .. }), "{msg}");
    assert!(
        msg.contains("scripts/models.sh") && msg.contains("encoder_model.ort"),
        "{msg}"
    );
    let st = local::status(&empty);
    assert!(st[0]
        .ready
        .as_ref()
        .unwrap_err()
        .contains("scripts/models.sh"));
    std::fs::remove_dir_all(&empty).ok();
}

// ---------------------------------------------------------------- LLM

const PROMPT: &str = "You are Ava, the phone assistant of Harbour Bank. Keep answers short.\n\
Our branches are open from 9 am to 5 pm, Monday to Friday.\n\
- Lost cards can be frozen instantly in the mobile app.\n\
Phone banking: call 0800 123 456 at any time.\n\
International transfers cost 5 pounds each.";

fn chat(system: &str, turns: &[(Role, &str)]) -> ChatRequest {
    let mut messages = vec![ChatMessage::new(Role::System, system)];
    messages.extend(turns.iter().map(|(r, t)| ChatMessage::new(*r, *t)));
    ChatRequest {
        messages,
        ..Default::default()
    }
}

async fn ask(llm: &LocalLlm, req: ChatRequest) -> String {
    let mut s = llm.start(req).unwrap();
    let mut out = String::new();
    let mut tokens = 0;
    loop {
        match s.events.recv().await.unwrap() {
            LlmEvent::Token(t) => {
                tokens += 1;
                out.push_str(&t);
            }
            LlmEvent::Done => break,
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(tokens, out.split_whitespace().count(), "one token per word");
    out
}

async fn say(user: &str) -> String {
    ask(&LocalLlm::new(), chat(PROMPT, &[(Role::User, user)])).await
}

#[tokio::test]
async fn llm_greets_thanks_and_says_goodbye() {
    assert_eq!(say("Hello!").await, local::llm::GREETING);
    assert_eq!(say("hi there").await, local::llm::GREETING);
    assert_eq!(say("Good morning").await, local::llm::GREETING);
    assert_eq!(say("Thank you so much").await, local::llm::WELCOME);
    for bye in ["Bye!", "okay that's all thanks", "goodbye"] {
        let r = say(bye).await;
        assert!(r.to_lowercase().contains("goodbye"), "{bye} -> {r}");
    }
    // "No" right after "anything else?" ends the call too.
    let r = ask(
        &LocalLlm::new(),
        chat(
            PROMPT,
            &[
                (Role::User, "thanks"),
                (Role::Assistant, local::llm::WELCOME),
                (Role::User, "no thank you"),
            ],
        ),
    )
    .await;
    assert!(r.contains("Goodbye"), "{r}");
}

#[tokio::test]
async fn llm_asks_again_on_an_empty_turn() {
    for heard in ["", "  ", "uh", "um hmm", "..."] {
        assert_eq!(say(heard).await, local::llm::DIDNT_CATCH, "{heard:?}");
    }
}

#[tokio::test]
async fn llm_answers_from_the_system_prompt() {
    let r = say("What are your opening hours?").await;
    assert!(r.contains("9 am to 5 pm"), "{r}");
    let r = say("hi, I lost my card, what should I do").await;
    assert!(r.contains("frozen instantly"), "{r}");
    assert!(!r.starts_with('-'), "{r}");
    let r = say("How much does an international transfer cost?").await;
    assert!(r.contains("5 pounds"), "{r}");
    let r = say("what's the phone banking number").await;
    assert!(r.contains("0800 123 456"), "{r}");
    // Instructions are not facts.
    let r = say("should answers be short").await;
    assert_eq!(r, local::llm::DONT_KNOW);
}

#[tokio::test]
async fn llm_says_plainly_when_it_does_not_know() {
    for q in [
        "What's the weather like tomorrow?",
        "Can you recommend a good mortgage?",
        "Who won the match yesterday?",
    ] {
        assert_eq!(say(q).await, local::llm::DONT_KNOW, "{q}");
    }
}

#[tokio::test]
async fn llm_answers_from_passages() {
    let llm = LocalLlm::new().with_passages([
        "Mortgages. Our fixed-rate mortgage is 4.1 percent for five years. Variable rates follow the base rate.",
        "Savings. The easy-access savings account pays 3 percent interest. Withdrawals are free.",
    ]);
    let r = ask(
        &llm,
        chat(
            PROMPT,
            &[(Role::User, "what interest does the savings account pay")],
        ),
    )
    .await;
    assert!(r.contains("3 percent"), "{r}");
    let r = ask(
        &llm,
        chat(
            PROMPT,
            &[(Role::User, "tell me about your fixed rate mortgage")],
        ),
    )
    .await;
    assert!(r.contains("4.1 percent"), "{r}");
    // Still honest about the rest.
    let r = ask(
        &llm,
        chat(PROMPT, &[(Role::User, "do you sell car insurance")]),
    )
    .await;
    assert_eq!(r, local::llm::DONT_KNOW);
    // And deterministic.
    let again = ask(
        &llm,
        chat(
            PROMPT,
            &[(Role::User, "tell me about your fixed rate mortgage")],
        ),
    )
    .await;
    assert!(again.contains("4.1 percent"));
}

#[tokio::test]
async fn llm_stream_can_be_cancelled() {
    let mut s = LocalLlm::new()
        .start(chat(
            PROMPT,
            &[(Role::User, "What are your opening hours?")],
        ))
        .unwrap();
    s.cancel.cancel();
    let mut n = 0;
    while let Some(ev) = s.events.recv().await {
        assert!(!matches!(ev, LlmEvent::Done | LlmEvent::Error(_)));
        n += 1;
    }
    assert!(n < 5);
}
