//! Bearer-key authentication, scopes, and the per-key rate limit, applied to every `/v1` route.
//!
//! Key lookups are cached for a couple of seconds: the hot read path (GET an agent) would
//! otherwise cost two queries. Revoking or rotating on this node evicts at once; other nodes
//! sharing Postgres see it within the cache TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};
use crate::ratelimit::Decision;
use crate::state::AppState;
use crate::store::keys::{self, KeyAuth};

/// What a key may do. `admin` includes `write`, which includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// The authenticated caller, available to handlers as an extractor.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub tenant_id: String,
    pub scope: Scope,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("missing API key"))
    }
}

const CACHE_TTL: Duration = Duration::from_secs(2);
const TOUCH_EVERY_MS: i64 = 60_000;

/// A key as the hot path needs it: looked up once per TTL, then shared (no per-request copies).
struct CachedKey {
    key: KeyAuth,
    scope: Scope,
}

/// A cached key and when it was looked up.
type CacheEntry = (Arc<CachedKey>, Instant);

/// Recently seen keys (by the SHA-256 of the presented secret) and when each key's
/// `last_used_at` was last written.
#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<[u8; 32], CacheEntry>>,
    touched: Mutex<HashMap<String, i64>>,
}

impl AuthCache {
    fn get(&self, hash: &[u8; 32]) -> Option<Arc<CachedKey>> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(k, _)| k.clone())
    }

    fn put(&self, hash: [u8; 32], key: Arc<CachedKey>) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        map.insert(hash, (key, Instant::now()));
    }

    /// Drops a key from the cache after it was revoked or rotated.
    pub fn evict(&self, key_id: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (k, _)| k.key.key_id != key_id);
    }

    /// Whether `last_used_at` is due to be written for this key.
    fn should_touch(&self, key_id: &str, now_ms: i64) -> bool {
        let mut map = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(key_id) {
            Some(t) if now_ms - *t < TOUCH_EVERY_MS => false,
            Some(t) => {
                *t = now_ms;
                true
            }
            None => {
                map.insert(key_id.to_string(), now_ms);
                true
            }
        }
    }
}

fn required_scope(method: &Method, path: &str) -> Scope {
    if path.starts_with("/v1/keys")
        || (path.starts_with("/v1/provider-keys") && method != Method::GET)
    {
        // Credentials: minting keys and storing or probing provider keys.
        Scope::Admin
    } else if method == Method::GET || method == Method::HEAD {
        Scope::Read
    } else {
        Scope::Write
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The rate-limit bucket of requests that carry no valid key: one per client address when the
/// server knows it, else one shared bucket. A client hammering with bad keys gets 429s.
fn anonymous_bucket(req: &Request) -> String {
    match req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        Some(ci) => format!("anon:{}", ci.0.ip()),
        None => "anon".to_string(),
    }
}

fn limit_headers(response: &mut Response, decision: &Decision, now_s: i64) {
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    h.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    h.insert("x-ratelimit-reset", HeaderValue::from(decision.reset));
    if !decision.allowed {
        let wait = (decision.reset - now_s).max(1);
        h.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
}

fn rate_limited(decision: &Decision) -> Response {
    ApiError::new(
        ErrorCode::RateLimited,
        format!(
            "rate limit of {} requests per minute exceeded; retry after the reset time",
            decision.limit
        ),
    )
    .into_response()
}

/// Answers a request that failed authentication: 401 (or 429 once the anonymous bucket is
/// exhausted), with the `X-RateLimit-*` headers of that bucket.
fn reject(state: &AppState, req: &Request, error: ApiError) -> Response {
    let now_s = crate::timestamps::now_ms().div_euclid(1000);
    let decision = state.limiter.check(&anonymous_bucket(req), now_s);
    let mut response = if decision.allowed {
        error.into_response()
    } else {
        rate_limited(&decision)
    };
    limit_headers(&mut response, &decision, now_s);
    response
}

async fn lookup(state: &AppState, hash: [u8; 32]) -> Result<Option<Arc<CachedKey>>, ApiError> {
    if let Some(k) = state.auth_cache.get(&hash) {
        return Ok(Some(k));
    }
    match keys::find_by_hash(&state.db, &hex::encode(hash)).await? {
        Some(key) => {
            let scope = key
                .scopes
                .iter()
                .filter_map(|s| Scope::parse(s))
                .max()
                .unwrap_or(Scope::Read);
            let cached = Arc::new(CachedKey { key, scope });
            state.auth_cache.put(hash, cached.clone());
            Ok(Some(cached))
        }
        None => Ok(None),
    }
}

/// Middleware: authenticates, checks the scope for the route, counts the request against the
/// key's rate limit, and adds `X-RateLimit-*` headers (also to 401s, counted per client).
pub async fn authenticate(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let hash = match bearer(req.headers()) {
        Some(t) if t.starts_with("plabs_") && t.len() <= 128 => crate::crypto::sha256(t.as_bytes()),
        Some(_) => return reject(&state, &req, ApiError::unauthorized("malformed API key")),
        None => {
            return reject(
                &state,
                &req,
                ApiError::unauthorized("missing `Authorization: Bearer plabs_…` header"),
            )
        }
    };
    let cached = match lookup(&state, hash).await {
        Ok(Some(k)) => k,
        Ok(None) => return reject(&state, &req, ApiError::unauthorized("invalid API key")),
        Err(e) => return e.into_response(),
    };
    let key = &cached.key;
    if key.revoked {
        return reject(
            &state,
            &req,
            ApiError::unauthorized("API key has been revoked"),
        );
    }
    let needed = required_scope(
        req.method(),
        matched
            .as_ref()
            .map(|m| m.as_str())
            .unwrap_or_else(|| req.uri().path()),
    );

    let now_ms = crate::timestamps::now_ms();
    let now_s = now_ms.div_euclid(1000);
    let decision = state.limiter.check(&key.key_id, now_s);
    let mut response = if !decision.allowed {
        rate_limited(&decision)
    } else if cached.scope < needed {
        ApiError::forbidden(format!(
            "this API key lacks the `{}` scope this request needs",
            needed.as_str()
        ))
        .into_response()
    } else {
        if state.auth_cache.should_touch(&key.key_id, now_ms) {
            let db = state.db.clone();
            let id = key.key_id.clone();
            tokio::spawn(async move {
                if let Err(e) = keys::touch(&db, &id, now_ms).await {
                    tracing::warn!(error = %e, "cannot record key use");
                }
            });
        }
        req.extensions_mut().insert(Caller {
            key_id: key.key_id.clone(),
            tenant_id: key.tenant_id.clone(),
            scope: cached.scope,
        });
        next.run(req).await
    };
    limit_headers(&mut response, &decision, now_s);
    response
}
