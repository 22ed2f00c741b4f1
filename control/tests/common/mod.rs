//! Test harness: a real control-plane server on a loopback port over a fresh database —
//! a temporary SQLite file, or a freshly created Postgres database dropped afterwards.
//!
//! Postgres tests print a SKIP line and pass only when no server is reachable and
//! `PARLEY_REQUIRE_POSTGRES` is not set; with it set (as CI does) they fail instead.

#![allow(dead_code)]

use std::sync::Arc;

use parley_control::state::AppState;
use parley_control::store::{keys, tenants};
use parley_control::{App, CallDispatcher, NoTransport, ServeOptions};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Where a test database lives; removing it happens on drop.
pub enum DbGuard {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let DbGuard::Postgres { admin_url, name } = self {
            let admin_url = admin_url.clone();
            let name = name.clone();
            // Drop runs inside the test's runtime; use a separate thread and runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::AnyConnection::connect(&admin_url).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

fn admin_urls() -> Vec<String> {
    match std::env::var("PARLEY_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => vec![u],
        _ => vec![
            "postgres://postgres@127.0.0.1:5432/test".into(),
            "postgres://root@127.0.0.1:5432/test".into(),
        ],
    }
}

/// A fresh database URL for one test, or `None` (after printing why) when Postgres is
/// unreachable and not required.
pub async fn fresh_database(kind: Kind) -> Option<(String, DbGuard)> {
    sqlx::any::install_default_drivers();
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("parley.db").display());
            Some((url, DbGuard::Sqlite(dir)))
        }
        Kind::Postgres => {
            let mut last_err = String::new();
            for admin in admin_urls() {
                match sqlx::AnyConnection::connect(&admin).await {
                    Ok(mut c) => {
                        let raw: [u8; 6] = parley_control::ids::random_bytes();
                        let name = format!("parley_t_{}", hex_encode(&raw));
                        sqlx::query(&format!("CREATE DATABASE {name}"))
                            .execute(&mut c)
                            .await
                            .expect("CREATE DATABASE");
                        let base = admin.rsplit_once('/').unwrap().0;
                        let url = format!("{base}/{name}");
                        return Some((
                            url,
                            DbGuard::Postgres {
                                admin_url: admin,
                                name,
                            },
                        ));
                    }
                    Err(e) => last_err = e.to_string(),
                }
            }
            if std::env::var("PARLEY_REQUIRE_POSTGRES").is_ok_and(|v| !v.is_empty() && v != "0") {
                panic!("PARLEY_REQUIRE_POSTGRES is set but no Postgres server is reachable: {last_err}");
            }
            eprintln!(
                "SKIP: Postgres test skipped, no server reachable at 127.0.0.1:5432 ({last_err})"
            );
            None
        }
    }
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    /// An admin key of tenant "acme".
    pub key: String,
    pub tenant_id: String,
    pub kind: Kind,
    server: tokio::task::JoinHandle<()>,
    _guard: DbGuard,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub async fn start(kind: Kind) -> Option<TestServer> {
    start_with(kind, ServeOptions::default(), Arc::new(NoTransport)).await
}

pub async fn start_with(
    kind: Kind,
    options: ServeOptions,
    dispatcher: Arc<dyn CallDispatcher>,
) -> Option<TestServer> {
    let (url, guard) = fresh_database(kind).await?;
    // No test may probe a real provider: every provider a test did not point at a local fake
    // goes to the discard port on loopback, where nothing listens.
    let mut options = options;
    for p in parley_control::model::provider::ALL {
        options
            .provider_base_urls
            .entry(p.as_str().to_string())
            .or_insert_with(|| "http://127.0.0.1:9".to_string());
    }
    let app = App::build(&url, options, dispatcher)
        .await
        .expect("build app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let workers = parley_control::spawn_workers(&app.state);
    drop(workers);
    let tenant = tenants::get_or_create(&app.state.db, "acme").await.unwrap();
    let (_, key) = keys::create(&app.state.db, &tenant.id, "test", &["admin".into()])
        .await
        .unwrap();
    Some(TestServer {
        base: format!("http://{addr}"),
        // No pooled connections: after an error the server answers without reading the
        // body (413), it closes the connection, and a request that reused it would fail
        // with "incomplete message" depending on timing.
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        state: app.state,
        key,
        tenant_id: tenant.id,
        kind,
        server,
        _guard: guard,
    })
}

/// A response, with its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
    /// Asserts an error response with this code (and field, when given).
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str, field: Option<&str>) -> Self {
        let s = self.expect(status);
        assert_eq!(s.body["code"], code, "body: {}", s.body);
        assert!(s.body["requestId"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(s.body["message"].as_str().is_some_and(|r| !r.is_empty()));
        if let Some(f) = field {
            assert_eq!(s.body["field"], f, "body: {}", s.body);
        }
        s
    }
}

impl TestServer {
    pub async fn tenant_key(&self, tenant: &str, scopes: &[&str]) -> String {
        let t = tenants::get_or_create(&self.state.db, tenant)
            .await
            .unwrap();
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        keys::create(&self.state.db, &t.id, "test", &scopes)
            .await
            .unwrap()
            .1
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).unwrap());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = resp.bytes().await.unwrap().to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            raw,
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        self.try_raw(method, path, content_type, body)
            .await
            .expect("request")
    }

    /// Like [`raw`](Self::raw), but returns transport errors (a server may answer and close
    /// before reading a large body it does not need).
    pub async fn try_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Resp, reqwest::Error> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let raw = resp.bytes().await?.to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            headers,
            body,
            raw,
        })
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, Some(&self.key), None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(&self.key), Some(&body))
            .await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Some(&self.key), Some(&body))
            .await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Some(&self.key), Some(&body))
            .await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, Some(&self.key), None).await
    }

    /// Follows `nextCursor` through every page of a list, returning all items.
    pub async fn collect_pages(&self, path: &str, limit: usize) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let r = self.get(&url).await.expect(200);
            pages += 1;
            let data = r.body["data"].as_array().unwrap().clone();
            assert!(data.len() <= limit);
            items.extend(data);
            if r.body["hasMore"] == true {
                cursor = Some(r.body["nextCursor"].as_str().unwrap().to_string());
            } else {
                assert!(r.body["nextCursor"].is_null());
                break;
            }
        }
        (items, pages)
    }
}

/// Runs an async test body once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Kind::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Kind::Postgres).await
                }
            }
        )*
    };
}
