//! Robustness in the spirit of schemathesis: every route listed in `/openapi.json`, every
//! method, a spread of path parameters (real ids of each kind, garbage, traversal, huge) and a
//! corpus of malformed bodies and query strings. Nothing may answer 5xx; every error must be
//! the JSON error body.

mod common;

use std::sync::Arc;

use common::{start_with, Kind};
use parley_control::{NoTransport, ServeOptions};
use reqwest::Method;
use serde_json::{json, Value};

fn bodies() -> Vec<(Option<&'static str>, Vec<u8>)> {
    let json_ct = Some("application/json");
    let mut v: Vec<(Option<&'static str>, Vec<u8>)> = vec![
        (json_ct, b"".to_vec()),
        (json_ct, b"{".to_vec()),
        (json_ct, b"null".to_vec()),
        (json_ct, b"[]".to_vec()),
        (json_ct, b"123".to_vec()),
        (json_ct, b"\"text\"".to_vec()),
        (json_ct, b"{\"name\": }".to_vec()),
        (
            json_ct,
            b"{\"name\": null, \"events\": null, \"url\": null}".to_vec(),
        ),
        (json_ct, b"\xff\xfe\x00garbage".to_vec()),
        (json_ct, b"{\"name\": \"\\ud800\"}".to_vec()),
        (json_ct, "[".repeat(100_000).into_bytes()),
        (
            json_ct,
            format!("{{\"name\": \"{}\"}}", "x".repeat(200_000)).into_bytes(),
        ),
        (Some("text/plain"), b"hello".to_vec()),
        (None, b"{}".to_vec()),
        (
            Some("application/x-www-form-urlencoded"),
            b"name=x".to_vec(),
        ),
    ];
    // Wrong types for every field name used anywhere in the API.
    let wrong = json!({
        "name": 5, "agentId": [], "toNumber": {}, "persona": "x", "voice": 1, "llm": [1],
        "transcription": true, "systemPromptTemplate": 7, "maxDurationSeconds": "600",
        "contextData": "ctx", "priority": 1e308, "scheduledAt": 0, "url": 3, "events": "all",
        "scopes": "admin", "notes": [], "enabled": "yes", "secret": 1, "webhookEvents": {}
    });
    v.push((json_ct, wrong.to_string().into_bytes()));
    let extremes = json!({
        "name": "\u{0}\u{202e}", "priority": -9223372036854775808i64, "maxDurationSeconds": 9223372036854775807i64,
        "llm": {"temperature": -1e308}, "toNumber": "+", "scheduledAt": "9999-99-99", "limit": -1
    });
    v.push((json_ct, extremes.to_string().into_bytes()));
    v
}

const QUERIES: &[&str] = &[
    "",
    "?limit=-1",
    "?limit=99999999999999999999999",
    "?cursor=%00%ff",
    "?cursor=agt_zz&limit=1",
    "?status=%27;DROP%20TABLE%20agents;--",
    "?from=2025-13-45&to=x",
    "?session_token=a.b&api_key=plabs_x",
    "?limit=1&limit=2",
];

