//! Tasks, calls and conversations over real HTTP, on SQLite and Postgres: status rules,
//! execute through the engine interface (the default NoTransport and a recording fake),
//! end/cancel, transcripts, recordings, the live WebSocket, and usage.

mod common;

use std::sync::{Arc, Mutex};

use common::{start, start_with, Kind, TestServer};
use futures_util::{SinkExt, StreamExt};
use parley_control::dispatch::DispatchFuture;
use parley_control::{lifecycle, CallDispatcher, OutboundCall, ServeOptions};
use reqwest::Method;
use serde_json::{json, Value};

/// Accepts every call and remembers what it was asked to do.
#[derive(Default)]
struct FakeTransport {
    placed: Mutex<Vec<OutboundCall>>,
    ended: Mutex<Vec<String>>,
}

impl CallDispatcher for FakeTransport {
    fn place_call(&self, call: OutboundCall) -> DispatchFuture<'_> {
        self.placed.lock().unwrap().push(call);
        Box::pin(async { Ok(()) })
    }
    fn end_call(&self, call_id: &str) -> DispatchFuture<'_> {
        self.ended.lock().unwrap().push(call_id.to_string());
        Box::pin(async { Ok(()) })
    }
}

fn agent_body() -> Value {
    json!({
        "name": "Caller",
        "persona": {"name": "Ava"},
        "voice": {"provider": "embedded", "voiceId": "default"},
        "llm": {"provider": "embedded", "model": "default"},
        "transcription": {"provider": "embedded"},
        "systemPromptTemplate": "Call {{customer_name}} about order {{order_id}}.",
        "firstMessage": "Hi {{customer_name}}"
    })
}

