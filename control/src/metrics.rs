//! Prometheus metrics of this process, served at `GET /metrics` in the text exposition format
//! 0.0.4.
//!
//! Written by hand rather than with a metrics crate: the set is small and fixed, and doing it
//! here keeps recording on the media side to a few relaxed atomic adds with no allocation and
//! no lock. What is recorded:
//!
//! - per-turn stage latencies from [`TurnTrace`]s ([`Metrics::observe_turn`]), one histogram
//!   per stage with buckets sized for voice latency (5 ms … 10 s);
//! - provider errors by provider, trace store writes and drops;
//! - HTTP requests by method, route template and status, and their duration
//!   ([`track_http`], a middleware);
//! - at scrape time: live calls, the engine's process-wide media counters
//!   ([`parley_engine::counters`]) and the standard `process_*` metrics from `/proc/self`.
//!
//! Label values are bounded everywhere: stages are a fixed set, HTTP routes are the router's
//! templates (never raw paths), methods outside the standard set count as `OTHER`, and
//! provider names beyond [`MAX_PROVIDERS`] distinct values count as `other`. A scrape cannot
//! be made to grow without bound by whoever sends requests.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use parley_engine::TurnTrace;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Distinct provider label values kept before the rest count as `other`.
pub const MAX_PROVIDERS: usize = 32;

/// Distinct HTTP route labels kept before the rest count as `other`. Routes are the
/// router's templates, so this is only a guard against a future router with an unbounded
/// set of paths.
const MAX_ROUTES: usize = 256;

/// One histogram bucket: its upper bound in nanoseconds (compared without floating point)
/// and as written in the `le` label.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    nanos: u64,
    le: &'static str,
}

const fn b(ms_times_1000: u64, le: &'static str) -> Bucket {
    Bucket {
        nanos: ms_times_1000 * 1_000,
        le,
    }
}

/// Turn stages: from a few milliseconds (engine hops) to seconds (a slow LLM, or an
/// endpointing silence threshold), finer where voice latency budgets are decided
/// (100 ms – 1.5 s).
pub const STAGE_BUCKETS: &[Bucket] = &[
    b(5_000, "0.005"),
    b(10_000, "0.01"),
    b(25_000, "0.025"),
    b(50_000, "0.05"),
    b(75_000, "0.075"),
    b(100_000, "0.1"),
    b(150_000, "0.15"),
    b(200_000, "0.2"),
    b(300_000, "0.3"),
    b(400_000, "0.4"),
    b(500_000, "0.5"),
    b(750_000, "0.75"),
    b(1_000_000, "1"),
    b(1_500_000, "1.5"),
    b(2_000_000, "2"),
    b(3_000_000, "3"),
    b(5_000_000, "5"),
    b(10_000_000, "10"),
];

/// HTTP requests: most API calls answer in well under 5 ms, so the scale starts at 1 ms.
pub const HTTP_BUCKETS: &[Bucket] = &[
    b(1_000, "0.001"),
    b(2_500, "0.0025"),
    b(5_000, "0.005"),
    b(10_000, "0.01"),
    b(25_000, "0.025"),
    b(50_000, "0.05"),
    b(100_000, "0.1"),
    b(250_000, "0.25"),
    b(500_000, "0.5"),
    b(1_000_000, "1"),
    b(2_500_000, "2.5"),
    b(5_000_000, "5"),
    b(10_000_000, "10"),
];

