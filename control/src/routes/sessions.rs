//! Twilio Media Streams: the voice webhook that answers with TwiML, and the stream socket
//! that carries the call's audio into the engine. And the direct agent socket
//! (`/v1/agents/{id}/session`): PCM16 both ways and JSON events, for custom clients.
//!
//! Twilio cannot send our API keys, so these routes are public: the webhook is checked with
//! `X-Twilio-Signature` when `TWILIO_AUTH_TOKEN` is set, and the stream socket accepts only a
//! short-lived token signed by the webhook (it names tenant, agent and call). The direct
//! socket takes an API key with write scope, as `Authorization: Bearer` or `?api_key=`
//! (browsers cannot set headers on WebSockets), so it authenticates in its handler.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parley_codecs::SampleRate;
use parley_engine::direct::{self, DirectTransport, Frame, FrameSocket};
use parley_engine::twilio::{TextSocket, TwilioTransport};
use parley_engine::PlaybackAck;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use utoipa::IntoParams;

use crate::auth::Scope;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiPath, ApiQuery};
use crate::media::{self, CallParties, CallTap};
use crate::model::agent::AgentConfig;
use crate::state::AppState;
use crate::store::{agents, col, keys};
use crate::timestamps::now_ms;

/// Read buffer of a media socket. tungstenite zero-fills this much per read (default
/// 128 KiB): at 50 small messages a second per call that memset was a third of the
/// server's CPU under load. Media messages are ~0.4 KiB (Twilio) to ~2 KiB (48 kHz PCM);
/// larger ones are still read, in several steps.
const WS_READ_BUFFER: usize = 4096;

