//! `parley load` against the real `parley serve`: a few concurrent Twilio calls through the
//! webhook and Media Streams, measured, with the summary as one JSON object. Only counts
//! and structure are checked — timing figures depend on the machine and are the tool's
//! output, not its correctness.

use std::process::Command;

use serde_json::Value;

mod common;

use common::{serve, BIN};

#[test]
fn four_concurrent_calls_are_placed_measured_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = serve(dir.path());
    let out = Command::new(BIN)
        .args([
            "load",
            "--server",
            &server.base,
            "--api-key",
            &key,
            "--calls",
            "4",
            "--duration",
            "3",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "load failed: {stderr}");
    // Exactly one JSON object on stdout; progress went to stderr.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(stderr.contains("[load "), "no progress on stderr: {stderr}");

    for field in [
        "calls",
        "duration_s",
        "frames_sent",
        "frames_received",
        "late_frames",
        "missing_frames",
        "p50_jitter_ms",
        "p99_jitter_ms",
        "max_jitter_ms",
        "barge_in_p50_ms",
        "barge_in_p99_ms",
        "cpu_ms_per_call_second",
        "rss_kib_per_call",
        "errors",
        "error_kinds",
        "client_send_lag_p99_ms",
        "per_call",
    ] {
        assert!(v.get(field).is_some(), "no {field}: {v}");
    }
    assert_eq!(v["mode"], "concurrent");
    assert_eq!(v["calls"], 4, "{v}");
    assert_eq!(v["calls_connected"], 4, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["protocol_errors"], 0, "{v}");
    // Every call streamed its caller audio (50 frames a second) and heard the agent: each
    // call's greeting starts as soon as it connects.
    assert!(v["frames_sent"].as_u64().unwrap() >= 4 * 50, "{v}");
    assert!(v["frames_received"].as_u64().unwrap() > 0, "{v}");
    let per_call = v["per_call"].as_array().unwrap();
    assert_eq!(per_call.len(), 4, "{v}");
    assert!(
        per_call
            .iter()
            .all(|c| c["frames_received"].as_u64().unwrap() > 0),
        "{v}"
    );
    // Figures are numbers (or null only where the server gave none).
    for field in [
        "p50_jitter_ms",
        "p99_jitter_ms",
        "max_jitter_ms",
        "duration_s",
    ] {
        assert!(v[field].is_number(), "{field}: {v}");
    }
    // Server CPU and memory come from /metrics when it has the process figures; without
    // them (and without --server-pid) they are null, never made up.
    match v["server_stats_source"].as_str() {
        Some("metrics") => {
            assert!(v["cpu_ms_per_call_second"].is_number(), "{v}");
            assert!(v["rss_kib_per_call"].is_number(), "{v}");
        }
        None => {
            assert!(v["cpu_ms_per_call_second"].is_null(), "{v}");
            assert!(v["rss_kib_per_call"].is_null(), "{v}");
        }
        Some(other) => panic!("unexpected source {other}: {v}"),
    }

    // The agent it created is gone again.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agents: Value = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/v1/agents", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(agents["data"].as_array().map(Vec::len), Some(0), "{agents}");
}

#[test]
fn load_help_describes_the_modes() {
    let out = Command::new(BIN).args(["load", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--calls",
        "--duration",
        "--ramp",
        "--max-p99-jitter-ms",
        "--sequential",
        "--server-pid",
        "--json",
    ] {
        assert!(help.contains(flag), "no {flag} in: {help}");
    }
}
