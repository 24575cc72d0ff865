//! The tenant registry: tenants, their policies and their API tokens.
//!
//! ```text
//!  admin API ──► RegistryStore (SQLite file / PostgreSQL) ──generation++──┐
//!                                                                          │ poll every second
//!  every request ──► Registry::resolve (in-memory snapshot) ◄── reload ◄──┘
//! ```
//!
//! Tokens look like `st_<id>_<secret>`: the id is public (listed, used to
//! revoke), only the SHA-256 of the whole token is stored, and the token is
//! shown once, when it is issued. A token allows `read`, `write` or
//! `read_write` access to exactly one tenant.
//!
//! Open mode: while the registry has never had a tenant or a token and the
//! configuration lists no static tokens, every request belongs to the
//! tenant `default`, so a fresh install works without setup. Creating the
//! first tenant ends open mode for good (deleting every tenant afterwards
//! does not reopen the node).

pub mod store;

use crate::auth::StaticTokens;
use anyhow::Context;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::{RegistryStore, TenantRow, TokenRow};
use strata_schemas::tenant::parse_authorization;
use strata_schemas::{Access, AuthError, TenantId, TenantLimits, TenantPolicy, TenantResolver};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAccess {
    /// Queries only.
    Read,
    /// Writes only.
    Write,
    /// Both.
    ReadWrite,
    /// Read, write and delete (erasure requests through the Prometheus API).
    Admin,
}

impl TokenAccess {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAccess::Read => "read",
            TokenAccess::Write => "write",
            TokenAccess::ReadWrite => "read_write",
            TokenAccess::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "read" => TokenAccess::Read,
            "write" => TokenAccess::Write,
            "read_write" => TokenAccess::ReadWrite,
            "admin" => TokenAccess::Admin,
            _ => return None,
        })
    }

    fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (TokenAccess::Admin, _)
                | (TokenAccess::ReadWrite, Access::Read | Access::Write)
                | (TokenAccess::Read, Access::Read)
                | (TokenAccess::Write, Access::Write)
        )
    }
}

#[derive(Debug)]
struct LiveToken {
    tenant: TenantId,
    hash: [u8; 32],
    access: TokenAccess,
}

/// What requests are resolved against; replaced whole on every reload.
#[derive(Debug, Default)]
struct Snapshot {
    generation: i64,
    deletes_generation: i64,
    tenants: HashMap<TenantId, Arc<TenantPolicy>>,
    tokens: HashMap<String, LiveToken>,
    /// Delete requests still to apply at read time (`crate::erasure`).
    tombstones: HashMap<TenantId, Arc<[crate::erasure::Tombstone]>>,
}

/// The registry: the database plus an in-memory snapshot for resolution.
#[derive(Debug)]
pub struct Registry {
    store: RegistryStore,
    snapshot: RwLock<Arc<Snapshot>>,
    static_tokens: StaticTokens,
    region: String,
    /// The node's `[limits]`: of tenants without a policy, and where new tenants start.
    default_limits: TenantLimits,
}

impl Registry {
    /// Opens the registry and loads the first snapshot. `default_limits`
    /// (the node's `[limits]`) apply to tenants without a policy and are
    /// where a tenant created through the admin API starts.
    pub async fn open(
        url: &str,
        static_tokens: StaticTokens,
        region: &str,
        default_limits: TenantLimits,
    ) -> anyhow::Result<Arc<Self>> {
        let store = RegistryStore::open(url).await?;
        let registry = Arc::new(Self {
            store,
            snapshot: RwLock::new(Arc::new(Snapshot { generation: -1, deletes_generation: -1, ..Snapshot::default() })),
            static_tokens,
            region: region.to_owned(),
            default_limits,
        });
        registry.reload().await?;
        Ok(registry)
    }

    /// The database.
    pub fn store(&self) -> &RegistryStore {
        &self.store
    }