async fn active_agent(s: &TestServer) -> String {
    let id = s.post("/v1/agents", agent_body()).await.expect(201).body["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(&format!("/v1/agents/{id}/activate"), json!({}))
        .await
        .expect(200);
    id
}

fn task_body(agent: &str) -> Value {
    json!({
        "agentId": agent,
        "name": "Follow up",
        "toNumber": "+14155550100",
        "contextData": {"customer_name": "John", "order_id": "12345"},
        "priority": 5,
        "scheduledAt": "2030-01-01T10:00:00Z"
    })
}

async fn task_crud_and_rules(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let agent = active_agent(&s).await;
    let r = s.post("/v1/tasks", task_body(&agent)).await.expect(201);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["contextData"]["order_id"], "12345");
    assert_eq!(r.body["scheduledAt"], "2030-01-01T10:00:00.000Z");
    assert!(r.body.get("webhookSecret").is_none());

    let r = s
        .patch(
            &format!("/v1/tasks/{id}"),
            json!({"priority": 9, "name": null}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["priority"], 9);
    assert!(r.body.get("name").is_none());
    s.get(&format!("/v1/tasks/{id}")).await.expect(200);
    s.get(&format!("/v1/agents/{agent}/tasks/{id}"))
        .await
        .expect(200);

    // Validation.
    let mut b = task_body(&agent);
    b["toNumber"] = json!("555-0100");
    s.post("/v1/tasks", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("toNumber"));
    let mut b = task_body(&agent);
    b["priority"] = json!(101);
    s.post("/v1/tasks", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("priority"));
    let mut b = task_body(&agent);
    b["scheduledAt"] = json!("tomorrow");
    s.post("/v1/tasks", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("scheduledAt"));
    let mut b = task_body(&agent);
    b["contextData"] = json!([1]);
    s.post("/v1/tasks", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("contextData"));
    let mut b = task_body(&agent);
    b["agentId"] = json!("agt_00000000000000000000000000000000");
    s.post("/v1/tasks", b)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("agentId"));
    s.patch(&format!("/v1/tasks/{id}"), json!({"agentId": agent}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("agentId"));
    s.patch(&format!("/v1/tasks/{id}"), json!({"status": "completed"}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("status"));

    // The agent-scoped alias.
    let r = s
        .post(
            &format!("/v1/agents/{agent}/tasks"),
            json!({"toNumber": "+442071234567"}),
        )
        .await
        .expect(201);
    let second = r.body["id"].as_str().unwrap().to_string();
    let (all, _) = s
        .collect_pages(&format!("/v1/agents/{agent}/tasks"), 1)
        .await;
    assert_eq!(all.len(), 2);
    let (pending, _) = s.collect_pages("/v1/tasks?status=pending", 10).await;
    assert_eq!(pending.len(), 2);
    s.get("/v1/tasks?status=done")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("status"));

    // execute without a transport: clear 503, call and task recorded as failed.
    let r = s.post(&format!("/v1/tasks/{id}/execute"), json!({})).await;
    let r = r.expect_error(503, "PROVIDER_UNAVAILABLE", None);
    assert_eq!(
        r.body["message"],
        "no transport can place outbound calls yet"
    );
    let t = s.get(&format!("/v1/tasks/{id}")).await.expect(200);
    assert_eq!(t.body["status"], "failed");
    assert!(t.body["lastError"]
        .as_str()
        .unwrap()
        .contains("no transport"));
    let call_id = t.body["callId"].as_str().unwrap().to_string();
    let c = s.get(&format!("/v1/calls/{call_id}")).await.expect(200);
    assert_eq!(c.body["status"], "failed");
    assert_eq!(c.body["direction"], "outbound");
    assert_eq!(c.body["toNumber"], "+14155550100");

    // Status rules.
    s.patch(&format!("/v1/tasks/{id}"), json!({"priority": 1}))
        .await
        .expect_error(409, "CONFLICT", None);
    s.post(&format!("/v1/tasks/{id}/execute"), json!({}))
        .await
        .expect_error(409, "CONFLICT", None);
    s.post(&format!("/v1/tasks/{second}/reset"), json!({}))
        .await
        .expect_error(409, "CONFLICT", None);
    let r = s
        .post(&format!("/v1/tasks/{id}/reset"), json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "pending");
    assert!(r.body["callId"].is_null());

    // Deleting the agent is refused while tasks are pending.
    s.delete(&format!("/v1/agents/{agent}"))
        .await
        .expect_error(409, "CONFLICT", None);
    // Inactive agents cannot execute.
    s.post(&format!("/v1/agents/{agent}/deactivate"), json!({}))
        .await
        .expect(200);
    s.post(&format!("/v1/tasks/{id}/execute"), json!({}))
        .await
        .expect_error(409, "CONFLICT", None);

    // Tenant isolation.
    let other = s.tenant_key("globex", &["admin"]).await;
    for (m, p) in [
        (Method::GET, format!("/v1/tasks/{id}")),
        (Method::PATCH, format!("/v1/tasks/{id}")),
        (Method::DELETE, format!("/v1/tasks/{id}")),
        (Method::POST, format!("/v1/tasks/{id}/execute")),
        (Method::POST, format!("/v1/tasks/{id}/reset")),
        (Method::GET, format!("/v1/calls/{call_id}")),
        (Method::GET, format!("/v1/calls/{call_id}/transcript")),
        (Method::GET, format!("/v1/calls/{call_id}/live")),
        (Method::POST, format!("/v1/calls/{call_id}/end")),
        (Method::GET, format!("/v1/conversations/{call_id}")),
    ] {
        s.send(m, &p, Some(&other), Some(&json!({})))
            .await
            .expect_error(404, "NOT_FOUND", None);
    }
    let mut b = task_body(&agent);
    b["toNumber"] = json!("+14155550199");
    s.send(Method::POST, "/v1/tasks", Some(&other), Some(&b))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("agentId"));

    s.delete(&format!("/v1/tasks/{id}")).await.expect(204);
    s.delete(&format!("/v1/tasks/{second}")).await.expect(204);
    s.get(&format!("/v1/tasks/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.delete(&format!("/v1/agents/{agent}")).await.expect(204);
}

async fn execute_with_transport(kind: Kind) {
    let fake = Arc::new(FakeTransport::default());
    let Some(s) = start_with(kind, ServeOptions::default(), fake.clone()).await else {
        return;
    };
    let agent = active_agent(&s).await;
    s.post(&format!("/v1/agents/{agent}/publish"), json!({}))
        .await
        .expect(200);
    // A draft change after publishing must not reach the call.
    s.patch(
        &format!("/v1/agents/{agent}"),
        json!({"firstMessage": "DRAFT"}),
    )
    .await
    .expect(200);
    let id = s
        .post("/v1/tasks", task_body(&agent))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .post(&format!("/v1/tasks/{id}/execute"), json!({}))
        .await
        .expect(202);
    let call_id = r.body["callId"].as_str().unwrap().to_string();
    {
        let placed = fake.placed.lock().unwrap();
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].call_id, call_id);
        assert_eq!(placed[0].to_number, "+14155550100");
        assert_eq!(placed[0].agent_version, 1);
        assert_eq!(
            placed[0].first_message.as_deref(),
            Some("Hi {{customer_name}}")
        );
        assert_eq!(placed[0].context["customer_name"], "John");
    }
    let t = s.get(&format!("/v1/tasks/{id}")).await.expect(200);
    assert_eq!(t.body["status"], "in_progress");
    s.delete(&format!("/v1/tasks/{id}"))
        .await
        .expect_error(409, "CONFLICT", None);
    s.post(&format!("/v1/tasks/{id}/reset"), json!({}))
        .await
        .expect_error(409, "CONFLICT", None);

    // The engine reports progress.
    lifecycle::call_answered(&s.state, &call_id).await.unwrap();
    lifecycle::transcript(&s.state, &call_id, "agent", "Hi John")
        .await
        .unwrap();
    lifecycle::transcript(&s.state, &call_id, "user", "Hello?")
        .await
        .unwrap();
    lifecycle::record_usage(&s.state, &call_id, "embedded", "tts_characters", 7.0)
        .await
        .unwrap();

    // Live transcript: token + WebSocket.
    let live = s
        .get(&format!("/v1/calls/{call_id}/live"))
        .await
        .expect(200);
    let ws_url = format!(
        "{}?session_token={}",
        live.body["websocketUrl"].as_str().unwrap(),
        live.body["tempToken"].as_str().unwrap()
    );
    assert!(ws_url.starts_with("ws://127.0.0.1:"));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("ws connect");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let msg = ws.next().await.unwrap().unwrap();
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        seen.push(v);
    }
    assert_eq!(seen[0]["type"], "connected");
    assert_eq!(seen[1]["type"], "transcript_update");
    assert_eq!(seen[1]["data"]["entries"][1]["text"], "Hello?");
    assert_eq!(seen[2]["data"]["status"], "in_progress");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "{\"type\":\"ping\"}".into(),
    ))
    .await
    .unwrap();
    let v: Value =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "pong");
    // Bad tokens are refused before the upgrade.
    let bad = format!(
        "{}?session_token=abc.def",
        live.body["websocketUrl"].as_str().unwrap()
    );
    assert!(tokio_tungstenite::connect_async(&bad).await.is_err());
    let r = s
        .send(
            Method::GET,
            &format!("/v1/calls/{call_id}/live/ws?session_token=x.y"),
            None,
            None,
        )
        .await;
    r.expect_error(401, "UNAUTHORIZED", None);

    let tr = s
        .get(&format!("/v1/calls/{call_id}/transcript"))
        .await
        .expect(200);
    assert_eq!(tr.body["entries"].as_array().unwrap().len(), 2);
    assert_eq!(tr.body["entries"][0]["speaker"], "agent");

    // End: the transport is asked to hang up, call and task complete, the WS sees it and closes.
    let r = s
        .post(&format!("/v1/calls/{call_id}/end"), json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(*fake.ended.lock().unwrap(), vec![call_id.clone()]);
    let mut closed = false;
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            closed = true;
            break;
        }
    }
    assert!(closed);
    let t = s.get(&format!("/v1/tasks/{id}")).await.expect(200);
    assert_eq!(t.body["status"], "completed");
    s.post(&format!("/v1/calls/{call_id}/end"), json!({}))
        .await
        .expect_error(409, "CONFLICT", None);
    s.post(&format!("/v1/calls/{call_id}/cancel"), json!({}))
        .await
        .expect_error(409, "CONFLICT", None);

    // Cancel marks failed.
    s.post(&format!("/v1/tasks/{id}/reset"), json!({}))
        .await
        .expect(200);
    let call2 = s
        .post(&format!("/v1/tasks/{id}/execute"), json!({}))
        .await
        .expect(202)
        .body["callId"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .post(&format!("/v1/calls/{call2}/cancel"), json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "failed");
    assert_eq!(r.body["endReason"], "cancelled");
    assert_eq!(
        s.get(&format!("/v1/tasks/{id}")).await.body["status"],
        "failed"
    );

    // Lists and filters, calls and conversations alike.
    let (calls, _) = s.collect_pages("/v1/calls", 1).await;
    assert_eq!(calls.len(), 2);
    let (failed, _) = s.collect_pages("/v1/calls?status=failed", 5).await;
    assert_eq!(failed.len(), 1);
    let (by_task, _) = s
        .collect_pages(&format!("/v1/conversations?taskId={id}"), 5)
        .await;
    assert_eq!(by_task.len(), 2);
    let conv = s
        .get(&format!("/v1/conversations/{call_id}"))
        .await
        .expect(200);
    assert_eq!(conv.body["transcript"].as_array().unwrap().len(), 2);
    s.get("/v1/calls?status=weird")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("status"));
    s.get("/v1/calls/call_nope")
        .await
        .expect_error(404, "NOT_FOUND", None);

    // Recording: none yet, then the file the engine wrote, streamed back byte for byte.
    s.get(&format!("/v1/calls/{call_id}/recording"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.wav");
    let wav: Vec<u8> = b"RIFF\x24\x00\x00\x00WAVEfmt "
        .iter()
        .copied()
        .chain((0..2000u32).map(|i| i as u8))
        .collect();
    std::fs::write(&path, &wav).unwrap();
    lifecycle::recording_stored(&s.state, &call_id, path.to_str().unwrap(), "audio/wav")
        .await
        .unwrap();
    let r = s
        .get(&format!("/v1/calls/{call_id}/recording"))
        .await
        .expect(200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.raw, wav);
    assert_eq!(
        s.get(&format!("/v1/calls/{call_id}")).await.body["hasRecording"],
        true
    );

    // Usage.
    let u = s.get("/v1/usage").await.expect(200);
    assert_eq!(u.body["calls"]["calls"], 2);
    assert_eq!(u.body["calls"]["completedCalls"], 1);
    assert_eq!(u.body["calls"]["failedCalls"], 1);
    assert_eq!(u.body["providers"][0]["metric"], "tts_characters");
    assert_eq!(u.body["providers"][0]["quantity"], 7.0);
    let u = s
        .get("/v1/usage?from=2000-01-01&to=2000-02-01")
        .await
        .expect(200);
    assert_eq!(u.body["calls"]["calls"], 0);
    s.get("/v1/usage?from=yesterday")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("from"));
}

both_backends!(task_crud_and_rules, execute_with_transport);
