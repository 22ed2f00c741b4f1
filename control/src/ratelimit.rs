//! Per-key request rate limiting: a fixed one-minute window per API key, in memory.
//!
//! Limits are per node; with several nodes behind a balancer a key gets up to N × limit. That
//! trade keeps the hot path free of a database write per request.

use std::collections::HashMap;
use std::sync::Mutex;

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds when the window resets.
    pub reset: i64,
}

pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request by `key` at unix second `now`.
    pub fn check(&self, key: &str, now: i64) -> Decision {
        let window = now - now.rem_euclid(60);
        let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            // Forget stale windows so that many short-lived keys cannot grow the map forever.
            map.retain(|_, (w, _)| *w == window);
        }
        // Look up by &str first: allocating the key only for a new bucket keeps the hot path
        // allocation-free.
        let entry = match map.get_mut(key) {
            Some(e) => e,
            None => map.entry(key.to_string()).or_insert((window, 0)),
        };
        if entry.0 != window {
            *entry = (window, 0);
        }
        let allowed = entry.1 < self.per_minute;
        if allowed {
            entry.1 += 1;
        }
        Decision {
            allowed,
            limit: self.per_minute,
            remaining: self.per_minute.saturating_sub(entry.1),
            reset: window + 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_a_window_and_resets_after() {
        let rl = RateLimiter::new(2);
        assert!(rl.check("k", 120).allowed);
        let d = rl.check("k", 130);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(!rl.check("k", 179).allowed);
        assert!(rl.check("other", 179).allowed);
        let d = rl.check("k", 180);
        assert!(d.allowed);
        assert_eq!(d.reset, 240);
    }
}
