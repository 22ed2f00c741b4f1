//! Agent instances (deployments of an agent on a channel).

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, json_col, Db, PageRows};
use crate::ids::new_id;
use crate::model::instance::InstanceSpec;
use crate::timestamps::{now_ms, to_rfc3339};

/// An instance as returned by the API.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub agent_id: String,
    #[serde(flatten)]
    pub spec: InstanceSpec,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "SELECT id, agent_id, spec, created_at, updated_at FROM agent_instances";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Instance, sqlx::Error> {
    Ok(Instance {
        id: col(r, "id")?,
        agent_id: col(r, "agent_id")?,
        spec: json_col(r, "spec")?,
        created_at: to_rfc3339(col(r, "created_at")?),
        updated_at: to_rfc3339(col(r, "updated_at")?),
    })
}

fn to_json(spec: &InstanceSpec) -> String {
    serde_json::to_string(spec).expect("instance spec serializes")
}

pub async fn insert(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    spec: &InstanceSpec,
) -> Result<Instance, sqlx::Error> {
    let id = new_id("inst");
    let now = now_ms();
    {
        let _w = db.write().await;
        sqlx::query(
            "INSERT INTO agent_instances (id, tenant_id, agent_id, spec, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(agent_id)
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
) -> Result<Option<Instance>, sqlx::Error> {
    super::get_agent_child(db, COLUMNS, tenant_id, agent_id, id, from_row).await
}

pub async fn list(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<Instance>, sqlx::Error> {
    super::list_agent_children(db, COLUMNS, tenant_id, agent_id, cursor, limit, from_row).await
}

/// Replaces an instance's settings; `None` if there is no such instance.
pub async fn update(
    db: &Db,
    tenant_id: &str,
    agent_id: &str,
    id: &str,
    spec: &InstanceSpec,
) -> Result<Option<Instance>, sqlx::Error> {
    let r = {
        let _w = db.write().await;
        sqlx::query(
            "UPDATE agent_instances SET spec = $1, updated_at = $2 \
             WHERE tenant_id = $3 AND agent_id = $4 AND id = $5",
        )
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
    let r = sqlx::query(
        "DELETE FROM agent_instances WHERE tenant_id = $1 AND agent_id = $2 AND id = $3",
    )
    .bind(tenant_id)
    .bind(agent_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}
