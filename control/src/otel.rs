//! Turn traces as OpenTelemetry spans: exported over OTLP/HTTP with the JSON encoding
//! ([`OtlpExporter`], off unless an OTLP endpoint is configured), and as `tracing` spans
//! ([`log_turn`]).
//!
//! Each call is one trace (its id derived from the call id, so every turn of a call lands in
//! the same trace without any shared state); each turn is a root span `turn`, with one child
//! span per measured stage (the stages of [`crate::metrics::STAGES`], so dashboards and
//! traces use the same names). Span times are exact: the call's wall-clock start plus the
//! engine's offsets.
//!
//! The OTLP request is encoded by hand (the `ExportTraceServiceRequest` JSON mapping of
//! OTLP 1.x: hex trace and span ids, integer enums, 64-bit integers as decimal strings)
//! instead of pulling in the OpenTelemetry SDK and its protobuf/gRPC stack for one message
//! type. Collectors (the OpenTelemetry Collector, Jaeger, Tempo, …) accept it on the
//! standard `/v1/traces` path.
//!
//! Exporting never holds up a call: [`OtlpExporter::export_turn`] is a `try_send` into a
//! bounded queue, a background task batches and posts, and whatever cannot be queued or
//! posted is dropped and counted (`parley_otlp_turns_dropped_total`). A failing collector is
//! not retried: latency traces are worth less than the memory and connections a backlog
//! would hold, and the store keeps the authoritative copy.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_engine::TurnTrace;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::metrics::{turn_stages, StageSpan};

/// Turns waiting for the exporter task before new ones are dropped.
const QUEUE: usize = 4096;
/// A batch is posted once it holds this many spans…
const MAX_BATCH_SPANS: usize = 256;
/// …or this long after its first turn arrived.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// One POST gives up after this long (the turns are then dropped).
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one warning about a failing collector per this interval.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// `SPAN_KIND_INTERNAL` of OTLP's `Span.SpanKind`: turns and stages are work inside this
/// process, not RPCs.
const SPAN_KIND_INTERNAL: u8 = 1;

/// One finished turn of a call, to export.
#[derive(Debug, Clone)]
pub struct TurnSpans {
    pub call_id: String,
    pub agent_id: String,
    /// Wall-clock start of the call (the zero of the trace's offsets), in nanoseconds since
    /// the Unix epoch.
    pub call_started_unix_nanos: u64,
    pub trace: TurnTrace,
}

/// Where and how to export, from the standard OpenTelemetry environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The full URL posted to (`…/v1/traces`).
    pub traces_url: String,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Extra request headers (authentication of hosted collectors).
    pub headers: Vec<(String, String)>,
}

