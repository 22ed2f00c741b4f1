//! Shared state handed to every handler.

use std::sync::Arc;

use crate::auth::AuthCache;
use crate::crypto::Secrets;
use crate::dispatch::CallDispatcher;
use crate::options::ServeOptions;
use crate::ratelimit::RateLimiter;
use crate::store::Db;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub secrets: Secrets,
    pub auth_cache: Arc<AuthCache>,
    pub limiter: Arc<RateLimiter>,
    pub dispatcher: Arc<dyn CallDispatcher>,
    /// Wakes the webhook delivery worker when new deliveries are queued.
    pub webhook_wake: Arc<tokio::sync::Notify>,
    pub options: Arc<ServeOptions>,
    /// The generated OpenAPI document, served at `/openapi.json` and indexed by `GET /v1`.
    pub openapi: Arc<serde_json::Value>,
    /// Outbound HTTP for webhooks and tool tests.
    pub http: reqwest::Client,
    /// DSP workers and the live calls of this node.
    pub media: Arc<crate::media::MediaPlane>,
    /// Finished turns on their way to the store.
    pub traces: Arc<crate::traces::TraceSink>,
}