/// A fixed-bucket histogram of durations. Recording is two relaxed atomic adds.
///
/// Buckets are stored non-cumulatively, with one overflow slot past the last bound; the
/// cumulative counts, `+Inf` and `_count` are all derived from one read of the slots at
/// render time, so a scrape never shows `_count` disagreeing with `+Inf` even while samples
/// are being recorded.
pub struct Histogram {
    buckets: &'static [Bucket],
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(buckets: &'static [Bucket]) -> Histogram {
        Histogram {
            buckets,
            counts: (0..=buckets.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one sample; never allocates.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // First bucket whose bound is >= the sample (`le` is inclusive); past the end is
        // the overflow slot.
        let i = self.buckets.partition_point(|b| b.nanos < nanos);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Samples recorded so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Writes `_bucket`, `_sum` and `_count` lines; `labels` are the series' own labels,
    /// already rendered (`a="x",b="y"`), or empty.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (b, c) in self.buckets.iter().zip(self.counts.iter()) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cumulative}",
                b.le
            );
        }
        cumulative += self.counts[self.buckets.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// The turn stages measured, in the order they happen. The names are label values of
/// `parley_turn_stage_seconds` and the span names of the OTLP export ([`crate::otel`]).
pub const STAGES: [&str; 9] = [
    "endpointing",
    "stt",
    "llm_first_token",
    "first_sentence",
    "tts_first_audio",
    "engine",
    "playback_ack",
    "voice_to_voice",
    "barge_in_reaction",
];

/// One stage of a turn as an interval on the call's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageSpan {
    /// One of [`STAGES`].
    pub stage: &'static str,
    /// Offset from the call's start.
    pub start: Duration,
    /// Offset from the call's start; never before `start`.
    pub end: Duration,
}

impl StageSpan {
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }
}

/// The stages of a turn whose two timestamps are both present, indexed like [`STAGES`].
///
/// A stage whose end was stamped before its start (a provider that finalizes before the
/// endpointer decides, say) is clamped to zero length, as [`TurnTrace::voice_to_voice`]
/// does, rather than dropped: it did take no time on the caller's side.
pub fn turn_stages(t: &TurnTrace) -> [Option<StageSpan>; 9] {
    let pairs = [
        (t.speech_end, t.turn_end),
        (t.turn_end, t.stt_final),
        (t.llm_request, t.llm_first_token),
        (t.llm_first_token, t.first_sentence),
        (t.tts_request, t.tts_first_audio),
        (t.tts_first_audio, t.first_audio_sent),
        (t.first_audio_sent, t.first_playback_ack),
        (t.speech_end, t.first_audio_sent),
        (t.barge_in_onset, t.interrupted),
    ];
    let mut out = [None; 9];
    for (i, (start, end)) in pairs.into_iter().enumerate() {
        if let (Some(start), Some(end)) = (start, end) {
            out[i] = Some(StageSpan {
                stage: STAGES[i],
                start,
                end: end.max(start),
            });
        }
    }
    out
}

/// Requests of one method on one route.
struct HttpSeries {
    method: &'static str,
    duration: Histogram,
    /// (status, requests); a handful of statuses per route, so a short vector.
    statuses: Vec<(u16, u64)>,
}

/// The process's metrics. Use [`global`]; separate instances exist for tests.
pub struct Metrics {
    stages: [Histogram; 9],
    turns: AtomicU64,
    traces_written: AtomicU64,
    traces_dropped: AtomicU64,
    otlp_dropped: AtomicU64,
    /// Errors by provider name, in first-seen order; rare, so a mutex is fine.
    provider_errors: Mutex<Vec<(String, u64)>>,
    /// Route template → series per method. Taken briefly once per request.
    http: Mutex<HashMap<String, Vec<HttpSeries>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The process-wide metrics, created on first use.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::new)
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            stages: std::array::from_fn(|_| Histogram::new(STAGE_BUCKETS)),
            turns: AtomicU64::new(0),
            traces_written: AtomicU64::new(0),
            traces_dropped: AtomicU64::new(0),
            otlp_dropped: AtomicU64::new(0),
            provider_errors: Mutex::new(Vec::new()),
            http: Mutex::new(HashMap::new()),
        }
    }

    /// Records a finished turn: one sample per stage whose timestamps are both present.
    /// Lock-free and allocation-free.
    pub fn observe_turn(&self, t: &TurnTrace) {
        self.turns.fetch_add(1, Relaxed);
        for (h, s) in self.stages.iter().zip(turn_stages(t)) {
            if let Some(s) = s {
                h.observe(s.duration());
            }
        }
    }

    /// The histogram of one stage (a name from [`STAGES`]), for tests and benchmarks.
    pub fn stage(&self, stage: &str) -> Option<&Histogram> {
        STAGES
            .iter()
            .position(|s| *s == stage)
            .map(|i| &self.stages[i])
    }

    /// Counts an error from a provider (`deepgram`, `openai`, …). After [`MAX_PROVIDERS`]
    /// distinct names, new ones count as `other`: names come from configuration, and a
    /// misconfiguration must not be able to blow up the scrape.
    pub fn provider_error(&self, provider: &str) {
        let Ok(mut errors) = self.provider_errors.lock() else {
            return;
        };
        if let Some(e) = errors.iter_mut().find(|(p, _)| p == provider) {
            e.1 += 1;
            return;
        }
        let name = if errors.len() < MAX_PROVIDERS {
            provider
        } else {
            "other"
        };
        match errors.iter_mut().find(|(p, _)| p == name) {
            Some(e) => e.1 += 1,
            None => errors.push((name.to_string(), 1)),
        }
    }

    /// Turn traces stored.
    pub fn traces_written(&self, n: u64) {
        self.traces_written.fetch_add(n, Relaxed);
    }

    /// Turn traces dropped on their way to the store (queue full or store error).
    pub fn traces_dropped(&self, n: u64) {
        self.traces_dropped.fetch_add(n, Relaxed);
    }

    /// Turns not exported over OTLP (queue full or the collector failed).
    pub fn otlp_dropped(&self, n: u64) {
        self.otlp_dropped.fetch_add(n, Relaxed);
    }

    /// Records one HTTP request. `route` is the route template, or `None` for requests no
    /// route matched.
    pub fn observe_http(&self, method: &str, route: Option<&str>, status: u16, d: Duration) {
        let method = normalize_method(method);
        let Ok(mut http) = self.http.lock() else {
            return;
        };
        let mut route = route.unwrap_or("unmatched");
        if !http.contains_key(route) && http.len() >= MAX_ROUTES {
            route = "other";
        }
        let series = match http.get_mut(route) {
            Some(s) => s,
            None => http.entry(route.to_string()).or_default(),
        };
        let s = match series.iter().position(|s| s.method == method) {
            Some(i) => &mut series[i],
            None => {
                series.push(HttpSeries {
                    method,
                    duration: Histogram::new(HTTP_BUCKETS),
                    statuses: Vec::new(),
                });
                series.last_mut().expect("just pushed")
            }
        };
        s.duration.observe(d);
        match s.statuses.iter_mut().find(|(st, _)| *st == status) {
            Some(e) => e.1 += 1,
            None => s.statuses.push((status, 1)),
        }
    }

    /// The whole exposition: everything recorded, plus `active_calls`, the engine's
    /// counters and the process metrics, read now. Reading `/proc` is a few small reads of
    /// in-memory files, fine on the async runtime.
    pub fn render(&self, active_calls: usize) -> String {
        let mut out = String::with_capacity(16 * 1024);

        header(
            &mut out,
            "parley_active_calls",
            "gauge",
            "Calls with live media on this node.",
        );
        let _ = writeln!(out, "parley_active_calls {active_calls}");

        header(
            &mut out,
            "parley_turns_total",
            "counter",
            "Turns finished (and traced) by calls on this node.",
        );
        let _ = writeln!(out, "parley_turns_total {}", self.turns.load(Relaxed));

        header(
            &mut out,
            "parley_turn_stage_seconds",
            "histogram",
            "Duration of each stage of a turn: endpointing (speech end to turn end), stt, \
             llm_first_token, first_sentence, tts_first_audio, engine (first TTS audio to \
             first frame sent), playback_ack, voice_to_voice (speech end to first frame \
             sent), barge_in_reaction.",
        );
        for (stage, h) in STAGES.iter().zip(self.stages.iter()) {
            h.render(
                &mut out,
                "parley_turn_stage_seconds",
                &format!("stage=\"{stage}\""),
            );
        }

        header(
            &mut out,
            "parley_provider_errors_total",
            "counter",
            "Errors reported by STT, LLM and TTS providers, by provider.",
        );
        if let Ok(errors) = self.provider_errors.lock() {
            for (p, n) in errors.iter() {
                let _ = writeln!(
                    out,
                    "parley_provider_errors_total{{provider=\"{}\"}} {n}",
                    escape_label(p)
                );
            }
        }

        counter(
            &mut out,
            "parley_traces_written_total",
            "Turn traces written to the store.",
            self.traces_written.load(Relaxed),
        );
        counter(
            &mut out,
            "parley_traces_dropped_total",
            "Turn traces dropped instead of stored (queue full or store error).",
            self.traces_dropped.load(Relaxed),
        );
        counter(
            &mut out,
            "parley_otlp_turns_dropped_total",
            "Turns dropped instead of exported over OTLP (queue full or collector error).",
            self.otlp_dropped.load(Relaxed),
        );

        self.render_http(&mut out);
        render_engine(&mut out);
        render_process(&mut out);
        out
    }

    fn render_http(&self, out: &mut String) {
        let Ok(http) = self.http.lock() else { return };
        let mut routes: Vec<(&String, &Vec<HttpSeries>)> = http.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        header(
            out,
            "parley_http_requests_total",
            "counter",
            "HTTP requests by method, route template and status.",
        );
        for (route, series) in &routes {
            let route = escape_label(route);
            for s in series.iter() {
                let mut statuses = s.statuses.clone();
                statuses.sort_unstable();
                for (status, n) in statuses {
                    let _ = writeln!(
                        out,
                        "parley_http_requests_total{{method=\"{}\",route=\"{route}\",status=\"{status}\"}} {n}",
                        s.method
                    );
                }
            }
        }
        header(
            out,
            "parley_http_request_duration_seconds",
            "histogram",
            "Time to the response head of HTTP requests, by method and route template.",
        );
        for (route, series) in &routes {
            let route = escape_label(route);
            for s in series.iter() {
                s.duration.render(
                    out,
                    "parley_http_request_duration_seconds",
                    &format!("method=\"{}\",route=\"{route}\"", s.method),
                );
            }
        }
    }
}

