//! The observability endpoints over real HTTP, on SQLite and Postgres, from traces written
//! the way the media plane writes them (through the batched `TraceSink`): listing with
//! filters and pages, session and call detail, root cause against the agent's medians,
//! interruption quality, the timeline, tenancy, bad input; and that a stalled store drops
//! and counts traces instead of blocking.

mod common;

use std::time::Duration;

use common::{start, Kind, TestServer};
use parley_control::lifecycle;
use parley_control::store::calls::NewCall;
use parley_control::store::traces::{self, CallMetrics, TraceRecord, TraceRow};
use parley_control::timestamps::now_ms;
use parley_engine::{CallStats, TurnTrace};
use serde_json::{json, Value};

fn ms(v: u64) -> Option<Duration> {
    Some(Duration::from_millis(v))
}

/// A caller turn starting at `at` ms answered after the given provider delays (ms);
/// `barge_in` interrupts the reply 600 ms into it, with an 80 ms reaction.
fn turn(n: u32, at: u64, stt: u64, llm: u64, tts: u64, barge_in: bool) -> TurnTrace {
    let mut t = TurnTrace::new(n);
    t.speech_start = ms(at);
    t.speech_end = ms(at + 1200);
    let turn_end = at + 1900;
    t.turn_end = ms(turn_end);
    t.stt_final = ms(turn_end + stt);
    t.llm_request = ms(turn_end + stt + 1);
    let first_token = turn_end + stt + 1 + llm;
    t.llm_first_token = ms(first_token);
    t.first_sentence = ms(first_token + 40);
    t.tts_request = ms(first_token + 40);
    let audio = first_token + 40 + tts;
    t.tts_first_audio = ms(audio);
    t.first_audio_sent = ms(audio + 3);
    t.first_playback_ack = ms(audio + 120);
    if barge_in {
        t.interrupted = ms(audio + 603);
        t.barge_in_onset = ms(audio + 523);
        t.played_ms = Some(600);
    } else {
        t.playback_done = ms(audio + 2003);
        t.played_ms = Some(2000);
    }
    t
}

/// Records a call of `agent` with these turns, as `media::run_call` does.
async fn call_with(s: &TestServer, agent: &str, turns: &[TurnTrace], stats: CallStats) -> String {
    let state = &s.state;
    let call = lifecycle::call_started(
        state,
        &s.tenant_id,
        &NewCall {
            id: parley_control::ids::new_id("call"),
            agent_id: agent.to_string(),
            task_id: None,
            channel: "phone".into(),
            direction: "inbound".into(),
            from_number: None,
            to_number: None,
        },
    )
    .await
    .unwrap();
    let started = now_ms();
    let mut m = CallMetrics {
        call_id: call.id.clone(),
        agent_id: agent.to_string(),
        call_started_ms: started,
        stt_provider: "deepgram".into(),
        llm_provider: "openai".into(),
        llm_model: Some("gpt-4o-mini".into()),
        tts_provider: "elevenlabs".into(),
        silence_ms: 700,
        ..Default::default()
    };
    traces::start_call(&state.db, &s.tenant_id, &m)
        .await
        .unwrap();
    for (i, t) in turns.iter().enumerate() {
        assert!(state.traces.record(TraceRecord {
            tenant_id: s.tenant_id.clone(),
            row: TraceRow::from_trace(&call.id, agent, started, i as i64 + 1, t),
        }));
    }
    m.ended = true;
    m.turns = turns.len() as i64;
    m.stats = stats;
    traces::finish_call(&state.db, &s.tenant_id, &m)
        .await
        .unwrap();
    lifecycle::call_ended(state, &call.id, true, "caller hung up")
        .await
        .unwrap();
    call.id
}

