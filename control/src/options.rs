//! Settings beyond [`crate::ServeConfig`]'s listen address and database URL.

use std::collections::BTreeMap;

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
    /// Whether `POST /v1/provider-keys/{provider}/verify` also asks the provider whether it
    /// accepts the key (`PARLEY_PROVIDER_VERIFY_REACHABILITY`, default true; set 0 on hosts
    /// without internet access to check formats only).
    pub provider_verify_reachability: bool,
    /// How long that request may take before the provider is reported unreachable, in ms
    /// (`PARLEY_PROVIDER_VERIFY_TIMEOUT_MS`, default 3000).
    pub provider_verify_timeout_ms: u64,
    /// Base URLs that replace a provider's own API for verification, by provider name
    /// (`PARLEY_PROVIDER_URL_OPENAI=http://proxy:8080`, …): proxies, gateways and test fakes.
    pub provider_base_urls: BTreeMap<String, String>,
    /// Store per-turn latency traces (`PARLEY_TRACES`, default on; `off` to measure what
    /// tracing costs).
    pub traces_enabled: bool,
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
            provider_verify_reachability: true,
            provider_verify_timeout_ms: 3000,
            provider_base_urls: BTreeMap::new(),
            traces_enabled: true,
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
            provider_verify_reachability: !matches!(
                std::env::var("PARLEY_PROVIDER_VERIFY_REACHABILITY").as_deref(),
                Ok("0" | "false" | "no" | "off")
            ),
            provider_verify_timeout_ms: num(
                "PARLEY_PROVIDER_VERIFY_TIMEOUT_MS",
                d.provider_verify_timeout_ms,
            ),
            provider_base_urls: crate::model::provider::ALL
                .iter()
                .filter_map(|p| {
                    let var = format!("PARLEY_PROVIDER_URL_{}", p.as_str().to_uppercase());
                    std::env::var(var)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .map(|v| (p.as_str().to_string(), v))
                })
                .collect(),
            traces_enabled: !matches!(
                std::env::var("PARLEY_TRACES").as_deref(),
                Ok("0" | "false" | "no" | "off")
            ),
        }
    }
}
