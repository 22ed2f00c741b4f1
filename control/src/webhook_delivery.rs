//! The webhook delivery worker: sends queued deliveries, signed, retrying failures with
//! exponential backoff, and logs every attempt.
//!
//! Signature scheme (documented for receivers): headers `X-Parley-Timestamp: <unix seconds>`
//! and `X-Parley-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`; reject
//! timestamps more than a few minutes old to defeat replays.

use std::time::{Duration, Instant};

use crate::crypto::webhook_signature;
use crate::state::AppState;
use crate::store::webhooks::{self, Due, Outcome};
use crate::timestamps::now_ms;

/// How long a claimed delivery is reserved for this node before another may take it.
const LEASE_MS: i64 = 60_000;
/// The longest wait between two retries.
const MAX_BACKOFF_MS: u64 = 3_600_000;

/// Delay before attempt `n + 1` after `n` failed attempts: base × 2^(n−1), capped.
pub fn backoff_ms(base_ms: u64, failed_attempts: u32) -> u64 {
    let exp = failed_attempts.saturating_sub(1).min(20);
    base_ms.saturating_mul(1u64 << exp).min(MAX_BACKOFF_MS)
}

/// Runs until the process ends: waits for a wake-up (new deliveries) or a poll tick (retries
/// falling due), then sends what is due.
pub async fn run(state: AppState) {
    let tick = Duration::from_millis(state.options.webhook_retry_base_ms.clamp(50, 1000));
    loop {
        match webhooks::claim_due(&state.db, 32, LEASE_MS).await {
            Ok(batch) => {
                let busy = !batch.is_empty();
                for due in batch {
                    deliver(&state, due).await;
                }
                if busy {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read due webhook deliveries"),
        }
        tokio::select! {
            _ = state.webhook_wake.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

async fn deliver(state: &AppState, due: Due) {
    let attempt = due.attempts + 1;
    let started = Instant::now();
    let result = match state.secrets.decrypt(&due.secret_enc) {
        None => {
            Err("cannot decrypt the signing secret (was PARLEY_SECRET_KEY changed?)".to_string())
        }
        Some(secret) => {
            let ts = now_ms() / 1000;
            let signature = webhook_signature(&secret, ts, due.payload.as_bytes());
            state
                .http
                .post(&due.url)
                .header("content-type", "application/json")
                .header("x-parley-event", &due.event)
                .header("x-parley-delivery", &due.id)
                .header("x-parley-timestamp", ts.to_string())
                .header("x-parley-signature", format!("v1={signature}"))
                .body(due.payload.clone())
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))
                .map(|resp| resp.status().as_u16())
        }
    };
    let duration_ms = started.elapsed().as_millis() as i64;
    let (code, error) = match result {
        Ok(code) if (200..300).contains(&code) => (Some(code as i64), None),
        Ok(code) => (
            Some(code as i64),
            Some(format!("receiver answered HTTP {code}")),
        ),
        Err(e) => (None, Some(e)),
    };
    let outcome = if error.is_none() {
        Outcome::Delivered
    } else if attempt >= state.options.webhook_max_attempts as i64 {
        Outcome::GaveUp
    } else {
        let delay = backoff_ms(state.options.webhook_retry_base_ms, attempt as u32);
        Outcome::RetryAt(now_ms() + delay as i64)
    };
    if let Err(e) = webhooks::record_attempt(
        &state.db,
        &due.id,
        attempt,
        code,
        error.as_deref(),
        duration_ms,
        outcome,
    )
    .await
    {
        tracing::error!(error = %e, delivery = %due.id, "cannot record webhook attempt");
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_ms(1000, 1), 1000);
        assert_eq!(backoff_ms(1000, 2), 2000);
        assert_eq!(backoff_ms(1000, 5), 16000);
        assert_eq!(backoff_ms(1000, 40), 3_600_000);
    }
}
