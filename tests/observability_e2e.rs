//! Latency you can see, end to end: real Twilio Media Stream calls (played by `parley dial`)
//! against the real `parley serve`, with scripted providers of known delays (STT 150 ms,
//! LLM first token 300 ms, TTS first audio 200 ms). The stored traces must show those
//! delays per stage, and once TTS is made slow, root-cause must say so.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

mod common;

use common::{serve, BIN};

const STT_MS: f64 = 150.0;
const LLM_MS: f64 = 300.0;
const TTS_MS: f64 = 200.0;
const SLOW_TTS_MS: f64 = 1600.0;
/// How far a stored stage may be from the delay the fake provider was given. The stamps
/// are taken on the DSP worker's clock as messages reach it, a few ms after the event.
const TOLERANCE_MS: f64 = 20.0;

/// The caller says the first utterance of `turns.8k.wav` (0.5–2.0 s) `times` times, each
/// followed by enough silence for the agent to answer.
fn caller_wav(dir: &Path, times: usize) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/turns.8k.wav");
    let wav = parley_codecs::wav::parse(&std::fs::read(fixture).unwrap()).unwrap();
    let mono = wav.to_mono();
    let rate = wav.sample_rate as usize;
    let utterance = &mono[..rate * 5 / 2];
    let mut out = Vec::new();
    for _ in 0..times {
        out.extend_from_slice(utterance);
        // Endpointing 500 ms + STT + LLM + TTS + a 0.5 s reply, with room to spare.
        out.extend(std::iter::repeat_n(0i16, rate * 4));
    }
    let path = dir.join(format!("caller{times}.wav"));
    std::fs::write(
        &path,
        parley_codecs::wav::write_pcm16(wav.sample_rate, 1, &out),
    )
    .unwrap();
    path
}

