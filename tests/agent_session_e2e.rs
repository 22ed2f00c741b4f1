//! The direct agent socket (`/v1/agents/{id}/session`) against the real `parley serve`: raw
//! PCM16 both ways over a real WebSocket on loopback, JSON events, barge-in, malformed
//! input, and the refusals (bad rate, no key, read-only key, someone else's agent).

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::{create_key, serve, GREETING};

async fn scripted_agent(base: &str, key: &str) -> String {
    common::create_agent(base, key, common::scripted_agent_body()).await
}

/// The caller: 1 s of silence, "wait stop I have a different question", 1 s of silence.
fn caller_audio() -> Vec<i16> {
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/barge_in.16k.wav"))
            .unwrap();
    let wav = parley_codecs::wav::parse(&bytes).unwrap();
    assert_eq!((wav.sample_rate, wav.channels), (16000, 1));
    wav.samples
}

fn pcm_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// A server event and when it arrived (ms since the socket opened).
#[derive(Debug)]
struct Got {
    at_ms: u64,
    v: Value,
}

#[test]
fn a_client_talks_to_an_agent_over_the_direct_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = serve(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let agent = scripted_agent(&server.base, &key).await;
        let url = format!(
            "{}/v1/agents/{agent}/session?rate=16000&api_key={key}",
            server.ws
        );
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let (mut sink, mut stream) = ws.split();
        let t0 = Instant::now();

        // The caller side: the fixture in real time as 20 ms frames, then silence, with
        // text messages (malformed ones included) slipped in when the test says so.
        let (text_tx, mut text_rx) = tokio::sync::mpsc::channel::<String>(8);
        let audio = caller_audio();
        let sender = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let silence = [0i16; 320];
            let mut frames = audio.chunks(320);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let frame = frames.next().unwrap_or(&silence);
                        if sink.send(Message::binary(pcm_bytes(frame))).await.is_err() {
                            return sink;
                        }
                    }
                    t = text_rx.recv() => match t {
                        Some(t) => {
                            if sink.send(Message::text(t)).await.is_err() {
                                return sink;
                            }
                        }
                        None => return sink,
                    }
                }
            }
        });

        // Garbage while the greeting plays: answered with `error`, the call goes on.
        text_tx.send("{not json".into()).await.unwrap();
        text_tx.send(r#"{"type":"bogus"}"#.into()).await.unwrap();

        let mut events: Vec<Got> = Vec::new();
        let mut agent_frames = 0u64;
        let mut bad_frames = 0u64;
        let mut frame_times: Vec<u64> = Vec::new();
        let mut end_sent = false;
        let mut dtmf_sent = false;
        let deadline = t0 + Duration::from_secs(30);
        loop {
            let msg = match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => panic!(
                    "timed out; {agent_frames} agent frames, last at {:?} ms; events: {events:#?}",
                    frame_times.last()
                ),
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => break,
                Ok(Some(Err(e))) => panic!("socket error {e}; events: {events:#?}"),
                Ok(Some(Ok(m))) => m,
            };
            let at_ms = t0.elapsed().as_millis() as u64;
            match msg {
                Message::Binary(b) => {
                    agent_frames += 1;
                    if b.len() != 640 {
                        bad_frames += 1;
                    }
                    frame_times.push(at_ms);
                }
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    events.push(Got { at_ms, v });
                }
                _ => {}
            }
            // A key press once the greeting is cut off (while the agent's audio streams in,
            // the engine's control inbox can be full and would drop it).
            if !dtmf_sent && events.iter().any(|e| e.v["type"] == "interrupted") {
                dtmf_sent = true;
                text_tx
                    .send(r#"{"type":"dtmf","digit":"5"}"#.into())
                    .await
                    .unwrap();
            }
            // Once the caller's turn has been answered and its latency reported, hang up.
            let answered = events.iter().any(|e| {
                e.v["type"] == "transcript.final"
                    && e.v["role"] == "agent"
                    && e.v["interrupted"] == false
            });
            let latency = events
                .iter()
                .any(|e| e.v["type"] == "latency" && e.v["turn"].as_u64() >= Some(1));
            if answered && latency && !end_sent {
                end_sent = true;
                text_tx.send(r#"{"type":"end"}"#.into()).await.unwrap();
            }
        }
        drop(text_tx);
        let _ = sender.await;

        let log = serde_json::to_string(
            &events
                .iter()
                .map(|e| json!({"at": e.at_ms, "ev": e.v}))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let log = format!("{agent_frames} agent frames; events: {log}");
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e.v["type"].as_str().unwrap())
            .collect();
        let find = |kind: &str| events.iter().find(|e| e.v["type"] == kind);
        assert_eq!(kinds.first(), Some(&"session.started"), "{log}");
        let started = &events[0].v;
        assert!(started["callId"].as_str().unwrap().starts_with("call_"));
        assert_eq!(started["sampleRate"], 16000);
        assert_eq!(kinds.last(), Some(&"session.ended"), "{log}");
        assert!(
            events.last().unwrap().v["reason"]
                .as_str()
                .unwrap()
                .contains("client ended"),
            "{log}"
        );

        // Agent audio: 20 ms PCM16 frames at 16 kHz, paced (the greeting and the answer).
        assert_eq!(bad_frames, 0);
        assert!(agent_frames > 100, "{agent_frames} agent frames");
        let span = frame_times.last().unwrap() - frame_times.first().unwrap();
        assert!(
            span as f64 >= (agent_frames as f64 - 10.0) * 20.0 * 0.8,
            "{agent_frames} frames in {span} ms: not paced"
        );

        // Both malformed messages got an error; the DTMF digit came back as an event.
        assert!(
            kinds.iter().filter(|k| **k == "error").count() >= 2,
            "{log}"
        );
        assert_eq!(
            find("dtmf").map(|e| e.v["digit"].clone()),
            Some(json!("5")),
            "{log}"
        );

        // The caller cut into the greeting (speech starts 1 s in; the greeting lasts ~4 s).
        let int = find("interrupted").unwrap_or_else(|| panic!("no interrupted event; {log}"));
        assert!(
            (1000..=2500).contains(&int.at_ms),
            "interrupted at {} ms; {log}",
            int.at_ms
        );
        let played = int.v["playedMs"].as_u64().unwrap();
        assert!(played > 0 && played < 2000, "{int:?}; {log}");
        let clear = find("clear").unwrap_or_else(|| panic!("no clear; {log}"));
        assert!(clear.at_ms <= int.at_ms + 100, "{clear:?} {int:?}; {log}");

        // Transcripts: the greeting cut short, the caller's words, the full answer.
        let finals: Vec<&Value> = events
            .iter()
            .filter(|e| e.v["type"] == "transcript.final")
            .map(|e| &e.v)
            .collect();
        assert!(finals.len() >= 3, "{log}");
        assert_eq!(finals[0]["role"], "agent");
        assert_eq!(finals[0]["interrupted"], true);
        let heard = finals[0]["text"].as_str().unwrap();
        assert!(
            GREETING.starts_with(heard) && heard.len() < GREETING.len() / 2,
            "{heard:?}; {log}"
        );
        assert_eq!(finals[1]["role"], "user");
        assert_eq!(finals[1]["text"], "I have a different question");
        assert_eq!(finals[2]["role"], "agent");
        assert!(finals[2]["text"].as_str().unwrap().starts_with("Of course"));

        let turn_ended = find("turn.ended").expect("no turn.ended");
        assert!(turn_ended.v["speechEndMs"].as_u64().unwrap() >= 2000);
        let latency = events
            .iter()
            .find(|e| e.v["type"] == "latency" && e.v["turn"] == 1)
            .expect("no latency for turn 1");
        let v2v = latency.v["speechEndToFirstAudioMs"].as_u64().unwrap();
        assert!(v2v > 0 && v2v < 3000, "{latency:?}; {log}");
        let stages = latency.v["stages"].as_object().unwrap();
        for s in [
            "speechEnd",
            "turnEnd",
            "sttFinal",
            "llmRequest",
            "firstAudioSent",
        ] {
            assert!(stages.contains_key(s), "{s} missing: {latency:?}");
        }
        println!("{log}");

        // The call is on record with its transcript.
        let r = reqwest::Client::new()
            .get(format!(
                "{}/v1/calls/{}",
                server.base,
                started["callId"].as_str().unwrap()
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let call: Value = r.json().await.unwrap();
        assert_eq!(call["channel"], "websocket", "{call}");
    });
}

