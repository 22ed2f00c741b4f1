//! Parley's control plane: the only crate that knows HTTP routes, JSON API shapes and SQL.
//!
//! [`serve`] runs the REST API of `parley serve` over a SQLite or Postgres store; [`App`]
//! builds the same router in-process for tests and embedding.

pub mod auth;
pub mod crypto;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod extract;
pub mod ids;
pub mod lifecycle;
pub mod media;
pub mod metrics;
pub mod model;
pub mod observability;
pub mod openapi;
pub mod options;
pub mod otel;
pub mod outbound;
pub mod pagination;
pub mod ratelimit;
pub mod request_id;
pub mod routes;
pub mod state;
pub mod store;
pub mod timeline;
pub mod timestamps;
pub mod traces;
pub mod validate;
pub mod webhook_delivery;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::{middleware, Router};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;

pub use dispatch::{CallDispatcher, DispatchError, NoTransport, OutboundCall};
pub use options::ServeOptions;

use error::{ApiError, ErrorCode};
use state::AppState;
use store::Db;

/// What `parley serve` needs to start the control plane.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// sqlx database URL (`sqlite://parley.db` by default, or `postgres://…`).
    pub database_url: String,
}

/// The generated OpenAPI document (frame + every annotated route).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, public) = routes::public().split_for_parts();
    let (_, v1) = routes::v1().split_for_parts();
    let mut doc = openapi::ApiDoc::openapi();
    doc.merge(public);
    doc.merge(v1);
    doc
}

/// A ready-to-serve control plane: its router and the state behind it.
pub struct App {
    pub router: Router,
    pub state: AppState,
}

impl App {
    /// Opens the database (applying migrations) and assembles the router.
    pub async fn build(
        database_url: &str,
        options: ServeOptions,
        dispatcher: Arc<dyn CallDispatcher>,
    ) -> anyhow::Result<App> {
        let db = Db::connect(database_url).await?;
        if options.secret_key.is_none() {
            tracing::warn!(
                "PARLEY_SECRET_KEY is not set: provider keys and webhook secrets are encrypted \
                 with the built-in development key; set it before storing real credentials"
            );
        }
        let secrets = crypto::Secrets::from_material(options.secret_key.as_deref());
        let openapi_json = serde_json::to_value(openapi())?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(
                options.outbound_timeout_ms,
            ))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let media = Arc::new(media::MediaPlane::from_env());
        // Live calls of this node are ended here; outbound dialing goes to `dispatcher`.
        let dispatcher: Arc<dyn CallDispatcher> = Arc::new(media::MediaDispatcher {
            media: media.clone(),
            outbound: dispatcher,
        });
        let otlp = otel::OtlpExporter::from_env();
        let traces = traces::TraceSink::start(db.clone(), options.traces_enabled, otlp);
        let state = AppState {
            media,
            traces,
            db,
            secrets,
            auth_cache: Arc::new(auth::AuthCache::default()),
            limiter: Arc::new(ratelimit::RateLimiter::new(options.rate_limit_per_minute)),
            dispatcher,
            webhook_wake: Arc::new(tokio::sync::Notify::new()),
            options: Arc::new(options),
            openapi: Arc::new(openapi_json),
            http,
        };
        Ok(App {
            router: router(state.clone()),
            state,
        })
    }
}

/// Assembles every route with the cross-cutting layers: request id (outermost, so every
/// response has one), panic → 500 JSON, body size limit, and key auth on `/v1`.
pub fn router(state: AppState) -> Router {
    let (public, _) = routes::public().split_for_parts();
    let (v1, _) = routes::v1().split_for_parts();
    let v1 = v1.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::authenticate,
    ));
    Router::new()
        .merge(public)
        .merge(v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(metrics::track_http))
        .layer(middleware::from_fn(request_id::request_id))
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::internal("internal error").into_response()
}

/// Starts the background workers (webhook delivery) for an app; serve calls it, tests too.
pub fn spawn_workers(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(webhook_delivery::run(state.clone()))]
}

/// Creates an API key for `tenant` (creating the tenant if needed); returns the clear key.
/// This is how `parley keys create` bootstraps the first key of a fresh install.
pub async fn bootstrap_key(
    database_url: &str,
    tenant: &str,
    name: &str,
    scopes: &[String],
) -> anyhow::Result<String> {
    let tenant = tenant.trim();
    anyhow::ensure!(
        !tenant.is_empty() && tenant.chars().count() <= 100,
        "tenant name must be 1–100 characters"
    );
    let mut checker = validate::Checker::default();
    let scopes = routes::keys::parse_scopes(scopes, &mut checker);
    if let Err(e) = checker.finish() {
        anyhow::bail!("{}", e.message);
    }
    let db = Db::connect(database_url).await?;
    let t = store::tenants::get_or_create(&db, tenant).await?;
    let (_, secret) = store::keys::create(&db, &t.id, name, &scopes).await?;
    db.close().await;
    Ok(secret)
}

/// Binds the listener and serves until ctrl-c / SIGTERM, with options from the environment.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    serve_with(config, ServeOptions::from_env()).await
}

/// Binds the listener and serves until ctrl-c / SIGTERM.
pub async fn serve_with(config: ServeConfig, options: ServeOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    let app = App::build(&config.database_url, options, Arc::new(NoTransport)).await?;
    let workers = spawn_workers(&app.state);
    app.state.media.log_provider_status();
    tracing::info!(%local, database_url = %store::redact(&config.database_url), "parley serve listening");
    // Media messages are small and time-critical (a 20 ms frame every 20 ms): Nagle's
    // algorithm would hold one back until the previous is acknowledged.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app.router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    for w in workers {
        w.abort();
    }
    app.state.db.close().await;
    tracing::info!("parley serve stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
