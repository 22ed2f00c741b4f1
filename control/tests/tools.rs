//! Agent tools over real HTTP: CRUD, JSON-schema validation of the definition and of test
//! arguments, running a tool against a local receiver (JSON body, GET query, failure, timeout,
//! unreachable, oversized answer), the `tool.executed` event, and tenant isolation — on SQLite
//! and Postgres.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use axum::response::IntoResponse;
use common::{start_with, Kind, TestServer};
use parley_control::{NoTransport, ServeOptions};
use reqwest::Method;
use serde_json::{json, Value};

/// Method, URI, headers and body of one request the receiver got.
type Hit = (String, String, HeaderMap, Bytes);

#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
}

/// A local tool endpoint: `/ok` answers JSON, `/fail` 500 text, `/slow` after 2 s, `/big`
/// 100 KiB; every request is recorded.
async fn receiver(rx: Receiver) -> String {
    let app = axum::Router::new().fallback(
        move |method: HttpMethod, uri: Uri, headers: HeaderMap, body: Bytes| {
            let rx = rx.clone();
            async move {
                rx.hits.lock().unwrap().push((
                    method.to_string(),
                    uri.to_string(),
                    headers,
                    body.clone(),
                ));
                match uri.path() {
                    "/ok" => (
                        StatusCode::OK,
                        [("content-type", "application/json")],
                        r#"{"booked":true,"ref":"B-17"}"#.to_string(),
                    )
                        .into_response(),
                    "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, "kaput").into_response(),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        (StatusCode::OK, "late").into_response()
                    }
                    "/big" => (StatusCode::OK, "x".repeat(100 * 1024)).into_response(),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn options() -> ServeOptions {
    ServeOptions {
        webhook_retry_base_ms: 100,
        ..Default::default()
    }
}

async fn agent(s: &TestServer) -> String {
    s.post("/v1/agents/provision", json!({"name": "Booker"}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn booking_tool(base: &str) -> Value {
    json!({
        "name": "book_table",
        "description": "Books a table at the restaurant",
        "url": format!("{base}/ok"),
        "headers": {"Authorization": "Bearer tool-secret"},
        "parameters": {
            "type": "object",
            "properties": {
                "date": {"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"},
                "guests": {"type": "integer", "minimum": 1, "maximum": 12},
                "seating": {"type": "string", "enum": ["inside", "terrace"]}
            },
            "required": ["date", "guests"],
            "additionalProperties": false
        },
        "timeoutMs": 1000
    })
}

async fn crud_and_validation(kind: Kind) {
    let Some(s) = start_with(kind, options(), Arc::new(NoTransport)).await else {
        return;
    };
    let agent = agent(&s).await;
    let base = "http://127.0.0.1:9";
    let r = s
        .post(&format!("/v1/agents/{agent}/tools"), booking_tool(base))
        .await
        .expect(201);
    let tool = r.body["id"].as_str().unwrap().to_string();
    assert!(tool.starts_with("tool_"));
    assert_eq!(r.body["agentId"], agent.as_str());
    assert_eq!(r.body["method"], "POST");
    assert_eq!(r.body["type"], "webhook");
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["parameters"]["required"], json!(["date", "guests"]));

    let r = s
        .get(&format!("/v1/agents/{agent}/tools/{tool}"))
        .await
        .expect(200);
    assert_eq!(r.body["name"], "book_table");

    // Duplicate names conflict, on create and on rename.
    s.post(&format!("/v1/agents/{agent}/tools"), booking_tool(base))
        .await
        .expect_error(409, "CONFLICT", Some("name"));
    let mut other = booking_tool(base);
    other["name"] = json!("check_hours");
    other["method"] = json!("GET");
    other["parameters"] = json!({"type": "object"});
    let other_id = s
        .post(&format!("/v1/agents/{agent}/tools"), other.clone())
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    other["name"] = json!("book_table");
    s.put(
        &format!("/v1/agents/{agent}/tools/{other_id}"),
        other.clone(),
    )
    .await
    .expect_error(409, "CONFLICT", Some("name"));

    // PUT replaces; omitted optional fields return to their defaults.
    let r = s
        .put(
            &format!("/v1/agents/{agent}/tools/{other_id}"),
            json!({"name": "hours", "description": "Opening hours", "url": format!("{base}/h")}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["name"], "hours");
    assert_eq!(r.body["method"], "POST");
    assert_eq!(r.body["timeoutMs"], 5000);
    assert_eq!(
        r.body["parameters"],
        json!({"type": "object", "properties": {}})
    );

    // Listing pages through the agent's tools only.
    for i in 0..3 {
        let mut t = booking_tool(base);
        t["name"] = json!(format!("extra_{i}"));
        s.post(&format!("/v1/agents/{agent}/tools"), t)
            .await
            .expect(201);
    }
    let (items, pages) = s
        .collect_pages(&format!("/v1/agents/{agent}/tools"), 2)
        .await;
    assert_eq!(items.len(), 5);
    assert_eq!(pages, 3);
    let other_agent = s
        .post("/v1/agents/provision", json!({"name": "Other"}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .get(&format!("/v1/agents/{other_agent}/tools"))
        .await
        .expect(200);
    assert_eq!(r.body["data"], json!([]));
    // A tool is reachable only under its own agent.
    s.get(&format!("/v1/agents/{other_agent}/tools/{tool}"))
        .await
        .expect_error(404, "NOT_FOUND", None);

    // Validation of the definition, with the path of each problem.
    let mut bad = booking_tool(base);
    bad["parameters"]["properties"]["guests"]["type"] = json!("int");
    s.post(&format!("/v1/agents/{agent}/tools"), bad)
        .await
        .expect_error(
            400,
            "VALIDATION_ERROR",
            Some("parameters.properties.guests.type"),
        );
    let mut bad = booking_tool(base);
    bad["parameters"] = json!({"type": "array"});
    s.post(&format!("/v1/agents/{agent}/tools"), bad)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("parameters.type"));
    let mut bad = booking_tool(base);
    bad["parameters"]["properties"]["x"] = json!({"$ref": "#/defs/x"});
    s.post(&format!("/v1/agents/{agent}/tools"), bad)
        .await
        .expect_error(
            400,
            "VALIDATION_ERROR",
            Some("parameters.properties.x.$ref"),
        );
    let mut bad = booking_tool(base);
    bad["name"] = json!("book table!");
    bad["timeoutMs"] = json!(60_000);
    let r = s
        .post(&format!("/v1/agents/{agent}/tools"), bad)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("name"));
    assert_eq!(r.body["details"].as_array().unwrap().len(), 2);
    let mut bad = booking_tool(base);
    bad["url"] = json!("file:///etc/passwd");
    s.post(&format!("/v1/agents/{agent}/tools"), bad)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("url"));
    let mut bad = booking_tool(base);
    bad["headers"] = json!({"Content-Length": "5"});
    s.post(&format!("/v1/agents/{agent}/tools"), bad)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("headers.Content-Length"));
    let mut bad = booking_tool(base);
    bad["surprise"] = json!(1);
    s.post(&format!("/v1/agents/{agent}/tools"), bad)
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("surprise"));
    s.post(
        &format!("/v1/agents/{agent}/tools"),
        json!({"name": 5, "description": "d", "url": "http://x"}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("name"));

    // Unknown agent or tool → 404; another tenant's → 404; read scope cannot write.
    s.get("/v1/agents/agt_00000000000000000000000000000000/tools")
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.get(&format!(
        "/v1/agents/{agent}/tools/tool_00000000000000000000000000000000"
    ))
    .await
    .expect_error(404, "NOT_FOUND", None);
    let intruder = s.tenant_key("globex", &["admin"]).await;
    for (m, path) in [
        (Method::GET, format!("/v1/agents/{agent}/tools")),
        (Method::GET, format!("/v1/agents/{agent}/tools/{tool}")),
        (Method::DELETE, format!("/v1/agents/{agent}/tools/{tool}")),
        (
            Method::POST,
            format!("/v1/agents/{agent}/tools/{tool}/test"),
        ),
    ] {
        s.send(m, &path, Some(&intruder), Some(&json!({})))
            .await
            .expect_error(404, "NOT_FOUND", None);
    }
    let reader = s.tenant_key("acme", &["read"]).await;
    s.send(
        Method::POST,
        &format!("/v1/agents/{agent}/tools"),
        Some(&reader),
        Some(&booking_tool(base)),
    )
    .await
    .expect_error(403, "FORBIDDEN", None);

    // Delete the tool; deleting the agent removes the rest.
    s.delete(&format!("/v1/agents/{agent}/tools/{tool}"))
        .await
        .expect(204);
    s.delete(&format!("/v1/agents/{agent}/tools/{tool}"))
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.delete(&format!("/v1/agents/{agent}")).await.expect(204);
    let left: Vec<(String,)> = sqlx::query_as("SELECT id FROM agent_tools WHERE agent_id = $1")
        .bind(&agent)
        .fetch_all(&s.state.db.pool)
        .await
        .unwrap();
    assert!(left.is_empty());
}

async fn test_runs_against_receiver(kind: Kind) {
    let Some(s) = start_with(kind, options(), Arc::new(NoTransport)).await else {
        return;
    };
    let rx = Receiver::default();
    let base = receiver(rx.clone()).await;
    let hooks = Receiver::default();
    let hook_base = receiver(hooks.clone()).await;
    s.post(
        "/v1/webhooks",
        json!({"url": format!("{hook_base}/ok"), "events": ["tool.executed"]}),
    )
    .await
    .expect(201);

    let agent = agent(&s).await;
    let tool = s
        .post(&format!("/v1/agents/{agent}/tools"), booking_tool(&base))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let test = format!("/v1/agents/{agent}/tools/{tool}/test");

    // Arguments are checked against the schema before anything is sent.
    let r = s
        .post(
            &test,
            json!({"arguments": {"date": "tomorrow", "guests": 40, "pets": true}}),
        )
        .await
        .expect_error(400, "VALIDATION_ERROR", None);
    let mut fields: Vec<&str> = r.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        vec!["arguments.date", "arguments.guests", "arguments.pets"]
    );
    s.post(&test, json!({}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("arguments.date"));
    s.post(&test, json!({"arguments": [1]})).await.expect_error(
        400,
        "VALIDATION_ERROR",
        Some("arguments"),
    );
    assert!(rx.hits.lock().unwrap().is_empty());

    // A valid run: JSON body with the arguments, the configured headers, the answer back.
    let r = s
        .post(
            &test,
            json!({"arguments": {"date": "2025-06-01", "guests": 4, "seating": "terrace"}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["ok"], true);
    assert_eq!(r.body["status"], 200);
    assert_eq!(r.body["body"], json!({"booked": true, "ref": "B-17"}));
    assert_eq!(r.body["method"], "POST");
    assert!(r.body["latencyMs"].as_i64().unwrap() >= 0);
    assert!(r.body["error"].is_null());
    let call_id = r.body["toolCallId"].as_str().unwrap().to_string();
    {
        let hits = rx.hits.lock().unwrap();
        assert_eq!(hits.len(), 1);
        let (method, uri, headers, body) = &hits[0];
        assert_eq!(method, "POST");
        assert_eq!(uri, "/ok");
        assert_eq!(headers["authorization"], "Bearer tool-secret");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-parley-tool"], "book_table");
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(sent["arguments"]["guests"], 4);
        assert_eq!(sent["tool"], "book_table");
        assert_eq!(sent["agentId"], agent.as_str());
        assert_eq!(sent["toolCallId"], call_id.as_str());
        assert_eq!(sent["test"], true);
    }

    // The run is reported as a tool.executed event.
    for _ in 0..200 {
        if !hooks.hits.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let hits = hooks.hits.lock().unwrap();
        assert!(!hits.is_empty(), "no tool.executed delivery");
        let v: Value = serde_json::from_slice(&hits[0].3).unwrap();
        assert_eq!(v["type"], "tool.executed");
        assert_eq!(v["data"]["toolId"], tool.as_str());
        assert_eq!(v["data"]["toolCallId"], call_id.as_str());
        assert_eq!(v["data"]["ok"], true);
        assert_eq!(v["data"]["status"], 200);
    }

    // GET tools send the arguments as query parameters.
    let mut get_tool = booking_tool(&base);
    get_tool["name"] = json!("lookup");
    get_tool["method"] = json!("GET");
    let get_id = s
        .post(&format!("/v1/agents/{agent}/tools"), get_tool)
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .post(
            &format!("/v1/agents/{agent}/tools/{get_id}/test"),
            json!({"arguments": {"date": "2025-06-01", "guests": 2}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["ok"], true);
    {
        let hits = rx.hits.lock().unwrap();
        let (method, uri, _, body) = hits.last().unwrap();
        assert_eq!(method, "GET");
        assert_eq!(uri, "/ok?date=2025-06-01&guests=2");
        assert!(body.is_empty());
    }

    // Failures are results, not errors: a 500, a timeout, no listener, an oversized answer.
    let mut t = booking_tool(&base);
    t["parameters"] = json!({"type": "object"});
    for (name, path, timeout) in [
        ("fails", format!("{base}/fail"), 1000),
        ("slow", format!("{base}/slow"), 300),
        ("gone", "http://127.0.0.1:9/none".to_string(), 1000),
        ("big", format!("{base}/big"), 1000),
    ] {
        t["name"] = json!(name);
        t["url"] = json!(path);
        t["timeoutMs"] = json!(timeout);
        let id = s
            .post(&format!("/v1/agents/{agent}/tools"), t.clone())
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .unwrap()
            .to_string();
        let started = std::time::Instant::now();
        let r = s
            .post(&format!("/v1/agents/{agent}/tools/{id}/test"), json!({}))
            .await
            .expect(200);
        match name {
            "fails" => {
                assert_eq!(r.body["ok"], false);
                assert_eq!(r.body["status"], 500);
                assert_eq!(r.body["body"], "kaput");
            }
            "slow" => {
                assert_eq!(r.body["ok"], false);
                assert!(r.body["status"].is_null());
                assert_eq!(r.body["error"], "timed out");
                assert!(started.elapsed() < Duration::from_millis(1500));
            }
            "gone" => {
                assert_eq!(r.body["ok"], false);
                assert!(r.body["status"].is_null());
                assert!(
                    r.body["error"]
                        .as_str()
                        .unwrap()
                        .starts_with("connection failed"),
                    "{}",
                    r.body
                );
            }
            _ => {
                assert_eq!(r.body["ok"], true);
                assert_eq!(r.body["bodyTruncated"], true);
                assert_eq!(r.body["body"].as_str().unwrap().len(), 64 * 1024);
            }
        }
    }
}

both_backends!(crud_and_validation, test_runs_against_receiver);