/// Waits until the writer has stored `n` traces in all.
async fn stored(s: &TestServer, n: u64) {
    for _ in 0..200 {
        if s.state.traces.written() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("only {} traces stored", s.state.traces.written());
}

async fn agent(s: &TestServer, name: &str) -> String {
    let body = json!({
        "name": name,
        "persona": {"name": "Ava"},
        "voice": {"provider": "scripted", "voiceId": "tone"},
        "llm": {"provider": "scripted", "model": "scripted"},
        "transcription": {"provider": "scripted"},
        "systemPromptTemplate": "Test."
    });
    s.post("/v1/agents", body).await.expect(201).body["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn stage(turn: &Value, name: &str) -> f64 {
    turn["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap()["durationMs"]
        .as_f64()
        .unwrap()
}

async fn sessions_calls_and_root_cause(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let a = agent(&s, "A").await;
    let b = agent(&s, "B").await;

    // Agent A: six ordinary calls (its baseline), then one whose TTS is slow.
    let mut ordinary = Vec::new();
    for i in 0..6 {
        let t = turn(1, 0, 150 + i, 300, 200, false);
        ordinary.push(call_with(&s, &a, &[t], CallStats::default()).await);
    }
    let slow = call_with(
        &s,
        &a,
        &[
            turn(1, 0, 150, 300, 200, false),
            turn(2, 8000, 150, 310, 1400, false),
        ],
        CallStats {
            frames_sent: 500,
            late_frames: 2,
            ..Default::default()
        },
    )
    .await;
    // Agent B: one call with two barge-ins (one talk-over) and suppressed ones.
    let mut talk_over = turn(2, 8000, 100, 200, 100, true);
    talk_over.talk_over = true;
    let barged = call_with(
        &s,
        &b,
        &[turn(1, 0, 100, 200, 100, true), talk_over],
        CallStats {
            barge_ins: 2,
            suppressed_barge_ins: 3,
            talk_overs: 1,
            ..Default::default()
        },
    )
    .await;
    stored(&s, 10).await;

    // Session detail: every stage as written.
    let d = s
        .get(&format!("/v1/observability/sessions/{slow}"))
        .await
        .expect(200)
        .body;
    assert_eq!(d["id"], slow.as_str());
    assert_eq!(d["agentId"], a.as_str());
    assert_eq!(d["turns"], 2);
    let t2 = &d["turnsDetail"][1];
    assert_eq!(stage(t2, "stt"), 150.0);
    assert_eq!(stage(t2, "llm_first_token"), 310.0);
    assert_eq!(stage(t2, "tts_first_audio"), 1400.0);
    assert_eq!(stage(t2, "endpointing"), 700.0);
    assert_eq!(t2["timestamps"]["speechStartMs"], 8000.0);
    assert_eq!(
        t2["voiceToVoiceMs"],
        700.0 + 150.0 + 1.0 + 310.0 + 40.0 + 1400.0 + 3.0
    );
    assert_eq!(d["media"]["lateFrames"], 2);
    assert_eq!(d["media"]["ttsProvider"], "elevenlabs");
    assert_eq!(d["media"]["finalCounts"], true);

    // Root cause: the slow turn is TTS, against agent A's median.
    let rc = s
        .get(&format!("/v1/observability/sessions/{slow}/root-cause"))
        .await
        .expect(200)
        .body;
    assert_eq!(rc["slowTurns"], 1, "{rc}");
    assert_eq!(rc["baseline"]["turns"], 8, "{rc}");
    assert_eq!(rc["turns"][0]["slow"], false);
    let t = &rc["turns"][1];
    assert_eq!(t["slow"], true);
    assert_eq!(t["dominantStage"], "tts_first_audio");
    assert_eq!(t["provider"], "elevenlabs");
    assert_eq!(t["agentMedianMs"], 200.0);
    assert_eq!(t["ratio"], 7.0);
    assert_eq!(
        rc["findings"][0],
        "Turn 2: TTS first audio 1.4 s, 7× this agent's median (200 ms): provider elevenlabs"
    );
    // The same through the call route; an ordinary call has no slow turn.
    let rc2 = s
        .get(&format!("/v1/observability/calls/{slow}/root-cause"))
        .await
        .expect(200)
        .body;
    assert_eq!(rc2["findings"], rc["findings"]);
    let rc3 = s
        .get(&format!(
            "/v1/observability/calls/{}/root-cause",
            ordinary[0]
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(rc3["slowTurns"], 0, "{rc3}");

    // Call detail: record, transcript (empty here) and session.
    let c = s
        .get(&format!("/v1/observability/calls/{barged}"))
        .await
        .expect(200)
        .body;
    assert_eq!(c["call"]["id"], barged.as_str());
    assert_eq!(c["call"]["status"], "completed");
    assert_eq!(c["session"]["interruptions"], 2);
    assert_eq!(c["session"]["turnsDetail"][0]["bargeInReactionMs"], 80.0);

    // Lists: all eight, by agent, by latency, paged.
    let (all, _) = s.collect_pages("/v1/observability/sessions", 3).await;
    assert_eq!(all.len(), 8);
    let by_b = s
        .get(&format!("/v1/observability/sessions?agentId={b}"))
        .await
        .expect(200)
        .body;
    assert_eq!(by_b["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_b["data"][0]["interruptions"], 2);
    let slow_only = s
        .get("/v1/observability/sessions?minLatencyMs=2000")
        .await
        .expect(200)
        .body;
    let ids: Vec<&str> = slow_only["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![slow.as_str()]);
    let summary = &slow_only["data"][0]["latency"];
    assert_eq!(summary["answeredTurns"], 2);
    assert_eq!(summary["voiceToVoiceMaxMs"], 2604.0);
    let none = s
        .get("/v1/observability/sessions?from=2000-01-01&to=2000-02-01")
        .await
        .expect(200)
        .body;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);

    // Interruption quality, per agent.
    let iq = s
        .get("/v1/observability/sessions/interruption-quality")
        .await
        .expect(200)
        .body;
    assert_eq!(iq["total"]["bargeIns"], 2, "{iq}");
    assert_eq!(iq["total"]["suppressedBargeIns"], 3);
    assert_eq!(iq["total"]["talkOvers"], 1);
    assert_eq!(iq["total"]["reactionP50Ms"], 80.0);
    assert_eq!(iq["total"]["calls"], 8);
    let per_b = iq["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["agentId"] == b.as_str())
        .unwrap();
    assert_eq!(per_b["bargeInRate"], 1.0);
    let only_a = s
        .get(&format!(
            "/v1/observability/sessions/interruption-quality?agentId={a}"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(only_a["total"]["bargeIns"], 0);
    assert_eq!(only_a["total"]["turns"], 8);

    // The timeline: one row per turn.
    let r = s
        .get(&format!("/v1/observability/sessions/{slow}/timeline.svg"))
        .await
        .expect(200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("image/svg+xml"));
    let svg = String::from_utf8(r.raw).unwrap();
    assert_eq!(svg.matches("class=\"turn\"").count(), 2);

    // Another tenant sees none of it.
    let other = s.tenant_key("globex", &["admin"]).await;
    let r = s
        .send(
            reqwest::Method::GET,
            &format!("/v1/observability/sessions/{slow}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .send(
            reqwest::Method::GET,
            "/v1/observability/sessions",
            Some(&other),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);

    // Bad input.
    s.get("/v1/observability/sessions?minLatencyMs=abc")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("minLatencyMs"));
    s.get("/v1/observability/sessions?from=tomorrow")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("from"));
    s.get("/v1/observability/sessions/interruption-quality?from=2030-01-01&to=2020-01-01")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("from"));
    s.get("/v1/observability/sessions/nope")
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.get("/v1/recordings/call_0000000000000000000000000000000000")
        .await
        .expect(404);
}

/// Stalling the store needs the in-process SQLite writer lock (Postgres has none), so this
/// runs on SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_drops_and_counts_traces() {
    let s = start(Kind::Sqlite).await.expect("SQLite test server");
    let sink = parley_control::traces::TraceSink::start(s.state.db.clone(), true, None);
    let dropped_before = sink.dropped();
    let row = TraceRow::from_trace("call_x", "agt_x", 0, 1, &turn(1, 0, 1, 1, 1, false));
    let total = 20_000;
    let accepted = {
        // Hold the store's write lock: the writer stalls on its first batch.
        let _stall = s.state.db.write().await;
        let mut accepted = 0u64;
        for i in 0..total {
            let mut r = row.clone();
            r.seq = i as i64 + 1;
            if sink.record(TraceRecord {
                tenant_id: s.tenant_id.clone(),
                row: r,
            }) {
                accepted += 1;
            }
        }
        accepted
    };
    let dropped = sink.dropped() - dropped_before;
    assert_eq!(accepted + dropped, total);
    assert!(dropped > 0, "nothing dropped with the store stalled");
    // Once the store moves again, everything accepted is written.
    for _ in 0..500 {
        if sink.written() == accepted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.written(), accepted);
}

both_backends!(sessions_calls_and_root_cause);