/// How long the stream token of a webhook answer stays valid.
const STREAM_TOKEN_SECONDS: i64 = 120;
/// Largest WebSocket message accepted on the stream (Twilio's are ~250 bytes).
pub const MAX_STREAM_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct TwilioQuery {
    /// The agent that answers.
    pub agent_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StreamClaims {
    /// tenant
    t: String,
    /// agent
    a: String,
    /// call sid
    c: String,
    from: Option<String>,
    to: Option<String>,
    /// expiry, unix seconds
    e: i64,
}

async fn agent_tenant(state: &AppState, agent_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT tenant_id FROM agents WHERE id = $1")
        .bind(agent_id)
        .fetch_optional(&state.db.pool)
        .await?
        .map(|r| col(&r, "tenant_id"))
        .transpose()
}

/// Twilio's request signature: base64(HMAC-SHA1(auth token, URL + sorted key/value pairs)).
fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    match &state.options.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
                .unwrap_or("localhost");
            let proto = headers
                .get("x-forwarded-proto")
                .and_then(|h| h.to_str().ok())
                .filter(|p| *p == "https")
                .unwrap_or("http");
            format!("{proto}://{host}")
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Twilio voice webhook: answers with TwiML that connects the call to a Media Stream
#[utoipa::path(post, path = "/v1/sessions/twilio", tag = "sessions", security(()),
    params(TwilioQuery),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's voice webhook parameters (CallSid, From, To, AccountSid, …)"),
    responses((status = 200, description = "TwiML", content_type = "application/xml"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn twilio_webhook(
    State(state): State<AppState>,
    Query(q): Query<TwilioQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not a form: {e}")))?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let base = public_base(&state, &headers);
    if let Ok(token) = std::env::var("TWILIO_AUTH_TOKEN") {
        if !token.is_empty() {
            let mut url = format!("{base}/v1/sessions/twilio");
            if let Some(a) = &q.agent_id {
                url.push_str(&format!("?agentId={a}"));
            }
            let want = twilio_signature(&token, &url, &params);
            let got = headers
                .get("x-twilio-signature")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if got != want {
                return Err(ApiError::unauthorized("X-Twilio-Signature does not match"));
            }
        }
    }
    let agent_id = q
        .agent_id
        .clone()
        .or_else(|| get("agentId"))
        .ok_or_else(|| ApiError::bad_request("agentId is required (query parameter)"))?;
    let call_sid = get("CallSid").ok_or_else(|| ApiError::bad_request("CallSid is required"))?;
    if !crate::ids::looks_like("agt", &agent_id) {
        return Err(ApiError::not_found("Agent"));
    }
    let tenant = agent_tenant(&state, &agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent"))?;
    let agent = agents::get(&state.db, &tenant, &agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent"))?;
    if agent.status == "inactive" {
        return Err(ApiError::conflict("the agent is inactive"));
    }
    let claims = StreamClaims {
        t: tenant,
        a: agent_id.clone(),
        c: call_sid,
        from: get("From"),
        to: get("To"),
        e: now_ms() / 1000 + STREAM_TOKEN_SECONDS,
    };
    let token = state
        .secrets
        .sign_token(&serde_json::to_string(&claims).unwrap_or_default());
    let ws = base
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let twiml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect><Stream url=\"{}/v1/sessions/twilio/stream\"><Parameter name=\"agentId\" value=\"{}\"/><Parameter name=\"token\" value=\"{}\"/></Stream></Connect></Response>",
        xml_escape(&ws),
        xml_escape(&agent_id),
        xml_escape(&token)
    );
    Ok(([(header::CONTENT_TYPE, "application/xml")], twiml).into_response())
}

/// Twilio Media Streams WebSocket (the `<Stream>` of the webhook's TwiML)
#[utoipa::path(get, path = "/v1/sessions/twilio/stream", tag = "sessions", security(()),
    responses((status = 101, description = "Switching to the Media Streams protocol"),
        (status = 400, body = crate::error::ErrorBody)))]
pub async fn twilio_stream(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws =
        ws.map_err(|_| ApiError::bad_request("this endpoint needs a WebSocket upgrade request"))?;
    Ok(ws
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(MAX_STREAM_MESSAGE)
        .max_frame_size(MAX_STREAM_MESSAGE)
        .on_upgrade(move |socket| twilio_call(state, socket)))
}

/// axum's WebSocket as the text socket the Media Streams transport reads.
struct AxumSocket(WebSocket);

impl TextSocket for AxumSocket {
    async fn recv(&mut self) -> Option<Result<String, String>> {
        loop {
            return match self.0.recv().await? {
                Ok(Message::Text(t)) => Some(Ok(t.to_string())),
                // Not part of the protocol: hand it on as text so it is counted as malformed.
                Ok(Message::Binary(b)) => Some(Ok(String::from_utf8_lossy(&b).into_owned())),
                Ok(Message::Close(_)) => None,
                Ok(_) => continue,
                Err(e) => Some(Err(e.to_string())),
            };
        }
    }

    async fn send(&mut self, text: String) -> Result<(), String> {
        self.0
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| e.to_string())
    }

    async fn close(&mut self) {
        let _ = self.0.send(Message::Close(None)).await;
    }
}

async fn twilio_call(state: AppState, socket: WebSocket) {
    let (transport, start) = match TwilioTransport::accept(AxumSocket(socket)).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "twilio stream ended before start");
            return;
        }
    };
    let claims = start
        .custom_parameters
        .get("token")
        .and_then(|t| state.secrets.verify_token(t))
        .and_then(|p| serde_json::from_str::<StreamClaims>(&p).ok())
        .filter(|c| c.e >= now_ms() / 1000);
    let Some(claims) = claims else {
        tracing::warn!(stream = %start.stream_sid, "twilio stream refused: missing, bad or expired token");
        let mut t = transport;
        parley_engine::session::Transport::close(&mut t).await;
        return;
    };
    let agent = match agents::get(&state.db, &claims.t, &claims.a).await {
        Ok(Some(a)) => a,
        _ => {
            tracing::warn!(agent = %claims.a, "twilio stream refused: agent not found");
            return;
        }
    };
    let config = published_config(&state, &claims.t, &agent).await;
    let vars: HashMap<String, String> = start
        .custom_parameters
        .iter()
        .filter(|(k, _)| k.as_str() != "token")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let spec = match state.media.agent_spec(&config, &vars, SampleRate::Hz8000) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(agent = %claims.a, error = %e, "twilio stream refused: agent cannot run");
            return;
        }
    };
    media::run_call(
        state.clone(),
        claims.t,
        claims.a,
        spec,
        config.recording.enabled,
        CallParties {
            channel: "twilio",
            from: claims.from,
            to: claims.to,
        },
        transport,
        None,
    )
    .await;
}

