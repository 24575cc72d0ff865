//! Right to erasure: delete requests that make a selector's samples
//! invisible at once, durably, on every node sharing the registry, and a
//! purge worker that removes them physically from every tier within a bound
//! and proves it.
//!
//! ```text
//!  POST /admin/v1/tenants/{id}/delete            {"match": ["{device=\"d-17\"}"], "start": ms, "end": ms}   admin token
//!  POST /api/v1/admin/tsdb/delete_series         match[]=…&start=…&end=…   (Prometheus's shape; a token with admin access)
//!    ──► registry row strata_deletes (the tombstone; committed before the answer: survives kill -9)
//!    ──► 202 {"id": "del_…", "status": {…}}      every node applies it at its next registry reload (≤ 1 s)
//!  GET /admin/v1/deletes/{id}, GET /admin/v1/tenants/{id}/deletes                admin token
//!  GET /admin/v1/erasure/audit[?tenant=…]        the audit records of completed requests
//!
//!  purge worker (every [erasure] check_interval, one per node; `worker`):
//!    log (seal, flush, release) → hot erase → cold erase → verify → completed (status, audit, /metrics)
//! ```
//!
//! **Invisible**: the query engine reads through [`ErasingStore`], which
//! drops, for the tenant's tombstones, every sample of a matching series
//! inside the request's `[start, end]` (and a series with no sample left);
//! metadata (series, label names and values) leaves out a series a
//! tombstone touches unless one of its samples in the queried range
//! survives. Rollups are not used for a tenant with a request not yet
//! completed (they may include deleted samples); once all of a tenant's
//! requests are completed (the cold erase recomputed the rollup windows
//! without the samples) they are used again, and tombstones keep filtering
//! raw reads. Writes after the request are accepted and shown (a tombstone
//! only covers samples up to `min(end, the request's time)`).
//!
//! **Purged**: [`worker::Worker`] takes each request through this node's
//! tiers ([`tiers::NodeTiers`]), writing the status ([`status::Status`])
//! before and after each step; completion records the verification (all
//! zeros), whether the bound `[erasure] purge_within` was met, and an audit
//! line ([`audit::ErasureAudit`]).

pub mod audit;
mod crash;
pub mod status;
pub mod tiers;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_schemas::metrics_text::{MetricKind, MetricsText};
use strata_schemas::{
    Access, AuthError, Labels, Matcher, ReadError, ReadStore, RollupData, SeriesData, TenantId, TenantResolver,
    TimeRange,
};

use crate::error::Error;
use crate::registry::Registry;
use crate::registry::store::DeleteRow;

/// What a delete request asks (stored as JSON in the registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSpec {
    /// Series selectors (a series matching any of them).
    pub selectors: Vec<String>,
    /// First millisecond deleted.
    pub start: i64,
    /// Last millisecond deleted (at most the request's time).
    pub end: i64,
    /// Who asked (`admin` or `token:<tenant>`).
    pub requested_by: String,
}

/// A tombstone as the read path applies it.
#[derive(Debug, Clone)]
pub struct Tombstone {
    /// The request completed: every tier was purged (rollups recomputed) and verified.
    pub purged: bool,
    /// The request id.
    pub id: String,
    /// Matcher sets (a series matching any one set is covered).
    pub selectors: Vec<Vec<Matcher>>,
    /// Covered range (inclusive).
    pub start: i64,
    /// See `start`.
    pub end: i64,
}

impl Tombstone {
    /// The tombstone of a stored request (`None` when it no longer parses: logged).
    pub fn of(row: &DeleteRow) -> Option<Tombstone> {
        let spec: DeleteSpec = serde_json::from_str(&row.request).ok()?;
        let selectors = spec.selectors.iter().map(|s| parse_selector(s)).collect::<Result<Vec<_>, _>>().ok()?;
        Some(Tombstone {
            purged: row.completed_at.is_some(),
            id: row.id.clone(),
            selectors,
            start: spec.start,
            end: spec.end,
        })
    }