/// Reads the exporter's configuration through `var` (the environment, in production; a map
/// in tests, since the environment is process-wide). `None` when no endpoint is set, the SDK
/// is disabled (`OTEL_SDK_DISABLED=true`), or `OTEL_TRACES_EXPORTER=none`.
///
/// - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as-is; otherwise
///   `OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/traces` appended, as the spec says.
/// - `OTEL_SERVICE_NAME` names the service (default `parley`).
/// - `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (`k=v,k2=v2`,
///   values percent-encoded) add request headers; the traces-specific ones win.
/// - Only `http/json` is spoken; another `OTEL_EXPORTER_OTLP_PROTOCOL` is warned about.
pub fn config_from(var: impl Fn(&str) -> Option<String>) -> Option<OtlpConfig> {
    let get = |k: &str| {
        var(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return None;
    }
    let traces_url = match get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        Some(url) => url,
        None => traces_url(&get("OTEL_EXPORTER_OTLP_ENDPOINT")?),
    };
    match reqwest::Url::parse(&traces_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => {
            tracing::warn!(url = %traces_url, "OTLP endpoint is not an http(s) URL; traces are not exported");
            return None;
        }
    }
    let protocol = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or(get("OTEL_EXPORTER_OTLP_PROTOCOL"));
    if let Some(p) = protocol.filter(|p| p != "http/json") {
        tracing::warn!(protocol = %p, "only the OTLP http/json protocol is supported; exporting JSON");
    }
    let mut headers = parse_headers(&get("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or_default());
    for (k, v) in parse_headers(&get("OTEL_EXPORTER_OTLP_TRACES_HEADERS").unwrap_or_default()) {
        headers.retain(|(have, _)| !have.eq_ignore_ascii_case(&k));
        headers.push((k, v));
    }
    Some(OtlpConfig {
        traces_url,
        service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "parley".into()),
        headers,
    })
}

/// `{endpoint}/v1/traces`, without doubling a trailing slash.
fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// `k=v,k2=v2` with percent-encoded values (W3C Baggage style, as the OTLP exporter spec
/// says); malformed entries are skipped.
fn parse_headers(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends turn traces to an OTLP/HTTP collector from a background task.
///
/// Dropping the exporter closes its queue; the task posts what it still holds and ends
/// (unless the runtime shuts down first).
pub struct OtlpExporter {
    tx: mpsc::Sender<TurnSpans>,
    traces_url: String,
    dropped: Arc<AtomicU64>,
    exported: Arc<AtomicU64>,
}

impl OtlpExporter {
    /// The exporter the environment asks for, if any (see [`config_from`]). Must be called
    /// inside a tokio runtime.
    pub fn from_env() -> Option<OtlpExporter> {
        let cfg = config_from(|k| std::env::var(k).ok())?;
        tracing::info!(url = %cfg.traces_url, service = %cfg.service_name, "exporting turn traces over OTLP");
        Some(OtlpExporter::with_config(cfg))
    }

    /// An exporter posting to `{endpoint}/v1/traces` as `service_name`. Spawns its task on
    /// the current tokio runtime.
    pub fn new(endpoint: &str, service_name: &str) -> OtlpExporter {
        OtlpExporter::with_config(OtlpConfig {
            traces_url: traces_url(endpoint),
            service_name: service_name.to_string(),
            headers: Vec::new(),
        })
    }

    /// An exporter for a full configuration. Spawns its task on the current tokio runtime.
    pub fn with_config(cfg: OtlpConfig) -> OtlpExporter {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let exported = Arc::new(AtomicU64::new(0));
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let traces_url = cfg.traces_url.clone();
        tokio::spawn(run(cfg, client, rx, dropped.clone(), exported.clone()));
        OtlpExporter {
            tx,
            traces_url,
            dropped,
            exported,
        }
    }

    /// Queues a turn for export; never waits. False (and counted) when the queue is full
    /// or the exporter task is gone.
    pub fn export_turn(&self, span: TurnSpans) -> bool {
        match self.tx.try_send(span) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Relaxed);
                crate::metrics::global().otlp_dropped(1);
                false
            }
        }
    }

    /// Where spans are posted.
    pub fn traces_url(&self) -> &str {
        &self.traces_url
    }

    /// Turns dropped so far (queue full, or the collector failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Turns the collector accepted so far.
    pub fn exported(&self) -> u64 {
        self.exported.load(Relaxed)
    }
}

/// The exporter task: collects a batch (up to [`MAX_BATCH_SPANS`] spans or
/// [`FLUSH_INTERVAL`] after its first turn), posts it once, and starts over.
async fn run(
    cfg: OtlpConfig,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<TurnSpans>,
    dropped: Arc<AtomicU64>,
    exported: Arc<AtomicU64>,
) {
    let mut warn = WarnLimiter::default();
    let mut batch: Vec<TurnSpans> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut spans = span_count(&first.trace);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        while spans < MAX_BATCH_SPANS {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(t)) => {
                    spans += span_count(&t.trace);
                    batch.push(t);
                }
                // Closed (post what is held, then the outer loop ends) or time is up.
                Ok(None) | Err(_) => break,
            }
        }
        let turns = batch.len() as u64;
        let body = encode(&cfg.service_name, &batch);
        batch.clear();
        let mut req = client
            .post(&cfg.traces_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (k, v) in &cfg.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let failure = match req.body(body).send().await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("collector answered {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        match failure {
            None => {
                exported.fetch_add(turns, Relaxed);
            }
            Some(error) => {
                dropped.fetch_add(turns, Relaxed);
                crate::metrics::global().otlp_dropped(turns);
                warn.failed(&cfg.traces_url, &error, turns);
            }
        }
    }
}

