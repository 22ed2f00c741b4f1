//! `/v1/webhooks`: signed event subscriptions and their delivery log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::events::EVENTS;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::ids::looks_like;
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;
use crate::store::webhooks::{self, Delivery, Webhook};
use crate::validate::Checker;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateWebhook {
    /// Receiver URL (http or https).
    pub url: String,
    /// Events to deliver: call.started, call.completed, call.failed, conversation.ended,
    /// handoff.requested, agent.created, agent.updated, tool.executed.
    pub events: Vec<String>,
    /// Signing secret (16–128 characters); generated when omitted.
    pub secret: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// A created webhook with its signing secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// HMAC-SHA256 key: `X-Parley-Signature: v1=hex(HMAC(secret, "{X-Parley-Timestamp}.{body}"))`.
    pub secret: String,
}

fn check_events(c: &mut Checker, events: &[String]) {
    if events.is_empty() {
        c.fail("events", "must name at least one event");
    }
    for (i, e) in events.iter().enumerate() {
        if !EVENTS.contains(&e.as_str()) {
            c.fail(
                &format!("events[{i}]"),
                format!("must be one of {}", EVENTS.join(", ")),
            );
        }
    }
}

async fn load(state: &AppState, tenant_id: &str, id: &str) -> ApiResult<Webhook> {
    if !looks_like("wh", id) {
        return Err(ApiError::not_found("Webhook"));
    }
    webhooks::get(&state.db, tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Webhook"))
}

/// Create a webhook subscription
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 400, body = ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    let mut c = Checker::default();
    c.url("url", &body.url);
    check_events(&mut c, &body.events);
    if let Some(s) = &body.secret {
        c.text("secret", s, 16, 128);
    }
    c.opt_text("description", body.description.as_deref(), 500);
    c.finish()?;
    let mut events = body.events.clone();
    events.dedup();
    let (webhook, secret) = webhooks::create(
        &state.db,
        &state.secrets,
        &caller.tenant_id,
        None,
        &body.url,
        &events,
        body.secret.as_deref(),
        body.description.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook { webhook, secret }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct WebhookListQuery {
    /// Only the subscriptions of this task.
    pub task_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List webhook subscriptions (tenant-wide and per-task)
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(WebhookListQuery),
    responses((status = 200, body = Page<Webhook>)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<WebhookListQuery>,
) -> ApiResult<Json<Page<Webhook>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let rows = webhooks::list(
        &state.db,
        &caller.tenant_id,
        q.task_id.as_deref(),
        page.cursor()?,
        page.limit()?,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, |w| &w.id)))
}

/// Get a webhook subscription
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(load(&state, &caller.tenant_id, &id).await?))
}

/// Update a webhook subscription
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = UpdateWebhook,
    responses((status = 200, body = Webhook), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> ApiResult<Json<Webhook>> {
    let mut hook = load(&state, &caller.tenant_id, &id).await?;
    let mut c = Checker::default();
    if let Some(u) = body.url {
        c.url("url", &u);
        hook.url = u;
    }
    if let Some(e) = body.events {
        check_events(&mut c, &e);
        hook.events = e;
    }
    if let Some(d) = body.description {
        c.text("description", &d, 0, 500);
        hook.description = Some(d);
    }
    if let Some(en) = body.enabled {
        hook.enabled = en;
    }
    c.finish()?;
    if !webhooks::update(&state.db, &caller.tenant_id, &hook).await? {
        return Err(ApiError::not_found("Webhook"));
    }
    Ok(Json(load(&state, &caller.tenant_id, &id).await?))
}

/// Delete a webhook subscription (and its delivery log)
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    load(&state, &caller.tenant_id, &id).await?;
    if !webhooks::delete(&state.db, &caller.tenant_id, &id).await? {
        return Err(ApiError::not_found("Webhook"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log of a webhook: every event sent, its status and every attempt
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = Page<Delivery>), (status = 404, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<Delivery>>> {
    load(&state, &caller.tenant_id, &id).await?;
    let rows =
        webhooks::list_deliveries(&state.db, &caller.tenant_id, &id, q.cursor()?, q.limit()?)
            .await?;
    Ok(Json(Page::from_rows(rows, |d| &d.id)))
}