    fn matches(&self, labels: &Labels) -> bool {
        self.selectors.iter().any(|m| Matcher::matches_all(m, labels))
    }
}

/// Parses a series selector (`metric{label="v"}`) into matchers.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, String> {
    strata_query::engine::prescan::check(text, 4096)
        .map_err(|e| format!("selector {text:?}: {e}"))
        .and_then(|()| promql_parser::parser::parse(text).map_err(|e| format!("selector {text:?}: {e}")))
        .and_then(|expr| match expr {
            promql_parser::parser::Expr::VectorSelector(vs) => {
                strata_query::engine::selector_matchers(&vs).map_err(|e| format!("selector {text:?}: {e}"))
            }
            _ => Err(format!("{text:?} is not a series selector")),
        })
}

/// A [`ReadStore`] that hides what the tenant's tombstones cover.
#[derive(Debug)]
pub struct ErasingStore {
    inner: Arc<dyn ReadStore>,
    registry: Arc<Registry>,
}

impl ErasingStore {
    /// Wraps `inner`, reading tombstones from `registry`'s snapshot.
    pub fn new(inner: Arc<dyn ReadStore>, registry: Arc<Registry>) -> Self {
        Self { inner, registry }
    }

    fn filter(stones: &[Tombstone], mut s: SeriesData) -> Option<SeriesData> {
        let covering: Vec<&Tombstone> = stones.iter().filter(|t| t.matches(&s.labels)).collect();
        if covering.is_empty() {
            return Some(s);
        }
        s.samples.retain(|x| !covering.iter().any(|t| x.ts >= t.start && x.ts <= t.end));
        (!s.samples.is_empty()).then_some(s)
    }

    /// Whether a tombstone of `stones` covers part of `range`: then a
    /// series' newest sample there may be hidden, and the newest one that
    /// survives is found by reading the range.
    fn may_hide(stones: &[Tombstone], range: TimeRange) -> bool {
        stones.iter().any(|t| t.start <= range.end && t.end >= range.start)
    }
}

impl ReadStore for ErasingStore {
    fn reads_locally(&self, tenant: &TenantId, range: TimeRange) -> bool {
        self.inner.reads_locally(tenant, range)
    }

    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        let out = self.inner.select(tenant, matchers, range)?;
        let Some(stones) = self.registry.tombstones(tenant) else { return Ok(out) };
        Ok(out.into_iter().filter_map(|s| Self::filter(&stones, s)).collect())
    }

    fn select_each(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let Some(stones) = self.registry.tombstones(tenant) else {
            return self.inner.select_each(tenant, matchers, range, each);
        };
        self.inner.select_each(tenant, matchers, range, &mut |s| match Self::filter(&stones, s) {
            Some(s) => each(s),
            None => Ok(()),
        })
    }

    /// Forwarded unless a tombstone of the tenant overlaps the range: then
    /// the newest sample that survives it (the range read and filtered).
    fn select_newest(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let stones = self.registry.tombstones(tenant);
        let Some(stones) = stones.filter(|s| Self::may_hide(s, range)) else {
            return self.inner.select_newest(tenant, matchers, range, each);
        };
        self.inner.select_each(tenant, matchers, range, &mut |s| match Self::filter(&stones, s) {
            Some(s) => each(strata_schemas::read::keep_newest(s)),
            None => Ok(()),
        })
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        let out = self.inner.series(tenant, matchers, range)?;
        let Some(stones) = self.registry.tombstones(tenant) else { return Ok(out) };
        // A series a tombstone touches is shown only if a sample of it in the
        // range survives (read for those series only; the others pass as they are).
        let mut kept = Vec::with_capacity(out.len());
        for l in out {
            if stones.iter().any(|t| t.matches(&l) && t.start <= range.end && t.end >= range.start) {
                let exact: Vec<Matcher> =
                    l.iter().map(|x| Matcher::equal(x.name.to_string(), x.value.to_string())).collect();
                if self.select(tenant, &exact, range)?.iter().all(|s| s.labels != l) {
                    continue;
                }
            }
            kept.push(l);
        }
        Ok(kept)
    }

    fn label_names(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<String>, ReadError> {
        if self.registry.tombstones(tenant).is_none() {
            return self.inner.label_names(tenant, matchers, range);
        }
        Ok(strata_schemas::read::label_names_of(&self.series(tenant, matchers, range)?))
    }

    fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, ReadError> {
        if self.registry.tombstones(tenant).is_none() {
            return self.inner.label_values(tenant, name, matchers, range);
        }
        Ok(strata_schemas::read::label_values_of(&self.series(tenant, matchers, range)?, name))
    }

    fn select_rollup(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
    ) -> Result<Option<RollupData>, ReadError> {
        // Until every request of the tenant is purged, rollup windows may
        // include deleted samples: raw samples answer instead.
        if self.registry.tombstones(tenant).is_some_and(|t| t.iter().any(|s| !s.purged)) {
            return Ok(None);
        }
        self.inner.select_rollup(tenant, matchers, width_ms, ends)
    }

    /// [`ErasingStore::select_rollup`]'s rule, then the inner store's grid read.
    fn select_rollup_grid(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
        fields: strata_schemas::RollupFields,
    ) -> Result<Option<strata_schemas::RollupAnswer>, ReadError> {
        if self.registry.tombstones(tenant).is_some_and(|t| t.iter().any(|s| !s.purged)) {
            return Ok(None);
        }
        self.inner.select_rollup_grid(tenant, matchers, width_ms, ends, fields)
    }
}

