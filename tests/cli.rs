//! End-to-end tests of the `parley` binary: help, `vad` on the fixtures, `serve` + /health.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn parley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_parley"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

#[test]
fn help_lists_the_subcommands_and_each_has_help() {
    let out = parley().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for sub in ["serve", "vad", "dial", "keys"] {
        assert!(text.contains(sub), "--help lacks {sub}:\n{text}");
        let out = parley().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help failed");
        assert!(String::from_utf8(out.stdout).unwrap().contains("Usage"));
    }
    let serve = parley().args(["serve", "--help"]).output().unwrap();
    let serve = String::from_utf8(serve.stdout).unwrap();
    for needle in [
        "--listen",
        "--database-url",
        "PARLEY_LISTEN",
        "DATABASE_URL",
        "0.0.0.0:8080",
        "sqlite://parley.db",
    ] {
        assert!(
            serve.contains(needle),
            "serve --help lacks {needle}:\n{serve}"
        );
    }
}

fn vad_lines(file: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = parley()
        .arg("vad")
        .arg(fixture(file))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "parley vad {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn vad_finds_the_two_turns_at_every_rate_and_format() {
    // μ-law WAV at 8 kHz, PCM at 16 and 48 kHz; the last case runs the VAD on audio
    // resampled to 16 kHz (the resampler's delay is corrected for).
    let cases: [(&str, &[&str]); 5] = [
        ("turns.8k.wav", &[]),
        ("turns.16k.wav", &[]),
        ("turns.48k.wav", &[]),
        ("turns_noisy.8k.wav", &[]),
        ("turns.8k.wav", &["--wideband"]),
    ];
    for (file, args) in cases {
        let turns: Vec<(f64, f64)> = vad_lines(file, args)
            .into_iter()
            .filter(|v| v["type"] == "turn")
            .map(|v| (v["start_s"].as_f64().unwrap(), v["end_s"].as_f64().unwrap()))
            .collect();
        assert_eq!(turns.len(), 2, "{file}: {turns:?}");
        for (got, want) in turns.iter().zip([(0.5, 2.0), (3.0, 5.0)]) {
            assert!(
                (got.0 - want.0).abs() <= 0.06 && (got.1 - want.1).abs() <= 0.06,
                "{file}: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn vad_settings_change_the_result() {
    // With a 1.2 s silence threshold the 1.0 s pause no longer ends the first turn.
    let turns = vad_lines("turns.8k.wav", &["--silence-ms", "1200"])
        .into_iter()
        .filter(|v| v["type"] == "turn")
        .count();
    assert_eq!(turns, 1);
    assert!(vad_lines("noise.8k.wav", &[]).is_empty());
}

#[test]
fn vad_refuses_bad_input_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"this is not a wav file").unwrap();
    for (args, needle) in [
        (vec![junk.to_str().unwrap().to_string()], "not a WAV file"),
        (vec!["/nonexistent/x.wav".to_string()], "cannot read"),
        (
            vec![
                fixture("turns.8k.wav").to_str().unwrap().to_string(),
                "--aggressiveness".into(),
                "7".into(),
            ],
            "aggressiveness",
        ),
    ] {
        let out = parley().arg("vad").args(&args).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

#[test]
fn serve_answers_health_once_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = format!("sqlite://{}", dir.path().join("parley.db").display());
    let _server = Server(
        parley()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                &db,
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let resp = loop {
        if let Some(r) = http_get(port, "/health") {
            break r;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[test]
fn serve_refuses_an_address_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("parley.db").display());
    let out = parley()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db,
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen"), "{err}");
}
