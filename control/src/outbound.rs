//! HTTP requests the control plane makes on a tenant's behalf, outside webhook delivery: running
//! an agent tool (`…/tools/{toolId}/test`) and probing a provider with a stored key
//! (`/v1/provider-keys/{provider}/verify`). Both are bounded in time and in how much of the
//! answer they read, and both turn every network failure into a result, never an error: the
//! request that asked for them still succeeds and says what happened.

use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::provider::{Auth, Provider};
use crate::model::tool::ToolSpec;

/// The most of a response body kept for the caller.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What a tool endpoint answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallOutcome {
    /// True when the endpoint answered with a 2xx status.
    pub ok: bool,
    /// The HTTP status, or null when no answer came (see `error`).
    pub status: Option<u16>,
    /// Time from sending the request to the end of the (possibly truncated) body.
    pub latency_ms: i64,
    /// The response body: parsed JSON when it is JSON, else the text.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    /// True when the body was longer than 64 KiB and was cut.
    pub body_truncated: bool,
    /// Why there is no answer: timeout, connection refused, …
    pub error: Option<String>,
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        let mut msg = "connection failed".to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg = format!("connection failed: {s}");
            source = s.source();
        }
        msg
    } else {
        format!("request failed: {e}")
    }
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of a body.
async fn read_capped(mut resp: reqwest::Response) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_RESPONSE_BYTES - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, false))
}

fn body_value(bytes: &[u8], truncated: bool) -> serde_json::Value {
    if bytes.is_empty() {
        return serde_json::Value::Null;
    }
    if !truncated {
        if let Ok(v) = serde_json::from_slice(bytes) {
            return v;
        }
    }
    serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// Arguments as query parameters: strings as they are, other scalars in their JSON form,
/// arrays and objects as JSON text.
fn query_pairs(arguments: &serde_json::Value) -> Vec<(String, String)> {
    let Some(map) = arguments.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

/// Calls a tool's endpoint once with `arguments` (already validated against its schema).
pub async fn call_tool(
    http: &reqwest::Client,
    spec: &ToolSpec,
    agent_id: &str,
    tool_call_id: &str,
    arguments: &serde_json::Value,
    test: bool,
) -> ToolCallOutcome {
    let timeout = Duration::from_millis(spec.timeout_ms.clamp(100, 30_000) as u64);
    let mut req = http
        .request(spec.method.as_reqwest(), &spec.url)
        .timeout(timeout)
        .header("x-parley-tool", &spec.name)
        .header("x-parley-tool-call-id", tool_call_id);
    for (k, v) in &spec.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req = if spec.method.has_body() {
        let body = serde_json::json!({
            "toolCallId": tool_call_id,
            "tool": spec.name,
            "agentId": agent_id,
            "arguments": arguments,
            "test": test,
        });
        if !spec
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        req.body(body.to_string())
    } else {
        req.query(&query_pairs(arguments))
    };
    let started = Instant::now();
    // The per-request timeout covers connect and headers; the outer one also bounds the body.
    let result = tokio::time::timeout(timeout, async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let (bytes, truncated) = read_capped(resp).await?;
        Ok::<_, reqwest::Error>((status, bytes, truncated))
    })
    .await;
    let latency_ms = started.elapsed().as_millis() as i64;
    match result {
        Ok(Ok((status, bytes, truncated))) => ToolCallOutcome {
            ok: (200..300).contains(&status),
            status: Some(status),
            latency_ms,
            body: body_value(&bytes, truncated),
            body_truncated: truncated,
            error: None,
        },
        Ok(Err(e)) => ToolCallOutcome {
            ok: false,
            status: None,
            latency_ms,
            body: serde_json::Value::Null,
            body_truncated: false,
            error: Some(describe(&e)),
        },
        Err(_) => ToolCallOutcome {
            ok: false,
            status: None,
            latency_ms,
            body: serde_json::Value::Null,
            body_truncated: false,
            error: Some("timed out".into()),
        },
    }
}

/// What a provider said about a key.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// The provider answered 2xx: the key works.
    Accepted,
    /// The provider answered 401 or 403: it refuses the key.
    Rejected,
    /// The provider answered something else (rate limit, outage, …).
    Error,
    /// No answer within the time limit (no network, DNS failure, firewall, …).
    Unreachable,
    /// Not attempted (the format is wrong, or probing is disabled).
    Skipped,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeOutcome {
    pub reachability: Reachability,
    /// The provider's HTTP status, when it answered.
    pub http_status: Option<u16>,
    pub latency_ms: Option<i64>,
    pub detail: String,
}

impl ProbeOutcome {
    pub fn skipped(detail: impl Into<String>) -> Self {
        ProbeOutcome {
            reachability: Reachability::Skipped,
            http_status: None,
            latency_ms: None,
            detail: detail.into(),
        }
    }
}

/// Sends the provider's cheap authenticated request with `key` to `base` (the provider's own
/// API unless overridden), giving up after `timeout`.
pub async fn probe_provider(
    http: &reqwest::Client,
    provider: Provider,
    key: &str,
    base: Option<&str>,
    timeout: Duration,
) -> ProbeOutcome {
    let probe = provider.probe();
    let base = base.unwrap_or(probe.default_base).trim_end_matches('/');
    let (user, password) = key.split_once(':').unwrap_or((key, ""));
    let url = format!("{base}{}", probe.path.replace("{user}", user));
    let mut req = http.get(&url).timeout(timeout);
    req = match probe.auth {
        Auth::Bearer => req.bearer_auth(key),
        Auth::Token => req.header("authorization", format!("Token {key}")),
        Auth::Raw => req.header("authorization", key),
        Auth::Header(h) => req.header(h, key),
        Auth::Query(q) => req.query(&[(q, key)]),
        Auth::Basic => req.basic_auth(user, Some(password)),
    };
    for (k, v) in probe.extra_headers {
        req = req.header(*k, *v);
    }
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, req.send()).await;
    let latency_ms = Some(started.elapsed().as_millis() as i64);
    let host = reqwest::Url::parse(base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| base.to_string());
    match result {
        Ok(Ok(resp)) => {
            let status = resp.status().as_u16();
            let (reachability, detail) = match status {
                200..=299 => (Reachability::Accepted, format!("{host} accepted the key")),
                401 | 403 => (
                    Reachability::Rejected,
                    format!("{host} refused the key (HTTP {status})"),
                ),
                _ => (
                    Reachability::Error,
                    format!("{host} answered HTTP {status}; the key could not be checked"),
                ),
            };
            ProbeOutcome {
                reachability,
                http_status: Some(status),
                latency_ms,
                detail,
            }
        }
        Ok(Err(e)) if !e.is_timeout() => ProbeOutcome {
            reachability: Reachability::Unreachable,
            http_status: None,
            latency_ms,
            detail: format!("{host} is unreachable: {}", describe(&e)),
        },
        _ => ProbeOutcome {
            reachability: Reachability::Unreachable,
            http_status: None,
            latency_ms,
            detail: format!(
                "{host} is unreachable: no answer within {} ms",
                timeout.as_millis()
            ),
        },
    }
}
