//! Agents and their version history.

use std::sync::Arc;

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
    write_tags(&mut tx, tenant_id, &id, &config.tags, false).await?;
    tx.commit().await?;
    drop(_w);
    // Everything stored is known here; reading it back would cost a round trip per create.
    Ok(Agent {
        id,
        prompt_variables: config.variables(),
        config: config.clone(),
        status: status.to_string(),
        version: 1,
        published_version: None,
        created_at: to_rfc3339(now),
        updated_at: to_rfc3339(now),
    })
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

/// The form tags are indexed (and filtered) in: trimmed and lowercased, without repeats.
pub fn normalize_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim().to_lowercase();
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Replaces the agent's rows in `agent_tags` (the index behind the `tags` filter).
async fn write_tags(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant_id: &str,
    agent_id: &str,
    tags: &[String],
    replace: bool,
) -> Result<(), sqlx::Error> {
    if replace {
        sqlx::query("DELETE FROM agent_tags WHERE tenant_id = $1 AND agent_id = $2")
            .bind(tenant_id)
            .bind(agent_id)
            .execute(&mut **tx)
            .await?;
    }
    for tag in normalize_tags(tags) {
        sqlx::query("INSERT INTO agent_tags (tenant_id, agent_id, tag) VALUES ($1, $2, $3)")
            .bind(tenant_id)
            .bind(agent_id)
            .bind(tag)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Fills `agent_tags` for agents stored before it existed. Runs at startup; it has work to do
/// only while the index is empty and some agent has tags.
pub async fn backfill_tags(db: &Db) -> Result<(), sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM agent_tags")
        .fetch_one(&db.pool)
        .await?;
    let n: i64 = col(&row, "n")?;
    if n > 0 {
        return Ok(());
    }
    let rows =
        sqlx::query("SELECT id, tenant_id, config FROM agents WHERE config LIKE '%\"tags\":[\"%'")
            .fetch_all(&db.pool)
            .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let _w = db.write().await;
    let mut tx = db.pool.begin().await?;
    for r in &rows {
        let config: AgentConfig = json_col(r, "config")?;
        let id: String = col(r, "id")?;
        let tenant_id: String = col(r, "tenant_id")?;
        write_tags(&mut tx, &tenant_id, &id, &config.tags, true).await?;
    }
    tx.commit().await?;
    tracing::info!(agents = rows.len(), "indexed the tags of existing agents");
    Ok(())
}

/// An agent as read from the database, with its API JSON rendered once.
pub struct SharedAgent {
    pub tenant_id: String,
    pub agent: Agent,
    /// `agent` serialized, the body of `GET /v1/agents/{id}`.
    pub json: axum::body::Bytes,
}

/// The agents recently read, by id. Every write of an agent bumps `generation` and drops the
/// entry; a read stores what it fetched only if no write happened since it started, so a slow
/// read can never put back a version older than the latest write.
#[derive(Default)]
pub struct AgentCache {
    inner: std::sync::Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    generation: u64,
    map: std::collections::HashMap<String, Arc<SharedAgent>>,
}

const CACHE_MAX: usize = 10_000;

impl AgentCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets an agent after a write (call after the write committed).
    pub fn invalidate(&self, id: &str) {
        let mut c = self.lock();
        c.generation += 1;
        c.map.remove(id);
    }
}

fn invalidate(db: &Db, id: &str) {
    if let Some(c) = &db.agent_cache {
        c.invalidate(id);
    }
}

/// Reads an agent of the tenant, from the cache when it can.
pub async fn get_shared(
    db: &Db,
    tenant_id: &str,
    id: &str,
) -> Result<Option<Arc<SharedAgent>>, sqlx::Error> {
    let generation = match &db.agent_cache {
        Some(cache) => {
            let c = cache.lock();
            if let Some(hit) = c.map.get(id) {
                // Ids are global: another tenant's agent is simply not found.
                return Ok((hit.tenant_id == tenant_id).then(|| hit.clone()));
            }
            Some(c.generation)
        }
        None => None,
    };
    let Some(agent) = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = $1 AND id = $2"))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r))
        .transpose()?
    else {
        return Ok(None);
    };
    let json = serde_json::to_vec(&agent).expect("agent serializes");
    let shared = Arc::new(SharedAgent {
        tenant_id: tenant_id.to_string(),
        agent,
        json: json.into(),
    });
    if let (Some(cache), Some(generation)) = (&db.agent_cache, generation) {
        let mut c = cache.lock();
        if c.generation == generation {
            if c.map.len() >= CACHE_MAX {
                c.map.clear();
            }
            c.map.insert(id.to_string(), shared.clone());
        }
    }
    Ok(Some(shared))
}

pub async fn get(db: &Db, tenant_id: &str, id: &str) -> Result<Option<Agent>, sqlx::Error> {
    Ok(get_shared(db, tenant_id, id)
        .await?
        .map(|s| s.agent.clone()))
}

/// Lists agents, optionally by status, by a case-insensitive name substring, and by tags (an
/// agent must carry every tag given; tags compare case-insensitively).
pub async fn list(
    db: &Db,
    tenant_id: &str,
    status: Option<&str>,
    search: Option<&str>,
    tags: &[String],
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<Agent>, sqlx::Error> {
    let mut q = ListQuery::new(COLUMNS, tenant_id).cond_opt_text("status", status);
    for tag in normalize_tags(tags) {
        q = q.cond_expr(
            "id IN (SELECT agent_id FROM agent_tags WHERE tenant_id = $1 AND tag = {})",
            Arg::Text(tag),
        );
    }
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
    write_tags(&mut tx, tenant_id, id, &config.tags, true).await?;
    tx.commit().await?;
    invalidate(db, id);
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
    invalidate(db, id);
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
    invalidate(db, id);
    drop(_w);
    get(db, tenant_id, id).await
}

/// Deletes an agent with its versions, tools and instances. Calls and conversations stay.
pub async fn delete(db: &Db, tenant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let mut tx = db.pool.begin().await?;
    for table in [
        "agent_versions",
        "agent_tools",
        "agent_instances",
        "agent_tags",
    ] {
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
    invalidate(db, id);
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
