//! The latency waterfall as a person sees it: headless Chromium renders the SVG from
//! `parley_control::timeline::render` to a PNG, and the screenshot must show a picture —
//! not a blank page, an error page or a broken-image icon.
//!
//! Unit tests check the SVG's structure; only a real browser catches what they cannot (an
//! invalid attribute a parser accepts but a renderer drops, a missing namespace, colors that
//! never paint). Chromium comes from Debian's `chromium` (scripts/deps.sh). Without it the
//! test skips, unless `CI=true` or `PARLEY_REQUIRE_CHROMIUM=1`, where a missing browser must
//! not pass silently. `PARLEY_CHROMIUM=/path` picks another binary;
//! `PARLEY_TIMELINE_SCREENSHOT=/tmp/w.png` keeps the screenshot (and the SVG beside it).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parley_control::timeline::{render, Stage, Timeline, TimelineTurn};

/// Chromium normally takes a few seconds here; past this it is hung, not slow.
const TIMEOUT: Duration = Duration::from_secs(30);
const WINDOW: (u32, u32) = (1200, 600);

fn turn(n: u32, base: u64) -> TimelineTurn {
    TimelineTurn {
        turn: n,
        speech_start_ms: Some(base),
        speech_end_ms: Some(base + 1400),
        turn_end_ms: Some(base + 2100),
        stt_final_ms: Some(base + 2160),
        llm_request_ms: Some(base + 2170),
        llm_first_token_ms: Some(base + 2470),
        first_sentence_ms: Some(base + 2620),
        tts_request_ms: Some(base + 2630),
        tts_first_audio_ms: Some(base + 2830),
        first_audio_sent_ms: Some(base + 2860),
        first_playback_ack_ms: Some(base + 2960),
        playback_done_ms: Some(base + 4800),
        played_ms: Some(1940),
        ..Default::default()
    }
}

fn three_turns() -> Timeline {
    let mut cut = turn(2, 5200);
    cut.playback_done_ms = None;
    cut.barge_in_onset_ms = Some(9000);
    cut.interrupted_ms = Some(9140);
    cut.played_ms = Some(1080);
    Timeline {
        call_id: "call_chromium<&>".into(),
        agent_name: Some("Waterfall \"test\"".into()),
        duration_ms: 14_500,
        turns: vec![turn(1, 300), cut, turn(3, 9400)],
    }
}

/// The browser to use: `PARLEY_CHROMIUM`, else `chromium` (Debian) or `chromium-browser`
/// found on `PATH`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PARLEY_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
        || std::env::var("PARLEY_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1")
}

