//! Service endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document, and the
//! `/v1` index.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    pub version: String,
}

/// Liveness: the process answers. No auth, no database.
#[utoipa::path(get, path = "/health", tag = "service", security(()),
    responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `unavailable`.
    pub status: String,
    pub database: String,
}

/// Readiness: the database answers a query. No auth.
#[utoipa::path(get, path = "/ready", tag = "service", security(()),
    responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let backend = match state.db.backend {
        crate::store::Backend::Sqlite => "sqlite",
        crate::store::Backend::Postgres => "postgres",
    };
    if state.db.ping().await {
        Json(Ready {
            status: "ready".into(),
            database: backend.into(),
        })
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Ready {
                status: "unavailable".into(),
                database: backend.into(),
            }),
        )
            .into_response()
    }
}

/// Prometheus metrics of this process, in the text exposition format 0.0.4: turn stage
/// latencies, HTTP requests, provider errors, the media engine's counters, live calls and the
/// standard `process_*` metrics. No auth, like `/health`: scrapers run inside the deployment
/// and the figures carry no tenant data (no ids, no names beyond provider and route names).
#[utoipa::path(get, path = "/metrics", tag = "service", security(()),
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = crate::metrics::global().render(state.media.live_calls());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// The OpenAPI 3.1 document of this API, generated from the handlers. No auth.
#[utoipa::path(get, path = "/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json((*state.openapi).clone())
}

#[derive(Serialize, ToSchema)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
    pub summary: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiIndex {
    pub name: String,
    pub version: String,
    pub api_version: String,
    pub endpoints: Vec<Endpoint>,
}

/// API version and the list of endpoints (derived from the OpenAPI document).
#[utoipa::path(get, path = "/v1", tag = "service",
    responses((status = 200, body = ApiIndex), (status = 401, body = ErrorBody)))]
pub async fn index(State(state): State<AppState>) -> Json<ApiIndex> {
    let mut endpoints = Vec::new();
    if let Some(paths) = state.openapi.get("paths").and_then(|p| p.as_object()) {
        for (path, item) in paths {
            if let Some(ops) = item.as_object() {
                for (method, op) in ops {
                    if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                        continue;
                    }
                    endpoints.push(Endpoint {
                        method: method.to_uppercase(),
                        path: path.clone(),
                        summary: op.get("summary").and_then(|s| s.as_str()).map(String::from),
                    });
                }
            }
        }
    }
    Json(ApiIndex {
        name: "parley".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: "v1".into(),
        endpoints,
    })
}
