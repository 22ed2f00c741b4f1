//! Webhook subscriptions (per tenant, or per task), their deliveries and the attempt log.
//! Signing secrets are stored encrypted; deliveries are claimed with a lease
//! (`locked_until`) so several nodes can run the delivery worker against one Postgres.

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, Arg, Db, ListQuery, PageRows};
use crate::crypto::Secrets;
use crate::ids::{new_id, random_bytes};
use crate::timestamps::{now_ms, opt_rfc3339, to_rfc3339};

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    /// Set for subscriptions created through a task's `webhookUrl`.
    pub task_id: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    /// `pending` (will be tried or retried), `delivered` or `failed` (attempts exhausted).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
    /// The signed JSON body.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub attempt_log: Vec<Attempt>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub attempt: i64,
    pub at: String,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery claimed for sending.
pub struct Due {
    pub id: String,
    pub event: String,
    pub payload: String,
    pub attempts: i64,
    pub url: String,
    pub secret_enc: String,
}

const COLUMNS: &str =
    "SELECT id, task_id, url, events, description, enabled, created_at, updated_at FROM webhooks";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Webhook, sqlx::Error> {
    let events: String = col(r, "events")?;
    let enabled: i64 = col(r, "enabled")?;
    Ok(Webhook {
        id: col(r, "id")?,
        task_id: col(r, "task_id")?,
        url: col(r, "url")?,
        events: events
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        description: col(r, "description")?,
        enabled: enabled != 0,
        created_at: to_rfc3339(col(r, "created_at")?),
        updated_at: to_rfc3339(col(r, "updated_at")?),
    })
}

/// A fresh signing secret.
pub fn mint_secret() -> String {
    let raw: [u8; 24] = random_bytes();
    format!("whsec_{}", hex::encode(raw))
}

