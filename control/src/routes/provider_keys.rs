//! `/v1/provider-keys`: the tenant's credentials for hosted STT/TTS/LLM providers, encrypted at
//! rest and only ever shown masked; `verify` checks a key's format and asks the provider.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::model::provider::{self, Provider};
use crate::outbound::{self, ProbeOutcome, Reachability};
use crate::pagination::Page;
use crate::state::AppState;
use crate::store::provider_keys::{self, ProviderKey};
use crate::timestamps::{now_ms, to_rfc3339};
use crate::validate::Checker;

fn parse_provider(name: &str) -> ApiResult<Provider> {
    Provider::parse(name).ok_or_else(|| {
        let names: Vec<&str> = provider::ALL.iter().map(|p| p.as_str()).collect();
        ApiError::validation("provider", format!("must be one of {}", names.join(", ")))
    })
}

/// A key as it may be stored: printable ASCII without spaces, 8–512 characters.
fn check_key(c: &mut Checker, field: &str, key: &str) {
    if !(8..=512).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()) {
        c.fail(field, "must be 8–512 printable characters without spaces");
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StoreProviderKey {
    /// openai, anthropic, deepgram, elevenlabs, assemblyai, google, cohere or twilio.
    pub provider: String,
    /// The key (for twilio `ACCOUNT_SID:AUTH_TOKEN`). Stored encrypted; never shown again.
    pub api_key: String,
    /// A label (≤ 100 characters).
    pub label: Option<String>,
}

/// Store a provider key (replaces the tenant's earlier key for that provider)
#[utoipa::path(post, path = "/v1/provider-keys", tag = "provider-keys", request_body = StoreProviderKey,
    responses((status = 201, body = ProviderKey, description = "stored"),
        (status = 200, body = ProviderKey, description = "replaced the earlier key"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn store_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<StoreProviderKey>,
) -> ApiResult<(StatusCode, Json<ProviderKey>)> {
    let provider = parse_provider(&body.provider)?;
    let mut c = Checker::default();
    check_key(&mut c, "apiKey", &body.api_key);
    c.opt_text("label", body.label.as_deref(), 100);
    c.finish()?;
    let (key, replaced) = provider_keys::put(
        &state.db,
        &state.secrets,
        &caller.tenant_id,
        provider,
        &body.api_key,
        body.label.as_deref(),
    )
    .await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(key)))
}

/// List stored provider keys (masked; at most one per provider, so one page)
#[utoipa::path(get, path = "/v1/provider-keys", tag = "provider-keys",
    responses((status = 200, body = Page<ProviderKey>)))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<ProviderKey>>> {
    let data = provider_keys::list(&state.db, &state.secrets, &caller.tenant_id).await?;
    Ok(Json(Page {
        data,
        next_cursor: None,
        has_more: false,
    }))
}

/// Delete a stored provider key
#[utoipa::path(delete, path = "/v1/provider-keys/{provider}", tag = "provider-keys",
    params(("provider" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let provider = parse_provider(&name)?;
    if !provider_keys::delete(&state.db, &caller.tenant_id, provider).await? {
        return Err(ApiError::not_found("Provider key"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerifyRequest {
    /// Verify this key instead of the stored one (it is not stored).
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Stored,
    Request,
}

/// What verification found.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    pub provider: Provider,
    pub source: KeySource,
    pub key_hint: String,
    /// Whether the key has the provider's documented format.
    pub format_valid: bool,
    /// The format expected for this provider.
    pub expected_format: String,
    /// true: the provider accepted the key; false: the format is wrong or the provider refused
    /// it; null: unknown (the provider could not be reached or answered an error).
    pub valid: Option<bool>,
    #[serde(flatten)]
    pub probe: ProbeOutcome,
    pub checked_at: String,
}

/// Verify a provider key: its format, then (unless disabled) whether the provider accepts it
///
/// Reachability problems never fail the request: without network access the result says
/// `reachability: "unreachable"` within the configured timeout (3 s by default).
#[utoipa::path(post, path = "/v1/provider-keys/{provider}/verify", tag = "provider-keys",
    params(("provider" = String, Path)), request_body = VerifyRequest,
    responses((status = 200, body = VerifyResult), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no key stored for the provider"),
        (status = 409, body = ErrorBody, description = "the stored key was encrypted under another server secret")))]
pub async fn verify_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> ApiResult<Json<VerifyResult>> {
    let provider = parse_provider(&name)?;
    let (key, source) = match body.api_key {
        Some(k) => {
            let mut c = Checker::default();
            check_key(&mut c, "apiKey", &k);
            c.finish()?;
            (k, KeySource::Request)
        }
        None => {
            match provider_keys::decrypted(&state.db, &state.secrets, &caller.tenant_id, provider)
                .await?
            {
                None => return Err(ApiError::not_found("Provider key")),
                Some(None) => {
                    return Err(ApiError::conflict(
                        "the stored key cannot be decrypted: it was stored under another \
                         PARLEY_SECRET_KEY; store it again",
                    ))
                }
                Some(Some(k)) => (k, KeySource::Stored),
            }
        }
    };
    let format_valid = provider.format_ok(&key);
    let probe = if !format_valid {
        ProbeOutcome::skipped(format!(
            "not sent to the provider: the key does not have the expected format ({})",
            provider.format_hint()
        ))
    } else if !state.options.provider_verify_reachability {
        ProbeOutcome::skipped("reachability checks are disabled on this server")
    } else {
        outbound::probe_provider(
            &state.http,
            provider,
            &key,
            state
                .options
                .provider_base_urls
                .get(provider.as_str())
                .map(String::as_str),
            Duration::from_millis(state.options.provider_verify_timeout_ms.max(1)),
        )
        .await
    };
    let valid = match probe.reachability {
        _ if !format_valid => Some(false),
        Reachability::Accepted => Some(true),
        Reachability::Rejected => Some(false),
        _ => None,
    };
    if valid == Some(true) && source == KeySource::Stored {
        provider_keys::mark_verified(&state.db, &caller.tenant_id, provider).await?;
    }
    Ok(Json(VerifyResult {
        provider,
        source,
        key_hint: provider.mask(&key),
        format_valid,
        expected_format: provider.format_hint().to_string(),
        valid,
        probe,
        checked_at: to_rfc3339(now_ms()),
    }))
}
