//! Provider credentials, one per provider and tenant, encrypted at rest (AES-256-GCM under the
//! server secret). Only the masked hint ever leaves this module towards the API; the clear key
//! is decrypted for a verification probe or for the engine's provider clients.

use serde::Serialize;
use utoipa::ToSchema;

use super::{col, Db};
use crate::crypto::Secrets;
use crate::model::provider::{last4, Provider};
use crate::timestamps::{now_ms, opt_rfc3339, to_rfc3339};

/// A stored provider key as listed: never the key itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderKey {
    pub provider: Provider,
    pub label: Option<String>,
    /// The key masked: the provider's public prefix, `…` and the last four characters.
    pub key_hint: String,
    /// Whether the key has the provider's documented format (see `verify` for details).
    pub format_valid: bool,
    pub created_at: String,
    pub updated_at: String,
    /// When a verification last found the key accepted by the provider.
    pub verified_at: Option<String>,
}

const COLUMNS: &str =
    "SELECT provider, label, key_enc, last4, created_at, updated_at, verified_at FROM provider_keys";

fn from_row(r: &sqlx::any::AnyRow, secrets: &Secrets) -> Result<Option<ProviderKey>, sqlx::Error> {
    let name: String = col(r, "provider")?;
    // A row for a provider this build does not know is skipped rather than failing the list.
    let Some(provider) = Provider::parse(&name) else {
        return Ok(None);
    };
    let last: String = col(r, "last4")?;
    let enc: String = col(r, "key_enc")?;
    let (key_hint, format_valid) = match secrets.decrypt(&enc) {
        Some(k) => (provider.mask(&k), provider.format_ok(&k)),
        None => (format!("…{last}"), false),
    };
    Ok(Some(ProviderKey {
        provider,
        label: col(r, "label")?,
        key_hint,
        format_valid,
        created_at: to_rfc3339(col(r, "created_at")?),
        updated_at: to_rfc3339(col(r, "updated_at")?),
        verified_at: opt_rfc3339(col(r, "verified_at")?),
    }))
}

/// Stores (or replaces) the tenant's key for `provider`. Returns the stored entry and whether
/// it replaced an earlier key.
pub async fn put(
    db: &Db,
    secrets: &Secrets,
    tenant_id: &str,
    provider: Provider,
    key: &str,
    label: Option<&str>,
) -> Result<(ProviderKey, bool), sqlx::Error> {
    let now = now_ms();
    let enc = secrets.encrypt(key);
    let replaced = {
        let _w = db.write().await;
        let mut tx = db.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE provider_keys SET label = $1, key_enc = $2, last4 = $3, updated_at = $4, \
             verified_at = NULL WHERE tenant_id = $5 AND provider = $6",
        )
        .bind(label.map(str::to_string))
        .bind(&enc)
        .bind(last4(key))
        .bind(now)
        .bind(tenant_id)
        .bind(provider.as_str())
        .execute(&mut *tx)
        .await?;
        let replaced = r.rows_affected() == 1;
        if !replaced {
            sqlx::query(
                "INSERT INTO provider_keys (tenant_id, provider, label, key_enc, last4, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(tenant_id)
            .bind(provider.as_str())
            .bind(label.map(str::to_string))
            .bind(&enc)
            .bind(last4(key))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        replaced
    };
    let stored = get(db, secrets, tenant_id, provider)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok((stored, replaced))
}

pub async fn get(
    db: &Db,
    secrets: &Secrets,
    tenant_id: &str,
    provider: Provider,
) -> Result<Option<ProviderKey>, sqlx::Error> {
    let row = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = $1 AND provider = $2"))
        .bind(tenant_id)
        .bind(provider.as_str())
        .fetch_optional(&db.pool)
        .await?;
    match row {
        Some(r) => from_row(&r, secrets),
        None => Ok(None),
    }
}

/// Every stored key of the tenant, by provider name.
pub async fn list(
    db: &Db,
    secrets: &Secrets,
    tenant_id: &str,
) -> Result<Vec<ProviderKey>, sqlx::Error> {
    let rows = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = $1 ORDER BY provider"))
        .bind(tenant_id)
        .fetch_all(&db.pool)
        .await?;
    let mut out = Vec::new();
    for r in &rows {
        if let Some(k) = from_row(r, secrets)? {
            out.push(k);
        }
    }
    Ok(out)
}

/// The clear key, for a verification probe or a provider client. `Ok(Some(None))` means a key
/// is stored but cannot be decrypted (it was stored under another server secret).
pub async fn decrypted(
    db: &Db,
    secrets: &Secrets,
    tenant_id: &str,
    provider: Provider,
) -> Result<Option<Option<String>>, sqlx::Error> {
    let row =
        sqlx::query("SELECT key_enc FROM provider_keys WHERE tenant_id = $1 AND provider = $2")
            .bind(tenant_id)
            .bind(provider.as_str())
            .fetch_optional(&db.pool)
            .await?;
    match row {
        Some(r) => {
            let enc: String = col(&r, "key_enc")?;
            Ok(Some(secrets.decrypt(&enc)))
        }
        None => Ok(None),
    }
}

pub async fn mark_verified(
    db: &Db,
    tenant_id: &str,
    provider: Provider,
) -> Result<(), sqlx::Error> {
    let _w = db.write().await;
    sqlx::query("UPDATE provider_keys SET verified_at = $1 WHERE tenant_id = $2 AND provider = $3")
        .bind(now_ms())
        .bind(tenant_id)
        .bind(provider.as_str())
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn delete(db: &Db, tenant_id: &str, provider: Provider) -> Result<bool, sqlx::Error> {
    let _w = db.write().await;
    let r = sqlx::query("DELETE FROM provider_keys WHERE tenant_id = $1 AND provider = $2")
        .bind(tenant_id)
        .bind(provider.as_str())
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}
