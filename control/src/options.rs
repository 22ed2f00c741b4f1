//! Settings beyond [`crate::ServeConfig`]'s listen address and database URL.

/// Tunables of the control plane. [`ServeOptions::from_env`] reads them from `PARLEY_*`
/// variables; tests set them directly.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Requests per minute per API key (`PARLEY_RATE_LIMIT_PER_MINUTE`, default 1000).
    pub rate_limit_per_minute: u32,
    /// Master secret for encryption at rest and tokens (`PARLEY_SECRET_KEY`); `None` uses the
    /// development key and logs a warning.
    pub secret_key: Option<String>,
    /// Base URL clients reach this server at, used in returned URLs such as the live-transcript
    /// WebSocket (`PARLEY_PUBLIC_URL`, default `http://<listen address>`).
    pub public_url: Option<String>,
    /// First webhook retry delay in ms; doubles per attempt (`PARLEY_WEBHOOK_RETRY_BASE_MS`,
    /// default 1000).
    pub webhook_retry_base_ms: u64,
    /// Attempts per webhook delivery before it is marked failed
    /// (`PARLEY_WEBHOOK_MAX_ATTEMPTS`, default 6).
    pub webhook_max_attempts: u32,
    /// Timeout of one webhook or tool-test HTTP request, in ms (default 10000).
    pub outbound_timeout_ms: u64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            rate_limit_per_minute: 1000,
            secret_key: None,
            public_url: None,
            webhook_retry_base_ms: 1000,
            webhook_max_attempts: 6,
            outbound_timeout_ms: 10_000,
        }
    }
}

impl ServeOptions {
    pub fn from_env() -> Self {
        let d = ServeOptions::default();
        fn num<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v.parse().unwrap_or_else(|_| {
                    tracing::warn!(%name, value = %v, "ignoring unparsable setting");
                    default
                }),
                Err(_) => default,
            }
        }
        ServeOptions {
            rate_limit_per_minute: num("PARLEY_RATE_LIMIT_PER_MINUTE", d.rate_limit_per_minute),
            secret_key: std::env::var("PARLEY_SECRET_KEY")
                .ok()
                .filter(|s| !s.is_empty()),
            public_url: std::env::var("PARLEY_PUBLIC_URL")
                .ok()
                .filter(|s| !s.is_empty()),
            webhook_retry_base_ms: num("PARLEY_WEBHOOK_RETRY_BASE_MS", d.webhook_retry_base_ms),
            webhook_max_attempts: num("PARLEY_WEBHOOK_MAX_ATTEMPTS", d.webhook_max_attempts),
            outbound_timeout_ms: num("PARLEY_OUTBOUND_TIMEOUT_MS", d.outbound_timeout_ms),
        }
    }
}