    /// This node's region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Reloads the snapshot if the registry changed since the last load.
    pub async fn reload(&self) -> anyhow::Result<bool> {
        let generation = self.store.generation().await?;
        let deletes_generation = self.store.deletes_generation().await?;
        {
            let s = self.snapshot.read();
            if generation == s.generation && deletes_generation == s.deletes_generation {
                return Ok(false);
            }
        }
        let tenants = self.store.tenants().await?;
        let tokens = self.store.tokens(None).await?;
        let deletes = self.store.deletes(None).await?;
        let mut snapshot = build_snapshot(generation, tenants, tokens);
        snapshot.tombstones = tombstones(&deletes);
        snapshot.deletes_generation = deletes_generation;
        tracing::debug!(generation, tenants = snapshot.tenants.len(), "tenant registry reloaded");
        *self.snapshot.write() = Arc::new(snapshot);
        Ok(true)
    }

    /// Polls for changes every second until the task is dropped.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %format!("{e:#}"), "tenant registry reload failed; keeping the last snapshot");
            }
        }
    }

    /// The tenant's tombstones (`None`: nothing of it is deleted).
    pub fn tombstones(&self, tenant: &TenantId) -> Option<Arc<[crate::erasure::Tombstone]>> {
        self.snapshot.read().tombstones.get(tenant).cloned()
    }

    /// True while the registry was never changed (generation 0: no tenant
    /// or token ever created) and no static token is configured. Deleting
    /// every tenant does not reopen the node.
    pub fn open_mode(&self) -> bool {
        self.snapshot.read().generation == 0 && self.static_tokens.is_empty()
    }

    /// Issues a new token for `tenant`; returns the stored row and the token (shown once).
    pub async fn issue_token(
        &self,
        tenant: &TenantId,
        access: TokenAccess,
        description: &str,
        now: i64,
    ) -> anyhow::Result<(TokenRow, String)> {
        let id = random_hex(6)?;
        let token = format!("st_{id}_{}", random_hex(24)?);
        let row = TokenRow {
            id,
            tenant_id: tenant.as_str().to_owned(),
            secret_hash: hex(&Sha256::digest(token.as_bytes())),
            access: access.as_str().to_owned(),
            description: description.to_owned(),
            created_at: now,
            revoked_at: None,
        };
        self.store.insert_token(&row).await?;
        self.reload().await?;
        Ok((row, token))
    }

    /// Each registered tenant's `hot_ttl`.
    pub async fn hot_ttls(&self) -> anyhow::Result<std::collections::BTreeMap<String, Duration>> {
        let snapshot = Arc::clone(&self.snapshot.read());
        Ok(snapshot.tenants.iter().map(|(id, p)| (id.as_str().to_owned(), p.limits.hot_ttl)).collect())
    }

    /// All tenants as stored.
    pub async fn tenants(&self) -> anyhow::Result<Vec<TenantRow>> {
        self.store.tenants().await
    }

    fn resolve_registered(&self, token: &str, access: Access) -> Result<TenantId, AuthError> {
        let snapshot = Arc::clone(&self.snapshot.read());
        let id = token.strip_prefix("st_").and_then(|rest| rest.split_once('_')).map(|(id, _)| id);
        let live = id.and_then(|id| snapshot.tokens.get(id)).ok_or(AuthError::InvalidToken)?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if !constant_time_eq(&hash, &live.hash) {
            return Err(AuthError::InvalidToken);
        }
        if !live.access.allows(access) {
            return Err(AuthError::Forbidden { tenant: live.tenant.clone(), access });
        }
        Ok(live.tenant.clone())
    }
}

impl TenantResolver for Registry {
    fn resolve(&self, authorization: Option<&str>, access: Access) -> Result<TenantId, AuthError> {
        if self.open_mode() {
            return Ok(TenantId::default_tenant());
        }
        let token = parse_authorization(authorization.ok_or(AuthError::MissingToken)?)?;
        if token.starts_with("st_") {
            return self.resolve_registered(token, access);
        }
        self.static_tokens.resolve(authorization, access)
    }

    fn policy(&self, tenant: &TenantId) -> Option<Arc<TenantPolicy>> {
        self.snapshot.read().tenants.get(tenant).cloned()
    }

    fn default_limits(&self) -> TenantLimits {
        self.default_limits.clone()
    }
}

/// Per tenant, the tombstones of its delete requests.
fn tombstones(rows: &[store::DeleteRow]) -> HashMap<TenantId, Arc<[crate::erasure::Tombstone]>> {
    let mut by_tenant: HashMap<TenantId, Vec<crate::erasure::Tombstone>> = HashMap::new();
    for row in rows {
        match (TenantId::new(row.tenant_id.as_str()), crate::erasure::Tombstone::of(row)) {
            (Ok(t), Some(stone)) => by_tenant.entry(t).or_default().push(stone),
            _ => tracing::error!(id = %row.id, "a delete request in the registry does not parse; it is not applied"),
        }
    }
    by_tenant.into_iter().map(|(t, v)| (t, Arc::from(v))).collect()
}

