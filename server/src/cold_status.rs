//! `GET /api/v1/status/cold`: the cold tier as the console's storage page
//! shows it — per tenant its cold watermark (below it queries read the
//! cold tables) and, per table (raw samples, the 5 m, 1 h and 1 d rollup tiers,
//! the series table), the snapshot count and the current snapshot's data
//! files, records and bytes (from the Iceberg snapshot summary: a metadata
//! read per table, no data file is opened).
//!
//! Scoped like the tasks endpoint ([`crate::progress::scope`]): a tenant's
//! token sees its own tables; the admin token every tenant with a table.
//! `enabled: false` when the node runs without a cold tier.

use crate::error::Error;
use crate::progress::{Scope, scope};
use crate::registry::Registry;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use strata_cold_tier::{ColdTier, Rollup};
use strata_hot_store::HotStore;
use strata_schemas::{TenantId, TenantResolver};

/// What the endpoint needs.
#[derive(Clone)]
pub struct ColdStatusState {
    /// The hot store (cold watermarks).
    pub hot: Arc<HotStore>,
    /// The cold tier, when on.
    pub cold: Option<Arc<ColdTier>>,
    /// Token → tenant.
    pub resolver: Arc<dyn TenantResolver>,
    /// The tenant registry (open mode).
    pub registry: Arc<Registry>,
    /// The admin token.
    pub admin_token: Arc<str>,
}

impl std::fmt::Debug for ColdStatusState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdStatusState").field("enabled", &self.cold.is_some()).finish_non_exhaustive()
    }
}

/// The route.
pub fn router(state: ColdStatusState) -> Router {
    Router::new().route("/api/v1/status/cold", get(cold_status)).with_state(state)
}

async fn cold_status(State(st): State<ColdStatusState>, headers: HeaderMap) -> Result<Response, Error> {
    let scope = scope(&headers, &st.admin_token, st.resolver.as_ref(), st.registry.open_mode())?;
    let Some(cold) = &st.cold else {
        return Ok(axum::Json(json!({"status": "success", "data": {"enabled": false, "tenants": []}})).into_response());
    };
    let tenants = match &scope {
        Scope::All => cold.tenants().await.map_err(|source| Error::ListColdTables(Box::new(source)))?,
        Scope::Tenant { tenant, .. } => vec![tenant.clone()],
    };
    let mut out = Vec::with_capacity(tenants.len());
    for tenant in &tenants {
        out.push(tenant_status(&st.hot, cold, tenant).await);
    }
    Ok(axum::Json(json!({"status": "success", "data": {"enabled": true, "tenants": out}})).into_response())
}

async fn tenant_status(hot: &HotStore, cold: &ColdTier, tenant: &TenantId) -> Value {
    let mut tables = vec![table_status("samples", cold, tenant).await];
    for r in Rollup::ALL {
        let view = cold.rollup_view(r);
        let mut t = table_status(&format!("rollup {}", r.name()), &view, tenant).await;
        if let Ok(Some(from)) = view.rollup_complete_from(tenant).await {
            t["complete_from_ms"] = if from == i64::MIN { Value::Null } else { from.into() };
        }
        tables.push(t);
    }
    tables.push(table_status("series", &cold.series_view(), tenant).await);
    json!({
        "tenant": tenant.as_str(),
        "watermark_ms": hot.cold_watermark(tenant),
        "tables": tables,
    })
}

async fn table_status(name: &str, tier: &ColdTier, tenant: &TenantId) -> Value {
    match tier.load_table(tenant).await {
        Ok(None) => json!({"table": name, "exists": false}),
        Ok(Some(table)) => {
            let meta = table.metadata();
            let summary =
                meta.current_snapshot().map(|s| s.summary().additional_properties.clone()).unwrap_or_default();
            let num = |k: &str| summary.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            json!({
                "table": name,
                "exists": true,
                "snapshots": meta.snapshots().count(),
                "data_files": num("total-data-files"),
                "records": num("total-records"),
                "bytes": num("total-files-size"),
                "last_updated_ms": meta.last_updated_ms(),
            })
        }
        Err(e) => json!({"table": name, "error": e.to_string()}),
    }
}