/// Warns about a failing collector at most once per [`WARN_EVERY`], saying how many
/// failures went unreported in between: a collector that is down must not flood the log.
#[derive(Default)]
struct WarnLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    fn failed(&mut self, url: &str, error: &str, turns: u64) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < WARN_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            %url,
            %error,
            turns,
            earlier_failures_not_logged = self.suppressed,
            "OTLP export failed; turn traces dropped"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Spans a turn exports as: the turn and its stages, or none for a turn with no stamps.
fn span_count(t: &TurnTrace) -> usize {
    if turn_bounds(t).is_none() {
        return 0;
    }
    1 + turn_stages(t).iter().flatten().count()
}

/// Every timestamp of a turn.
fn stamps(t: &TurnTrace) -> [Option<Duration>; 14] {
    [
        t.speech_start,
        t.speech_end,
        t.turn_end,
        t.stt_final,
        t.llm_request,
        t.llm_first_token,
        t.first_sentence,
        t.tts_request,
        t.tts_first_audio,
        t.first_audio_sent,
        t.first_playback_ack,
        t.playback_done,
        t.interrupted,
        t.barge_in_onset,
    ]
}

/// The turn span's interval: its earliest stamp (the caller's speech start, or the first
/// provider stamp of a greeting) to its latest (playback done or interrupted, in order). The
/// extremes are taken over every stamp so a child stage never sticks out of its parent, even
/// when stamps arrive out of the usual order.
fn turn_bounds(t: &TurnTrace) -> Option<(Duration, Duration)> {
    let all = stamps(t);
    let present = all.iter().flatten();
    let start = *present.clone().min()?;
    let end = *present.max()?;
    Some((start, end))
}

/// The trace id of a call: the first 16 bytes of SHA-256 of its id, in lowercase hex.
/// Deterministic, so every turn of a call (exported whenever, from any task) shares it.
pub fn trace_id(call_id: &str) -> String {
    let d = Sha256::digest(call_id.as_bytes());
    hex::encode(nonzero(&d[..16]))
}

/// A span id: the first 8 bytes of SHA-256 over call id, turn and stage (`None` for the
/// turn span itself). Deterministic, so a turn exported twice is recognisably the same.
fn span_id(call_id: &str, turn: u32, stage: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(call_id.as_bytes());
    h.update([0]);
    h.update(turn.to_be_bytes());
    if let Some(s) = stage {
        h.update([0]);
        h.update(s.as_bytes());
    }
    hex::encode(nonzero(&h.finalize()[..8]))
}

/// OTLP treats all-zero ids as invalid; a hash that yields one (a 2⁻⁶⁴ chance) gets its
/// last bit set.
fn nonzero(id: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    if v.iter().all(|b| *b == 0) {
        if let Some(last) = v.last_mut() {
            *last = 1;
        }
    }
    v
}

// The OTLP/JSON shapes (opentelemetry-proto `ExportTraceServiceRequest`, JSON mapping).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportTraceServiceRequest {
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans {
    resource: Resource,
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Serialize)]
struct Resource {
    attributes: Vec<KeyValue>,
}

#[derive(Serialize)]
struct ScopeSpans {
    scope: Scope,
    spans: Vec<Span>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Span {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: &'static str,
    kind: u8,
    /// fixed64, so a decimal string in the JSON mapping.
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue>,
}

#[derive(Serialize)]
struct KeyValue {
    key: &'static str,
    value: AnyValue,
}

/// OTLP's `AnyValue`; `intValue` is an int64, so a decimal string in the JSON mapping. The
/// variant names are the protocol's field names.
#[allow(clippy::enum_variant_names)]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum AnyValue {
    StringValue(String),
    IntValue(String),
    DoubleValue(f64),
    BoolValue(bool),
}