/// Largest message accepted on the direct socket: one second of 48 kHz PCM16, with room.
pub const MAX_DIRECT_MESSAGE: usize = 128 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentSessionQuery {
    /// Sample rate of the PCM16 audio both ways: 8000, 16000 (default), 24000 or 48000.
    pub rate: Option<String>,
    /// An API key with write scope, when the client cannot send `Authorization: Bearer`.
    pub api_key: Option<String>,
}

/// The tenant of a key with write scope presented as a bearer header or `?api_key=`.
async fn write_key_tenant(
    state: &AppState,
    headers: &HeaderMap,
    query_key: Option<&str>,
) -> ApiResult<String> {
    let header_key = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let secret = header_key.or(query_key).ok_or_else(|| {
        ApiError::unauthorized("pass an API key as `Authorization: Bearer plabs_…` or `?api_key=`")
    })?;
    if !secret.starts_with("plabs_") || secret.len() > 128 {
        return Err(ApiError::unauthorized("malformed API key"));
    }
    let key = match keys::find_by_secret(&state.db, secret).await? {
        Some(k) if !k.revoked => k,
        _ => return Err(ApiError::unauthorized("invalid API key")),
    };
    let now_s = now_ms().div_euclid(1000);
    if !state.limiter.check(&key.key_id, now_s).allowed {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "rate limit exceeded; retry after the reset time",
        ));
    }
    let scope = key.scopes.iter().filter_map(|s| Scope::parse(s)).max();
    if scope.is_none_or(|s| s < Scope::Write) {
        return Err(ApiError::forbidden(
            "this API key lacks the `write` scope this request needs",
        ));
    }
    Ok(key.tenant_id)
}

