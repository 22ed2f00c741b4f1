//! API keys. Only the SHA-256 of a key is stored; the clear key exists once, in the response
//! (or CLI output) that created it.

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, Db, ListQuery, PageRows};
use crate::crypto::sha256_hex;
use crate::ids::{new_id, random_bytes};
use crate::timestamps::{now_ms, opt_rfc3339, to_rfc3339};

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// What authentication needs about a key.
#[derive(Debug, Clone)]
pub struct KeyAuth {
    pub key_id: String,
    pub tenant_id: String,
    pub scopes: Vec<String>,
    pub revoked: bool,
}

/// A fresh secret: `plabs_` and 48 hex characters (192 random bits).
pub fn mint_secret() -> String {
    let raw: [u8; 24] = random_bytes();
    format!("plabs_{}", hex::encode(raw))
}

pub fn hash_secret(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

fn display_prefix(secret: &str) -> String {
    secret.chars().take(12).collect()
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<ApiKey, sqlx::Error> {
    let scopes: String = col(r, "scopes")?;
    Ok(ApiKey {
        id: col(r, "id")?,
        name: col(r, "name")?,
        prefix: col(r, "prefix")?,
        scopes: scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        created_at: to_rfc3339(col(r, "created_at")?),
        last_used_at: opt_rfc3339(col(r, "last_used_at")?),
        revoked_at: opt_rfc3339(col(r, "revoked_at")?),
    })
}

const COLUMNS: &str =
    "SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys";

/// Creates a key; returns it with its clear secret.
pub async fn create(
    db: &Db,
    tenant_id: &str,
    name: &str,
    scopes: &[String],
) -> Result<(ApiKey, String), sqlx::Error> {
    let secret = mint_secret();
    let id = new_id("key");
    let _w = db.write().await;
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(name)
    .bind(display_prefix(&secret))
    .bind(hash_secret(&secret))
    .bind(scopes.join(","))
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    drop(_w);
    let key = get(db, tenant_id, &id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((key, secret))
}

pub async fn get(db: &Db, tenant_id: &str, id: &str) -> Result<Option<ApiKey>, sqlx::Error> {
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
    cursor: Option<&str>,
    limit: usize,
) -> Result<PageRows<ApiKey>, sqlx::Error> {
    let rows = ListQuery::new(COLUMNS, tenant_id)
        .cursor(cursor)
        .fetch(db, limit)
        .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(PageRows::from_overfetch(items, limit))
}

pub async fn find_by_secret(db: &Db, secret: &str) -> Result<Option<KeyAuth>, sqlx::Error> {
    find_by_hash(db, &hash_secret(secret)).await
}

/// Looks a key up by the hex SHA-256 of its secret.
pub async fn find_by_hash(db: &Db, hash: &str) -> Result<Option<KeyAuth>, sqlx::Error> {
    let row =
        sqlx::query("SELECT id, tenant_id, scopes, revoked_at FROM api_keys WHERE key_hash = $1")
            .bind(hash)
            .fetch_optional(&db.pool)
            .await?;
    row.map(|r| {
        let scopes: String = col(&r, "scopes")?;
        let revoked: Option<i64> = col(&r, "revoked_at")?;
        Ok(KeyAuth {
            key_id: col(&r, "id")?,
            tenant_id: col(&r, "tenant_id")?,
            scopes: scopes.split(',').map(String::from).collect(),
            revoked: revoked.is_some(),
        })
    })
    .transpose()
}

/// Revokes a key; `false` if no such (unrevoked) key exists in the tenant.
pub async fn revoke(db: &Db, tenant_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let r = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Replaces the secret of an unrevoked key; the old secret stops working at once.
pub async fn rotate(
    db: &Db,
    tenant_id: &str,
    id: &str,
) -> Result<Option<(ApiKey, String)>, sqlx::Error> {
    let secret = mint_secret();
    let _w = db.write().await;
    let r = sqlx::query(
        "UPDATE api_keys SET key_hash = $1, prefix = $2 \
         WHERE tenant_id = $3 AND id = $4 AND revoked_at IS NULL",
    )
    .bind(hash_secret(&secret))
    .bind(display_prefix(&secret))
    .bind(tenant_id)
    .bind(id)
    .execute(&db.pool)
    .await?;
    drop(_w);
    if r.rows_affected() != 1 {
        return Ok(None);
    }
    Ok(get(db, tenant_id, id).await?.map(|k| (k, secret)))
}

pub async fn touch(db: &Db, id: &str, at: i64) -> Result<(), sqlx::Error> {
    let _w = db.write().await;
    sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
        .bind(at)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}