fn kv(key: &'static str, value: AnyValue) -> KeyValue {
    KeyValue { key, value }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The OTLP/JSON `ExportTraceServiceRequest` body for a batch of turns: one resource (this
/// service), one scope, the spans of every turn. Turns without any stamp contribute nothing.
pub fn encode(service_name: &str, turns: &[TurnSpans]) -> Vec<u8> {
    let mut spans = Vec::new();
    for t in turns {
        turn_spans(t, &mut spans);
    }
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Resource {
                attributes: vec![
                    kv("service.name", AnyValue::StringValue(service_name.into())),
                    kv(
                        "service.version",
                        AnyValue::StringValue(env!("CARGO_PKG_VERSION").into()),
                    ),
                ],
            },
            scope_spans: vec![ScopeSpans {
                scope: Scope {
                    name: "parley",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans,
            }],
        }],
    };
    serde_json::to_vec(&req).expect("OTLP request serializes")
}

fn turn_spans(t: &TurnSpans, out: &mut Vec<Span>) {
    let tr = &t.trace;
    let Some((start, end)) = turn_bounds(tr) else {
        return;
    };
    let at = |d: Duration| {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        t.call_started_unix_nanos.saturating_add(nanos).to_string()
    };
    let trace_id = trace_id(&t.call_id);
    let turn_id = span_id(&t.call_id, tr.turn, None);
    let mut attributes = vec![
        kv("parley.call_id", AnyValue::StringValue(t.call_id.clone())),
        kv("parley.agent_id", AnyValue::StringValue(t.agent_id.clone())),
        kv("parley.turn", AnyValue::IntValue(tr.turn.to_string())),
        kv(
            "parley.interrupted",
            AnyValue::BoolValue(tr.interrupted.is_some()),
        ),
        kv("parley.talk_over", AnyValue::BoolValue(tr.talk_over)),
    ];
    if let Some(v2v) = tr.voice_to_voice() {
        attributes.push(kv(
            "parley.voice_to_voice_ms",
            AnyValue::DoubleValue(millis(v2v)),
        ));
    }
    if let Some(played) = tr.played_ms {
        attributes.push(kv(
            "parley.played_ms",
            AnyValue::IntValue(played.to_string()),
        ));
    }
    out.push(Span {
        trace_id: trace_id.clone(),
        span_id: turn_id.clone(),
        parent_span_id: None,
        name: "turn",
        kind: SPAN_KIND_INTERNAL,
        start_time_unix_nano: at(start),
        end_time_unix_nano: at(end),
        attributes,
    });
    for StageSpan { stage, start, end } in turn_stages(tr).into_iter().flatten() {
        out.push(Span {
            trace_id: trace_id.clone(),
            span_id: span_id(&t.call_id, tr.turn, Some(stage)),
            parent_span_id: Some(turn_id.clone()),
            name: stage,
            kind: SPAN_KIND_INTERNAL,
            start_time_unix_nano: at(start),
            end_time_unix_nano: at(end),
            attributes: vec![kv(
                "parley.call_id",
                AnyValue::StringValue(t.call_id.clone()),
            )],
        });
    }
}