async fn no_5xx_anywhere(kind: Kind) {
    let opts = ServeOptions {
        rate_limit_per_minute: 1_000_000,
        ..Default::default()
    };
    let Some(mut s) = start_with(kind, opts, Arc::new(NoTransport)).await else {
        return;
    };
    // A fresh connection per request: after answering early the server closes connections
    // whose request body it did not read, and a pooled client would trip over them.
    s.client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    // Real ids of each kind, so that handlers get past their 404 checks.
    let agent = s
        .post("/v1/agents/provision", json!({"name": "Corpus"}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let task = s
        .post(
            "/v1/tasks",
            json!({"agentId": agent, "toNumber": "+14155550100"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let task2 = s
        .post(
            "/v1/tasks",
            json!({"agentId": agent, "toNumber": "+14155550101"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(&format!("/v1/tasks/{task2}/execute"), json!({}))
        .await
        .expect(503);
    let call = s.get(&format!("/v1/tasks/{task2}")).await.body["callId"]
        .as_str()
        .unwrap()
        .to_string();
    let hook = s
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/none", "events": ["agent.created"]}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = s
        .post("/v1/keys", json!({"name": "victim"}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    let tool = s
        .post(
            &format!("/v1/agents/{agent}/tools"),
            json!({"name": "probe", "description": "d", "url": "http://127.0.0.1:9/none",
                   "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let instance = s
        .post(
            &format!("/v1/agents/{agent}/instances"),
            json!({"name": "web", "channel": "webrtc"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let group = s
        .post(
            "/v1/audience-groups",
            json!({"name": "g", "contacts": [{"phoneNumber": "+14155550100"}]}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The harness points every provider at a dead loopback port, so verify stays local.
    s.post(
        "/v1/provider-keys",
        json!({"provider": "openai", "apiKey": "sk-corpus0123456789abcdefghij"}),
    )
    .await
    .expect(201);

    let long = "a".repeat(3000);
    let mut ids = vec![
        agent,
        task,
        call,
        hook,
        key,
        group,
        "openai".into(),
        "x".into(),
        "0".into(),
        "%2e%2e%2fetc".into(),
        "%00".into(),
        long,
    ];
    ids.push("agt_00000000000000000000000000000000".into());
    let versions = ["1", "-1", "99999999999999999999", "abc"];

    let r = s
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200);
    let paths = r.body["paths"].as_object().unwrap().clone();
    assert!(paths.len() >= 30, "openapi lists {} paths", paths.len());
    for p in [
        "/v1/agents/{id}/tools/{toolId}/test",
        "/v1/agents/{id}/instances/{instanceId}",
        "/v1/audience-groups/{id}",
        "/v1/provider-keys/{provider}/verify",
    ] {
        assert!(paths.contains_key(p), "{p} missing from /openapi.json");
    }
    let bodies = bodies();
    let mut requests = 0usize;
    let mut failures = Vec::new();
    let mut failing_routes = std::collections::BTreeSet::new();
    for (template, item) in &paths {
        for method in item.as_object().unwrap().keys() {
            let m = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            // Destroying the fixtures early would hide later handlers behind 404s.
            if m == Method::DELETE || template.ends_with("/rotate") {
                continue;
            }
            let mut concrete = Vec::new();
            for id in &ids {
                // Sub-resources get their real id under the real agent, garbage elsewhere.
                let (tool_id, instance_id) = if id == &ids[0] {
                    (tool.as_str(), instance.as_str())
                } else {
                    (id.as_str(), id.as_str())
                };
                let mut p = template
                    .replace("{id}", id)
                    .replace("{taskId}", id)
                    .replace("{toolId}", tool_id)
                    .replace("{instanceId}", instance_id);
                if p.contains("{version}") {
                    for v in versions {
                        concrete.push(p.replace("{version}", v));
                    }
                    continue;
                }
                p = p.replace("{provider}", id);
                concrete.push(p);
                if !template.contains('{') {
                    break;
                }
            }
            for path in &concrete {
                for q in QUERIES {
                    let url = format!("{path}{q}");
                    let sends: Vec<&(Option<&str>, Vec<u8>)> = if m == Method::GET {
                        bodies.iter().take(1).collect()
                    } else {
                        bodies.iter().collect()
                    };
                    for (ct, body) in sends {
                        requests += 1;
                        let r = match s.try_raw(m.clone(), &url, *ct, body.clone()).await {
                            Ok(r) => r,
                            // The server answered early and closed without reading a body it
                            // had no use for (e.g. 404 on a large upload): not a server error.
                            Err(e) if body.len() > 64 * 1024 && e.is_request() => continue,
                            Err(e) => panic!("{m} {url}: {e}"),
                        };
                        if r.status.is_server_error()
                            || (!r.status.is_success()
                                && r.status != 101
                                && !(r.body["code"].is_string() && r.body["requestId"].is_string()))
                        {
                            failing_routes.insert(format!("{m} {template}"));
                        }
                        if r.status.is_server_error() {
                            failures.push(format!(
                                "{m} {url} ct={ct:?} body={:?} -> {} {}",
                                String::from_utf8_lossy(&body[..body.len().min(60)]),
                                r.status,
                                r.body
                            ));
                        } else if !r.status.is_success() && r.status != 101 {
                            let ok = r.body["code"].is_string() && r.body["requestId"].is_string();
                            if !ok {
                                failures.push(format!(
                                    "{m} {url} -> {} without error body: {:?}",
                                    r.status,
                                    String::from_utf8_lossy(&r.raw)
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("corpus: {requests} requests over {} paths", paths.len());
    assert!(
        failures.is_empty(),
        "{} bad responses on {:?}, e.g.:\n{}",
        failures.len(),
        failing_routes,
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The server is still healthy and the data intact.
    s.send(Method::GET, "/ready", None, None).await.expect(200);
    let _: Value = s.get("/v1/agents").await.expect(200).body;
}

both_backends!(no_5xx_anywhere);
