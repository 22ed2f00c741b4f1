//! Agents and their version history.

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, json_col, Arg, Db, ListQuery, PageRows};
use crate::ids::new_id;
use crate::model::agent::AgentConfig;
use crate::timestamps::{now_ms, opt_rfc3339, to_rfc3339};

/// An agent as returned by the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: String,
    #[serde(flatten)]
    pub config: AgentConfig,
    /// `draft` (new), `active` (takes and places calls) or `inactive`.
    pub status: String,
    /// Bumped by every change of the configuration.
    pub version: i64,
    /// The version marked stable by `publish`, if any.
    pub published_version: Option<i64>,
    /// The `{{variables}}` the prompt and first message use.
    pub prompt_variables: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One entry of an agent's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentVersion {
    pub version: i64,
    pub created_at: String,
    /// Id of the API key that made the change.
    pub created_by: String,
    pub changes_summary: String,
    pub published_at: Option<String>,
    pub publish_notes: Option<String>,
    /// The full configuration of this version (only on `GET …/versions/{n}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<AgentConfig>,
}

const COLUMNS: &str =
    "SELECT id, status, version, published_version, config, created_at, updated_at FROM agents";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Agent, sqlx::Error> {
    let config: AgentConfig = json_col(r, "config")?;
    Ok(Agent {
        id: col(r, "id")?,
        prompt_variables: config.variables(),
        config,
        status: col(r, "status")?,
        version: col(r, "version")?,
        published_version: col(r, "published_version")?,
        created_at: to_rfc3339(col(r, "created_at")?),
        updated_at: to_rfc3339(col(r, "updated_at")?),
    })
}

fn version_from_row(r: &sqlx::any::AnyRow, with_config: bool) -> Result<AgentVersion, sqlx::Error> {
    Ok(AgentVersion {
        version: col(r, "version")?,
        created_at: to_rfc3339(col(r, "created_at")?),
        created_by: col(r, "created_by")?,
        changes_summary: col(r, "changes_summary")?,
        published_at: opt_rfc3339(col(r, "published_at")?),
        publish_notes: col(r, "publish_notes")?,
        config: if with_config {
            Some(json_col(r, "config")?)
        } else {
            None
        },
    })
}

fn to_json(config: &AgentConfig) -> String {
    serde_json::to_string(config).expect("agent config serializes")
}

