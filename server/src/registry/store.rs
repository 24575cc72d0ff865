//! The registry's SQL tables, through `sqlx`'s `Any` driver: an SQLite file
//! in the data dir by default, PostgreSQL when `registry.url` says so.
//!
//! ```text
//! strata_registry_meta  (key TEXT PRIMARY KEY, value BIGINT)        schema_version, generation
//! strata_tenants        (id TEXT PRIMARY KEY, policy TEXT,           policy = TenantPolicy as JSON
//!                        created_at BIGINT, updated_at BIGINT)
//! strata_tokens         (id TEXT PRIMARY KEY, tenant_id TEXT,        id = the token's public part
//!                        secret_hash TEXT, access TEXT,              secret_hash = hex SHA-256 of the whole token
//!                        description TEXT, created_at BIGINT, revoked_at BIGINT NULL)
//! strata_deletes        (id TEXT PRIMARY KEY, tenant_id TEXT,        request = DeleteSpec as JSON (selectors, range, who)
//!                        request TEXT, status TEXT,                  status = its progress as JSON (`erasure::status`),
//!                        requested_at BIGINT, completed_at BIGINT NULL)  updated by compare-and-swap; completed_at set
//!                                                                    once every node purged and verified
//! ```
//!
//! Every change bumps `generation` (a delete request bumps
//! `deletes_generation` instead, so it does not end open mode); nodes poll
//! both (cheap) and reload the tables only when one moved, so changes reach
//! every node within a second.

use anyhow::{Context, bail};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use std::path::Path;
use strata_schemas::{TenantId, TenantPolicy};

/// Version of the table layout above.
pub const SCHEMA_VERSION: i64 = 1;

/// A token as stored (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRow {
    /// Public token id.
    pub id: String,
    /// Tenant it acts for.
    pub tenant_id: String,
    /// Hex SHA-256 of the whole token.
    #[serde(skip)]
    pub secret_hash: String,
    /// `read`, `write` or `read_write`.
    pub access: String,
    /// Free text given at creation.
    pub description: String,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// A tenant row.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    /// The policy.
    pub policy: TenantPolicy,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// Connection to the registry database.
#[derive(Debug, Clone)]
pub struct RegistryStore {
    pool: AnyPool,
    url: String,
}

