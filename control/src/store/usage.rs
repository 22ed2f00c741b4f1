//! Usage: call minutes from the calls table, provider consumption from usage records.

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, Db};
use crate::ids::new_id;
use crate::timestamps::now_ms;

pub async fn record(
    db: &Db,
    tenant_id: &str,
    call_id: Option<&str>,
    provider: &str,
    metric: &str,
    quantity: f64,
) -> Result<(), sqlx::Error> {
    let _w = db.write().await;
    sqlx::query(
        "INSERT INTO usage_records (id, tenant_id, call_id, provider, metric, quantity, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id("use"))
    .bind(tenant_id)
    .bind(call_id.map(str::to_string))
    .bind(provider)
    .bind(metric)
    .bind(quantity)
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallUsage {
    pub calls: i64,
    pub completed_calls: i64,
    pub failed_calls: i64,
    /// Sum of ended calls' durations, in minutes.
    pub minutes: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderUsage {
    pub provider: String,
    /// e.g. `tts_characters`, `stt_seconds`, `llm_tokens`.
    pub metric: String,
    pub quantity: f64,
}

/// Calls started in `[from, to)` (ms) and their minutes.
pub async fn calls(db: &Db, tenant_id: &str, from: i64, to: i64) -> Result<CallUsage, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, \
         CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS ok, \
         CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed, \
         CAST(COALESCE(SUM(duration_ms), 0) AS BIGINT) AS ms \
         FROM calls WHERE tenant_id = $1 AND started_at >= $2 AND started_at < $3",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_one(&db.pool)
    .await?;
    let ms: i64 = col(&row, "ms")?;
    Ok(CallUsage {
        calls: col(&row, "n")?,
        completed_calls: col(&row, "ok")?,
        failed_calls: col(&row, "failed")?,
        minutes: (ms as f64 / 60_000.0 * 100.0).round() / 100.0,
    })
}

pub async fn providers(
    db: &Db,
    tenant_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<ProviderUsage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT provider, metric, CAST(SUM(quantity) AS DOUBLE PRECISION) AS q FROM usage_records \
         WHERE tenant_id = $1 AND at >= $2 AND at < $3 GROUP BY provider, metric ORDER BY provider, metric",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ProviderUsage {
                provider: col(r, "provider")?,
                metric: col(r, "metric")?,
                quantity: col(r, "q")?,
            })
        })
        .collect()
}
