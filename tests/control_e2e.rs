//! End to end against the real `parley` binary: bootstrap a key with `parley keys create`,
//! serve, use the API, kill the server, start it again on the same database, and find
//! everything still there — on a SQLite file and on a fresh Postgres database.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_parley");

fn create_key(db: &str, tenant: &str) -> String {
    let out = Command::new(BIN)
        .args(["keys", "create", "--tenant", tenant, "--database-url", db])
        .output()
        .expect("run parley keys create");
    assert!(
        out.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("plabs_"), "stdout was {key:?}");
    key
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(db: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            db,
        ])
        .env("PARLEY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn parley serve");
    // Owned by the guard at once, so a panic below still kills and reaps it.
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{}/ready", server.base)).send().await {
            if r.status() == 200 {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("parley serve did not become ready");
}

async fn call(
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url).bearer_auth(key);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body)
}

async fn survives_restart(db: &str) {
    let key = create_key(db, "acme");
    let other = create_key(db, "globex");
    let s = serve(db).await;
    let (st, agent) = call(
        reqwest::Method::POST,
        format!("{}/v1/agents", s.base),
        &key,
        Some(json!({
            "name": "Durable",
            "persona": {"name": "D"},
            "voice": {"provider": "embedded", "voiceId": "default"},
            "llm": {"provider": "embedded", "model": "default"},
            "transcription": {"provider": "embedded"},
            "systemPromptTemplate": "Be durable."
        })),
    )
    .await;
    assert_eq!(st, 201, "{agent}");
    let id = agent["id"].as_str().unwrap().to_string();
    let (st, _) = call(
        reqwest::Method::PATCH,
        format!("{}/v1/agents/{id}", s.base),
        &key,
        Some(json!({"maxIdleTimeSeconds": 30})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = call(
        reqwest::Method::POST,
        format!("{}/v1/agents/{id}/publish", s.base),
        &key,
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, task) = call(
        reqwest::Method::POST,
        format!("{}/v1/tasks", s.base),
        &key,
        Some(json!({"agentId": id, "toNumber": "+14155550100"})),
    )
    .await;
    assert_eq!(st, 201);
    let (st, created) = call(
        reqwest::Method::POST,
        format!("{}/v1/keys", s.base),
        &key,
        Some(json!({"name": "later"})),
    )
    .await;
    assert_eq!(st, 201);
    let later = created["secret"].as_str().unwrap().to_string();
    let (st, tool) = call(
        reqwest::Method::POST,
        format!("{}/v1/agents/{id}/tools", s.base),
        &key,
        Some(
            json!({"name": "lookup", "description": "Looks up", "url": "http://127.0.0.1:9/x",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{tool}");
    let (st, _) = call(
        reqwest::Method::POST,
        format!("{}/v1/provider-keys", s.base),
        &key,
        Some(json!({"provider": "deepgram", "apiKey": "0123456789abcdef0123456789abcdef01234567"})),
    )
    .await;
    assert_eq!(st, 201);
    drop(s); // SIGKILL: no graceful shutdown

    let s = serve(db).await;
    let (st, a) = call(
        reqwest::Method::GET,
        format!("{}/v1/agents/{id}", s.base),
        &key,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(a["version"], 2);
    assert_eq!(a["publishedVersion"], 2);
    assert_eq!(a["maxIdleTimeSeconds"], 30);
    let (st, v) = call(
        reqwest::Method::GET,
        format!("{}/v1/agents/{id}/versions", s.base),
        &later,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let (st, t) = call(
        reqwest::Method::GET,
        format!("{}/v1/tasks/{}", s.base, task["id"].as_str().unwrap()),
        &key,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(t["status"], "pending");
    let (st, tools) = call(
        reqwest::Method::GET,
        format!("{}/v1/agents/{id}/tools", s.base),
        &key,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(tools["data"][0]["id"], tool["id"]);
    assert_eq!(
        tools["data"][0]["parameters"]["properties"]["q"]["type"],
        "string"
    );
    // The provider key is still decryptable with the same server secret, and still masked.
    let (st, pk) = call(
        reqwest::Method::GET,
        format!("{}/v1/provider-keys", s.base),
        &key,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(pk["data"][0]["keyHint"], "…4567");
    assert_eq!(pk["data"][0]["formatValid"], true);
    // Tenancy holds across the restart, and unknown keys are refused.
    let (st, _) = call(
        reqwest::Method::GET,
        format!("{}/v1/agents/{id}", s.base),
        &other,
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (st, body) = call(
        reqwest::Method::GET,
        format!("{}/v1/agents", s.base),
        "plabs_nope",
        None,
    )
    .await;
    assert_eq!(st, 401);
    assert_eq!(body["code"], "UNAUTHORIZED");
    let (st, doc) = call(
        reqwest::Method::GET,
        format!("{}/openapi.json", s.base),
        "",
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert!(doc["paths"]["/v1/agents/{id}"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("parley.db").display());
    survives_restart(&db).await;
    assert!(dir.path().join("parley.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_data_survives_restart() {
    sqlx::any::install_default_drivers();
    let admins = match std::env::var("PARLEY_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => vec![u],
        _ => vec![
            "postgres://postgres@127.0.0.1:5432/test".to_string(),
            "postgres://root@127.0.0.1:5432/test".to_string(),
        ],
    };
    let mut admin = None;
    let mut last = String::new();
    for url in admins {
        match sqlx::AnyConnection::connect(&url).await {
            Ok(c) => {
                admin = Some((url, c));
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let Some((admin_url, mut conn)) = admin else {
        if std::env::var("PARLEY_REQUIRE_POSTGRES").is_ok_and(|v| !v.is_empty() && v != "0") {
            panic!("PARLEY_REQUIRE_POSTGRES is set but no Postgres server is reachable: {last}");
        }
        eprintln!("SKIP: Postgres test skipped, no server reachable at 127.0.0.1:5432 ({last})");
        return;
    };
    let name = format!(
        "parley_e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let db = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    let result = tokio::spawn(async move { survives_restart(&db).await }).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
    result.unwrap();
}
