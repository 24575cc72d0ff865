//! The admin API under `/admin/v1`, guarded by the admin token.
//!
//! | method & path | does |
//! |---|---|
//! | `GET /admin/v1/tenants` | list tenants |
//! | `POST /admin/v1/tenants` | create (`id`, optional `display_name`, `home_region`, `data_regions`, `allowed_query_regions`, `export_policy`, `exports`, `residency`, `limits`; see below) |
//! | `GET /admin/v1/tenants/{id}` | one tenant |
//! | `PATCH /admin/v1/tenants/{id}` | change any of the fields above (`limits` merges; the others replace) |
//! | `PUT /admin/v1/tenants/{id}/limits` | merge limits |
//! | `DELETE /admin/v1/tenants/{id}?data=keep\|purge` | delete the tenant and revoke its tokens; `data` must say what happens to its samples: `keep` (stored until hot_ttl expires them), `purge` (hot and cold data deleted now; idempotent, so a failed purge is retried with the same request, also for an already deleted tenant) |
//! | `POST /admin/v1/tenants/{id}/tokens` | issue a token (`access`: `read`/`write`/`read_write`, `description`); the token is in this answer only |
//! | `GET /admin/v1/tenants/{id}/tokens` | list tokens (ids, access, dates; never secrets) |
//! | `DELETE /admin/v1/tenants/{id}/tokens/{token_id}` | revoke |
//! | `GET /admin/v1/tenants/{id}/usage` | usage counters |
//!
//! Delete requests (`POST /admin/v1/tenants/{id}/delete`, `GET
//! /admin/v1/deletes/{id}`, `GET /admin/v1/tenants/{id}/deletes`) are served
//! by [`crate::erasure`].
//!
//! Policy fields (every change applies to the next request on every node, as
//! the registry reloads):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `home_region` | string | the first data region (default: the first of `data_regions`, else this node's region) |
//! | `data_regions` | list of strings | regions that may store the tenant's raw data (`[]`: `[home_region]`) |
//! | `allowed_query_regions` | list of strings | regions whose query nodes may read the tenant |
//! | `export_policy` | `none` \| `aggregates` \| `raw` | what may leave a jurisdiction `exports` does not list |
//! | `exports` | object, jurisdiction → `none` \| `aggregates` \| `raw` | what may leave that jurisdiction (`{}` clears) |
//! | `residency` | `{"label": "country", "jurisdictions": {"de": "eu"}}` or `null` | a label whose value pins a series to a jurisdiction: a line labelled for another jurisdiction than the node's is refused at ingest (`null` removes it) |
//! | `otlp_promoted_attributes` | list of strings | OTLP resource attributes copied onto every series (`[]` clears; they are always in `target_info`) |
//!
//! Errors are [`crate::error::Error`]s, answered `{"status": "error",
//! "errorType": ..., "error": "..."}` with 400 (bad input), 401 (admin token),
//! 404 (no such tenant or token), 409 (exists), 500 (a registry failure, or a
//! purge failed half-way; repeat it).

use crate::error::{Error, Result};
use crate::registry::store::TenantRow;
use crate::registry::{Registry, TokenAccess, check_policy, now_ms};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use strata_schemas::{ExportPolicy, Residency, TenantId, TenantLimits, TenantPolicy, TenantResolver};

/// Reads a tenant's usage counters (provided by the node).
pub type UsageFn = Arc<dyn Fn(&TenantId) -> Value + Send + Sync>;

/// Deletes everything stored for a tenant and says what went (provided by
/// the node: [`purge_fn`]).
pub type PurgeFn = Arc<
    dyn Fn(TenantId) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Value>> + Send>>
        + Send
        + Sync,
>;