/// Direct agent session WebSocket: talk to an agent with raw PCM16 audio.
///
/// Binary frames are PCM16 little-endian mono at `rate`, both ways: caller audio in (any
/// length, sent in real time), agent audio out (20 ms frames, paced). Text frames from the
/// server are JSON events: `session.started` (callId, sampleRate), `transcript.partial`,
/// `transcript.final` (role, text, interrupted), `turn.ended`, `interrupted` (playedMs),
/// `latency` (per turn: speechEndToFirstAudioMs and the stamped stages), `dtmf`, `clear`
/// (drop queued agent audio), `error` (message), `session.ended` (reason). The client may
/// send `{"type":"dtmf","digit":"5"}` and `{"type":"end"}`. Authenticates with an API key
/// with write scope, as a bearer header or `?api_key=` (browsers cannot set headers on
/// WebSockets).
#[utoipa::path(get, path = "/v1/agents/{id}/session", tag = "sessions",
    params(("id" = String, Path, description = "The agent"), AgentSessionQuery),
    responses((status = 101, description = "Switching to the direct session protocol"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn agent_session(
    State(state): State<AppState>,
    ApiPath(agent_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AgentSessionQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let tenant = write_key_tenant(&state, &headers, q.api_key.as_deref()).await?;
    let rate = match q.rate.as_deref() {
        None => SampleRate::Hz16000,
        Some(r) => r
            .trim()
            .parse::<u32>()
            .ok()
            .and_then(SampleRate::from_hz)
            .ok_or_else(|| {
                ApiError::validation("rate", "must be one of 8000, 16000, 24000, 48000")
            })?,
    };
    if !crate::ids::looks_like("agt", &agent_id) {
        return Err(ApiError::not_found("Agent"));
    }
    let agent = agents::get(&state.db, &tenant, &agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent"))?;
    if agent.status == "inactive" {
        return Err(ApiError::conflict("the agent is inactive"));
    }
    let ws =
        ws.map_err(|_| ApiError::bad_request("this endpoint needs a WebSocket upgrade request"))?;
    let config = published_config(&state, &tenant, &agent).await;
    let mut spec = state
        .media
        .agent_spec(&config, &HashMap::new(), rate)
        .map_err(|e| ApiError::conflict(format!("the agent cannot run: {e}")))?;
    // The client plays audio as it arrives: what was sent is what was heard.
    spec.call.playback.ack = PlaybackAck::Sent;
    let record = config.recording.enabled;
    Ok(ws
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(MAX_DIRECT_MESSAGE)
        .max_frame_size(MAX_DIRECT_MESSAGE)
        .on_upgrade(move |socket| direct_call(state, tenant, agent_id, spec, record, rate, socket)))
}

/// What the socket task sends.
enum Outgoing {
    Frame(Frame),
    Close,
}

/// The direct transport's side of the socket task: frames in and out over channels.
struct PumpSocket {
    rx: mpsc::Receiver<Result<Frame, String>>,
    tx: mpsc::Sender<Outgoing>,
    /// Fires once `session.started` is queued: nothing of the call goes out before it.
    started: Option<oneshot::Receiver<()>>,
}

impl PumpSocket {
    /// Cancel-safe: the receiver stays until it fires (or its sender is gone).
    async fn wait_started(&mut self) {
        if let Some(rx) = self.started.as_mut() {
            let _ = rx.await;
            self.started = None;
        }
    }
}

impl FrameSocket for PumpSocket {
    async fn recv(&mut self) -> Option<Result<Frame, String>> {
        self.wait_started().await;
        self.rx.recv().await
    }

    async fn send(&mut self, frame: Frame) -> Result<(), String> {
        self.wait_started().await;
        self.tx
            .send(Outgoing::Frame(frame))
            .await
            .map_err(|_| "websocket closed".to_string())
    }

    /// The route closes the socket itself, after `session.ended`.
    async fn close(&mut self) {}
}

/// Owns the WebSocket: sends what `out` carries (audio, events) and hands what the client
/// sends to `inbound`. Sending never waits on the session reading, and reading waits
/// (backpressure on the client) while the session has not taken the last frame.
async fn pump_socket(
    mut socket: WebSocket,
    inbound: mpsc::Sender<Result<Frame, String>>,
    mut out: mpsc::Receiver<Outgoing>,
) {
    let mut inbound = Some(inbound);
    let mut pending: Option<Result<Frame, String>> = None;
    loop {
        // Reading stops when the client closed or the session is over.
        let mut stop_reading = false;
        tokio::select! {
            biased;
            o = out.recv() => match o {
                Some(Outgoing::Frame(f)) => {
                    let msg = match f {
                        Frame::Binary(b) => Message::Binary(b.into()),
                        Frame::Text(t) => Message::Text(t.into()),
                    };
                    if socket.send(msg).await.is_err() {
                        return;
                    }
                }
                Some(Outgoing::Close) | None => {
                    close_gracefully(socket).await;
                    return;
                }
            },
            permit = reserve(inbound.as_ref()), if pending.is_some() => match permit {
                Some(p) => p.send(pending.take().unwrap()),
                // The session is over; the route still sends its last events.
                None => stop_reading = true,
            },
            m = socket.recv(), if inbound.is_some() && pending.is_none() => match m {
                Some(Ok(Message::Binary(b))) => pending = Some(Ok(Frame::Binary(b.to_vec()))),
                Some(Ok(Message::Text(t))) => pending = Some(Ok(Frame::Text(t.to_string()))),
                // The session sees the closed channel and ends; its last events still go out
                // (and fail quietly if the client is gone).
                Some(Ok(Message::Close(_))) | None => stop_reading = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => pending = Some(Err(e.to_string())),
            },
        }
        if stop_reading {
            pending = None;
            inbound = None;
        }
    }
}

/// Sends a close frame and waits (briefly) for the client's, reading past what it still
/// sends, so the connection ends with a closing handshake rather than a reset.
async fn close_gracefully(mut socket: WebSocket) {
    if socket.send(Message::Close(None)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn reserve<T>(tx: Option<&mpsc::Sender<T>>) -> Option<mpsc::Permit<'_, T>> {
    tx?.reserve().await.ok()
}

async fn direct_call(
    state: AppState,
    tenant: String,
    agent_id: String,
    spec: parley_engine::session::AgentSpec,
    record: bool,
    rate: SampleRate,
    socket: WebSocket,
) {
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, out_rx) = mpsc::channel(256);
    let pump = tokio::spawn(pump_socket(socket, in_tx, out_rx));

    // Session events reach the client through the same socket, in order.
    let (started_tx, started_rx) = oneshot::channel::<String>();
    let (gate_tx, gate_rx) = oneshot::channel::<()>();
    let (ev_tx, mut ev_rx) = mpsc::channel(1024);
    let events_out = out_tx.clone();
    let forwarder = tokio::spawn(async move {
        let Ok(call_id) = started_rx.await else {
            return;
        };
        let started = direct::started_message(&call_id, rate.hz());
        let _ = events_out.send(Outgoing::Frame(Frame::Text(started))).await;
        let _ = gate_tx.send(());
        while let Some(ev) = ev_rx.recv().await {
            if let Some(text) = direct::event_message(&ev) {
                if events_out
                    .send(Outgoing::Frame(Frame::Text(text)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });

    let transport = DirectTransport::new(PumpSocket {
        rx: in_rx,
        tx: out_tx.clone(),
        started: Some(gate_rx),
    });
    let reason = media::run_call(
        state,
        tenant,
        agent_id,
        spec,
        record,
        CallParties {
            channel: "websocket",
            from: None,
            to: None,
        },
        transport,
        Some(CallTap {
            started: started_tx,
            events: ev_tx,
        }),
    )
    .await;
    // Every event of the call is out before the end is announced.
    let _ = forwarder.await;
    let _ = out_tx
        .send(Outgoing::Frame(Frame::Text(direct::ended_message(&reason))))
        .await;
    let _ = out_tx.send(Outgoing::Close).await;
    let _ = pump.await;
}

/// The published configuration when the agent has one, else the current one.
async fn published_config(state: &AppState, tenant: &str, agent: &agents::Agent) -> AgentConfig {
    if let Some(v) = agent.published_version {
        if let Ok(Some(ver)) = agents::get_version(&state.db, tenant, &agent.id, v).await {
            if let Some(c) = ver.config {
                return c;
            }
        }
    }
    agent.config.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_twilios_documented_example() {
        // The vector of Twilio's own request-validator tests.
        let mut params = vec![
            ("CallSid".to_string(), "CA1234567890ABCDE".to_string()),
            ("Caller".to_string(), "+14158675309".to_string()),
            ("Digits".to_string(), "1234".to_string()),
            ("From".to_string(), "+14158675309".to_string()),
            ("To".to_string(), "+18005551212".to_string()),
        ];
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let want = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert_eq!(twilio_signature("12345", url, &params), want);
        // Field order does not matter; a tampered value does.
        params.reverse();
        assert_eq!(twilio_signature("12345", url, &params), want);
        params[0].1 = "+10000000000".into();
        assert_ne!(twilio_signature("12345", url, &params), want);
    }
}
