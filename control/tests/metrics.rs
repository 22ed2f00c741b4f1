//! `GET /metrics` over real HTTP against an in-process server: the exposition, HTTP requests
//! counted under their route templates, and turn traces moving the stage histograms.
//!
//! The metrics are process-wide, so each test asserts on differences between two scrapes of
//! series no other test in this binary touches.

mod common;

use std::time::Duration;

use common::{start, Kind, TestServer};
use parley_engine::TurnTrace;
use reqwest::Method;

async fn scrape(s: &TestServer) -> String {
    let r = s
        .send(Method::GET, "/metrics", None, None)
        .await
        .expect(200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    String::from_utf8(r.raw).unwrap()
}

/// The value of the sample `series` (name with labels, exactly as rendered); 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn metrics_endpoint_and_http_requests() {
    let Some(s) = start(Kind::Sqlite).await else {
        return;
    };
    let health = "parley_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"}";
    let health_count =
        "parley_http_request_duration_seconds_count{method=\"GET\",route=\"/health\"}";
    let health_inf =
        "parley_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",le=\"+Inf\"}";
    let agent_401 =
        "parley_http_requests_total{method=\"GET\",route=\"/v1/agents/{id}\",status=\"401\"}";
    let unmatched = "parley_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}";

    let before = scrape(&s).await;
    for _ in 0..3 {
        s.send(Method::GET, "/health", None, None).await.expect(200);
    }
    s.send(Method::GET, "/v1/agents/agt_metrics_probe", None, None)
        .await
        .expect(401);
    s.send(Method::GET, "/no/such/metrics/probe", None, None)
        .await
        .expect(404);
    let after = scrape(&s).await;

    assert_eq!(
        value(&after, health) - value(&before, health),
        3.0,
        "{after}"
    );
    assert_eq!(
        value(&after, health_count) - value(&before, health_count),
        3.0
    );
    assert_eq!(value(&after, health_inf), value(&after, health_count));
    assert_eq!(value(&after, agent_401) - value(&before, agent_401), 1.0);
    assert_eq!(value(&after, unmatched) - value(&before, unmatched), 1.0);
    // Raw paths never become labels.
    assert!(!after.contains("agt_metrics_probe") && !after.contains("/no/such"));
    // The scrape before this one was counted too, under its own route.
    assert!(
        value(
            &after,
            "parley_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}"
        ) >= 1.0
    );

    for name in [
        "parley_active_calls",
        "parley_turns_total",
        "parley_turn_stage_seconds",
        "parley_provider_errors_total",
        "parley_traces_written_total",
        "parley_traces_dropped_total",
        "parley_http_requests_total",
        "parley_http_request_duration_seconds",
        "parley_caller_frames_total",
        "parley_agent_frames_total",
        "parley_late_frames_total",
        "parley_underruns_total",
        "parley_barge_ins_total",
        "parley_barge_ins_suppressed_total",
        "parley_talk_overs_total",
        "parley_calls_started_total",
        "parley_calls_ended_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        assert!(
            after.contains(&format!("\n# TYPE {name} ")),
            "{name} missing:\n{after}"
        );
    }
    assert_eq!(value(&after, "parley_active_calls"), 0.0);
    // Real readings, not placeholders: this process holds memory, threads and descriptors
    // (the server's socket among them) and started in the last day.
    assert!(value(&after, "process_resident_memory_bytes") > 1e6);
    assert!(
        value(&after, "process_virtual_memory_bytes")
            >= value(&after, "process_resident_memory_bytes")
    );
    assert!(value(&after, "process_threads") >= 1.0);
    assert!(value(&after, "process_open_fds") >= 3.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value(&after, "process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started} vs {now}"
    );

    // Documented, without auth.
    let doc = s
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200);
    let op = &doc.body["paths"]["/metrics"]["get"];
    assert!(op.is_object(), "{}", doc.body["paths"]);
    assert_eq!(op["security"], serde_json::json!([{}]));
}

#[tokio::test]
async fn observed_turns_move_the_stage_histograms() {
    let Some(s) = start(Kind::Sqlite).await else {
        return;
    };
    let ms = |v| Some(Duration::from_millis(v));
    let mut t = TurnTrace::new(1);
    t.speech_start = ms(200);
    t.speech_end = ms(1000);
    t.turn_end = ms(1600);
    t.stt_final = ms(1650);
    t.llm_request = ms(1650);
    t.llm_first_token = ms(1900);
    t.first_audio_sent = ms(2400);

    let before = scrape(&s).await;
    parley_control::metrics::global().observe_turn(&t);
    let after = scrape(&s).await;
    let delta = |series: &str| value(&after, series) - value(&before, series);
    let stage = |part: &str, stage: &str, le: Option<&str>| match le {
        Some(le) => format!("parley_turn_stage_seconds_{part}{{stage=\"{stage}\",le=\"{le}\"}}"),
        None => format!("parley_turn_stage_seconds_{part}{{stage=\"{stage}\"}}"),
    };

    assert_eq!(delta("parley_turns_total"), 1.0);
    // voice to voice: 1.4 s, so in the 1.5 s bucket and above, not in the 1 s one.
    assert_eq!(delta(&stage("count", "voice_to_voice", None)), 1.0);
    assert_eq!(delta(&stage("bucket", "voice_to_voice", Some("1"))), 0.0);
    assert_eq!(delta(&stage("bucket", "voice_to_voice", Some("1.5"))), 1.0);
    assert_eq!(delta(&stage("bucket", "voice_to_voice", Some("+Inf"))), 1.0);
    assert!((delta(&stage("sum", "voice_to_voice", None)) - 1.4).abs() < 1e-9);
    // endpointing 600 ms, stt 50 ms, llm first token 250 ms.
    assert_eq!(delta(&stage("bucket", "endpointing", Some("0.5"))), 0.0);
    assert_eq!(delta(&stage("bucket", "endpointing", Some("0.75"))), 1.0);
    assert_eq!(delta(&stage("bucket", "stt", Some("0.025"))), 0.0);
    assert_eq!(delta(&stage("bucket", "stt", Some("0.05"))), 1.0);
    assert_eq!(delta(&stage("bucket", "llm_first_token", Some("0.3"))), 1.0);
    // Stages missing a stamp are not recorded.
    for missing in [
        "first_sentence",
        "tts_first_audio",
        "engine",
        "playback_ack",
        "barge_in_reaction",
    ] {
        assert_eq!(delta(&stage("count", missing, None)), 0.0, "{missing}");
    }
}