pub async fn insert(
    db: &Db,
    tenant_id: &str,
    config: &AgentConfig,
    status: &str,
    created_by: &str,
    summary: &str,
) -> Result<Agent, sqlx::Error> {
    let id = new_id("agt");
    let now = now_ms();
    let json = to_json(config);
    let _w = db.write().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO agents (id, tenant_id, name, status, version, published_version, config, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 1, NULL, $5, $6, $6)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(&config.name)
    .bind(status)
    .bind(&json)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    insert_version(&mut tx, &id, tenant_id, 1, &json, now, created_by, summary).await?;
    tx.commit().await?;
    drop(_w);
    get(db, tenant_id, &id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

#[allow(clippy::too_many_arguments)]
async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    agent_id: &str,
    tenant_id: &str,
    version: i64,
    json: &str,
    at: i64,
    by: &str,
    summary: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agent_versions (agent_id, tenant_id, version, config, created_at, created_by, changes_summary) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(agent_id)
    .bind(tenant_id)
    .bind(version)
    .bind(json)
    .bind(at)
    .bind(by)
    .bind(summary)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get(db: &Db, tenant_id: &str, id: &str) -> Result<Option<Agent>, sqlx::Error> {
    sqlx::query(&format!("{COLUMNS} WHERE tenant_id = $1 AND id = $2"))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// Lists agents, optionally by status and by a case-insensitive name substring.
pub async fn list(
    db: &Db,
    tenant_id: &str,
    status: Option<&str>,
    search: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<Agent>, sqlx::Error> {
    let mut q = ListQuery::new(COLUMNS, tenant_id).cond_opt_text("status", status);
    if let Some(s) = search {
        let escaped = s
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        q = q.cond_expr(
            "LOWER(name) LIKE {} ESCAPE '\\'",
            Arg::Text(format!("%{}%", escaped.to_lowercase())),
        );
    }
    let rows = q.cursor(cursor).fetch(db, limit).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(PageRows::from_overfetch(items, limit))
}

/// Outcome of a versioned update.
pub enum Update {
    Done(Box<Agent>),
    NotFound,
    /// Someone else changed the agent since it was read; re-read and retry.
    Stale,
}

/// Replaces the configuration if the agent is still at `expected_version`, bumping the version
/// and recording it in the history.
pub async fn update(
    db: &Db,
    tenant_id: &str,
    id: &str,
    expected_version: i64,
    config: &AgentConfig,
    by: &str,
    summary: &str,
) -> Result<Update, sqlx::Error> {
    let now = now_ms();
    let json = to_json(config);
    let _w = db.write().await;
    let mut tx = db.pool.begin().await?;
    let r = sqlx::query(
        "UPDATE agents SET config = $1, name = $2, version = version + 1, updated_at = $3 \
         WHERE tenant_id = $4 AND id = $5 AND version = $6",
    )
    .bind(&json)
    .bind(&config.name)
    .bind(now)
    .bind(tenant_id)
    .bind(id)
    .bind(expected_version)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        tx.rollback().await?;
        drop(_w);
        return Ok(match get(db, tenant_id, id).await? {
            Some(_) => Update::Stale,
            None => Update::NotFound,
        });
    }
    insert_version(
        &mut tx,
        id,
        tenant_id,
        expected_version + 1,
        &json,
        now,
        by,
        summary,
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    Ok(match get(db, tenant_id, id).await? {
        Some(a) => Update::Done(Box::new(a)),
        None => Update::NotFound,
    })
}

/// Sets `status`; `None` if there is no such agent.
pub async fn set_status(
    db: &Db,
    tenant_id: &str,
    id: &str,
    status: &str,
) -> Result<Option<Agent>, sqlx::Error> {
    let _w = db.write().await;
    let r = sqlx::query(
        "UPDATE agents SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
    )
    .bind(status)
    .bind(now_ms())
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    drop(_w);
    if r.rows_affected() != 1 {
        return Ok(None);
    }
    get(db, tenant_id, id).await
}

/// Marks the current version as published.
pub async fn publish(
    db: &Db,
    tenant_id: &str,
    id: &str,
    notes: Option<&str>,
) -> Result<Option<Agent>, sqlx::Error> {
    let now = now_ms();
    let _w = db.write().await;
    let mut tx = db.pool.begin().await?;
    let r = sqlx::query(
        "UPDATE agents SET published_version = version, updated_at = $1 WHERE tenant_id = $2 AND id = $3",
    )
    .bind(now)
    .bind(tenant_id)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(None);
    }
    let row = sqlx::query("SELECT published_version FROM agents WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let version: i64 = col(&row, "published_version")?;
    sqlx::query(
        "UPDATE agent_versions SET published_at = $1, publish_notes = $2 WHERE agent_id = $3 AND version = $4",
    )
    .bind(now)
    .bind(notes.map(str::to_string))
    .bind(id)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    drop(_w);
    get(db, tenant_id, id).await
}

/// Deletes an agent with its versions, tools and instances. Calls and conversations stay.
pub async fn delete(db: &Db, tenant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let mut tx = db.pool.begin().await?;
    for table in ["agent_versions", "agent_tools", "agent_instances"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND agent_id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let r = sqlx::query("DELETE FROM agents WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

pub async fn list_versions(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    before: Option<i64>,
    limit: usize,
) -> Result<PageRows<AgentVersion>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT version, created_at, created_by, changes_summary, published_at, publish_notes \
         FROM agent_versions WHERE tenant_id = $1 AND agent_id = $2 AND version < $3 \
         ORDER BY version DESC LIMIT {}",
        limit + 1
    ))
    .bind(tenant_id)
    .bind(agent_id)
    .bind(before.unwrap_or(i64::MAX))
    .fetch_all(&db.pool)
    .await?;
    let items = rows
        .iter()
        .map(|r| version_from_row(r, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PageRows::from_overfetch(items, limit))
}

pub async fn get_version(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    version: i64,
) -> Result<Option<AgentVersion>, sqlx::Error> {
    sqlx::query(
        "SELECT version, created_at, created_by, changes_summary, published_at, publish_notes, config \
         FROM agent_versions WHERE tenant_id = $1 AND agent_id = $2 AND version = $3",
    )
    .bind(tenant_id)
    .bind(agent_id)
    .bind(version)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| version_from_row(&r, true))
    .transpose()
}

/// Count of the agent's tasks that are pending or in progress (which block deletion).
pub async fn open_task_count(db: &Db, tenant_id: &str, agent_id: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM tasks WHERE tenant_id = $1 AND agent_id = $2 \
         AND status IN ('pending', 'in_progress')",
    )
    .bind(tenant_id)
    .bind(agent_id)
    .fetch_one(&db.pool)
    .await?;
    col(&row, "n")
}
