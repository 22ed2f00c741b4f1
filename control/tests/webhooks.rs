//! Webhook delivery to a local receiver: HMAC signature with timestamp, retry with backoff
//! after a 500, the delivery log, per-task subscriptions and giving up — on SQLite and Postgres.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::{start_with, Kind, TestServer};
use parley_control::crypto::webhook_signature;
use parley_control::{NoTransport, ServeOptions};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// Status codes to answer, in order; 200 once exhausted.
    script: Arc<Mutex<Vec<u16>>>,
}

async fn receiver(rx: Receiver) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let rx = rx.clone();
            async move {
                rx.hits.lock().unwrap().push((headers, body));
                let mut script = rx.script.lock().unwrap();
                let code = if script.is_empty() {
                    200
                } else {
                    script.remove(0)
                };
                StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

fn fast() -> ServeOptions {
    ServeOptions {
        webhook_retry_base_ms: 100,
        webhook_max_attempts: 3,
        ..Default::default()
    }
}

async fn wait_for(mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 10 s");
}

async fn deliveries(s: &TestServer, hook: &str) -> Vec<Value> {
    s.get(&format!("/v1/webhooks/{hook}/deliveries"))
        .await
        .expect(200)
        .body["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn agent() -> Value {
    json!({
        "name": "Hooked",
        "persona": {"name": "H"},
        "voice": {"provider": "embedded", "voiceId": "d"},
        "llm": {"provider": "embedded", "model": "d"},
        "transcription": {"provider": "embedded"},
        "systemPromptTemplate": "hi"
    })
}

async fn signed_delivery_with_retry(kind: Kind) {
    let Some(s) = start_with(kind, fast(), Arc::new(NoTransport)).await else {
        return;
    };
    let rx = Receiver::default();
    rx.script.lock().unwrap().push(500);
    let url = receiver(rx.clone()).await;

    let r = s
        .post(
            "/v1/webhooks",
            json!({"url": url, "events": ["agent.created", "agent.updated"], "description": "ci"}),
        )
        .await
        .expect(201);
    let hook = r.body["id"].as_str().unwrap().to_string();
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    // The secret is not stored in clear and never listed.
    let listed = s.get(&format!("/v1/webhooks/{hook}")).await.expect(200);
    assert!(listed.body.get("secret").is_none());
    let stored: Vec<(String,)> = sqlx::query_as("SELECT secret_enc FROM webhooks")
        .fetch_all(&s.state.db.pool)
        .await
        .unwrap();
    assert!(!stored[0].0.contains(&secret));

    let agent_id = s.post("/v1/agents", agent()).await.expect(201).body["id"]
        .as_str()
        .unwrap()
        .to_string();
    // First attempt gets 500, the retry 200.
    wait_for(|| rx.hits.lock().unwrap().len() >= 2).await;
    let hits = rx.hits.lock().unwrap().clone();
    for (headers, body) in &hits {
        let ts: i64 = headers["x-parley-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((ts - chrono_now()).abs() < 60);
        let sig = headers["x-parley-signature"].to_str().unwrap();
        assert_eq!(sig, format!("v1={}", webhook_signature(&secret, ts, body)));
        assert_ne!(
            sig,
            format!("v1={}", webhook_signature("wrong-secret-123", ts, body))
        );
        assert_eq!(headers["x-parley-event"], "agent.created");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["type"], "agent.created");
        assert_eq!(v["data"]["agentId"], agent_id.as_str());
    }
    assert_eq!(hits[0].1, hits[1].1, "a retry resends the same body");
    assert_eq!(
        hits[0].0["x-parley-delivery"],
        hits[1].0["x-parley-delivery"]
    );

    // The delivery log shows both attempts.
    let mut log = Vec::new();
    for _ in 0..100 {
        log = deliveries(&s, &hook).await;
        if log.first().is_some_and(|d| d["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 2);
    assert_eq!(log[0]["attemptLog"][0]["statusCode"], 500);
    assert_eq!(log[0]["attemptLog"][1]["statusCode"], 200);

    // Unsubscribed events are not sent; updates are.
    s.post(&format!("/v1/agents/{agent_id}/activate"), json!({}))
        .await
        .expect(200);
    s.patch(
        &format!("/v1/agents/{agent_id}"),
        json!({"description": "x"}),
    )
    .await
    .expect(200);
    wait_for(|| rx.hits.lock().unwrap().len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits = rx.hits.lock().unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[2].0["x-parley-event"], "agent.updated");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn gives_up_and_crud(kind: Kind) {
    let Some(s) = start_with(kind, fast(), Arc::new(NoTransport)).await else {
        return;
    };
    let rx = Receiver::default();
    rx.script.lock().unwrap().extend([500, 502, 503, 500]);
    let url = receiver(rx.clone()).await;
    let hook = s
        .post(
            "/v1/webhooks",
            json!({"url": url, "events": ["agent.created"], "secret": "my-own-secret-0123456789"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post("/v1/agents", agent()).await.expect(201);
    wait_for(|| rx.hits.lock().unwrap().len() >= 3).await;
    let mut log = Vec::new();
    for _ in 0..100 {
        log = deliveries(&s, &hook).await;
        if log.first().is_some_and(|d| d["status"] == "failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.hits.lock().unwrap().len(),
        3,
        "no attempts beyond the maximum"
    );
    let (headers, body) = rx.hits.lock().unwrap()[0].clone();
    let ts: i64 = headers["x-parley-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        headers["x-parley-signature"].to_str().unwrap(),
        format!(
            "v1={}",
            webhook_signature("my-own-secret-0123456789", ts, &body)
        )
    );

    // CRUD and validation.
    s.post(
        "/v1/webhooks",
        json!({"url": "ftp://x", "events": ["agent.created"]}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("url"));
    s.post(
        "/v1/webhooks",
        json!({"url": url, "events": ["agent.exploded"]}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("events[0]"));
    s.post("/v1/webhooks", json!({"url": url, "events": []}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("events"));
    let r = s
        .patch(
            &format!("/v1/webhooks/{hook}"),
            json!({"enabled": false, "events": ["tool.executed"]}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["events"], json!(["tool.executed"]));
    let other = s.tenant_key("globex", &["admin"]).await;
    s.send(
        reqwest::Method::GET,
        &format!("/v1/webhooks/{hook}"),
        Some(&other),
        None,
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    s.send(
        reqwest::Method::GET,
        &format!("/v1/webhooks/{hook}/deliveries"),
        Some(&other),
        None,
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    s.delete(&format!("/v1/webhooks/{hook}")).await.expect(204);
    s.get(&format!("/v1/webhooks/{hook}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
}

async fn per_task_webhook(kind: Kind) {
    let Some(s) = start_with(kind, fast(), Arc::new(NoTransport)).await else {
        return;
    };
    let rx = Receiver::default();
    let url = receiver(rx.clone()).await;
    let agent_id = s.post("/v1/agents", agent()).await.expect(201).body["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(&format!("/v1/agents/{agent_id}/activate"), json!({}))
        .await
        .expect(200);
    let r = s
        .post(
            "/v1/tasks",
            json!({"agentId": agent_id, "toNumber": "+14155550100", "webhookUrl": url, "webhookEvents": ["call.started", "call.failed"]}),
        )
        .await
        .expect(201);
    let task = r.body["id"].as_str().unwrap().to_string();
    let secret = r.body["webhookSecret"].as_str().unwrap().to_string();
    let (hooks, _) = s
        .collect_pages(&format!("/v1/webhooks?taskId={task}"), 10)
        .await;
    assert_eq!(hooks.len(), 1);
    // execute fails (no transport) → call.started then call.failed, both to the task's hook.
    s.post(&format!("/v1/tasks/{task}/execute"), json!({}))
        .await
        .expect(503);
    wait_for(|| rx.hits.lock().unwrap().len() >= 2).await;
    let hits = rx.hits.lock().unwrap().clone();
    let mut events: Vec<String> = hits
        .iter()
        .map(|(h, _)| h["x-parley-event"].to_str().unwrap().to_string())
        .collect();
    events.sort();
    assert_eq!(events, vec!["call.failed", "call.started"]);
    for (h, body) in &hits {
        let ts: i64 = h["x-parley-timestamp"].to_str().unwrap().parse().unwrap();
        assert_eq!(
            h["x-parley-signature"].to_str().unwrap(),
            format!("v1={}", webhook_signature(&secret, ts, body))
        );
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["data"]["taskId"], task.as_str());
    }
    // Deleting the (failed) task removes its subscription.
    s.delete(&format!("/v1/tasks/{task}")).await.expect(204);
    let (hooks, _) = s
        .collect_pages(&format!("/v1/webhooks?taskId={task}"), 10)
        .await;
    assert!(hooks.is_empty());
}

both_backends!(
    signed_delivery_with_retry,
    gives_up_and_crud,
    per_task_webhook
);
