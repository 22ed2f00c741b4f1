//! `X-Request-Id` on every response: the caller's own id when it sent a sane one, else a new
//! `req_…`. The id is also made available to error bodies through a task-local.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::REQUEST_ID;

const HEADER: &str = "x-request-id";

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A new `req_` + 16 hex id. Request ids must be unique, not secret: a per-thread splitmix64
/// sequence seeded once from the OS spares a `getrandom` system call on every request.
fn fresh_id() -> String {
    thread_local! {
        static NEXT: std::cell::Cell<u64> =
            std::cell::Cell::new(u64::from_le_bytes(crate::ids::random_bytes()));
    }
    let x = NEXT.with(|n| {
        let v = n.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        n.set(v);
        v
    });
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    format!("req_{z:016x}")
}

pub async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(fresh_id);
    let mut response = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}
