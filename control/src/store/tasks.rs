//! Outbound call tasks. Status changes are conditional updates (`… WHERE status IN (…)`), so
//! two nodes can never both execute, edit-while-running, or delete a running task.

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, json_col, Arg, Db, ListQuery, PageRows};
use crate::ids::new_id;
use crate::model::task::TaskSpec;
use crate::timestamps::{now_ms, to_rfc3339};

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    pub agent_id: String,
    /// `pending`, `in_progress`, `completed` or `failed`.
    pub status: String,
    #[serde(flatten)]
    pub spec: TaskSpec,
    /// The call placed by the last `execute`.
    pub call_id: Option<String>,
    /// Why the last execution failed.
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str =
    "SELECT id, agent_id, status, spec, call_id, last_error, created_at, updated_at FROM tasks";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Task, sqlx::Error> {
    Ok(Task {
        id: col(r, "id")?,
        agent_id: col(r, "agent_id")?,
        status: col(r, "status")?,
        spec: json_col(r, "spec")?,
        call_id: col(r, "call_id")?,
        last_error: col(r, "last_error")?,
        created_at: to_rfc3339(col(r, "created_at")?),
        updated_at: to_rfc3339(col(r, "updated_at")?),
    })
}

fn to_json(spec: &TaskSpec) -> String {
    serde_json::to_string(spec).expect("task spec serializes")
}

pub async fn insert(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    spec: &TaskSpec,
) -> Result<Task, sqlx::Error> {
    let id = new_id("task");
    let now = now_ms();
    {
        let _w = db.write().await;
        sqlx::query(
            "INSERT INTO tasks (id, tenant_id, agent_id, status, spec, created_at, updated_at) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $5)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(agent_id)
        .bind(to_json(spec))
        .bind(now)
        .execute(&db.pool)
        .await?;
    }
    get(db, tenant_id, &id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

pub async fn get(db: &Db, tenant_id: &str, id: &str) -> Result<Option<Task>, sqlx::Error> {
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
    agent_id: Option<&str>,
    status: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<Task>, sqlx::Error> {
    let rows = ListQuery::new(COLUMNS, tenant_id)
        .cond_opt_text("agent_id", agent_id)
        .cond_opt_text("status", status)
        .cursor(cursor)
        .fetch(db, limit)
        .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(PageRows::from_overfetch(items, limit))
}

/// Runs `UPDATE tasks SET {set} WHERE tenant_id AND id AND status IN (allowed)`; returns
/// whether a row changed. `set` uses placeholders from `$3` on, bound from `args`.
async fn transition(
    db: &Db,
    tenant_id: &str,
    id: &str,
    allowed: &[&str],
    set: &str,
    args: Vec<Arg>,
) -> Result<bool, sqlx::Error> {
    let statuses = allowed
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE tasks SET {set} WHERE tenant_id = $1 AND id = $2 AND status IN ({statuses})"
    );
    let mut q = sqlx::query(&sql).bind(tenant_id).bind(id);
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s),
            Arg::Int(i) => q.bind(i),
        };
    }
    let _w = db.write().await;
    Ok(q.execute(&db.pool).await?.rows_affected() == 1)
}

/// Replaces the spec of a pending task.
pub async fn update_spec(
    db: &Db,
    tenant_id: &str,
    id: &str,
    spec: &TaskSpec,
) -> Result<bool, sqlx::Error> {
    transition(
        db,
        tenant_id,
        id,
        &["pending"],
        "spec = $3, updated_at = $4",
        vec![Arg::Text(to_json(spec)), Arg::Int(now_ms())],
    )
    .await
}

/// Deletes a pending or failed task (with its per-task webhook subscriptions).
pub async fn delete(db: &Db, tenant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let r = sqlx::query(
        "DELETE FROM tasks WHERE tenant_id = $1 AND id = $2 AND status IN ('pending', 'failed')",
    )
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    if r.rows_affected() == 1 {
        sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND task_id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&db.pool)
            .await?;
    }
    Ok(r.rows_affected() == 1)
}

/// Claims a pending task for execution (pending → in_progress) with its new call.
pub async fn claim(db: &Db, tenant_id: &str, id: &str, call_id: &str) -> Result<bool, sqlx::Error> {
    transition(
        db,
        tenant_id,
        id,
        &["pending"],
        "status = 'in_progress', call_id = $3, last_error = NULL, updated_at = $4",
        vec![Arg::Text(call_id.to_string()), Arg::Int(now_ms())],
    )
    .await
}

/// Records the end of a task's call: in_progress → completed/failed.
pub async fn finish(
    db: &Db,
    tenant_id: &str,
    id: &str,
    ok: bool,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let status = if ok { "completed" } else { "failed" };
    let _w = db.write().await;
    let r = sqlx::query(
        "UPDATE tasks SET status = $1, last_error = $2, updated_at = $3 \
         WHERE tenant_id = $4 AND id = $5 AND status = 'in_progress'",
    )
    .bind(status)
    .bind(error.map(str::to_string))
    .bind(now_ms())
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Puts a completed or failed task back to pending so it can be executed again.
pub async fn reset(db: &Db, tenant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    transition(
        db,
        tenant_id,
        id,
        &["completed", "failed"],
        "status = 'pending', call_id = NULL, last_error = NULL, updated_at = $3",
        vec![Arg::Int(now_ms())],
    )
    .await
}