impl RegistryStore {
    /// Connects (creating an SQLite file if needed) and creates the tables.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .connect(url)
            .await
            .with_context(|| format!("connecting to the tenant registry at {}", redact(url)))?;
        let store = Self { pool, url: redact(url) };
        store.migrate().await?;
        Ok(store)
    }

    /// The SQLite URL of `<data_dir>/registry.db`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("registry.db").display())
    }

    /// Where the registry lives (credentials removed), for logs.
    pub fn location(&self) -> &str {
        &self.url
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let ddl = [
            "CREATE TABLE IF NOT EXISTS strata_registry_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS strata_tenants (id TEXT PRIMARY KEY, policy TEXT NOT NULL, \
             created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS strata_tokens (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, \
             secret_hash TEXT NOT NULL, access TEXT NOT NULL, description TEXT NOT NULL, \
             created_at BIGINT NOT NULL, revoked_at BIGINT)",
            // Added without a schema version change: older builds ignore it.
            "CREATE TABLE IF NOT EXISTS strata_deletes (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, \
             request TEXT NOT NULL, status TEXT NOT NULL, requested_at BIGINT NOT NULL, completed_at BIGINT)",
        ];
        for stmt in ddl {
            sqlx::query(stmt).execute(&self.pool).await.context("creating registry tables")?;
        }
        let version: Option<i64> = sqlx::query("SELECT value FROM strata_registry_meta WHERE key = 'schema_version'")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        match version {
            None => {
                for (k, v) in [("schema_version", SCHEMA_VERSION), ("generation", 0)] {
                    sqlx::query("INSERT INTO strata_registry_meta (key, value) VALUES ($1, $2)")
                        .bind(k)
                        .bind(v)
                        .execute(&self.pool)
                        .await?;
                }
            }
            Some(v) if v > SCHEMA_VERSION => {
                bail!("tenant registry schema version {v} is newer than this build supports ({SCHEMA_VERSION})")
            }
            Some(_) => {}
        }
        // Delete requests count apart from tenant and token changes, so a
        // delete does not end open mode (`Registry::open_mode`).
        let deletes: Option<i64> =
            sqlx::query("SELECT value FROM strata_registry_meta WHERE key = 'deletes_generation'")
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        if deletes.is_none() {
            sqlx::query("INSERT INTO strata_registry_meta (key, value) VALUES ('deletes_generation', 0)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The change counter of delete requests.
    pub async fn deletes_generation(&self) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT value FROM strata_registry_meta WHERE key = 'deletes_generation'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The change counter.
    pub async fn generation(&self) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT value FROM strata_registry_meta WHERE key = 'generation'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn bump(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> anyhow::Result<()> {
        sqlx::query("UPDATE strata_registry_meta SET value = value + 1 WHERE key = 'generation'")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// All tenants.
    pub async fn tenants(&self) -> anyhow::Result<Vec<TenantRow>> {
        let rows = sqlx::query("SELECT policy, created_at, updated_at FROM strata_tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_row).collect()
    }

    /// One tenant.
    pub async fn tenant(&self, id: &TenantId) -> anyhow::Result<Option<TenantRow>> {
        let row = sqlx::query("SELECT policy, created_at, updated_at FROM strata_tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_row).transpose()
    }

    /// Creates a tenant; fails if the id exists.
    pub async fn create_tenant(&self, policy: &TenantPolicy, now: i64) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT id FROM strata_tenants WHERE id = $1")
            .bind(policy.id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists {
            return Ok(false);
        }
        sqlx::query("INSERT INTO strata_tenants (id, policy, created_at, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(policy.id.as_str())
            .bind(serde_json::to_string(policy)?)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        self.bump(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces a tenant's policy; false if it does not exist.
    pub async fn update_tenant(&self, policy: &TenantPolicy, now: i64) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE strata_tenants SET policy = $1, updated_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(policy)?)
            .bind(now)
            .bind(policy.id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        self.bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Deletes a tenant and revokes its tokens; false if it does not exist.
    pub async fn delete_tenant(&self, id: &TenantId, now: i64) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM strata_tenants WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE strata_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        self.bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Tokens (all, or of one tenant), revoked ones included.
    pub async fn tokens(&self, tenant: Option<&TenantId>) -> anyhow::Result<Vec<TokenRow>> {
        let sql = "SELECT id, tenant_id, secret_hash, access, description, created_at, revoked_at FROM strata_tokens";
        let rows = match tenant {
            Some(t) => {
                sqlx::query(&format!("{sql} WHERE tenant_id = $1 ORDER BY created_at, id"))
                    .bind(t.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(&format!("{sql} ORDER BY created_at, id")).fetch_all(&self.pool).await?,
        };
        rows.iter()
            .map(|r| {
                Ok(TokenRow {
                    id: r.try_get(0)?,
                    tenant_id: r.try_get(1)?,
                    secret_hash: r.try_get(2)?,
                    access: r.try_get(3)?,
                    description: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                    revoked_at: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Stores a new token.
    pub async fn insert_token(&self, t: &TokenRow) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO strata_tokens (id, tenant_id, secret_hash, access, description, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&t.id)
        .bind(&t.tenant_id)
        .bind(&t.secret_hash)
        .bind(&t.access)
        .bind(&t.description)
        .bind(t.created_at)
        .execute(&mut *tx)
        .await?;
        self.bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes a token of a tenant; false if there is no such live token.
    pub async fn revoke_token(&self, tenant: &TenantId, id: &str, now: i64) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE strata_tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }
}

/// A delete request as stored (`crate::erasure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRow {
    /// Request id.
    pub id: String,
    /// Tenant whose data it deletes.
    pub tenant_id: String,
    /// The request (selectors, range, who asked), JSON.
    pub request: String,
    /// Its progress, JSON.
    pub status: String,
    /// When it was acknowledged, ms since the epoch.
    pub requested_at: i64,
    /// When it completed.
    pub completed_at: Option<i64>,
}

impl RegistryStore {
    /// Records a delete request (a tombstone every node applies at its next reload).
    pub async fn insert_delete(&self, d: &DeleteRow) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO strata_deletes (id, tenant_id, request, status, requested_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&d.id)
        .bind(&d.tenant_id)
        .bind(&d.request)
        .bind(&d.status)
        .bind(d.requested_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE strata_registry_meta SET value = value + 1 WHERE key = 'deletes_generation'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete requests (all, or of one tenant), oldest first.
    pub async fn deletes(&self, tenant: Option<&TenantId>) -> anyhow::Result<Vec<DeleteRow>> {
        let sql = "SELECT id, tenant_id, request, status, requested_at, completed_at FROM strata_deletes";
        let rows = match tenant {
            Some(t) => {
                sqlx::query(&format!("{sql} WHERE tenant_id = $1 ORDER BY requested_at, id"))
                    .bind(t.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(&format!("{sql} ORDER BY requested_at, id")).fetch_all(&self.pool).await?,
        };
        rows.iter().map(delete_row).collect()
    }

    /// One delete request.
    pub async fn delete_request(&self, id: &str) -> anyhow::Result<Option<DeleteRow>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, request, status, requested_at, completed_at FROM strata_deletes WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(delete_row).transpose()
    }

    /// Delete requests not completed yet, oldest first (the purge worker's queue).
    pub async fn pending_deletes(&self) -> anyhow::Result<Vec<DeleteRow>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, request, status, requested_at, completed_at FROM strata_deletes \
             WHERE completed_at IS NULL ORDER BY requested_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delete_row).collect()
    }

    /// Replaces a request's status if it is still `old` (compare-and-swap:
    /// the nodes of a cluster each update their own part of it). With
    /// `completed_at`, also completes the request and bumps
    /// `deletes_generation` so every node reloads its tombstones. False when
    /// the status changed in between (read it again and retry).
    pub async fn swap_delete_status(
        &self,
        id: &str,
        old: &str,
        new: &str,
        completed_at: Option<i64>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE strata_deletes SET status = $1, completed_at = COALESCE(completed_at, $2) \
             WHERE id = $3 AND status = $4",
        )
        .bind(new)
        .bind(completed_at)
        .bind(id)
        .bind(old)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 && completed_at.is_some() {
            sqlx::query("UPDATE strata_registry_meta SET value = value + 1 WHERE key = 'deletes_generation'")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}

fn delete_row(r: &sqlx::any::AnyRow) -> anyhow::Result<DeleteRow> {
    Ok(DeleteRow {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        request: r.try_get(2)?,
        status: r.try_get(3)?,
        requested_at: r.try_get(4)?,
        completed_at: r.try_get(5)?,
    })
}

fn tenant_row(r: &sqlx::any::AnyRow) -> anyhow::Result<TenantRow> {
    let json: String = r.try_get(0)?;
    let policy: TenantPolicy = serde_json::from_str(&json).context("tenant policy in the registry is not valid")?;
    Ok(TenantRow { policy, created_at: r.try_get(1)?, updated_at: r.try_get(2)? })
}

/// Removes a password from a database URL for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact("sqlite:///tmp/r.db?mode=rwc"), "sqlite:///tmp/r.db?mode=rwc");
    }
}