/// State of the delete routes.
#[derive(Debug, Clone)]
pub struct ErasureState {
    /// The registry (tombstones live there).
    pub registry: Arc<Registry>,
    /// The admin token.
    pub admin_token: Arc<str>,
    /// `[erasure] purge_within` (a new request's deadline).
    pub purge_within: Duration,
    /// The audit records of completed requests.
    pub audit: Arc<audit::ErasureAudit>,
    /// `[cluster] peers`: told to reload the registry before a request is acknowledged.
    pub peers: Vec<String>,
    /// `[cluster] token` (peers call `/internal/v1/erasure/reload` with it).
    pub cluster_token: Arc<str>,
    /// The client those calls go through (`[cluster] timeout`).
    pub client: crate::outbound::Client,
}

/// The routes (see the module doc).
pub fn router(state: ErasureState) -> Router {
    Router::new()
        .route("/admin/v1/tenants/{id}/delete", post(admin_delete))
        .route("/admin/v1/tenants/{id}/deletes", get(list_deletes))
        .route("/admin/v1/deletes/{id}", get(get_delete))
        .route("/admin/v1/erasure/audit", get(audit_records))
        .route("/api/v1/admin/tsdb/delete_series", post(prometheus_delete).put(prometheus_delete))
        .route("/internal/v1/erasure/reload", post(peer_reload))
        .with_state(state)
}

const NEEDS_ADMIN: &str = "the admin API needs the admin token (Authorization: Bearer)";

/// `Ok` when the request carries the admin token; else the 401.
fn admin_only(s: &ErasureState, headers: &HeaderMap) -> crate::error::Result<()> {
    if is_admin(s, headers) { Ok(()) } else { Err(Error::Unauthenticated(NEEDS_ADMIN.into())) }
}

fn tenant_id(id: &str) -> crate::error::Result<TenantId> {
    TenantId::new(id).map_err(|_| Error::BadRequest("invalid tenant id".into()))
}

fn is_admin(s: &ErasureState, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    !s.admin_token.is_empty() && crate::auth::token_eq(presented.as_bytes(), s.admin_token.as_bytes())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminBody {
    #[serde(rename = "match")]
    selectors: Vec<String>,
    start: Option<i64>,
    end: Option<i64>,
}

async fn admin_delete(
    State(s): State<ErasureState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> crate::error::Result<Response> {
    admin_only(&s, &headers)?;
    let tenant = tenant_id(&id)?;
    let b: AdminBody =
        serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))?;
    record(&s, &tenant, b.selectors, b.start, b.end, "admin".to_owned()).await
}