/// The purge of a node: through the compactor when the cold tier is on (hot
/// data, then the tenant's Iceberg table and files, serialised with rolls so
/// none re-creates the table), else the hot store's alone.
pub fn purge_fn(hot: Arc<strata_hot_store::HotStore>, compactor: Option<Arc<strata_compactor::Compactor>>) -> PurgeFn {
    Arc::new(move |tenant: TenantId| {
        let (hot, compactor) = (Arc::clone(&hot), compactor.clone());
        Box::pin(async move {
            match compactor {
                Some(c) => {
                    let o = c.purge_tenant(&tenant).await?;
                    Ok(json!({
                        "hot_segments": o.hot_segments, "hot_bytes": o.hot_bytes,
                        "cold_files": o.cold_files, "cold_bytes": o.cold_bytes,
                    }))
                }
                None => {
                    let o = tokio::task::spawn_blocking(move || hot.purge_tenant(&tenant)).await??;
                    Ok(json!({"hot_segments": o.segments, "hot_bytes": o.bytes, "cold_files": 0, "cold_bytes": 0}))
                }
            }
        })
    })
}

/// Makes the compactor read every tenant's `limits.cold_retention` from
/// the registry at the start of each maintenance pass (a changed limit
/// applies at the next pass). Returns at once; spawning it is fine.
pub async fn sync_cold_retentions(registry: Arc<Registry>, compactor: Arc<strata_compactor::Compactor>) {
    compactor.set_retention_source(Arc::new(move || {
        let registry = Arc::clone(&registry);
        Box::pin(async move {
            match registry.tenants().await {
                Ok(rows) => Some(rows.into_iter().map(|r| (r.policy.id, r.policy.limits.cold_retention)).collect()),
                Err(e) => {
                    tracing::warn!(error = %e, "reading tenants' cold_retention failed; keeping the previous values");
                    None
                }
            }
        })
    }));
}

/// State of the admin routes.
#[derive(Clone)]
pub struct AdminState {
    /// The registry.
    pub registry: Arc<Registry>,
    /// The admin token (compared in constant time).
    pub admin_token: Arc<str>,
    /// Usage of a tenant.
    pub usage: UsageFn,
    /// Deletes a tenant's data (`DELETE …?data=purge`).
    pub purge: PurgeFn,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").field("registry", &self.registry).finish_non_exhaustive()
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/admin/v1/tenants/{id}", get(get_tenant).patch(update_tenant).delete(delete_tenant))
        .route("/admin/v1/tenants/{id}/limits", put(set_limits))
        .route("/admin/v1/tenants/{id}/tokens", get(list_tokens).post(issue_token))
        .route("/admin/v1/tenants/{id}/tokens/{token_id}", delete(revoke_token))
        .route("/admin/v1/tenants/{id}/usage", get(usage))
        .with_state(state)
}

type ApiResult = Result<Response>;

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

fn not_found(id: &TenantId) -> Error {
    Error::NotFound(format!("no tenant {:?}", id.as_str()))
}

fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<()> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| strata_schemas::tenant::parse_authorization(h).ok());
    let ok = given.is_some_and(|t| crate::auth::token_eq(t.as_bytes(), state.admin_token.as_bytes()));
    if ok { Ok(()) } else { Err(Error::Unauthenticated("missing or wrong admin token".into())) }
}

fn tenant_id(id: &str) -> Result<TenantId> {
    TenantId::new(id).map_err(|e| bad(e.to_string()))
}

/// A tenant as the API shows it: its policy with every residency field
/// present (`data_regions` as it applies: `[home_region]` when none is set;
/// `exports` `{}` and `residency` `null` when unset).
fn tenant_json(row: &TenantRow) -> Value {
    let p = &row.policy;
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["data_regions"] = json!(p.data_regions());
    v["exports"] = json!(p.exports);
    v["residency"] = json!(p.residency);
    v["created_at_ms"] = row.created_at.into();
    v["updated_at_ms"] = row.updated_at.into();
    v
}

async fn list_tenants(State(s): State<AdminState>, headers: HeaderMap) -> ApiResult {
    authorize(&s, &headers)?;
    let rows = s.registry.tenants().await?;
    Ok(axum::Json(rows.iter().map(tenant_json).collect::<Vec<_>>()).into_response())
}

async fn get_tenant(State(s): State<AdminState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    authorize(&s, &headers)?;
    let id = tenant_id(&id)?;
    let row = s.registry.store().tenant(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(tenant_json(&row)).into_response())
}