/// Bounds the `method` label: anything outside the standard methods is `OTHER` (HTTP allows
/// arbitrary extension methods, which a client could otherwise use to mint series).
fn normalize_method(m: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN.into_iter().find(|k| *k == m).unwrap_or("OTHER")
}

/// Records every request: method, route template (`unmatched` when no route matched) and
/// status, and the time to the response head. Add it with `Router::layer`, so it runs after
/// routing and sees the `MatchedPath`; a streamed body's transfer time is not included.
pub async fn track_http(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = normalize_method(req.method().as_str());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    global().observe_http(
        method,
        route.as_ref().map(|r| r.as_str()),
        response.status().as_u16(),
        start.elapsed(),
    );
    response
}

/// `# HELP` and `# TYPE` of a metric family.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A family of one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    single(out, name, "counter", help, value);
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    single(out, name, "gauge", help, value);
}

/// Label values escape backslash, double quote and newline (format 0.0.4).
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text escapes backslash and newline (format 0.0.4).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn render_engine(out: &mut String) {
    let c = parley_engine::counters::snapshot();
    let rows = [
        (
            "parley_caller_frames_total",
            "Caller audio frames classified by VAD.",
            c.caller_frames,
        ),
        (
            "parley_agent_frames_total",
            "20 ms agent audio frames sent to transports.",
            c.agent_frames,
        ),
        (
            "parley_late_frames_total",
            "Agent frames sent more than 20 ms after their scheduled time.",
            c.late_frames,
        ),
        (
            "parley_underruns_total",
            "Playback underruns: an agent frame was due and no audio was queued.",
            c.underruns,
        ),
        (
            "parley_barge_ins_total",
            "Agent replies interrupted by the caller.",
            c.barge_ins,
        ),
        (
            "parley_barge_ins_suppressed_total",
            "Caller sounds during agent speech that did not interrupt (backchannel, noise, \
             protected or disabled).",
            c.suppressed_barge_ins,
        ),
        (
            "parley_talk_overs_total",
            "Barge-ins where the agent had started talking over the caller.",
            c.talk_overs,
        ),
        (
            "parley_calls_started_total",
            "Calls started by the media engine.",
            c.calls_started,
        ),
        (
            "parley_calls_ended_total",
            "Calls ended by the media engine.",
            c.calls_ended,
        ),
    ];
    for (name, help, value) in rows {
        counter(out, name, help, value);
    }
}