async fn prometheus_delete(
    State(s): State<ErasureState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> crate::error::Result<Response> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let tenant = s.registry.resolve(auth, Access::Delete).map_err(|e| match e {
        AuthError::Forbidden { .. } => Error::Forbidden(format!("{e}: deleting needs a token with admin access")),
        e => Error::Unauthenticated(e.to_string()),
    })?;
    let selectors: Vec<String> = params.iter().filter(|(k, _)| k == "match[]").map(|(_, v)| v.clone()).collect();
    let time = |name: &str| -> Result<Option<i64>, String> {
        match params.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => parse_time(v).map(Some).map_err(|e| format!("invalid parameter \"{name}\": {e}")),
        }
    };
    let (start, end) = (time("start").map_err(Error::BadRequest)?, time("end").map_err(Error::BadRequest)?);
    record(&s, &tenant, selectors, start, end, format!("token:{tenant}")).await
}

/// Prometheus's time: RFC 3339 or Unix seconds (with a fraction).
fn parse_time(v: &str) -> Result<i64, String> {
    if let Ok(secs) = v.parse::<f64>() {
        return Ok((secs * 1000.0).round() as i64);
    }
    Err(format!("{v:?} is not a Unix time in seconds"))
}

async fn record(
    s: &ErasureState,
    tenant: &TenantId,
    selectors: Vec<String>,
    start: Option<i64>,
    end: Option<i64>,
    requested_by: String,
) -> crate::error::Result<Response> {
    if selectors.is_empty() {
        return Err(Error::BadRequest("no match[] selector: say which series to delete".into()));
    }
    for sel in &selectors {
        parse_selector(sel).map_err(Error::BadRequest)?;
    }
    let now = crate::registry::now_ms();
    let start = start.unwrap_or(i64::MIN);
    let end = end.unwrap_or(i64::MAX).min(now);
    if end < start {
        return Err(Error::BadRequest("end is before start".into()));
    }
    let mut raw = [0u8; 12];
    if getrandom::fill(&mut raw).is_err() {
        return Err(Error::Internal(anyhow::anyhow!("no randomness for a request id")));
    }
    let id = format!("del_{}", raw.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let spec = DeleteSpec { selectors, start, end, requested_by };
    let status = status::Status::new(now, i64::try_from(s.purge_within.as_millis()).unwrap_or(i64::MAX));
    let row = DeleteRow {
        id: id.clone(),
        tenant_id: tenant.as_str().to_owned(),
        request: serde_json::to_string(&spec).unwrap_or_default(),
        status: serde_json::to_string(&status).unwrap_or_default(),
        requested_at: now,
        completed_at: None,
    };
    s.registry
        .store()
        .insert_delete(&row)
        .await
        .map_err(|source| Error::Registry { context: "the delete request was not recorded".into(), source })?;
    // This node hides the samples from now on; the peers once they reloaded
    // (asked now, before the answer; one that does not answer at its next
    // reload, within a second, or when it starts).
    if let Err(e) = s.registry.reload().await {
        tracing::warn!(error = %format!("{e:#}"), "registry reload after a delete request failed; the watcher retries");
    }
    let (hiding, unreached) = tell_peers(s).await;
    tracing::info!(tenant = %tenant, id = %id, selectors = ?spec.selectors, start, end, peers_hiding = hiding.len(),
        peers_unreached = unreached.len(), "delete request recorded");
    let mut body = describe(&row);
    body["peers"] = json!({"hiding": hiding, "unreached": unreached});
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// Asks every `[cluster] peer` to reload the registry (so it hides the new
/// request's samples); the peers that did, and those that did not answer
/// (`{"peer", "error"}`).
#[expect(clippy::disallowed_methods, reason = "peers are told in parallel; every task is awaited before the answer")]
async fn tell_peers(s: &ErasureState) -> (Vec<String>, Vec<serde_json::Value>) {
    let asks: Vec<_> = s
        .peers
        .iter()
        .map(|peer| {
            let req = s.client.post(format!("{peer}/internal/v1/erasure/reload")).bearer_auth(&*s.cluster_token);
            (peer.clone(), tokio::spawn(async move { crate::outbound::answer::<serde_json::Value>(req).await }))
        })
        .collect();
    let (mut hiding, mut unreached) = (Vec::new(), Vec::new());
    for (peer, task) in asks {
        match task.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
            Ok(_) => hiding.push(peer),
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "peer did not reload the registry after a delete request; \
                    it hides the samples at its next reload");
                unreached.push(json!({"peer": peer, "error": e}));
            }
        }
    }
    (hiding, unreached)
}