fn build_snapshot(generation: i64, tenants: Vec<TenantRow>, tokens: Vec<TokenRow>) -> Snapshot {
    let tenants: HashMap<TenantId, Arc<TenantPolicy>> =
        tenants.into_iter().map(|t| (t.policy.id.clone(), Arc::new(t.policy))).collect();
    let tokens = tokens
        .into_iter()
        .filter(|t| t.revoked_at.is_none())
        .filter_map(|t| {
            let tenant = TenantId::new(t.tenant_id).ok().filter(|id| tenants.contains_key(id))?;
            let hash = unhex32(&t.secret_hash)?;
            let access = TokenAccess::parse(&t.access)?;
            Some((t.id, LiveToken { tenant, hash, access }))
        })
        .collect();
    Snapshot { generation, deletes_generation: -1, tenants, tokens, tombstones: HashMap::new() }
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex digits to 32 bytes.
pub(crate) fn unhex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Byte equality whose time does not depend on where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Validates a policy from the admin API against this node's view: region
/// and jurisdiction names non-empty and listed once, `home_region` one of
/// the `data_regions` (when they are set), the residency label a valid label
/// name with at least one value, each mapped to a named jurisdiction.
pub fn check_policy(policy: &TenantPolicy) -> anyhow::Result<()> {
    policy.limits.validate().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(!policy.home_region.is_empty(), "home_region must not be empty");
    distinct_names("allowed_query_regions", &policy.allowed_query_regions)?;
    distinct_names("data_regions", &policy.data_regions)?;
    for d in &policy.group_rollups {
        d.validate().map_err(anyhow::Error::msg)?;
    }
    anyhow::ensure!(
        policy.data_regions.is_empty() || policy.stores_in(&policy.home_region),
        "home_region {:?} is not one of data_regions {:?}: the home region is the tenant's first data region",
        policy.home_region,
        policy.data_regions
    );
    anyhow::ensure!(policy.exports.keys().all(|j| !j.is_empty()), "exports: a jurisdiction name must not be empty");
    if let Some(r) = &policy.residency {
        anyhow::ensure!(
            is_label_name(&r.label),
            "residency.label {:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with \"__\")",
            r.label
        );
        anyhow::ensure!(
            !r.jurisdictions.is_empty(),
            "residency.jurisdictions must map at least one value of label {:?} to a jurisdiction",
            r.label
        );
        for (value, jurisdiction) in &r.jurisdictions {
            anyhow::ensure!(!value.is_empty(), "residency.jurisdictions: a label value must not be empty");
            anyhow::ensure!(
                !jurisdiction.is_empty(),
                "residency.jurisdictions: value {value:?} is mapped to an empty jurisdiction"
            );
        }
    }
    Ok(())
}

/// Checks that a list of names has no empty and no repeated name.
fn distinct_names(field: &str, names: &[String]) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        anyhow::ensure!(!n.is_empty(), "empty region in {field}");
        anyhow::ensure!(seen.insert(n.as_str()), "region {n:?} is listed twice in {field}");
    }
    Ok(())
}

/// Prometheus's label name syntax, without the reserved `__` prefix.
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with("__")
}

/// Current time in ms (registry timestamps).
pub fn now_ms() -> i64 {
    strata_schemas::time::now_millis()
}

/// Opens the registry configured for a node.
pub async fn open_for(
    url: Option<&str>,
    data_dir: &std::path::Path,
    static_tokens: StaticTokens,
    region: &str,
    default_limits: TenantLimits,
) -> anyhow::Result<Arc<Registry>> {
    let url = url.map(str::to_owned).unwrap_or_else(|| RegistryStore::sqlite_url(data_dir));
    let registry =
        Registry::open(&url, static_tokens, region, default_limits).await.context("opening the tenant registry")?;
    tracing::info!(location = registry.store().location(), open_mode = registry.open_mode(), "tenant registry ready");
    Ok(registry)
}

#[cfg(test)]
mod tests;
