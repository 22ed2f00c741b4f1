//! Audience groups (contact lists of the tenant).

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, json_col, Db, ListQuery, PageRows};
use crate::ids::new_id;
use crate::model::audience::{AudienceGroupSpec, Contact};
use crate::timestamps::{now_ms, to_rfc3339};

/// A group as returned by the API. Lists leave out `contacts` (see `contactCount`); a single
/// group carries them.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudienceGroup {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub contact_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<Contact>>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "SELECT id, spec, created_at, updated_at FROM audience_groups";

fn from_row(r: &sqlx::any::AnyRow, with_contacts: bool) -> Result<AudienceGroup, sqlx::Error> {
    let spec: AudienceGroupSpec = json_col(r, "spec")?;
    Ok(AudienceGroup {
        id: col(r, "id")?,
        name: spec.name,
        description: spec.description,
        tags: spec.tags,
        contact_count: spec.contacts.len(),
        contacts: with_contacts.then_some(spec.contacts),
        created_at: to_rfc3339(col(r, "created_at")?),
        updated_at: to_rfc3339(col(r, "updated_at")?),
    })
}

fn to_json(spec: &AudienceGroupSpec) -> String {
    serde_json::to_string(spec).expect("audience group serializes")
}

pub async fn insert(
    db: &Db,
    tenant_id: &str,
    spec: &AudienceGroupSpec,
) -> Result<AudienceGroup, sqlx::Error> {
    let id = new_id("aud");
    let now = now_ms();
    {
        let _w = db.write().await;
        sqlx::query(
            "INSERT INTO audience_groups (id, tenant_id, spec, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(to_json(spec))
        .bind(now)
        .execute(&db.pool)
        .await?;
    }
    get(db, tenant_id, &id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

pub async fn get(db: &Db, tenant_id: &str, id: &str) -> Result<Option<AudienceGroup>, sqlx::Error> {
    sqlx::query(&format!("{COLUMNS} WHERE tenant_id = $1 AND id = $2"))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| from_row(&r, true))
        .transpose()
}

pub async fn list(
    db: &Db,
    tenant_id: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<AudienceGroup>, sqlx::Error> {
    let rows = ListQuery::new(COLUMNS, tenant_id)
        .cursor(cursor)
        .fetch(db, limit)
        .await?;
    let items = rows
        .iter()
        .map(|r| from_row(r, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PageRows::from_overfetch(items, limit))
}

/// Replaces a group; `None` if there is no such group.
pub async fn update(
    db: &Db,
    tenant_id: &str,
    id: &str,
    spec: &AudienceGroupSpec,
) -> Result<Option<AudienceGroup>, sqlx::Error> {
    let r = {
        let _w = db.write().await;
        sqlx::query(
            "UPDATE audience_groups SET spec = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(to_json(spec))
        .bind(now_ms())
        .bind(tenant_id)
        .bind(id)
        .execute(&db.pool)
        .await?
    };
    if r.rows_affected() != 1 {
        return Ok(None);
    }
    get(db, tenant_id, id).await
}

pub async fn delete(db: &Db, tenant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let r = sqlx::query("DELETE FROM audience_groups WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}