/// `POST /internal/v1/erasure/reload` (`[cluster] token`): reloads the
/// registry now, so a delete recorded through a peer is hidden here before
/// that peer acknowledges it.
async fn peer_reload(State(s): State<ErasureState>, headers: HeaderMap) -> crate::error::Result<Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if s.cluster_token.is_empty() || !crate::auth::token_eq(presented.as_bytes(), s.cluster_token.as_bytes()) {
        return Err(Error::Unauthenticated("erasure reload needs the [cluster] token".into()));
    }
    let changed = s
        .registry
        .reload()
        .await
        .map_err(|source| Error::Registry { context: "registry reload failed".into(), source })?;
    Ok(axum::Json(json!({"status": "success", "reloaded": changed})).into_response())
}

fn describe(row: &DeleteRow) -> serde_json::Value {
    json!({
        "id": row.id,
        "tenant": row.tenant_id,
        "request": serde_json::from_str::<serde_json::Value>(&row.request).unwrap_or_default(),
        "status": serde_json::from_str::<serde_json::Value>(&row.status).unwrap_or_default(),
        "requested_at": row.requested_at,
        "completed_at": row.completed_at,
    })
}

async fn get_delete(
    State(s): State<ErasureState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> crate::error::Result<Response> {
    admin_only(&s, &headers)?;
    let row = s
        .registry
        .store()
        .delete_request(&id)
        .await
        .map_err(|source| Error::Registry { context: format!("reading delete request {id:?}"), source })?;
    let row = row.ok_or_else(|| Error::NotFound(format!("no delete request {id:?}")))?;
    Ok(axum::Json(describe(&row)).into_response())
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    tenant: Option<String>,
}

async fn audit_records(
    State(s): State<ErasureState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> crate::error::Result<Response> {
    admin_only(&s, &headers)?;
    let audit = Arc::clone(&s.audit);
    let records = tokio::task::spawn_blocking(move || audit.list(q.tenant.as_deref()))
        .await
        .map_err(Error::task("audit"))?
        .map_err(|source| Error::ReadAudit { log: "erasure", source })?;
    Ok(axum::Json(json!({"status": "success", "data": records})).into_response())
}

async fn list_deletes(
    State(s): State<ErasureState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> crate::error::Result<Response> {
    admin_only(&s, &headers)?;
    let tenant = tenant_id(&id)?;
    let rows = s.registry.store().deletes(Some(&tenant)).await.map_err(|source| Error::Registry {
        context: format!("reading the delete requests of tenant {tenant}"),
        source,
    })?;
    Ok(axum::Json(json!({"deletes": rows.iter().map(describe).collect::<Vec<_>>()})).into_response())
}

/// The purge (`[erasure]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErasureConfig {
    /// The bound: every delete request is purged from every tier (ingest
    /// log, hot segments and memtable, Parquet files, rollups, old snapshots
    /// and their objects) and verified within this time of the request. Its
    /// status says whether it was (`bound_met`); a miss is logged and
    /// counted (`strata_erasure_bound_missed_total`).
    #[serde(with = "humantime_serde")]
    pub purge_within: Duration,
    /// How often the purge worker looks for requests to purge (a request
    /// starts being purged at most this long after it was made).
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
}

impl Default for ErasureConfig {
    fn default() -> Self {
        Self { purge_within: Duration::from_secs(3600), check_interval: Duration::from_secs(30) }
    }
}

impl ErasureConfig {
    /// Rejects a zero interval; warns when the check interval leaves no room for the bound.
    pub fn validate(&mut self) -> Result<(), strata_schemas::ConfigError> {
        use strata_schemas::ConfigError;
        if self.check_interval.is_zero() {
            return Err(ConfigError::invalid("erasure", "check_interval", self.check_interval, "must be more than 0"));
        }
        if self.purge_within.is_zero() {
            return Err(ConfigError::invalid("erasure", "purge_within", self.purge_within, "must be more than 0"));
        }
        if self.check_interval >= self.purge_within {
            tracing::warn!(
                check_interval = ?self.check_interval,
                purge_within = ?self.purge_within,
                "erasure.check_interval is not below erasure.purge_within: requests will miss their bound"
            );
        }
        Ok(())
    }
}

/// Starts this node's purge worker (see [`worker`]); it stops when `stop` turns true.
#[expect(
    clippy::disallowed_methods,
    reason = "the erasure worker lives as long as the node; start() is called by node::serve, the runtime owner, which holds the stop channel"
)]
pub fn start(
    node: Arc<crate::node::Node>,
    registry: Arc<Registry>,
    compactor: Option<Arc<strata_compactor::Compactor>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let config = node.config.erasure.clone();
    let audit = Arc::new(audit::ErasureAudit::new(&audit_dir(&node.config, &node.data_dir)));
    let tiers = Arc::new(tiers::NodeTiers::new(Arc::clone(&node), compactor)?);
    let on_complete: worker::OnComplete = Arc::new(move |req, status| {
        let m = metrics();
        m.completed.fetch_add(1, Ordering::Relaxed);
        if status.bound_met == Some(false) {
            m.bound_missed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(id = %req.id, deadline = status.deadline, completed_at = ?status.completed_at,
                "delete request completed after its bound ([erasure] purge_within)");
        }
        if let Some(done) = status.completed_at {
            m.completion_ms_sum.fetch_add(u64::try_from(done - req.requested_at).unwrap_or(0), Ordering::Relaxed);
        }
        if let Err(e) = audit.append(&audit::ErasureAudit::record(req, status)) {
            tracing::error!(id = %req.id, error = %format!("{e:#}"), "erasure audit record not written");
        }
    });
    let worker = Arc::new(worker::Worker::new(registry, tiers, config.purge_within, on_complete));
    tracing::info!(purge_within = ?config.purge_within, check_interval = ?config.check_interval,
        "erasure purge worker started");
    tokio::spawn(worker.run(config.check_interval, stop));
    Ok(())
}

