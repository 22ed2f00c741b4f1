//! The HTTP routes, one module per resource. Each handler carries its `#[utoipa::path]`, and
//! the routers here are the single list of what is served and documented.

pub mod keys;
pub mod meta;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes that need no API key.
pub fn public() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(meta::health))
        .routes(routes!(meta::ready))
        .routes(routes!(meta::openapi_json))
}

/// Everything under `/v1` (authenticated).
pub fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(meta::index))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::rotate_key))
}
