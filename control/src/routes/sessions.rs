//! Twilio Media Streams: the voice webhook that answers with TwiML, and the stream socket
//! that carries the call's audio into the engine.
//!
//! Twilio cannot send our API keys, so these routes are public: the webhook is checked with
//! `X-Twilio-Signature` when `TWILIO_AUTH_TOKEN` is set, and the stream socket accepts only a
//! short-lived token signed by the webhook (it names tenant, agent and call).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parley_codecs::SampleRate;
use parley_engine::twilio::{TextSocket, TwilioTransport};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};
use crate::media::{self, CallParties};
use crate::model::agent::AgentConfig;
use crate::state::AppState;
use crate::store::{agents, col};
use crate::timestamps::now_ms;

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
pub async fn twilio_stream(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_STREAM_MESSAGE)
        .max_frame_size(MAX_STREAM_MESSAGE)
        .on_upgrade(move |socket| twilio_call(state, socket))
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
    )
    .await;
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