/// Where the audit logs live (`[federation] audit_dir`, default `<data_dir>/audit`).
pub fn audit_dir(config: &crate::config::ServerConfig, data_dir: &std::path::Path) -> std::path::PathBuf {
    config.federation.audit_dir.clone().unwrap_or_else(|| data_dir.join("audit"))
}

/// Counters of the purge (`/metrics`).
#[derive(Debug, Default)]
pub struct ErasureMetrics {
    /// Requests completed by this node's update.
    pub completed: AtomicU64,
    /// Of those, completed after their bound.
    pub bound_missed: AtomicU64,
    /// Samples and rows removed by this node's steps.
    pub samples_removed: AtomicU64,
    /// Sum of request → completion times, ms.
    pub completion_ms_sum: AtomicU64,
    /// Time this node spent purging, µs, and how many purges.
    pub purge_us_sum: AtomicU64,
    /// See `purge_us_sum`.
    pub purges: AtomicU64,
    /// Requests not completed at the last check.
    pub pending: AtomicU64,
}

impl ErasureMetrics {
    /// Adds one node purge's duration.
    pub fn record_purge_time(&self, d: Duration) {
        self.purge_us_sum.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.purges.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, u64); 3] = [
            (
                "strata_erasure_requests_completed_total",
                "Delete requests completed (purged and verified).",
                get(&self.completed),
            ),
            (
                "strata_erasure_bound_missed_total",
                "Delete requests completed after [erasure] purge_within.",
                get(&self.bound_missed),
            ),
            (
                "strata_erasure_samples_removed_total",
                "Samples and rows removed from the hot store and the cold tier by erasure.",
                get(&self.samples_removed),
            ),
        ];
        let mut text = MetricsText::new(out);
        for (name, help, v) in counters {
            text.counter(name, help, v);
        }
        let summaries: [(&str, &str, f64, u64); 2] = [
            (
                "strata_erasure_purge_duration_seconds",
                "Time this node spent purging a request (all its steps).",
                get(&self.purge_us_sum) as f64 / 1e6,
                get(&self.purges),
            ),
            (
                "strata_erasure_completion_seconds",
                "Time from a delete request to its completion.",
                get(&self.completion_ms_sum) as f64 / 1e3,
                get(&self.completed),
            ),
        ];
        for (name, help, sum, count) in summaries {
            text.family(name, MetricKind::Summary, help).sample(&format!("{name}_sum"), &[], sum).sample(
                &format!("{name}_count"),
                &[],
                count,
            );
        }
        text.gauge(
            "strata_erasure_pending_requests",
            "Delete requests not completed at the last check.",
            get(&self.pending),
        );
    }
}

