//! Bearer-key authentication, scopes, and the per-key rate limit, applied to every `/v1` route.
//!
//! Key lookups are cached for a couple of seconds: the hot read path (GET an agent) would
//! otherwise cost two queries. Revoking or rotating on this node evicts at once; other nodes
//! sharing Postgres see it within the cache TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};
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

/// Recently seen keys (by hash) and when each key's `last_used_at` was last written.
#[derive(Default)]
pub struct AuthCache {
    entries: Mutex<HashMap<String, (KeyAuth, Instant)>>,
    touched: Mutex<HashMap<String, i64>>,
}

impl AuthCache {
    fn get(&self, hash: &str) -> Option<KeyAuth> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(k, _)| k.clone())
    }

    fn put(&self, hash: String, key: KeyAuth) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        map.insert(hash, (key, Instant::now()));
    }

    /// Drops a key from the cache after it was revoked or rotated.
    pub fn evict(&self, key_id: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (k, _)| k.key_id != key_id);
    }

    /// Whether `last_used_at` is due to be written for this key.
    fn should_touch(&self, key_id: &str, now_ms: i64) -> bool {
        let mut map = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key_id) {
            Some(&t) if now_ms - t < TOUCH_EVERY_MS => false,
            _ => {
                map.insert(key_id.to_string(), now_ms);
                true
            }
        }
    }
}

fn required_scope(method: &Method, path: &str) -> Scope {
    if path.starts_with("/v1/keys") {
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

/// Middleware: authenticates, checks the scope for the route, counts the request against the
/// key's rate limit, and adds `X-RateLimit-*` headers.
pub async fn authenticate(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = match bearer(req.headers()) {
        Some(t) if t.starts_with("plabs_") && t.len() <= 128 => t.to_string(),
        Some(_) => return ApiError::unauthorized("malformed API key").into_response(),
        None => {
            return ApiError::unauthorized("missing `Authorization: Bearer plabs_…` header")
                .into_response()
        }
    };
    let hash = keys::hash_secret(&token);
    let key = match state.auth_cache.get(&hash) {
        Some(k) => k,
        None => match keys::find_by_secret(&state.db, &token).await {
            Ok(Some(k)) => {
                state.auth_cache.put(hash, k.clone());
                k
            }
            Ok(None) => return ApiError::unauthorized("invalid API key").into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        },
    };
    if key.revoked {
        return ApiError::unauthorized("API key has been revoked").into_response();
    }
    let scope = key
        .scopes
        .iter()
        .filter_map(|s| Scope::parse(s))
        .max()
        .unwrap_or(Scope::Read);
    let path = matched
        .as_ref()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let needed = required_scope(req.method(), &path);

    let now_ms = crate::timestamps::now_ms();
    let decision = state.limiter.check(&key.key_id, now_ms.div_euclid(1000));
    let mut response = if !decision.allowed {
        ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "rate limit of {} requests per minute exceeded; retry after the reset time",
                decision.limit
            ),
        )
        .into_response()
    } else if scope < needed {
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
            scope,
        });
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    h.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    h.insert("x-ratelimit-reset", HeaderValue::from(decision.reset));
    if !decision.allowed {
        let wait = (decision.reset - now_ms.div_euclid(1000)).max(1);
        h.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    response
}