/// Runs Chromium to screenshot `page` into `out`, killing it (and every process it
/// spawned) after [`TIMEOUT`]. Returns how long it took.
fn screenshot(chromium: &Path, page: &Path, out: &Path, dir: &Path) -> Duration {
    let profile = dir.join("profile");
    let log = dir.join("chromium.log");
    let mut screenshot_arg = OsString::from("--screenshot=");
    screenshot_arg.push(out);
    let mut profile_arg = OsString::from("--user-data-dir=");
    profile_arg.push(&profile);
    let url = format!("file://{}", page.display()).replace(' ', "%20");
    let log_file = std::fs::File::create(&log).expect("create log");
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        // Offline and quiet: no update checks, sync, QUIC probes or first-run work.
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        // Containers often have a tiny /dev/shm.
        "--disable-dev-shm-usage",
        // One CSS px = one screenshot px, no scrollbars: pixel counts are predictable.
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ])
    .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
    .arg(screenshot_arg)
    .arg(profile_arg)
    .arg(url)
    // A HOME of its own: nothing is read from or left in the real one.
    .env("HOME", dir)
    .stdin(Stdio::null())
    // To a file, not a pipe: nobody reads a pipe while we wait, and a chatty Chromium
    // would block on a full one.
    .stdout(log_file.try_clone().expect("clone log"))
    .stderr(log_file)
    // Its own process group, so a timeout can kill the zygote and renderers too.
    .process_group(0);

    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    // Kills the group on every way out of here, a panic included, so no Chromium outlives
    // the test (the Debian `chromium` is a wrapper script; the browser, its zygote and
    // renderers all stay in this group).
    let group = ProcessGroup(child.id() as libc::pid_t);
    let status = loop {
        match child.try_wait().expect("wait for chromium") {
            Some(status) => break status,
            None if started.elapsed() > TIMEOUT => {
                drop(group);
                let _ = child.wait();
                panic!(
                    "chromium did not finish within {TIMEOUT:?}; killed. Its output:\n{}",
                    tail(&log)
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let took = started.elapsed();
    // Helpers that outlived the browser process must not linger after the test.
    drop(group);
    assert!(
        out.is_file(),
        "chromium exited ({status}) without writing a screenshot. Its output:\n{}",
        tail(&log)
    );
    if !status.success() {
        // Seen with some Chromium builds after a good screenshot (crash reporter, D-Bus);
        // the picture is what this test judges, so note it and go on.
        println!("note: chromium exited with {status} after writing the screenshot");
    }
    took
}

/// A process group of our own making, killed (SIGKILL) when dropped.
struct ProcessGroup(libc::pid_t);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: a plain syscall on the group we created with `process_group(0)`; ESRCH
        // (everyone already gone) is fine.
        unsafe { libc::kill(-self.0, libc::SIGKILL) };
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn hex(color: &str) -> [u8; 3] {
    let c = color.trim_start_matches('#');
    let ch = |i: usize| u8::from_str_radix(&c[i..i + 2], 16).expect("hex color");
    [ch(0), ch(2), ch(4)]
}

#[test]
fn chromium_renders_the_waterfall() {
    let Some(chromium) = find_chromium() else {
        if required() {
            panic!(
                "chromium is not installed, and CI=true or PARLEY_REQUIRE_CHROMIUM=1 requires \
                 this test to run: install it with scripts/deps.sh (Debian package `chromium`)"
            );
        }
        println!("SKIP chromium_renders_the_waterfall: chromium not installed (scripts/deps.sh)");
        return;
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("t.svg");
    let out = dir.path().join("shot.png");
    let svg = render(&three_turns());
    let doc = roxmltree::Document::parse(&svg).expect("well-formed svg");
    let size = |name| -> u32 {
        let v = doc.root_element().attribute(name).expect("svg size");
        v.parse().expect("integer svg size")
    };
    let (svg_w, svg_h) = (size("width"), size("height"));
    assert!(
        svg_w <= WINDOW.0 && svg_h <= WINDOW.1,
        "picture fits the window"
    );
    std::fs::write(&page, &svg).expect("write svg");

    let took = screenshot(&chromium, &page, &out, dir.path());
    println!("chromium screenshot took {took:?}");
    // To look at the picture: PARLEY_TIMELINE_SCREENSHOT=/tmp/waterfall.png cargo test …
    if let Some(keep) = std::env::var_os("PARLEY_TIMELINE_SCREENSHOT").filter(|p| !p.is_empty()) {
        std::fs::copy(&out, &keep).expect("copy screenshot");
        std::fs::copy(&page, Path::new(&keep).with_extension("svg")).expect("copy svg");
    }

    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&out).expect("open screenshot"),
    ));
    let mut reader = decoder.read_info().expect("screenshot is a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("decode screenshot");
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected screenshot color type {other:?}"),
    };
    assert_eq!((info.width, info.height), WINDOW, "screenshot size");
    let stride = info.width as usize * channels;
    let pixel = |x: u32, y: u32| {
        let i = y as usize * stride + x as usize * channels;
        [buf[i], buf[i + 1], buf[i + 2]]
    };
    let pixels: Vec<[u8; 3]> = (0..info.height)
        .flat_map(|y| (0..info.width).map(move |x| (x, y)))
        .map(|(x, y)| pixel(x, y))
        .collect();

    // Not blank: within the picture's own box (the SVG sits at the top left of the page),
    // grid, bars and text cover a fair share. A blank, black or error page fails one side
    // or the other; so does an SVG that Chromium refuses and shows as a broken image.
    let in_box: Vec<[u8; 3]> = (0..svg_h)
        .flat_map(|y| (0..svg_w).map(move |x| (x, y)))
        .map(|(x, y)| pixel(x, y))
        .collect();
    let non_white = in_box.iter().filter(|p| p.iter().any(|&c| c < 235)).count();
    let share = non_white as f64 / in_box.len() as f64;
    println!(
        "non-white share {:.1}% of the {svg_w}x{svg_h} picture",
        share * 100.0
    );
    assert!(
        (0.03..0.6).contains(&share),
        "screenshot looks blank or broken: {:.1}% non-white pixels in the picture's box",
        share * 100.0
    );
    // Outside the picture the page stays white: the SVG was laid out at its own size.
    let outside = pixels
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let (x, y) = (
                (i % info.width as usize) as u32,
                (i / info.width as usize) as u32,
            );
            x >= svg_w || y >= svg_h
        })
        .filter(|(_, p)| p.iter().any(|&c| c < 235))
        .count();
    assert_eq!(outside, 0, "non-white pixels outside the SVG's box");

    // The stage bars painted in their colors. Each legend swatch holds 144 px of its color,
    // so demand clearly more than that: the pixels must come from the turn rows.
    let near = |p: &[u8; 3], c: [u8; 3]| p.iter().zip(c).all(|(&a, b)| a.abs_diff(b) <= 6);
    let mut seen = Vec::new();
    for stage in Stage::ALL {
        let c = hex(stage.color());
        let n = pixels.iter().filter(|p| near(p, c)).count();
        println!("{:>16}: {n} px of {}", stage.label(), stage.color());
        if n >= 400 {
            seen.push(stage.label());
        }
    }
    assert!(
        seen.len() >= 3,
        "expected bars of at least 3 stage colors in the screenshot, found {seen:?}"
    );
}