/// The standard process metrics (the names of the Prometheus client libraries), from
/// `/proc/self`. Where `/proc` cannot be read (not Linux), they are left out rather than
/// reported as zero.
fn render_process(out: &mut String) {
    let Some(p) = ProcStat::read() else { return };
    let (clk_tck, page_size) = system_constants();
    single(
        out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        (p.utime + p.stime) as f64 / clk_tck as f64,
    );
    gauge(
        out,
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        p.rss_pages * page_size,
    );
    gauge(
        out,
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        p.vsize,
    );
    if let Some(fds) = open_fds() {
        gauge(
            out,
            "process_open_fds",
            "Number of open file descriptors.",
            fds,
        );
    }
    if let Some(max) = max_fds() {
        gauge(
            out,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max,
        );
    }
    gauge(out, "process_threads", "Number of OS threads.", p.threads);
    if let Some(start) = start_time_seconds(p.starttime, clk_tck) {
        gauge(
            out,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            start,
        );
    }
}

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    /// Clock ticks in user mode.
    utime: u64,
    /// Clock ticks in kernel mode.
    stime: u64,
    threads: u64,
    /// Clock ticks after boot when the process started.
    starttime: u64,
    /// Bytes.
    vsize: u64,
    rss_pages: u64,
}

impl ProcStat {
    fn read() -> Option<ProcStat> {
        ProcStat::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// Parses `/proc/[pid]/stat` (proc(5)). The command name (field 2) may contain spaces
    /// and parentheses, so fields are counted from its last `)`.
    fn parse(s: &str) -> Option<ProcStat> {
        let rest = &s[s.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field n is f[n - 3].
        let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
        Some(ProcStat {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            starttime: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

/// Clock ticks per second and the page size, from the auxiliary vector the kernel handed
/// the process (`AT_CLKTCK`, `AT_PAGESZ` in `/proc/self/auxv`): what `sysconf` returns,
/// without a libc dependency. Falls back to Linux's usual 100 Hz and 4 KiB.
fn system_constants() -> (u64, u64) {
    static CONSTANTS: OnceLock<(u64, u64)> = OnceLock::new();
    *CONSTANTS.get_or_init(|| {
        let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
        parse_auxv(&auxv)
    })
}

fn parse_auxv(auxv: &[u8]) -> (u64, u64) {
    const AT_PAGESZ: usize = 6;
    const AT_CLKTCK: usize = 17;
    const W: usize = std::mem::size_of::<usize>();
    let (mut clk_tck, mut page_size) = (100, 4096);
    for pair in auxv.chunks_exact(2 * W) {
        let word =
            |i: usize| usize::from_ne_bytes(pair[i * W..(i + 1) * W].try_into().expect("W bytes"));
        match (word(0), word(1) as u64) {
            (AT_CLKTCK, v) if v > 0 => clk_tck = v,
            (AT_PAGESZ, v) if v > 0 => page_size = v,
            (0, _) => break,
            _ => {}
        }
    }
    (clk_tck, page_size)
}

/// Entries of `/proc/self/fd` (including the one reading the directory, as the client
/// libraries count it).
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// The soft limit on open files, from `/proc/self/limits`; `None` when unlimited.
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Boot time (`btime` in `/proc/stat`) plus the process's start offset; fixed for the
/// process's life, so read once.
fn start_time_seconds(starttime_ticks: u64, clk_tck: u64) -> Option<f64> {
    static START: OnceLock<Option<f64>> = OnceLock::new();
    *START.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let btime: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(btime as f64 + starttime_ticks as f64 / clk_tck as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    /// The sample lines of a family (no comments), for exact comparisons.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        static BUCKETS: &[Bucket] = &[b(10_000, "0.01"), b(100_000, "0.1"), b(1_000_000, "1")];
        let h = Histogram::new(BUCKETS);
        for v in [5, 10, 50, 2_000] {
            h.observe(Duration::from_millis(v));
        }
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "k=\"v\"");
        assert_eq!(
            out,
            "x_seconds_bucket{k=\"v\",le=\"0.01\"} 2\n\
             x_seconds_bucket{k=\"v\",le=\"0.1\"} 3\n\
             x_seconds_bucket{k=\"v\",le=\"1\"} 3\n\
             x_seconds_bucket{k=\"v\",le=\"+Inf\"} 4\n\
             x_seconds_sum{k=\"v\"} 2.065\n\
             x_seconds_count{k=\"v\"} 4\n"
        );
        let mut out = String::new();
        Histogram::new(BUCKETS).render(&mut out, "y", "");
        assert!(out.contains("y_bucket{le=\"+Inf\"} 0\n"), "{out}");
        assert!(out.contains("y_sum 0\ny_count 0\n"), "{out}");
    }

    #[test]
    fn bucket_bounds_are_sorted_and_labels_parse() {
        for set in [STAGE_BUCKETS, HTTP_BUCKETS] {
            for w in set.windows(2) {
                assert!(w[0].nanos < w[1].nanos);
            }
            for b in set {
                let secs: f64 = b.le.parse().unwrap();
                assert_eq!((secs * 1e9).round() as u64, b.nanos, "{}", b.le);
            }
        }
    }

    #[test]
    fn turn_stages_follow_the_trace_and_skip_missing_stamps() {
        let mut t = TurnTrace::new(3);
        t.speech_start = ms(500);
        t.speech_end = ms(1000);
        t.turn_end = ms(1700);
        t.stt_final = ms(1650); // finalized before the turn ended: clamped to zero
        t.llm_request = ms(1700);
        t.llm_first_token = ms(1900);
        t.tts_request = ms(1950);
        t.tts_first_audio = ms(2100);
        t.first_audio_sent = ms(2110);
        let s = turn_stages(&t);
        let get = |name: &str| s[STAGES.iter().position(|x| *x == name).unwrap()];
        assert_eq!(
            get("endpointing").unwrap().duration(),
            Duration::from_millis(700)
        );
        assert_eq!(get("stt").unwrap().duration(), Duration::ZERO);
        assert_eq!(
            get("llm_first_token").unwrap().duration(),
            Duration::from_millis(200)
        );
        assert_eq!(
            get("tts_first_audio").unwrap().duration(),
            Duration::from_millis(150)
        );
        assert_eq!(get("engine").unwrap().duration(), Duration::from_millis(10));
        let v2v = get("voice_to_voice").unwrap();
        assert_eq!(
            (v2v.start, v2v.end),
            (Duration::from_millis(1000), Duration::from_millis(2110))
        );
        assert_eq!(get("first_sentence"), None);
        assert_eq!(get("playback_ack"), None);
        assert_eq!(get("barge_in_reaction"), None);
    }

    #[test]
    fn observe_turn_fills_stage_histograms() {
        let m = Metrics::new();
        let mut t = TurnTrace::new(1);
        t.speech_end = ms(1000);
        t.first_audio_sent = ms(1400);
        t.barge_in_onset = ms(2000);
        t.interrupted = ms(2120);
        m.observe_turn(&t);
        let text = m.render(0);
        assert!(text.contains("parley_turns_total 1\n"));
        assert!(text
            .contains("parley_turn_stage_seconds_bucket{stage=\"voice_to_voice\",le=\"0.3\"} 0\n"));
        assert!(text
            .contains("parley_turn_stage_seconds_bucket{stage=\"voice_to_voice\",le=\"0.4\"} 1\n"));
        assert!(text.contains("parley_turn_stage_seconds_sum{stage=\"voice_to_voice\"} 0.4\n"));
        assert!(text.contains("parley_turn_stage_seconds_count{stage=\"barge_in_reaction\"} 1\n"));
        assert!(text.contains("parley_turn_stage_seconds_count{stage=\"stt\"} 0\n"));
        assert_eq!(m.stage("voice_to_voice").unwrap().count(), 1);
        assert_eq!(m.stage("endpointing").unwrap().count(), 0);
    }

    #[test]
    fn every_family_has_help_and_type_once_and_samples_belong_to_a_family() {
        let m = Metrics::new();
        m.provider_error("deepgram");
        m.observe_http("GET", Some("/health"), 200, Duration::from_millis(1));
        let text = m.render(2);
        let mut families: Vec<(String, String)> = Vec::new();
        let mut helps = Vec::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# HELP ") {
                helps.push(rest.split(' ').next().unwrap().to_string());
            } else if let Some(rest) = l.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let (name, kind) = (it.next().unwrap(), it.next().unwrap());
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{l}");
                assert_eq!(
                    helps.last().map(String::as_str),
                    Some(name),
                    "HELP before TYPE"
                );
                assert!(!families.iter().any(|(n, _)| n == name), "{name} twice");
                families.push((name.into(), kind.into()));
            } else {
                assert!(!l.starts_with('#'), "{l}");
                let name = l.split(['{', ' ']).next().unwrap();
                let (family, kind) = families.last().expect("sample before any TYPE");
                let ok = match kind.as_str() {
                    "histogram" => [
                        format!("{family}_bucket"),
                        format!("{family}_sum"),
                        format!("{family}_count"),
                    ]
                    .contains(&name.to_string()),
                    _ => name == family,
                };
                assert!(ok, "sample {name} under family {family}");
                let value = l.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{l}");
            }
        }
        for name in [
            "parley_active_calls",
            "parley_turns_total",
            "parley_turn_stage_seconds",
            "parley_provider_errors_total",
            "parley_traces_written_total",
            "parley_traces_dropped_total",
            "parley_http_requests_total",
            "parley_http_request_duration_seconds",
            "parley_caller_frames_total",
            "parley_agent_frames_total",
            "parley_late_frames_total",
            "parley_underruns_total",
            "parley_barge_ins_total",
            "parley_barge_ins_suppressed_total",
            "parley_talk_overs_total",
            "parley_calls_started_total",
            "parley_calls_ended_total",
        ] {
            assert!(families.iter().any(|(n, _)| n == name), "{name} missing");
        }
        if cfg!(target_os = "linux") {
            for (name, kind) in [
                ("process_cpu_seconds_total", "counter"),
                ("process_resident_memory_bytes", "gauge"),
                ("process_virtual_memory_bytes", "gauge"),
                ("process_open_fds", "gauge"),
                ("process_threads", "gauge"),
                ("process_start_time_seconds", "gauge"),
            ] {
                assert!(
                    families.iter().any(|(n, k)| n == name && k == kind),
                    "{name} {kind} missing"
                );
            }
        }
        assert_eq!(
            lines(&text, "parley_active_calls "),
            ["parley_active_calls 2"]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz"), "x\\\\y\\nz");
        let m = Metrics::new();
        m.provider_error("we\"ird\\\n");
        m.observe_http("GET", Some("/a\"b"), 200, Duration::ZERO);
        let text = m.render(0);
        assert!(text.contains("parley_provider_errors_total{provider=\"we\\\"ird\\\\\\n\"} 1\n"));
        assert!(text.contains(
            "parley_http_requests_total{method=\"GET\",route=\"/a\\\"b\",status=\"200\"} 1\n"
        ));
    }

    #[test]
    fn provider_labels_are_capped() {
        let m = Metrics::new();
        for i in 0..MAX_PROVIDERS + 5 {
            m.provider_error(&format!("p{i}"));
        }
        m.provider_error("p0");
        m.provider_error("late");
        let text = m.render(0);
        let series = lines(&text, "parley_provider_errors_total{");
        assert_eq!(series.len(), MAX_PROVIDERS + 1, "{series:?}");
        assert!(series.contains(&"parley_provider_errors_total{provider=\"p0\"} 2"));
        assert!(series.contains(&"parley_provider_errors_total{provider=\"other\"} 6"));
    }

    #[test]
    fn http_series_by_method_route_and_status() {
        let m = Metrics::new();
        m.observe_http(
            "GET",
            Some("/v1/agents/{id}"),
            200,
            Duration::from_millis(3),
        );
        m.observe_http(
            "GET",
            Some("/v1/agents/{id}"),
            404,
            Duration::from_millis(30),
        );
        m.observe_http("BREW", None, 404, Duration::from_micros(100));
        let text = m.render(0);
        for l in [
            "parley_http_requests_total{method=\"GET\",route=\"/v1/agents/{id}\",status=\"200\"} 1",
            "parley_http_requests_total{method=\"GET\",route=\"/v1/agents/{id}\",status=\"404\"} 1",
            "parley_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"404\"} 1",
            "parley_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/agents/{id}\",le=\"0.0025\"} 0",
            "parley_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/agents/{id}\",le=\"0.005\"} 1",
            "parley_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/agents/{id}\",le=\"0.05\"} 2",
            "parley_http_request_duration_seconds_sum{method=\"GET\",route=\"/v1/agents/{id}\"} 0.033",
            "parley_http_request_duration_seconds_count{method=\"OTHER\",route=\"unmatched\"} 1",
        ] {
            assert!(text.lines().any(|x| x == l), "missing {l}\n{text}");
        }
    }

    #[test]
    fn proc_stat_parses_names_with_spaces_and_parens() {
        let line = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 7 0 123456 987654321 2048 18446744073709551615";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                utime: 250,
                stime: 75,
                threads: 7,
                starttime: 123456,
                vsize: 987654321,
                rss_pages: 2048,
            })
        );
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn auxv_gives_clock_ticks_and_page_size() {
        let mut v = Vec::new();
        for (k, val) in [(3usize, 77usize), (17, 250), (6, 16384), (0, 0), (17, 1)] {
            v.extend_from_slice(&k.to_ne_bytes());
            v.extend_from_slice(&val.to_ne_bytes());
        }
        assert_eq!(parse_auxv(&v), (250, 16384));
        assert_eq!(parse_auxv(&[]), (100, 4096));
    }
}
