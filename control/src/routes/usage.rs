//! `/v1/usage`: call minutes and provider consumption of the tenant over a period.

use axum::extract::State;
use axum::Json;
use chrono::{Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;
use crate::store::usage::{self, CallUsage, ProviderUsage};
use crate::timestamps::{parse, to_rfc3339};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start (inclusive), RFC 3339 or YYYY-MM-DD; default: start of the current month (UTC).
    pub from: Option<String>,
    /// End (exclusive); default: start of next month.
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Period {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub period: Period,
    pub calls: CallUsage,
    pub providers: Vec<ProviderUsage>,
}

fn month_bounds() -> (i64, i64) {
    let now = Utc::now();
    let start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    (start.timestamp_millis(), end.timestamp_millis())
}

/// Usage for a period: calls, minutes, and provider characters/seconds/tokens
#[utoipa::path(get, path = "/v1/usage", tag = "usage", params(UsageQuery),
    responses((status = 200, body = Usage), (status = 400, body = ErrorBody)))]
pub async fn get_usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<Usage>> {
    let (mut from, mut to) = month_bounds();
    if let Some(f) = &q.from {
        from = parse(f)
            .ok_or_else(|| ApiError::validation("from", "must be RFC 3339 or YYYY-MM-DD"))?;
    }
    if let Some(t) = &q.to {
        to =
            parse(t).ok_or_else(|| ApiError::validation("to", "must be RFC 3339 or YYYY-MM-DD"))?;
    }
    if to <= from {
        return Err(ApiError::validation("to", "must be after from"));
    }
    Ok(Json(Usage {
        period: Period {
            from: to_rfc3339(from),
            to: to_rfc3339(to),
        },
        calls: usage::calls(&state.db, &caller.tenant_id, from, to).await?,
        providers: usage::providers(&state.db, &caller.tenant_id, from, to).await?,
    }))
}
