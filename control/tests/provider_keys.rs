//! Provider keys over real HTTP: encrypted at rest, only ever shown masked, replaced per
//! provider, verified for format and against local fakes of the providers (accepted, refused,
//! unreachable, silent past the timeout), admin-only changes and tenant isolation — on SQLite
//! and Postgres. Nothing here leaves the loopback interface.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use common::{start_with, Kind};
use parley_control::{NoTransport, ServeOptions};
use reqwest::Method;
use serde_json::json;

const OPENAI_GOOD: &str = "sk-proj-Good0123456789abcdefghijklmnop";
const OPENAI_REVOKED: &str = "sk-proj-Revoked0123456789abcdefghijkl";
const DEEPGRAM: &str = "0123456789abcdef0123456789abcdef01234567";
const ELEVENLABS: &str = "0123456789abcdef0123456789abcdef";
const ANTHROPIC: &str = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123";

/// A fake of the providers' key-checking endpoints on loopback.
async fn fake_providers() -> String {
    let app = axum::Router::new()
        .route(
            "/v1/models",
            axum::routing::get(|headers: HeaderMap| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if auth == format!("Bearer {OPENAI_GOOD}") {
                    (StatusCode::OK, r#"{"data":[]}"#)
                } else {
                    (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_api_key"}"#)
                }
            }),
        )
        .route(
            "/v1/projects",
            axum::routing::get(|headers: HeaderMap| async move {
                if headers["authorization"] == format!("Token {DEEPGRAM}").as_str() {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Accepts connections and never answers, like a firewall that drops packets.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}")
}

async fn store_mask_verify(kind: Kind) {
    let fake = fake_providers().await;
    let hole = black_hole().await;
    let mut urls = BTreeMap::new();
    urls.insert("openai".to_string(), fake.clone());
    urls.insert("deepgram".to_string(), fake.clone());
    urls.insert("elevenlabs".to_string(), hole);
    // Nothing listens on the discard port: connection refused.
    urls.insert("anthropic".to_string(), "http://127.0.0.1:9".to_string());
    let opts = ServeOptions {
        secret_key: Some("provider-key-test-secret".into()),
        provider_verify_timeout_ms: 500,
        provider_base_urls: urls,
        ..Default::default()
    };
    let Some(s) = start_with(kind, opts, Arc::new(NoTransport)).await else {
        return;
    };

    // Store: 201, masked, never the key.
    let r = s
        .post(
            "/v1/provider-keys",
            json!({"provider": "openai", "apiKey": OPENAI_REVOKED, "label": "prod"}),
        )
        .await
        .expect(201);
    assert_eq!(r.body["provider"], "openai");
    assert_eq!(r.body["keyHint"], "sk-proj-…ijkl");
    assert_eq!(r.body["label"], "prod");
    assert_eq!(r.body["formatValid"], true);
    assert!(r.body["verifiedAt"].is_null());
    assert!(!r
        .raw
        .windows(12)
        .any(|w| w == &OPENAI_REVOKED.as_bytes()[8..20]));
    // Replacing answers 200.
    let r = s
        .post(
            "/v1/provider-keys",
            json!({"provider": "openai", "apiKey": OPENAI_GOOD}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["keyHint"], "sk-proj-…mnop");
    assert!(r.body["label"].is_null());
    for (p, k) in [
        ("deepgram", DEEPGRAM),
        ("elevenlabs", ELEVENLABS),
        ("anthropic", ANTHROPIC),
        ("cohere", "not-a-cohere-key"),
    ] {
        s.post("/v1/provider-keys", json!({"provider": p, "apiKey": k}))
            .await
            .expect(201);
    }

    // At rest: ciphertext only.
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT provider, key_enc FROM provider_keys ORDER BY provider")
            .fetch_all(&s.state.db.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 5);
    for (_, enc) in &stored {
        assert!(enc.starts_with("v1:"));
        for k in [OPENAI_GOOD, DEEPGRAM, ELEVENLABS, ANTHROPIC] {
            assert!(!enc.contains(k));
        }
    }

    // Listed masked, by provider.
    let r = s.get("/v1/provider-keys").await.expect(200);
    let listed = r.body["data"].as_array().unwrap();
    let providers: Vec<&str> = listed
        .iter()
        .map(|k| k["provider"].as_str().unwrap())
        .collect();
    assert_eq!(
        providers,
        vec!["anthropic", "cohere", "deepgram", "elevenlabs", "openai"]
    );
    assert_eq!(r.body["hasMore"], false);
    let text = String::from_utf8_lossy(&r.raw).to_string();
    for k in [OPENAI_GOOD, DEEPGRAM, ELEVENLABS, ANTHROPIC] {
        assert!(!text.contains(k), "a key leaked into the list");
    }
    assert_eq!(listed[2]["keyHint"], "…4567");
    assert_eq!(listed[1]["formatValid"], false);

    // Verify: accepted by the (fake) provider, and remembered.
    let r = s
        .post("/v1/provider-keys/openai/verify", json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["valid"], true, "{}", r.body);
    assert_eq!(r.body["formatValid"], true);
    assert_eq!(r.body["reachability"], "accepted");
    assert_eq!(r.body["httpStatus"], 200);
    assert_eq!(r.body["source"], "stored");
    assert_eq!(r.body["keyHint"], "sk-proj-…mnop");
    let r = s.get("/v1/provider-keys").await.expect(200);
    assert!(r.body["data"][4]["verifiedAt"].is_string());
    let r = s
        .post("/v1/provider-keys/deepgram/verify", json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["valid"], true, "{}", r.body);

    // A key given in the request is verified without being stored.
    let r = s
        .post(
            "/v1/provider-keys/openai/verify",
            json!({"apiKey": OPENAI_REVOKED}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["valid"], false);
    assert_eq!(r.body["reachability"], "rejected");
    assert_eq!(r.body["httpStatus"], 401);
    assert_eq!(r.body["source"], "request");
    let r = s.get("/v1/provider-keys").await.expect(200);
    assert_eq!(r.body["data"][4]["keyHint"], "sk-proj-…mnop");

    // Wrong format: not sent anywhere.
    let r = s
        .post(
            "/v1/provider-keys/deepgram/verify",
            json!({"apiKey": "sk-this-is-an-openai-key-000000"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["formatValid"], false);
    assert_eq!(r.body["valid"], false);
    assert_eq!(r.body["reachability"], "skipped");
    assert!(r.body["expectedFormat"]
        .as_str()
        .unwrap()
        .contains("40 hex"));
    let r = s
        .post("/v1/provider-keys/cohere/verify", json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["formatValid"], false);

    // No listener, and a listener that never answers: "unreachable", quickly, not an error.
    let r = s
        .post("/v1/provider-keys/anthropic/verify", json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["reachability"], "unreachable", "{}", r.body);
    assert!(r.body["valid"].is_null());
    let started = Instant::now();
    let r = s
        .post("/v1/provider-keys/elevenlabs/verify", json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["reachability"], "unreachable", "{}", r.body);
    assert!(r.body["valid"].is_null());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(r.body["detail"].as_str().unwrap().contains("500 ms"));

    // Errors: unknown provider, nothing stored, bad bodies.
    s.post("/v1/provider-keys/nope/verify", json!({}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("provider"));
    s.post("/v1/provider-keys/google/verify", json!({}))
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.post(
        "/v1/provider-keys",
        json!({"provider": "openai", "apiKey": "has space in it"}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("apiKey"));
    s.post(
        "/v1/provider-keys",
        json!({"provider": "myspace", "apiKey": OPENAI_GOOD}),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", Some("provider"));
    s.post("/v1/provider-keys", json!({"provider": "openai"}))
        .await
        .expect_error(400, "VALIDATION_ERROR", None);

    // Changes need admin; reading needs read; other tenants see nothing.
    let writer = s.tenant_key("acme", &["write"]).await;
    s.send(
        Method::POST,
        "/v1/provider-keys",
        Some(&writer),
        Some(&json!({"provider": "google", "apiKey": "AIzaSyA-1234567890abcdefghijklmnopqrstu"})),
    )
    .await
    .expect_error(403, "FORBIDDEN", None);
    s.send(
        Method::DELETE,
        "/v1/provider-keys/openai",
        Some(&writer),
        None,
    )
    .await
    .expect_error(403, "FORBIDDEN", None);
    let r = s
        .send(Method::GET, "/v1/provider-keys", Some(&writer), None)
        .await
        .expect(200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 5);
    let intruder = s.tenant_key("globex", &["admin"]).await;
    let r = s
        .send(Method::GET, "/v1/provider-keys", Some(&intruder), None)
        .await
        .expect(200);
    assert_eq!(r.body["data"], json!([]));
    s.send(
        Method::POST,
        "/v1/provider-keys/openai/verify",
        Some(&intruder),
        Some(&json!({})),
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    s.send(
        Method::DELETE,
        "/v1/provider-keys/openai",
        Some(&intruder),
        None,
    )
    .await
    .expect_error(404, "NOT_FOUND", None);

    // A key stored under another server secret cannot be used: 409, not 500.
    sqlx::query("UPDATE provider_keys SET key_enc = $1 WHERE provider = 'deepgram'")
        .bind(parley_control::crypto::Secrets::from_material(Some("other")).encrypt(DEEPGRAM))
        .execute(&s.state.db.pool)
        .await
        .unwrap();
    s.post("/v1/provider-keys/deepgram/verify", json!({}))
        .await
        .expect_error(409, "CONFLICT", None);
    let r = s.get("/v1/provider-keys").await.expect(200);
    assert_eq!(r.body["data"][2]["keyHint"], "…4567");

    // Delete.
    s.delete("/v1/provider-keys/openai").await.expect(204);
    s.delete("/v1/provider-keys/openai")
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.delete("/v1/provider-keys/nope").await.expect_error(
        400,
        "VALIDATION_ERROR",
        Some("provider"),
    );
    let r = s.get("/v1/provider-keys").await.expect(200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 4);
}

async fn reachability_can_be_disabled(kind: Kind) {
    let opts = ServeOptions {
        provider_verify_reachability: false,
        ..Default::default()
    };
    let Some(s) = start_with(kind, opts, Arc::new(NoTransport)).await else {
        return;
    };
    let r = s
        .post(
            "/v1/provider-keys/deepgram/verify",
            json!({"apiKey": DEEPGRAM}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["formatValid"], true);
    assert_eq!(r.body["reachability"], "skipped");
    assert!(r.body["valid"].is_null());
}

both_backends!(store_mask_verify, reachability_can_be_disabled);