/// The process's erasure counters.
pub fn metrics() -> &'static ErasureMetrics {
    static METRICS: std::sync::OnceLock<ErasureMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(ErasureMetrics::default)
}

#[cfg(test)]
mod tests {
    use strata_schemas::{Label, Sample};

    use super::*;

    fn series(device: &str, ts: &[i64]) -> SeriesData {
        let labels = Labels::from_sorted(vec![Label::new("__name__", "soil"), Label::new("device", device)]);
        SeriesData { labels, samples: ts.iter().map(|&t| Sample::new(t, 1.0)).collect() }
    }

    #[test]
    fn a_tombstone_removes_only_its_series_and_range() {
        let stone = Tombstone {
            purged: false,
            id: "d".into(),
            selectors: vec![parse_selector("{device=\"d-17\"}").unwrap()],
            start: 10,
            end: 20,
        };
        let stones = [stone];
        let kept = ErasingStore::filter(&stones, series("d-17", &[5, 10, 15, 20, 25])).unwrap();
        assert_eq!(kept.samples.iter().map(|s| s.ts).collect::<Vec<_>>(), [5, 25]);
        assert_eq!(ErasingStore::filter(&stones, series("d-17", &[12])), None, "nothing left: the series goes");
        assert_eq!(ErasingStore::filter(&stones, series("d-18", &[12])).unwrap().samples.len(), 1);
        assert!(parse_selector("rate(x[5m])").unwrap_err().contains("not a series selector"));
        // A newest-sample read is forwarded only past every tombstone.
        assert!(ErasingStore::may_hide(&stones, TimeRange::new(20, 30)));
        assert!(ErasingStore::may_hide(&stones, TimeRange::new(0, 10)));
        assert!(!ErasingStore::may_hide(&stones, TimeRange::new(21, 300)));
        assert!(!ErasingStore::may_hide(&stones, TimeRange::new(0, 9)));
    }

    #[test]
    fn a_zero_interval_names_its_key() {
        ErasureConfig::default().validate().unwrap();
        let mut c = ErasureConfig { check_interval: Duration::ZERO, ..ErasureConfig::default() };
        assert_eq!(c.validate().unwrap_err().to_string(), "[erasure] check_interval = 0ns: must be more than 0");
        let mut c = ErasureConfig { purge_within: Duration::ZERO, ..ErasureConfig::default() };
        assert_eq!(c.validate().unwrap_err().path(), "erasure.purge_within");
    }
}