/// Fields a create or update may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFields {
    id: Option<String>,
    display_name: Option<String>,
    home_region: Option<String>,
    data_regions: Option<Vec<String>>,
    allowed_query_regions: Option<Vec<String>>,
    export_policy: Option<ExportPolicy>,
    exports: Option<BTreeMap<String, ExportPolicy>>,
    /// `null` removes the residency label (hence the double option).
    #[serde(default, deserialize_with = "present")]
    residency: Option<Option<Residency>>,
    otlp_promoted_attributes: Option<Vec<String>>,
    /// Group rollups (`[{"metric": "temp", "by": ["farm"]}]`): replaces the list.
    group_rollups: Option<Vec<strata_schemas::GroupRollup>>,
    limits: Option<Value>,
}

/// A field that is present, even as `null` (`Some(None)`), unlike an absent one (`None`).
fn present<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

/// Applies `fields` onto `policy` (limits merge key by key). Setting
/// `data_regions` without `home_region` makes the first data region the home.
fn apply_fields(policy: &mut TenantPolicy, f: TenantFields) -> Result<()> {
    if let Some(v) = f.display_name {
        policy.display_name = v;
    }
    if let Some(v) = f.data_regions {
        if f.home_region.is_none()
            && let Some(first) = v.first()
        {
            policy.home_region = first.clone();
        }
        policy.data_regions = v;
    }
    if let Some(v) = f.home_region {
        policy.home_region = v;
    }
    if let Some(v) = f.allowed_query_regions {
        policy.allowed_query_regions = v;
    }
    if let Some(v) = f.export_policy {
        policy.export_policy = v;
    }
    if let Some(v) = f.exports {
        policy.exports = v;
    }
    if let Some(v) = f.residency {
        policy.residency = v;
    }
    if let Some(v) = f.otlp_promoted_attributes {
        policy.otlp_promoted_attributes = v;
    }
    if let Some(v) = f.group_rollups {
        policy.group_rollups = v;
    }
    if let Some(patch) = f.limits {
        policy.limits = merge_limits(&policy.limits, patch)?;
    }
    check_policy(policy).map_err(|e| bad(e.to_string()))
}

fn merge_limits(current: &TenantLimits, patch: Value) -> Result<TenantLimits> {
    let Value::Object(patch) = patch else { return Err(bad("limits must be a JSON object")) };
    let mut merged = serde_json::to_value(current).map_err(|e| bad(e.to_string()))?;
    for (k, v) in patch {
        merged[k] = v;
    }
    serde_json::from_value(merged).map_err(|e| bad(format!("invalid limits: {e}")))
}

