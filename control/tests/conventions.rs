//! Auth, keys, and the API conventions (errors, request ids, pagination, limits), over real
//! HTTP against an in-process server, on SQLite and on Postgres.

mod common;

use common::{start, start_with, Kind};
use reqwest::Method;
use serde_json::json;

async fn health_and_request_ids(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let r = s.send(Method::GET, "/health", None, None).await.expect(200);
    assert_eq!(r.body["status"], "ok");
    assert!(r.header("x-request-id").unwrap().starts_with("req_"));
    let r = s.send(Method::GET, "/ready", None, None).await.expect(200);
    assert_eq!(r.body["status"], "ready");
    if kind == Kind::Sqlite {
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&s.state.db.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
    // A caller-supplied request id is echoed, in the header and in error bodies.
    let resp = s
        .client
        .get(format!("{}/v1/agents/agt_nope", s.base))
        .header("x-request-id", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "my-trace-42");
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED");
    assert_eq!(body["requestId"], "my-trace-42");
    // Unknown routes and wrong methods get the JSON error body too.
    s.get("/v1/nope").await.expect_error(404, "NOT_FOUND", None);
    s.send(Method::GET, "/nope", None, None)
        .await
        .expect_error(404, "NOT_FOUND", None);
    s.send(Method::DELETE, "/health", None, None)
        .await
        .expect_error(405, "METHOD_NOT_ALLOWED", None);
}

async fn auth_failures(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    s.send(Method::GET, "/v1/keys", None, None)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    s.send(Method::GET, "/v1/keys", Some("plabs_0000"), None)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    s.send(Method::GET, "/v1/keys", Some("not-a-key"), None)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    let resp = s
        .client
        .get(format!("{}/v1/keys", s.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Create a key, use it, revoke it: 401 right after.
    let r = s
        .post("/v1/keys", json!({"name": "ci", "scopes": ["read"]}))
        .await
        .expect(201);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("plabs_"));
    assert_eq!(r.body["scopes"], json!(["read"]));
    s.send(Method::GET, "/v1", Some(&secret), None)
        .await
        .expect(200);
    // read scope cannot write or manage keys
    s.send(Method::POST, "/v1/agents", Some(&secret), Some(&json!({})))
        .await
        .expect_error(403, "FORBIDDEN", None);
    s.send(Method::GET, "/v1/keys", Some(&secret), None)
        .await
        .expect_error(403, "FORBIDDEN", None);
    s.delete(&format!("/v1/keys/{id}")).await.expect(204);
    s.send(Method::GET, "/v1", Some(&secret), None)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    s.delete(&format!("/v1/keys/{id}"))
        .await
        .expect_error(404, "NOT_FOUND", None);

    // The stored row holds only a hash.
    let rows: Vec<(String,)> = sqlx::query_as("SELECT key_hash FROM api_keys")
        .fetch_all(&s.state.db.pool)
        .await
        .unwrap();
    assert!(rows
        .iter()
        .all(|(h,)| h.len() == 64 && !h.contains("plabs_")));
}

async fn key_lifecycle_and_tenancy(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let r = s
        .post("/v1/keys", json!({"name": "rotating"}))
        .await
        .expect(201);
    let old = r.body["secret"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["scopes"], json!(["read", "write"]));
    s.send(Method::GET, "/v1", Some(&old), None)
        .await
        .expect(200);
    let r = s
        .post(&format!("/v1/keys/{id}/rotate"), json!({}))
        .await
        .expect(200);
    let new = r.body["secret"].as_str().unwrap().to_string();
    assert_ne!(old, new);
    assert_eq!(r.body["id"], id.as_str());
    s.send(Method::GET, "/v1", Some(&old), None)
        .await
        .expect_error(401, "UNAUTHORIZED", None);
    s.send(Method::GET, "/v1", Some(&new), None)
        .await
        .expect(200);

    // Another tenant's admin sees none of acme's keys and cannot revoke them.
    let other = s.tenant_key("globex", &["admin"]).await;
    let r = s
        .send(Method::GET, "/v1/keys", Some(&other), None)
        .await
        .expect(200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    s.send(
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        Some(&other),
        None,
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    s.send(
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        Some(&other),
        None,
    )
    .await
    .expect_error(404, "NOT_FOUND", None);
    s.send(Method::GET, "/v1", Some(&new), None)
        .await
        .expect(200);
}

async fn key_validation_and_pagination(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    s.post("/v1/keys", json!({"name": ""})).await.expect_error(
        400,
        "VALIDATION_ERROR",
        Some("name"),
    );
    s.post("/v1/keys", json!({"name": "x", "scopes": ["root"]}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("scopes[0]"));
    s.post("/v1/keys", json!({"name": 5})).await.expect_error(
        400,
        "VALIDATION_ERROR",
        Some("name"),
    );
    s.post("/v1/keys", json!({"name": "x", "colour": "red"}))
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("colour"));
    s.post("/v1/keys", json!([1, 2]))
        .await
        .expect_error(400, "VALIDATION_ERROR", None);
    s.raw(
        Method::POST,
        "/v1/keys",
        Some("application/json"),
        b"{\"name\": ".to_vec(),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", None);
    s.raw(
        Method::POST,
        "/v1/keys",
        Some("application/json"),
        b"{\"name\":\"a\"} trailing".to_vec(),
    )
    .await
    .expect_error(400, "VALIDATION_ERROR", None);
    s.raw(
        Method::POST,
        "/v1/keys",
        Some("text/plain"),
        b"{\"name\":\"a\"}".to_vec(),
    )
    .await
    .expect_error(415, "UNSUPPORTED_MEDIA_TYPE", None);
    let big = format!("{{\"name\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    s.raw(
        Method::POST,
        "/v1/keys",
        Some("application/json"),
        big.into_bytes(),
    )
    .await
    .expect_error(413, "PAYLOAD_TOO_LARGE", None);
    s.get("/v1/keys?limit=0")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("limit"));
    s.get("/v1/keys?limit=101")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("limit"));
    s.get("/v1/keys?limit=abc")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("limit"));
    s.get("/v1/keys?cursor=%27%3B--")
        .await
        .expect_error(400, "VALIDATION_ERROR", Some("cursor"));

    for i in 0..6 {
        s.post("/v1/keys", json!({"name": format!("k{i}")}))
            .await
            .expect(201);
    }
    let (items, pages) = s.collect_pages("/v1/keys", 3).await;
    assert_eq!(items.len(), 7); // six plus the harness key
    assert_eq!(pages, 3);
    let mut ids: Vec<&str> = items.iter().map(|k| k["id"].as_str().unwrap()).collect();
    let before = ids.clone();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    assert_eq!(
        ids, before,
        "pages are in descending id order with no repeats"
    );
    assert!(items.iter().all(|k| k.get("secret").is_none()));
}

async fn rate_limit(kind: Kind) {
    let opts = parley_control::ServeOptions {
        rate_limit_per_minute: 5,
        ..Default::default()
    };
    let Some(s) = start_with(kind, opts, std::sync::Arc::new(parley_control::NoTransport)).await
    else {
        return;
    };
    let mut saw_429 = false;
    for i in 0..8 {
        let r = s.get("/v1").await;
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        assert!(r.header("x-ratelimit-remaining").is_some());
        assert!(
            r.header("x-ratelimit-reset")
                .unwrap()
                .parse::<i64>()
                .unwrap()
                > 0
        );
        if r.status == 429 {
            saw_429 = true;
            assert!(i >= 5 || r.header("x-ratelimit-remaining") == Some("0"));
            assert!(r.header("retry-after").is_some());
            r.expect_error(429, "RATE_LIMITED", None);
        }
    }
    assert!(saw_429);
    // Limits are per key: a fresh key is not limited.
    let other = s.tenant_key("acme", &["read"]).await;
    s.send(Method::GET, "/v1", Some(&other), None)
        .await
        .expect(200);
}

async fn v1_index_and_openapi(kind: Kind) {
    let Some(s) = start(kind).await else { return };
    let r = s.get("/v1").await.expect(200);
    assert_eq!(r.body["apiVersion"], "v1");
    let eps = r.body["endpoints"].as_array().unwrap();
    assert!(eps
        .iter()
        .any(|e| e["path"] == "/v1/keys" && e["method"] == "POST"));
    let r = s
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    assert!(r.body["paths"]["/v1/keys/{id}/rotate"]["post"].is_object());
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());
}

both_backends!(
    health_and_request_ids,
    auth_failures,
    key_lifecycle_and_tenancy,
    key_validation_and_pagination,
    rate_limit,
    v1_index_and_openapi,
);