#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &Db,
    secrets: &Secrets,
    tenant_id: &str,
    task_id: Option<&str>,
    url: &str,
    events: &[String],
    secret: Option<&str>,
    description: Option<&str>,
) -> Result<(Webhook, String), sqlx::Error> {
    let id = new_id("wh");
    let secret = secret.map(str::to_string).unwrap_or_else(mint_secret);
    let now = now_ms();
    {
        let _w = db.write().await;
        sqlx::query(
            "INSERT INTO webhooks (id, tenant_id, task_id, url, events, secret_enc, description, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(task_id.map(str::to_string))
        .bind(url)
        .bind(events.join(","))
        .bind(secrets.encrypt(&secret))
        .bind(description.map(str::to_string))
        .bind(now)
        .execute(&db.pool)
        .await?;
    }
    let hook = get(db, tenant_id, &id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((hook, secret))
}

pub async fn get(db: &Db, tenant_id: &str, id: &str) -> Result<Option<Webhook>, sqlx::Error> {
    sqlx::query(&format!("{COLUMNS} WHERE tenant_id = $1 AND id = $2"))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

pub async fn list(
    db: &Db,
    tenant_id: &str,
    task_id: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<Webhook>, sqlx::Error> {
    let rows = ListQuery::new(COLUMNS, tenant_id)
        .cond_opt_text("task_id", task_id)
        .cursor(cursor)
        .fetch(db, limit)
        .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(PageRows::from_overfetch(items, limit))
}

pub async fn update(db: &Db, tenant_id: &str, hook: &Webhook) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let r = sqlx::query(
        "UPDATE webhooks SET url = $1, events = $2, description = $3, enabled = $4, updated_at = $5 \
         WHERE tenant_id = $6 AND id = $7",
    )
    .bind(&hook.url)
    .bind(hook.events.join(","))
    .bind(hook.description.clone())
    .bind(hook.enabled as i64)
    .bind(now_ms())
    .bind(tenant_id)
    .bind(&hook.id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn delete(db: &Db, tenant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN \
         (SELECT id FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2)",
    )
    .bind(tenant_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let r = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

/// Queues `event` for every enabled subscription of the tenant that wants it: tenant-wide ones,
/// and the task's own when `task_id` is given. Returns how many deliveries were queued.
pub async fn enqueue(
    db: &Db,
    tenant_id: &str,
    task_id: Option<&str>,
    event: &str,
    payload: &serde_json::Value,
) -> Result<usize, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, events, task_id FROM webhooks WHERE tenant_id = $1 AND enabled = 1 \
         AND (task_id IS NULL OR task_id = $2)",
    )
    .bind(tenant_id)
    .bind(task_id.unwrap_or("").to_string())
    .fetch_all(&db.pool)
    .await?;
    let now = now_ms();
    let mut n = 0;
    for r in rows {
        let events: String = col(&r, "events")?;
        if !events.split(',').any(|e| e == event) {
            continue;
        }
        let webhook_id: String = col(&r, "id")?;
        let delivery_id = new_id("dlv");
        let body = serde_json::json!({
            "id": delivery_id,
            "type": event,
            "createdAt": to_rfc3339(now),
            "tenantId": tenant_id,
            "data": payload,
        });
        let _w = db.write().await;
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event, payload, status, attempts, \
             next_attempt_at, locked_until, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, 0, $6)",
        )
        .bind(&delivery_id)
        .bind(tenant_id)
        .bind(&webhook_id)
        .bind(event)
        .bind(body.to_string())
        .bind(now)
        .execute(&db.pool)
        .await?;
        n += 1;
    }
    Ok(n)
}

/// Claims up to `limit` due deliveries for `lease_ms`.
pub async fn claim_due(db: &Db, limit: i64, lease_ms: i64) -> Result<Vec<Due>, sqlx::Error> {
    let now = now_ms();
    let rows = sqlx::query(
        "SELECT d.id AS id FROM webhook_deliveries d WHERE d.status = 'pending' \
         AND d.next_attempt_at <= $1 AND d.locked_until <= $1 ORDER BY d.next_attempt_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let id: String = col(&r, "id")?;
        let claimed = {
            let _w = db.write().await;
            sqlx::query(
                "UPDATE webhook_deliveries SET locked_until = $1 \
                 WHERE id = $2 AND status = 'pending' AND locked_until <= $3",
            )
            .bind(now + lease_ms)
            .bind(&id)
            .bind(now)
            .execute(&db.pool)
            .await?
            .rows_affected()
                == 1
        };
        if !claimed {
            continue;
        }
        let row = sqlx::query(
            "SELECT d.event AS event, d.payload AS payload, d.attempts AS attempts, w.url AS url, \
             w.secret_enc AS secret_enc FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.id = $1",
        )
        .bind(&id)
        .fetch_optional(&db.pool)
        .await?;
        if let Some(row) = row {
            out.push(Due {
                id,
                event: col(&row, "event")?,
                payload: col(&row, "payload")?,
                attempts: col(&row, "attempts")?,
                url: col(&row, "url")?,
                secret_enc: col(&row, "secret_enc")?,
            });
        }
    }
    Ok(out)
}

/// What happened on one attempt and what comes next.
pub enum Outcome {
    Delivered,
    RetryAt(i64),
    GaveUp,
}

pub async fn record_attempt(
    db: &Db,
    delivery_id: &str,
    attempt: i64,
    status_code: Option<i64>,
    error: Option<&str>,
    duration_ms: i64,
    outcome: Outcome,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let (status, next, completed) = match outcome {
        Outcome::Delivered => ("delivered", now, Some(now)),
        Outcome::RetryAt(at) => ("pending", at, None),
        Outcome::GaveUp => ("failed", now, Some(now)),
    };
    let _w = db.write().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(delivery_id)
    .bind(attempt)
    .bind(now)
    .bind(status_code)
    .bind(error.map(str::to_string))
    .bind(duration_ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, locked_until = 0, \
         last_status_code = $4, last_error = $5, completed_at = $6 WHERE id = $7",
    )
    .bind(status)
    .bind(attempt)
    .bind(next)
    .bind(status_code)
    .bind(error.map(str::to_string))
    .bind(completed)
    .bind(delivery_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list_deliveries(
    db: &Db,
    tenant_id: &str,
    webhook_id: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<Delivery>, sqlx::Error> {
    let rows = ListQuery::new(
        "SELECT id, webhook_id, event, payload, status, attempts, next_attempt_at, last_status_code, \
         last_error, created_at, completed_at FROM webhook_deliveries",
        tenant_id,
    )
    .cond("webhook_id", "=", Arg::Text(webhook_id.to_string()))
    .cursor(cursor)
    .fetch(db, limit)
    .await?;
    let mut items = Vec::new();
    for r in &rows {
        let id: String = col(r, "id")?;
        let attempts = sqlx::query(
            "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts \
             WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(&id)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|a| {
            Ok(Attempt {
                attempt: col(a, "attempt")?,
                at: to_rfc3339(col(a, "at")?),
                status_code: col(a, "status_code")?,
                error: col(a, "error")?,
                duration_ms: col(a, "duration_ms")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let status: String = col(r, "status")?;
        let payload: String = col(r, "payload")?;
        items.push(Delivery {
            id,
            webhook_id: col(r, "webhook_id")?,
            event: col(r, "event")?,
            next_attempt_at: if status == "pending" {
                opt_rfc3339(col(r, "next_attempt_at")?)
            } else {
                None
            },
            status,
            attempts: col(r, "attempts")?,
            last_status_code: col(r, "last_status_code")?,
            last_error: col(r, "last_error")?,
            created_at: to_rfc3339(col(r, "created_at")?),
            completed_at: opt_rfc3339(col(r, "completed_at")?),
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            attempt_log: attempts,
        });
    }
    Ok(PageRows::from_overfetch(items, limit))
}