/// Reports a turn as `tracing` spans: a `turn` span (call_id, agent_id, turn,
/// voice_to_voice_ms) with one child `stage` span per measured stage (stage, start_ms from
/// the call's start, duration_ms).
///
/// The spans are created after the fact, when the turn is over, so their own timing (what a
/// subscriber measures between enter and close) means nothing: the stage times are in the
/// fields. Subscribers that print spans (`fmt` with span events, an OpenTelemetry layer)
/// show them; the others see nothing, at no cost beyond a disabled-callsite check.
pub fn log_turn(call_id: &str, agent_id: &str, t: &TurnTrace) {
    let turn = tracing::info_span!(
        "turn",
        call_id,
        agent_id,
        turn = t.turn,
        voice_to_voice_ms = t.voice_to_voice().map(millis)
    );
    if turn.is_disabled() {
        return;
    }
    turn.in_scope(|| {
        for s in turn_stages(t).into_iter().flatten() {
            tracing::info_span!(
                parent: &turn,
                "stage",
                stage = s.stage,
                start_ms = millis(s.start),
                duration_ms = millis(s.duration())
            )
            .in_scope(|| {});
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn config_needs_an_endpoint() {
        assert_eq!(config_from(env(&[])), None);
        assert_eq!(config_from(env(&[("OTEL_SERVICE_NAME", "x")])), None);
        assert_eq!(
            config_from(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")])),
            None
        );
        assert_eq!(
            config_from(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")])),
            None,
            "not a URL"
        );
    }

    #[test]
    fn config_endpoints_service_and_headers() {
        let c = config_from(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])).unwrap();
        assert_eq!(c.traces_url, "http://c:4318/v1/traces");
        assert_eq!(c.service_name, "parley");
        assert!(c.headers.is_empty());

        let c = config_from(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://t.example/custom",
            ),
            ("OTEL_SERVICE_NAME", "edge-1"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=a%20b,bad, x-team = core ",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-API-KEY=t"),
        ]))
        .unwrap();
        assert_eq!(c.traces_url, "https://t.example/custom");
        assert_eq!(c.service_name, "edge-1");
        assert_eq!(
            c.headers,
            vec![
                ("x-team".to_string(), "core".to_string()),
                ("X-API-KEY".to_string(), "t".to_string())
            ]
        );

        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(
                config_from(env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    off
                ])),
                None
            );
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Cc"), "a b,c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%é%41"), "%éA");
    }

    #[test]
    fn ids_are_hex_deterministic_and_distinct() {
        let a = trace_id("call_1");
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(a, trace_id("call_1"));
        assert_ne!(a, trace_id("call_2"));
        let t = span_id("call_1", 1, None);
        assert_eq!(t.len(), 16);
        assert_ne!(t, span_id("call_1", 2, None));
        assert_ne!(t, span_id("call_1", 1, Some("stt")));
        assert_eq!(nonzero(&[0, 0]), vec![0, 1]);
    }

    #[test]
    fn turn_bounds_cover_every_stamp() {
        let ms = |v| Some(Duration::from_millis(v));
        let mut t = TurnTrace::new(0);
        assert_eq!(turn_bounds(&t), None);
        assert_eq!(span_count(&t), 0);
        // A greeting: no caller speech; starts at the first provider stamp.
        t.llm_request = ms(20);
        t.llm_first_token = ms(300);
        t.first_audio_sent = ms(700);
        t.playback_done = ms(2500);
        assert_eq!(
            turn_bounds(&t),
            Some((Duration::from_millis(20), Duration::from_millis(2500)))
        );
        assert_eq!(span_count(&t), 2);
    }

    /// A span seen: id, name, parent id, fields.
    type Seen = (u64, &'static str, Option<u64>, String);

    /// Captures span names, fields and parents.
    #[derive(Default, Clone)]
    struct Capture(Arc<std::sync::Mutex<Vec<Seen>>>);

    struct Fields(String);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={:?} ", f.name(), v));
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, a: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            let mut spans = self.0.lock().unwrap();
            let id = spans.len() as u64 + 1;
            let mut f = Fields(String::new());
            a.record(&mut f);
            spans.push((
                id,
                a.metadata().name(),
                a.parent().map(|p| p.into_u64()),
                f.0,
            ));
            tracing::span::Id::from_u64(id)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn log_turn_makes_a_turn_span_with_stage_children() {
        let ms = |v| Some(Duration::from_millis(v));
        let mut t = TurnTrace::new(4);
        t.speech_end = ms(1000);
        t.turn_end = ms(1500);
        t.first_audio_sent = ms(1800);
        let cap = Capture::default();
        tracing::subscriber::with_default(cap.clone(), || log_turn("call_9", "agt_1", &t));
        let spans = cap.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 3, "{spans:?}");
        let (turn_id, name, parent, fields) = &spans[0];
        assert_eq!((*name, *parent), ("turn", None));
        assert!(fields.contains("call_id=\"call_9\""), "{fields}");
        assert!(fields.contains("agent_id=\"agt_1\""), "{fields}");
        assert!(fields.contains("turn=4"), "{fields}");
        assert!(fields.contains("voice_to_voice_ms=800.0"), "{fields}");
        for (_, name, parent, _) in &spans[1..] {
            assert_eq!((*name, *parent), ("stage", Some(*turn_id)));
        }
        assert!(spans[1]
            .3
            .contains("stage=\"endpointing\" start_ms=1000.0 duration_ms=500.0"));
        assert!(spans[2]
            .3
            .contains("stage=\"voice_to_voice\" start_ms=1000.0 duration_ms=800.0"));
    }
}
