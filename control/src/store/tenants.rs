//! Tenants (organizations): the owner of every other row.

use super::{col, Db};
use crate::ids::new_id;
use crate::timestamps::now_ms;

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub name: String,
}

/// The tenant with this name, created if absent (used by `parley keys create`).
pub async fn get_or_create(db: &Db, name: &str) -> Result<Tenant, sqlx::Error> {
    if let Some(t) = find_by_name(db, name).await? {
        return Ok(t);
    }
    let _w = db.write().await;
    let id = new_id("org");
    // A concurrent creator may win the UNIQUE race; read back whichever row stands.
    let _ = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind(name)
        .bind(now_ms())
        .execute(&db.pool)
        .await;
    find_by_name(db, name)
        .await?
        .ok_or_else(|| sqlx::Error::RowNotFound)
}

pub async fn find_by_name(db: &Db, name: &str) -> Result<Option<Tenant>, sqlx::Error> {
    let row = sqlx::query("SELECT id, name FROM tenants WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        Ok(Tenant {
            id: col(&r, "id")?,
            name: col(&r, "name")?,
        })
    })
    .transpose()
}