#[test]
fn the_socket_refuses_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = serve(dir.path());
    let db = format!("sqlite://{}", dir.path().join("parley.db").display());
    let read_key = create_key(&db, "acme", "read");
    let other_key = create_key(&db, "globex", "write");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let agent = scripted_agent(&server.base, &key).await;
        let c = reqwest::Client::new();
        let get = |q: String| {
            let c = c.clone();
            let url = format!("{}/v1/agents/{agent}/session{q}", server.base);
            async move {
                let r = c.get(url).send().await.unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap();
                (status, v)
            }
        };

        // No key, a bad key, a read-only key.
        let (s, v) = get(String::new()).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("UNAUTHORIZED")), "{v}");
        assert_eq!(get("?api_key=plabs_nope".into()).await.0, 401);
        assert_eq!(get(format!("?api_key={read_key}")).await.0, 403);
        // A wrong rate, with a good key.
        for rate in ["44100", "abc", "0", ""] {
            let (s, v) = get(format!("?api_key={key}&rate={rate}")).await;
            assert_eq!(s, 400, "rate={rate}: {v}");
            assert_eq!(v["field"], "rate", "{v}");
        }
        // Unknown agent, another tenant's agent.
        let (s, _) = get(format!("?api_key={other_key}")).await;
        assert_eq!(s, 404);
        let r = c
            .get(format!("{}/v1/agents/agt_nope/session", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        // Everything right but no WebSocket upgrade.
        let (s, _) = get(format!("?api_key={key}&rate=8000")).await;
        assert_eq!(s, 400);

        // Over a real WebSocket handshake: no key is a 401 answer, not an upgrade.
        let url = format!("{}/v1/agents/{agent}/session", server.ws);
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("expected 401, got {other:?}"),
        }
        // And a bearer header works for clients that can set one.
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("{url}?rate=48000"),
            )
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        return serde_json::from_str::<Value>(&t).unwrap()
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("{other:?}"),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(first["type"], "session.started");
        assert_eq!(first["sampleRate"], 48000);
        // The client just goes away: the server ends the call on its own.
        drop(ws);

        // The route is documented.
        let doc: Value = c
            .get(format!("{}/openapi.json", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            doc["paths"]["/v1/agents/{id}/session"]["get"].is_object(),
            "not in /openapi.json"
        );
    });
}
