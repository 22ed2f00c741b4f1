//! What the end-to-end tests of the real binary share: a `parley serve` on a free port with
//! a fresh SQLite file, API keys made with `parley keys create`, and the scripted agent.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_parley");
pub const GREETING: &str = "Hello and thanks for calling Acme support how can I help you today";

/// A running `parley serve`, killed and reaped on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub ws: String,
    pub db: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `parley keys create`; returns the key.
pub fn create_key(db: &str, tenant: &str, scopes: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "keys",
            "create",
            "--tenant",
            tenant,
            "--database-url",
            db,
            "--scopes",
            scopes,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Starts `parley serve` in `dir` on a free port; returns it with an admin key of tenant
/// "acme". The embedded models are the ones scripts/models.sh put in the repo.
pub fn serve(dir: &Path) -> (Server, String) {
    let db = format!("sqlite://{}", dir.join("parley.db").display());
    let key = create_key(&db, "acme", "admin");
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
            &db,
        ])
        .env("PARLEY_LOG", "warn")
        .env(
            "PARLEY_MODELS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        )
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        ws: format!("ws://127.0.0.1:{port}"),
        db,
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (server, key);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("parley serve did not come up");
}

/// An agent with scripted providers: it greets with [`GREETING`], hears "I have a
/// different question", answers "Of course. What would you like to know?".
pub fn scripted_agent_body() -> Value {
    json!({
        "name": "Scripted",
        "persona": {"name": "Tess"},
        "voice": {"provider": "scripted", "voiceId": "tone", "script": {"delayMs": 20, "intervalMs": 60}},
        "llm": {"provider": "scripted", "model": "scripted",
                "script": {"lines": ["Of course. What would you like to know?"], "delayMs": 50}},
        "transcription": {"provider": "scripted",
                "script": {"lines": ["I have a different question"], "delayMs": 50}},
        "systemPromptTemplate": "You are a test agent.",
        "firstMessage": GREETING,
        "firstMessageMode": "assistant_speaks_first",
        "recording": {"enabled": true, "format": "wav", "stereo": true}
    })
}

/// Creates an agent through the API; returns its id.
pub async fn create_agent(base: &str, key: &str, body: Value) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/agents"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}