async fn create_tenant(State(s): State<AdminState>, headers: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    authorize(&s, &headers)?;
    let mut fields: TenantFields = parse_body(&body)?;
    let id = tenant_id(fields.id.take().as_deref().ok_or_else(|| bad("field `id` is required"))?)?;
    let mut policy = TenantPolicy::new(id.clone(), s.registry.region());
    // A new tenant starts from the node's `[limits]`; the request's own limits apply on top.
    policy.limits = s.registry.default_limits();
    apply_fields(&mut policy, fields)?;
    if !s.registry.store().create_tenant(&policy, now_ms()).await? {
        return Err(Error::Conflict(format!("tenant {:?} already exists", id.as_str())));
    }
    s.registry.reload().await?;
    tracing::info!(tenant = %id, home_region = %policy.home_region, "tenant created");
    let row = s.registry.store().tenant(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok((StatusCode::CREATED, axum::Json(tenant_json(&row))).into_response())
}

async fn change_tenant(s: &AdminState, id: &str, fields: TenantFields) -> ApiResult {
    let id = tenant_id(id)?;
    if fields.id.as_deref().is_some_and(|new| new != id.as_str()) {
        return Err(bad("a tenant's id cannot change"));
    }
    let row = s.registry.store().tenant(&id).await?.ok_or_else(|| not_found(&id))?;
    let mut policy = row.policy;
    apply_fields(&mut policy, fields)?;
    if !s.registry.store().update_tenant(&policy, now_ms()).await? {
        return Err(not_found(&id));
    }
    s.registry.reload().await?;
    tracing::info!(tenant = %id, "tenant updated");
    let row = s.registry.store().tenant(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(tenant_json(&row)).into_response())
}

async fn update_tenant(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    authorize(&s, &headers)?;
    change_tenant(&s, &id, parse_body(&body)?).await
}

async fn set_limits(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    authorize(&s, &headers)?;
    let limits: Value = parse_body(&body)?;
    change_tenant(&s, &id, TenantFields { limits: Some(limits), ..TenantFields::default() }).await
}

async fn delete_tenant(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let id = tenant_id(&id)?;
    let data = match q.get("data").map(String::as_str) {
        Some("keep") => "keep",
        Some("purge") => "purge",
        _ => {
            return Err(bad(
                "say what happens to the tenant's samples: ?data=keep (they stay stored, unreadable, until \
                 hot_ttl expires them; re-creating the same id makes them readable again) or ?data=purge \
                 (hot and cold data are deleted now)",
            ));
        }
    };
    let existed = s.registry.store().delete_tenant(&id, now_ms()).await?;
    if !existed && data == "keep" {
        return Err(not_found(&id));
    }
    // Reload before purging: this node refuses the tenant's writes from now on.
    s.registry.reload().await?;
    let tokens = if existed { "revoked" } else { "none (the tenant was already deleted)" };
    if data == "keep" {
        tracing::warn!(tenant = %id, data, "tenant deleted; its tokens are revoked");
        return Ok(axum::Json(json!({
            "deleted": id.as_str(),
            "tokens": tokens,
            "data": "kept: samples stay stored until hot_ttl expires them; nobody can read them unless the id is re-created",
        }))
        .into_response());
    }
    let purged = (s.purge)(id.clone()).await.map_err(|e| {
        tracing::error!(tenant = %id, error = %e, "purging a deleted tenant's data failed");
        Error::Internal(e.context(format!(
            "tenant {id} is deleted, but purging its data failed (repeat the same request to finish)"
        )))
    })?;
    tracing::warn!(tenant = %id, %purged, "tenant deleted and its data purged");
    Ok(axum::Json(json!({
        "deleted": id.as_str(),
        "tokens": tokens,
        "data": format!(
            "purged: {} hot segment(s), {} cold file(s), {} bytes",
            purged["hot_segments"],
            purged["cold_files"],
            purged["hot_bytes"].as_u64().unwrap_or(0) + purged["cold_bytes"].as_u64().unwrap_or(0)
        ),
        "purged": purged,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    access: TokenAccess,
    #[serde(default)]
    description: String,
}

async fn issue_token(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    authorize(&s, &headers)?;
    let id = tenant_id(&id)?;
    let req: TokenRequest = parse_body(&body)?;
    s.registry.store().tenant(&id).await?.ok_or_else(|| not_found(&id))?;
    let (row, token) = s.registry.issue_token(&id, req.access, &req.description, now_ms()).await?;
    tracing::info!(tenant = %id, token_id = %row.id, access = %row.access, "token issued");
    let mut v = serde_json::to_value(&row).unwrap_or_default();
    v["token"] = token.into();
    v["note"] = "store the token now: it is not shown again".into();
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

async fn list_tokens(State(s): State<AdminState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    authorize(&s, &headers)?;
    let id = tenant_id(&id)?;
    s.registry.store().tenant(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(s.registry.store().tokens(Some(&id)).await?).into_response())
}

async fn revoke_token(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let id = tenant_id(&id)?;
    if !s.registry.store().revoke_token(&id, &token_id, now_ms()).await? {
        return Err(Error::NotFound(format!("tenant {id} has no live token {token_id:?}")));
    }
    s.registry.reload().await?;
    tracing::info!(tenant = %id, token_id, "token revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn usage(State(s): State<AdminState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    authorize(&s, &headers)?;
    let id = tenant_id(&id)?;
    // In open mode every request is the unregistered tenant `default`'s.
    let open_default = s.registry.open_mode() && id.as_str() == strata_schemas::tenant::DEFAULT_TENANT;
    if !open_default {
        s.registry.store().tenant(&id).await?.ok_or_else(|| not_found(&id))?;
    }
    Ok(axum::Json((s.usage)(&id)).into_response())
}
