//! Right to erasure, first part: delete requests that make a selector's
//! samples invisible at once, durably, on every node sharing the registry.
//!
//! ```text
//!  POST /admin/v1/tenants/{id}/delete            {"match": ["{device=\"d-17\"}"], "start": ms, "end": ms}   admin token
//!  POST /api/v1/admin/tsdb/delete_series         match[]=…&start=…&end=…   (Prometheus's shape; a token with admin access)
//!    ──► registry row strata_deletes (the tombstone; committed before the answer: survives kill -9)
//!    ──► 202 {"id": "del_…", "status": {…}}      every node applies it at its next registry reload (≤ 1 s)
//!  GET /admin/v1/deletes/{id}, GET /admin/v1/tenants/{id}/deletes                admin token
//! ```
//!
//! **Invisible**: the query engine reads through [`ErasingStore`], which
//! drops, for the tenant's tombstones, every sample of a matching series
//! inside the request's `[start, end]` (and a series with no sample left);
//! metadata (series, label names and values) leaves out a series a
//! tombstone touches unless one of its samples in the queried range
//! survives; rollups are not used for a tenant
//! with tombstones (they may include deleted samples), so answers come from
//! raw samples. Writes after the request are accepted and shown (a tombstone
//! only covers samples up to `min(end, the request's time)`).
//!
//! **Not done yet** (the request's status says so): rewriting the hot
//! segments, the cold tier's Parquet files and rollups, and the log
//! segments, so the bytes are still on disk until retention removes them;
//! the verification scan. Tombstones are kept until then.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_schemas::{
    Access, AuthError, Labels, Matcher, ReadError, ReadStore, RollupData, SeriesData, TenantId, TenantResolver,
    TimeRange,
};

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
        Some(Tombstone { id: row.id.clone(), selectors, start: spec.start, end: spec.end })
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
        // Rollup windows may include deleted samples: raw samples answer instead.
        if self.registry.tombstones(tenant).is_some() {
            return Ok(None);
        }
        self.inner.select_rollup(tenant, matchers, width_ms, ends)
    }
}

/// State of the delete routes.
#[derive(Debug, Clone)]
pub struct ErasureState {
    /// The registry (tombstones live there).
    pub registry: Arc<Registry>,
    /// The admin token.
    pub admin_token: Arc<str>,
}

/// The routes (see the module doc).
pub fn router(state: ErasureState) -> Router {
    Router::new()
        .route("/admin/v1/tenants/{id}/delete", post(admin_delete))
        .route("/admin/v1/tenants/{id}/deletes", get(list_deletes))
        .route("/admin/v1/deletes/{id}", get(get_delete))
        .route("/api/v1/admin/tsdb/delete_series", post(prometheus_delete).put(prometheus_delete))
        .with_state(state)
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({"status": "error", "error": msg.into()}))).into_response()
}

fn is_admin(s: &ErasureState, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    !s.admin_token.is_empty() && crate::registry::constant_time_eq(presented.as_bytes(), s.admin_token.as_bytes())
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
) -> Response {
    if !is_admin(&s, &headers) {
        return err(StatusCode::UNAUTHORIZED, "the admin API needs the admin token (Authorization: Bearer)");
    }
    let Ok(tenant) = TenantId::new(id.as_str()) else { return err(StatusCode::BAD_REQUEST, "invalid tenant id") };
    let b: AdminBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    record(&s, &tenant, b.selectors, b.start, b.end, "admin".to_owned()).await
}

async fn prometheus_delete(
    State(s): State<ErasureState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let tenant = match s.registry.resolve(auth, Access::Delete) {
        Ok(t) => t,
        Err(e @ AuthError::Forbidden { .. }) => {
            return err(StatusCode::FORBIDDEN, format!("{e}: deleting needs a token with admin access"));
        }
        Err(e) => return err(StatusCode::UNAUTHORIZED, e.to_string()),
    };
    let selectors: Vec<String> = params.iter().filter(|(k, _)| k == "match[]").map(|(_, v)| v.clone()).collect();
    let time = |name: &str| -> Result<Option<i64>, String> {
        match params.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => parse_time(v).map(Some).map_err(|e| format!("invalid parameter \"{name}\": {e}")),
        }
    };
    let (start, end) = match (time("start"), time("end")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return err(StatusCode::BAD_REQUEST, e),
    };
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
) -> Response {
    if selectors.is_empty() {
        return err(StatusCode::BAD_REQUEST, "no match[] selector: say which series to delete");
    }
    for sel in &selectors {
        if let Err(e) = parse_selector(sel) {
            return err(StatusCode::BAD_REQUEST, e);
        }
    }
    let now = crate::registry::now_ms();
    let start = start.unwrap_or(i64::MIN);
    let end = end.unwrap_or(i64::MAX).min(now);
    if end < start {
        return err(StatusCode::BAD_REQUEST, "end is before start");
    }
    let mut raw = [0u8; 12];
    if getrandom::fill(&mut raw).is_err() {
        return err(StatusCode::INTERNAL_SERVER_ERROR, "no randomness for a request id");
    }
    let id = format!("del_{}", raw.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let spec = DeleteSpec { selectors, start, end, requested_by };
    let status = json!({
        "state": "invisible",
        "invisible_at": now,
        "tiers": {
            "queries": "invisible on every node at its next registry reload (within a second)",
            "hot": "not purged: rewriting hot segments is not implemented yet",
            "cold": "not purged: rewriting Parquet files and rollups is not implemented yet",
            "log": "not purged: the ingest log's segments are released by retention",
        },
    });
    let row = DeleteRow {
        id: id.clone(),
        tenant_id: tenant.as_str().to_owned(),
        request: serde_json::to_string(&spec).unwrap_or_default(),
        status: status.to_string(),
        requested_at: now,
        completed_at: None,
    };
    if let Err(e) = s.registry.store().insert_delete(&row).await {
        return err(StatusCode::SERVICE_UNAVAILABLE, format!("the delete request was not recorded: {e:#}"));
    }
    // This node hides the samples from now on; the others at their next reload.
    if let Err(e) = s.registry.reload().await {
        tracing::warn!(error = %format!("{e:#}"), "registry reload after a delete request failed; the watcher retries");
    }
    tracing::info!(tenant = %tenant, id = %id, selectors = ?spec.selectors, start, end, "delete request recorded");
    (StatusCode::ACCEPTED, axum::Json(describe(&row))).into_response()
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

async fn get_delete(State(s): State<ErasureState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !is_admin(&s, &headers) {
        return err(StatusCode::UNAUTHORIZED, "the admin API needs the admin token (Authorization: Bearer)");
    }
    match s.registry.store().delete_request(&id).await {
        Ok(Some(row)) => axum::Json(describe(&row)).into_response(),
        Ok(None) => err(StatusCode::NOT_FOUND, format!("no delete request {id:?}")),
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
}

async fn list_deletes(State(s): State<ErasureState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if !is_admin(&s, &headers) {
        return err(StatusCode::UNAUTHORIZED, "the admin API needs the admin token (Authorization: Bearer)");
    }
    let Ok(tenant) = TenantId::new(id.as_str()) else { return err(StatusCode::BAD_REQUEST, "invalid tenant id") };
    match s.registry.store().deletes(Some(&tenant)).await {
        Ok(rows) => axum::Json(json!({"deletes": rows.iter().map(describe).collect::<Vec<_>>()})).into_response(),
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")),
    }
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
    }
}
