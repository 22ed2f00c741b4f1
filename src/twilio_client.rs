//! Twilio's side of a Media Streams call, shared by `parley dial` (one call, recorded) and
//! `parley load` (many calls, measured): the voice webhook and its TwiML, the messages
//! Twilio sends on the stream, and the pacing measure of the agent's audio.
//!
//! Both tools must speak to the server exactly as Twilio does, and must measure pacing the
//! same way, so that a figure from `dial` and one from `load` mean the same thing.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::json;

/// The `<Stream url>` and `<Parameter>`s of a TwiML answer.
pub fn parse_twiml(xml: &str) -> anyhow::Result<(String, Vec<(String, String)>)> {
    fn attr(tag: &str, name: &str) -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(
            tag[start..end]
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    }
    let stream_at = xml
        .find("<Stream")
        .ok_or_else(|| anyhow!("TwiML has no <Stream>: {xml}"))?;
    let stream_tag = &xml[stream_at
        ..xml[stream_at..]
            .find('>')
            .map_or(xml.len(), |e| stream_at + e)];
    let url = attr(stream_tag, "url").ok_or_else(|| anyhow!("<Stream> has no url"))?;
    let mut params = Vec::new();
    let mut rest = &xml[stream_at..];
    while let Some(p) = rest.find("<Parameter") {
        let end = rest[p..].find('>').map_or(rest.len(), |e| p + e);
        let tag = &rest[p..end];
        if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
            params.push((n, v));
        }
        rest = &rest[end..];
    }
    Ok((url, params))
}

/// What Twilio knows about the call it is placing into the server.
pub struct CallIds<'a> {
    pub call_sid: &'a str,
    pub account_sid: &'a str,
    pub stream_sid: &'a str,
}

/// Calls the voice webhook for `agent` as Twilio would; returns the stream URL and the
/// custom parameters of the TwiML answer. Only plain `ws://` streams are accepted: the tools
/// talk to the server directly, never through TLS.
pub async fn answer(
    http: &reqwest::Client,
    server: &str,
    agent: &str,
    ids: &CallIds<'_>,
) -> anyhow::Result<(String, Vec<(String, String)>)> {
    let resp = http
        .post(format!("{server}/v1/sessions/twilio?agentId={agent}"))
        .form(&[
            ("CallSid", ids.call_sid),
            ("AccountSid", ids.account_sid),
            ("From", "+15550100001"),
            ("To", "+15550100002"),
            ("Direction", "inbound"),
        ])
        .send()
        .await
        .with_context(|| format!("cannot reach {server}"))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!("the voice webhook answered {status}: {body}");
    }
    let (url, params) = parse_twiml(&body)?;
    if url.starts_with("wss://") {
        bail!("the stream is {url}: only plain ws:// is spoken here (reach the server directly, not through TLS)");
    }
    Ok((url, params))
}

/// The first message on a Media Stream.
pub fn connected_message() -> String {
    json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string()
}

/// The `start` message, carrying the TwiML's `<Parameter>`s as custom parameters.
pub fn start_message(ids: &CallIds<'_>, params: &[(String, String)]) -> String {
    let custom: serde_json::Map<String, serde_json::Value> =
        params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({
        "event": "start", "sequenceNumber": "1", "streamSid": ids.stream_sid,
        "start": {"accountSid": ids.account_sid, "streamSid": ids.stream_sid, "callSid": ids.call_sid,
            "tracks": ["inbound"], "customParameters": custom,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
    })
    .to_string()
}

/// The `stop` message: the caller hung up.
pub fn stop_message(ids: &CallIds<'_>) -> String {
    json!({"event": "stop", "streamSid": ids.stream_sid,
        "stop": {"accountSid": ids.account_sid, "callSid": ids.call_sid}})
    .to_string()
}

/// The echo of a mark: playback reached it.
pub fn mark_message(stream_sid: &str, name: &str) -> String {
    json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}).to_string()
}

/// Frames the engine sends at once when an utterance starts (its 100 ms playback lead, plus
/// the frame due now), before settling into one every 20 ms.
pub const LEAD_FRAMES: usize = 6;

/// A gap between agent frames longer than this (ms) starts a new run (a new utterance).
pub const RUN_GAP_MS: f64 = 200.0;