fn dial(base: &str, key: &str, agent: &str, audio: &Path) -> Value {
    let out = Command::new(BIN)
        .args([
            "dial",
            "--agent",
            agent,
            "--server",
            base,
            "--api-key",
            key,
            "--json",
        ])
        .args(["--linger-secs", "1"])
        .arg("--audio")
        .arg(audio)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dial failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn agent_body(tts_ms: f64) -> Value {
    json!({
        "name": "Known delays",
        "persona": {"name": "Tess"},
        "voice": {"provider": "scripted", "voiceId": "tone",
                  "script": {"delayMs": tts_ms as u32, "intervalMs": 20}},
        "llm": {"provider": "scripted", "model": "scripted-1",
                "script": {"lines": ["Sure thing. Anything else?"], "delayMs": LLM_MS as u32}},
        "transcription": {"provider": "scripted",
                "script": {"lines": ["I would like a refund"], "delayMs": STT_MS as u32}},
        "systemPromptTemplate": "You are a test agent.",
        "firstMessageMode": "wait_for_user",
        "endpointing": {"silenceDurationMs": 500}
    })
}

struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Api {
    fn send(&self, req: reqwest::RequestBuilder) -> (u16, String) {
        self.rt.block_on(async {
            let r = req.bearer_auth(&self.key).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        })
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(self.http.get(format!("{}{path}", self.base)));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn get_text(&self, path: &str) -> (u16, String) {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    /// Waits until the call's session has `turns` traced turns and final counters.
    fn session(&self, call: &str, turns: usize) -> Value {
        let mut last = Value::Null;
        for _ in 0..100 {
            last = self.get(&format!("/v1/observability/sessions/{call}"));
            if last["turnsDetail"].as_array().unwrap().len() >= turns
                && last["media"]["finalCounts"] == true
            {
                return last;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("session {call} never had {turns} turns: {last}");
    }
}

fn stage(turn: &Value, name: &str) -> f64 {
    turn["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no {name} stage in {turn}"))["durationMs"]
        .as_f64()
        .unwrap()
}

/// The stage's duration over the call's turns: the median within [`TOLERANCE_MS`] of the
/// provider's delay, and every turn within three times that (a single turn can catch the
/// machine busy: two cores run the server, the dialer and this test).
fn assert_stage(what: &str, turns: &[Value], name: &str, want: f64) {
    let mut got: Vec<f64> = turns.iter().map(|t| stage(t, name)).collect();
    got.sort_by(f64::total_cmp);
    let median = got[got.len() / 2];
    assert!(
        (median - want).abs() <= TOLERANCE_MS,
        "{what}: median {median} ms of {got:?}, expected {want} ± {TOLERANCE_MS} ms"
    );
    assert!(
        got.iter().all(|g| (g - want).abs() <= 3.0 * TOLERANCE_MS),
        "{what}: {got:?}, expected {want} ± {} ms each",
        3.0 * TOLERANCE_MS
    );
}

#[test]
fn traces_show_each_providers_delay_and_root_cause_names_the_slow_one() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = serve(dir.path());
    let api = Api {
        base: server.base.clone(),
        key: key.clone(),
        http: reqwest::Client::new(),
        rt: tokio::runtime::Runtime::new().unwrap(),
    };
    let agent = api
        .rt
        .block_on(common::create_agent(&server.base, &key, agent_body(TTS_MS)));

    // A call of three caller turns, each answered.
    let report = dial(&server.base, &key, &agent, &caller_wav(dir.path(), 3));
    let call = report["call_id"].as_str().expect("call id").to_string();
    let session = api.session(&call, 3);
    let turns = session["turnsDetail"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{session}");
    assert_stage("STT", turns, "stt", STT_MS);
    assert_stage("LLM first token", turns, "llm_first_token", LLM_MS);
    assert_stage("TTS first audio", turns, "tts_first_audio", TTS_MS);
    for t in turns {
        // The silence threshold is the endpointing stage (decided on 20 ms frames).
        let endpointing = stage(t, "endpointing");
        assert!((480.0..=560.0).contains(&endpointing), "{t}");
        assert!(t["interrupted"] == false, "{t}");
        let ts = &t["timestamps"];
        for k in [
            "speechStartMs",
            "speechEndMs",
            "turnEndMs",
            "sttFinalMs",
            "llmRequestMs",
            "llmFirstTokenMs",
            "firstSentenceMs",
            "ttsRequestMs",
            "ttsFirstAudioMs",
            "firstAudioSentMs",
            "firstPlaybackAckMs",
            "playbackDoneMs",
        ] {
            assert!(ts[k].is_number(), "{k} missing in {t}");
        }
        // Voice to voice is the sum of its stages, give or take the loop's own work.
        let v2v = t["voiceToVoiceMs"].as_f64().unwrap();
        let sum: f64 = [
            "endpointing",
            "stt",
            "llm_first_token",
            "first_sentence",
            "tts_first_audio",
            "engine",
        ]
        .iter()
        .map(|s| stage(t, s))
        .sum();
        assert!(
            v2v >= sum - 1.0 && v2v <= sum + 30.0,
            "v2v {v2v} vs stages {sum}: {t}"
        );
    }
    let media = &session["media"];
    assert_eq!(media["llmProvider"], "scripted");
    assert!(media["agentFramesSent"].as_u64().unwrap() > 50, "{media}");
    assert_eq!(media["tracesDropped"], 0);

    // No slow turn yet: each stage is this agent's median.
    let rc = api.get(&format!("/v1/observability/sessions/{call}/root-cause"));
    assert_eq!(rc["slowTurns"], 0, "{rc}");
    assert_eq!(rc["turns"][0]["dominantStage"], "llm_first_token", "{rc}");

    // Now TTS gets slow (the agent's baseline: these 3 turns and the next 3).
    let (status, body) = api.send(
        api.http
            .patch(format!("{}/v1/agents/{agent}", server.base))
            .json(&json!({"voice": {"provider": "scripted", "voiceId": "tone",
                "script": {"delayMs": SLOW_TTS_MS as u32, "intervalMs": 20}}})),
    );
    assert_eq!(status, 200, "{body}");
    let report = dial(&server.base, &key, &agent, &caller_wav(dir.path(), 3));
    let slow_call = report["call_id"].as_str().unwrap().to_string();
    let slow = api.session(&slow_call, 3);
    let slow_turns = slow["turnsDetail"].as_array().unwrap();
    assert_stage("slow TTS", slow_turns, "tts_first_audio", SLOW_TTS_MS);
    assert_stage("STT", slow_turns, "stt", STT_MS);
    let rc = api.get(&format!("/v1/observability/calls/{slow_call}/root-cause"));
    assert_eq!(rc["slowTurns"], 3, "{rc}");
    for t in rc["turns"].as_array().unwrap() {
        assert_eq!(t["slow"], true, "{rc}");
        assert_eq!(t["dominantStage"], "tts_first_audio", "{rc}");
        assert_eq!(t["provider"], "scripted", "{rc}");
        // Against this agent's median TTS (200 ms): about 8×.
        let ratio = t["ratio"].as_f64().unwrap();
        assert!((6.0..=10.0).contains(&ratio), "{rc}");
    }
    let finding = rc["findings"][0].as_str().unwrap();
    assert!(
        finding.contains("TTS first audio") && finding.contains("provider scripted"),
        "{finding}"
    );

    // The list finds both sessions, and only the slow one above 2 s voice to voice.
    let all = api.get(&format!("/v1/observability/sessions?agentId={agent}"));
    assert_eq!(all["data"].as_array().unwrap().len(), 2, "{all}");
    let slow_only = api.get("/v1/observability/sessions?minLatencyMs=2000");
    let ids: Vec<&str> = slow_only["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![slow_call.as_str()], "{slow_only}");

    // Call detail carries the record, its transcript and the same turns.
    let detail = api.get(&format!("/v1/observability/calls/{call}"));
    assert_eq!(detail["call"]["id"], call.as_str());
    assert!(!detail["call"]["transcript"].as_array().unwrap().is_empty());
    assert_eq!(
        detail["session"]["turnsDetail"].as_array().unwrap().len(),
        3
    );

    // No barge-in on these calls.
    let iq = api.get(&format!(
        "/v1/observability/sessions/interruption-quality?agentId={agent}"
    ));
    assert_eq!(iq["total"]["bargeIns"], 0, "{iq}");
    assert_eq!(iq["total"]["turns"], 6, "{iq}");
    assert_eq!(iq["agents"][0]["agentId"], agent.as_str(), "{iq}");

    // The picture: one row per turn.
    let (status, svg) = api.get_text(&format!("/v1/observability/sessions/{call}/timeline.svg"));
    assert_eq!(status, 200);
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{svg}");
    assert_eq!(svg.matches("class=\"turn\"").count(), 3, "{svg}");

    // Metrics saw the turns.
    let (status, metrics) = api.get_text("/metrics");
    assert_eq!(status, 200);
    let count_line = metrics
        .lines()
        .find(|l| l.starts_with("parley_turn_stage_seconds_count{stage=\"tts_first_audio\"}"))
        .unwrap_or_else(|| panic!("no TTS histogram in {metrics}"));
    let n: f64 = count_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(n, 6.0, "{count_line}");

    // Bad input: unknown or malformed ids and periods get JSON errors.
    for path in [
        "/v1/observability/sessions/call_00000000000000000000000000000000",
        "/v1/observability/sessions/nope/root-cause",
        "/v1/observability/calls/nope",
        "/v1/recordings/nope",
    ] {
        let (status, body) = api.get_text(path);
        assert_eq!(status, 404, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["code"].is_string(), "{body}");
    }
    for q in ["from=yesterday", "minLatencyMs=-5", "limit=0"] {
        let (status, body) = api.get_text(&format!("/v1/observability/sessions?{q}"));
        assert_eq!(status, 400, "{q}: {body}");
    }
}
