//! Agent tools. The tool's settings are one JSON column; the name has its own column so the
//! database enforces one tool of a name per agent.

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, json_col, Db, PageRows};
use crate::ids::new_id;
use crate::model::tool::ToolSpec;
use crate::timestamps::{now_ms, to_rfc3339};

/// A tool as returned by the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    pub id: String,
    pub agent_id: String,
    #[serde(flatten)]
    pub spec: ToolSpec,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "SELECT id, agent_id, spec, created_at, updated_at FROM agent_tools";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Tool, sqlx::Error> {
    Ok(Tool {
        id: col(r, "id")?,
        agent_id: col(r, "agent_id")?,
        spec: json_col(r, "spec")?,
        created_at: to_rfc3339(col(r, "created_at")?),
        updated_at: to_rfc3339(col(r, "updated_at")?),
    })
}

fn to_json(spec: &ToolSpec) -> String {
    serde_json::to_string(spec).expect("tool spec serializes")
}

/// Inserts a tool; a duplicate name is reported by the database as a unique violation.
pub async fn insert(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    spec: &ToolSpec,
) -> Result<Tool, sqlx::Error> {
    let id = new_id("tool");
    let now = now_ms();
    {
        let _w = db.write().await;
        sqlx::query(
            "INSERT INTO agent_tools (id, tenant_id, agent_id, name, spec, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(agent_id)
        .bind(&spec.name)
        .bind(to_json(spec))
        .bind(now)
        .execute(&db.pool)
        .await?;
    }
    get(db, tenant_id, agent_id, &id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

pub async fn get(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    id: &str,
) -> Result<Option<Tool>, sqlx::Error> {
    super::get_agent_child(db, COLUMNS, tenant_id, agent_id, id, from_row).await
}

pub async fn list(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<Tool>, sqlx::Error> {
    super::list_agent_children(db, COLUMNS, tenant_id, agent_id, cursor, limit, from_row).await
}

pub async fn count(db: &Db, tenant_id: &str, agent_id: &str) -> Result<i64, sqlx::Error> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM agent_tools WHERE tenant_id = $1 AND agent_id = $2")
            .bind(tenant_id)
            .bind(agent_id)
            .fetch_one(&db.pool)
            .await?;
    col(&row, "n")
}

/// Replaces a tool's settings; `None` if there is no such tool.
pub async fn update(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    id: &str,
    spec: &ToolSpec,
) -> Result<Option<Tool>, sqlx::Error> {
    let r = {
        let _w = db.write().await;
        sqlx::query(
            "UPDATE agent_tools SET name = $1, spec = $2, updated_at = $3 \
             WHERE tenant_id = $4 AND agent_id = $5 AND id = $6",
        )
        .bind(&spec.name)
        .bind(to_json(spec))
        .bind(now_ms())
        .bind(tenant_id)
        .bind(agent_id)
        .bind(id)
        .execute(&db.pool)
        .await?
    };
    if r.rows_affected() != 1 {
        return Ok(None);
    }
    get(db, tenant_id, agent_id, id).await
}

pub async fn delete(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let r =
        sqlx::query("DELETE FROM agent_tools WHERE tenant_id = $1 AND agent_id = $2 AND id = $3")
            .bind(tenant_id)
            .bind(agent_id)
            .bind(id)
            .execute(&db.pool)
            .await?;
    Ok(r.rows_affected() == 1)
}