/// Deviation (ms) of each agent frame's arrival from a 20 ms grid. Frames arrive in runs
/// (one per utterance, split where no frame came for [`RUN_GAP_MS`]); each run's first
/// [`LEAD_FRAMES`] are the playback lead, sent at once by design, and are skipped. Within the
/// rest of a run frame k is due at offset + 20·k, the offset being the run's median, so a run
/// that is evenly paced but shifted as a whole has no deviation. Runs of fewer than five
/// steady frames are too short to anchor a grid and are skipped.
pub fn pacing_deviations(times_ms: &[f64]) -> Vec<f64> {
    let mut devs: Vec<f64> = Vec::new();
    let mut run_start = 0;
    for i in 1..=times_ms.len() {
        if i == times_ms.len() || times_ms[i] - times_ms[i - 1] > RUN_GAP_MS {
            run_deviations(&times_ms[run_start..i], &mut devs);
            run_start = i;
        }
    }
    devs
}

fn run_deviations(run: &[f64], devs: &mut Vec<f64>) {
    let steady = &run[LEAD_FRAMES.min(run.len())..];
    if steady.len() < 5 {
        return;
    }
    let offsets: Vec<f64> = steady
        .iter()
        .enumerate()
        .map(|(k, t)| t - 20.0 * k as f64)
        .collect();
    let mut sorted = offsets.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted[sorted.len() / 2];
    devs.extend(offsets.iter().map(|o| (o - median).abs()));
}

/// p50, p99 and max of [`pacing_deviations`] (0 when there are none).
pub fn pacing(times_ms: &[f64]) -> (f64, f64, f64) {
    let mut devs = pacing_deviations(times_ms);
    if devs.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    devs.sort_by(|a, b| a.total_cmp(b));
    (
        quantile(&devs, 0.5),
        quantile(&devs, 0.99),
        *devs.last().unwrap_or(&0.0),
    )
}

/// The `p` quantile of sorted values (nearest rank on `(n − 1)·p`); 0 when empty.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A random-looking id part, without a random-number dependency.
pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// The HTTP client both tools use for the webhook and the API.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_measures_deviation_from_the_grid() {
        // A burst of 6 (the lead), then 20 ms steps with one frame 6 ms late; then a
        // second run whose burst comes spread out.
        let mut t = vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5];
        t.extend((1..=10).map(|k| 2.5 + 20.0 * k as f64));
        t[10] += 6.0;
        t.extend([1000.0, 1016.0, 1030.0, 1044.0, 1050.0, 1060.0]);
        t.extend((1..=6).map(|k| 1060.0 + 20.0 * k as f64));
        let (p50, p99, max) = pacing(&t);
        assert_eq!(p50, 0.0);
        assert_eq!((p99, max), (6.0, 6.0));
        // Deviations only for the steady frames: 10 of the first run, 6 of the second.
        assert_eq!(pacing_deviations(&t).len(), 16);
    }

    #[test]
    fn short_runs_give_no_figures() {
        assert_eq!(pacing(&[]), (0.0, 0.0, 0.0));
        assert!(pacing_deviations(&[0.0, 1.0, 2.0, 20.0, 40.0, 60.0, 80.0]).is_empty());
    }

    #[test]
    fn twiml_stream_and_parameters_are_read() {
        let xml = r#"<?xml version="1.0"?><Response><Connect><Stream url="ws://h:1/v1/sessions/twilio/stream"><Parameter name="agentId" value="agt_1"/><Parameter name="token" value="a&amp;b"/></Stream></Connect></Response>"#;
        let (url, params) = parse_twiml(xml).unwrap();
        assert_eq!(url, "ws://h:1/v1/sessions/twilio/stream");
        assert_eq!(
            params,
            vec![
                ("agentId".into(), "agt_1".into()),
                ("token".into(), "a&b".into())
            ]
        );
        assert!(parse_twiml("<Response/>").is_err());
    }

    #[test]
    fn stream_messages_are_twilio_shaped() {
        let ids = CallIds {
            call_sid: "CA1",
            account_sid: "AC1",
            stream_sid: "MZ1",
        };
        let start: serde_json::Value =
            serde_json::from_str(&start_message(&ids, &[("token".into(), "t".into())])).unwrap();
        assert_eq!(start["start"]["customParameters"]["token"], "t");
        assert_eq!(start["start"]["mediaFormat"]["sampleRate"], 8000);
        let stop: serde_json::Value = serde_json::from_str(&stop_message(&ids)).unwrap();
        assert_eq!(stop["event"], "stop");
        let mark: serde_json::Value = serde_json::from_str(&mark_message("MZ1", "p8")).unwrap();
        assert_eq!(mark["mark"]["name"], "p8");
    }
}
