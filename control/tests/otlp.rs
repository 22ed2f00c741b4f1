//! OTLP/HTTP JSON export of turn traces, received by a fake collector in this process.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use parley_control::otel::{config_from, OtlpConfig, OtlpExporter, TurnSpans};
use parley_engine::TurnTrace;
use serde_json::Value;
use tokio::sync::mpsc;

/// A collector on a loopback port answering `status`; every request body (with its headers)
/// goes to the returned channel.
async fn fake_collector(
    status: StatusCode,
) -> (String, mpsc::UnboundedReceiver<(HeaderMap, Value)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let json: Value = serde_json::from_slice(&body).expect("JSON body");
                let _ = tx.send((headers, json));
                (status, "{}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), rx)
}

/// Receives requests until `n` spans have arrived (a batch may be split by the 1 s flush).
async fn receive_spans(
    rx: &mut mpsc::UnboundedReceiver<(HeaderMap, Value)>,
    n: usize,
) -> (Vec<Value>, Vec<(HeaderMap, Value)>) {
    let mut spans = Vec::new();
    let mut requests = Vec::new();
    while spans.len() < n {
        let (h, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the exporter posted within 10 s")
            .expect("collector alive");
        for rs in body["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                spans.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
        requests.push((h, body));
    }
    (spans, requests)
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
        .unwrap_or(&Value::Null)
}

fn nanos(v: &Value) -> u64 {
    v.as_str()
        .expect("nanos as a decimal string")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn two_turns_of_a_call_arrive_as_one_trace() {
    let (base, mut rx) = fake_collector(StatusCode::OK).await;
    let exporter = OtlpExporter::new(&base, "parley-test");
    assert_eq!(exporter.traces_url(), format!("{base}/v1/traces"));

    let t0: u64 = 1_700_000_000_123_456_789;
    let us = |v: u64| Some(Duration::from_micros(v));
    // Turn 0: the greeting (no caller speech).
    let mut greet = TurnTrace::new(0);
    greet.llm_request = us(10_000);
    greet.llm_first_token = us(250_500);
    greet.tts_request = us(260_000);
    greet.tts_first_audio = us(400_250);
    greet.first_audio_sent = us(402_000);
    greet.playback_done = us(3_000_000);
    greet.played_ms = Some(2598);
    // Turn 1: the caller speaks and interrupts the reply.
    let mut t1 = TurnTrace::new(1);
    t1.speech_start = us(4_000_000);
    t1.speech_end = us(5_000_000);
    t1.turn_end = us(5_700_000);
    t1.stt_final = us(5_750_001);
    t1.llm_request = us(5_750_001);
    t1.llm_first_token = us(6_000_000);
    t1.first_sentence = us(6_100_000);
    t1.tts_request = us(6_100_000);
    t1.tts_first_audio = us(6_300_000);
    t1.first_audio_sent = us(6_310_000);
    t1.first_playback_ack = us(6_390_000);
    t1.barge_in_onset = us(7_000_000);
    t1.interrupted = us(7_120_000);
    t1.played_ms = Some(690);
    for trace in [greet, t1] {
        assert!(exporter.export_turn(TurnSpans {
            call_id: "call_otlp_1".into(),
            agent_id: "agt_7".into(),
            call_started_unix_nanos: t0,
            trace,
        }));
    }

    // greeting: turn + llm_first_token + tts_first_audio + engine = 4;
    // turn 1: turn + all nine stages = 10.
    let (spans, requests) = receive_spans(&mut rx, 14).await;
    assert_eq!(spans.len(), 14);
    for (headers, body) in &requests {
        assert_eq!(headers["content-type"], "application/json");
        let rs = body["resourceSpans"].as_array().unwrap();
        assert_eq!(rs.len(), 1);
        let res = &rs[0]["resource"];
        assert_eq!(
            attr(res, "service.name"),
            &serde_json::json!({"stringValue": "parley-test"})
        );
        assert_eq!(rs[0]["scopeSpans"][0]["scope"]["name"], "parley");
    }

    let trace_id = spans[0]["traceId"].as_str().unwrap().to_string();
    assert_eq!(trace_id.len(), 32);
    assert!(trace_id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(trace_id, parley_control::otel::trace_id("call_otlp_1"));
    let mut ids = std::collections::HashSet::new();
    for s in &spans {
        assert_eq!(s["traceId"], trace_id.as_str(), "one trace per call");
        assert_eq!(s["kind"], 1);
        let id = s["spanId"].as_str().unwrap();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(ids.insert(id.to_string()), "span ids are unique");
        assert!(nanos(&s["startTimeUnixNano"]) <= nanos(&s["endTimeUnixNano"]));
    }

    let turns: Vec<&Value> = spans.iter().filter(|s| s["name"] == "turn").collect();
    assert_eq!(turns.len(), 2);
    let by_turn: HashMap<String, &Value> = turns
        .iter()
        .map(|s| {
            (
                attr(s, "parley.turn")["intValue"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                *s,
            )
        })
        .collect();
    let (g, r) = (by_turn["0"], by_turn["1"]);
    for t in [g, r] {
        assert!(
            t.get("parentSpanId").is_none_or(|p| p == ""),
            "turns are roots"
        );
        assert_eq!(
            attr(t, "parley.call_id"),
            &serde_json::json!({"stringValue": "call_otlp_1"})
        );
        assert_eq!(
            attr(t, "parley.agent_id"),
            &serde_json::json!({"stringValue": "agt_7"})
        );
    }
    let at = |micros: u64| t0 + micros * 1_000;
    // The greeting runs from its first stamp to playback done.
    assert_eq!(nanos(&g["startTimeUnixNano"]), at(10_000));
    assert_eq!(nanos(&g["endTimeUnixNano"]), at(3_000_000));
    assert_eq!(
        attr(g, "parley.interrupted"),
        &serde_json::json!({"boolValue": false})
    );
    assert_eq!(
        attr(g, "parley.played_ms"),
        &serde_json::json!({"intValue": "2598"})
    );
    assert!(
        attr(g, "parley.voice_to_voice_ms").is_null(),
        "no caller speech"
    );
    // The reply runs from the caller's speech start to the interruption.
    assert_eq!(nanos(&r["startTimeUnixNano"]), at(4_000_000));
    assert_eq!(nanos(&r["endTimeUnixNano"]), at(7_120_000));
    assert_eq!(
        attr(r, "parley.interrupted"),
        &serde_json::json!({"boolValue": true})
    );
    assert_eq!(
        attr(r, "parley.played_ms"),
        &serde_json::json!({"intValue": "690"})
    );
    assert_eq!(
        attr(r, "parley.voice_to_voice_ms"),
        &serde_json::json!({"doubleValue": 1310.0})
    );

    let children = |parent: &Value| -> HashMap<String, Value> {
        spans
            .iter()
            .filter(|s| s.get("parentSpanId") == Some(&parent["spanId"]))
            .map(|s| (s["name"].as_str().unwrap().to_string(), s.clone()))
            .collect()
    };
    let gc = children(g);
    let mut names: Vec<&str> = gc.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["engine", "llm_first_token", "tts_first_audio"]);
    let rc = children(r);
    assert_eq!(rc.len(), 9);
    for (name, start, end) in [
        ("endpointing", 5_000_000, 5_700_000),
        ("stt", 5_700_000, 5_750_001),
        ("llm_first_token", 5_750_001, 6_000_000),
        ("first_sentence", 6_000_000, 6_100_000),
        ("tts_first_audio", 6_100_000, 6_300_000),
        ("engine", 6_300_000, 6_310_000),
        ("playback_ack", 6_310_000, 6_390_000),
        ("voice_to_voice", 5_000_000, 6_310_000),
        ("barge_in_reaction", 7_000_000, 7_120_000),
    ] {
        let s = &rc[name];
        assert_eq!(nanos(&s["startTimeUnixNano"]), at(start), "{name} start");
        assert_eq!(nanos(&s["endTimeUnixNano"]), at(end), "{name} end");
    }
    assert_eq!(
        nanos(&gc["llm_first_token"]["startTimeUnixNano"]),
        at(10_000)
    );
    assert_eq!(
        nanos(&gc["llm_first_token"]["endTimeUnixNano"]),
        at(250_500)
    );

    assert_eq!(exporter.dropped(), 0);
    // Counted once the POST has returned, just after the collector saw it.
    tokio::time::timeout(Duration::from_secs(5), async {
        while exporter.exported() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both turns counted as exported");
}

#[tokio::test]
async fn failed_posts_drop_the_batch_and_configured_headers_are_sent() {
    let (base, mut rx) = fake_collector(StatusCode::SERVICE_UNAVAILABLE).await;
    let exporter = OtlpExporter::with_config(OtlpConfig {
        traces_url: format!("{base}/v1/traces"),
        service_name: "parley".into(),
        headers: vec![("x-api-key".into(), "secret-1".into())],
    });
    let mut t = TurnTrace::new(1);
    t.speech_end = Some(Duration::from_millis(100));
    t.first_audio_sent = Some(Duration::from_millis(900));
    exporter.export_turn(TurnSpans {
        call_id: "call_otlp_2".into(),
        agent_id: "agt_1".into(),
        call_started_unix_nanos: 1,
        trace: t,
    });
    let (_, requests) = receive_spans(&mut rx, 2).await;
    assert_eq!(requests[0].0["x-api-key"], "secret-1");
    tokio::time::timeout(Duration::from_secs(5), async {
        while exporter.dropped() < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the rejected turn is counted as dropped");
    assert_eq!(exporter.exported(), 0);
    // Not retried: nothing more arrives.
    assert!(tokio::time::timeout(Duration::from_millis(1500), rx.recv())
        .await
        .is_err());
}

#[test]
fn no_endpoint_means_no_exporter() {
    let none = |_: &str| None::<String>;
    assert_eq!(config_from(none), None);
    let c = config_from(|k: &str| {
        (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://127.0.0.1:4318".to_string())
    })
    .unwrap();
    assert_eq!(c.traces_url, "http://127.0.0.1:4318/v1/traces");
    assert_eq!(c.service_name, "parley");
}
