//! The node's HTTP surface: write, query, health, metrics and internal endpoints.
//!
//! | path | what |
//! |---|---|
//! | `POST /api/v2/write`, `POST /write` | line protocol ([`strata_ingest::http`]) |
//! | `POST /otlp/v1/metrics` | OpenTelemetry metrics, OTLP/HTTP protobuf or JSON ([`strata_ingest::otlp`]) |
//! | `/api/v1/*` | Prometheus HTTP API ([`strata_query::http`]) |
//! | `GET /-/ready`, `GET /-/healthy` | readiness / liveness: 200 (while the node starts, [`crate::startup`] answers them: 503 / 200) |
//! | `GET /metrics` | Prometheus text exposition of the node's counters and gauges (per-tenant series: `[metrics] per_tenant`, `[metrics] token` or the admin token) |
//! | `/admin/v1/*` | tenants, tokens, limits, usage ([`crate::admin`]) |
//! | `POST /internal/flush` | flush the memtable to a segment now (benchmarks, operations; admin token) |
//! | `POST /internal/roll` | roll sealed hot buckets into the cold tier now (when it is on; admin token) |
//! | `POST /internal/compact` | merge the hot store's segments into one now (admin token) |
//! | `GET /api/v1/status/ingest`, `GET /internal/status` | ingest log state: per-partition offsets, Kafka lag and apply rate (admin token) |
//! | `POST /internal/v1/select` | this node's raw series for a peer's query fan-out ([`crate::cluster`]; `[cluster] token`) |
//! | `GET /internal/v1/applied` | how far this node applied each partition it holds, for a peer's read-your-writes wait ([`crate::read_after`]; `[cluster] token`) |
//! | `POST /internal/v1/erasure/reload` | reload the registry now: a peer recording a delete request asks before acknowledging it ([`crate::erasure`]; `[cluster] token`) |
//! | `POST /internal/v1/region/{select,partials,count}` | another region's federated reads ([`crate::regions`]; region credential) |
//! | `GET /api/v1/status/tsdb` | cardinality of the token's tenant: series by metric, label, pair; `activeSeries` against `max_active_series` ([`crate::cardinality`]) |
//! | `GET /api/v1/status/tasks` | long-running work (replay, rebuild, roll, merge): done/total, rate, ETA; a tenant sees its own ([`crate::progress`]) |
//! | `GET /api/v1/status/cold` | per tenant: cold watermark, snapshots, files and bytes of the samples, rollup and series tables ([`crate::cold_status`]) |
//! | `GET /api/v1/rules`, `GET /api/v1/alerts` | empty lists in Prometheus's shape (Grafana asks; rules run in vmalert) |
//! | `GET /ping`, `/health`, `/ready`, `/query` (CREATE DATABASE) | what InfluxDB clients ask besides writes ([`strata_ingest::influx_compat`]) |
//! | `GET /admin/v1/audit` | the audit log of cross-region requests ([`crate::audit`]; admin token) |

use crate::admin::AdminState;
use crate::node::{Cold, Node};
use crate::registry::Registry;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_ingest::http::WriteState;
use strata_query::{Engine, QueryState};
use strata_schemas::metrics_text::{MetricKind, MetricsText};
use strata_schemas::{ReadStore, TenantResolver};

/// Builds the full router of a node.
pub fn app(node: Arc<Node>, registry: Arc<Registry>, admin_token: Arc<str>, cold: Option<Cold>) -> Router {
    let resolver: Arc<dyn TenantResolver> = Arc::clone(&registry) as Arc<dyn TenantResolver>;
    let local_store: Arc<dyn ReadStore> = match &cold {
        Some(c) => Arc::clone(&c.store),
        None => node.hot_read(),
    };
    let owns_node = Arc::clone(&node);
    let owned = crate::cluster::ownership(
        node.config.ingest.device_label.clone(),
        node.config.log.partitions,
        Arc::new(move |p| owns_node.owns_partition(p)),
    );
    let peer_errors = Arc::new(AtomicU64::new(0));
    let store: Arc<dyn ReadStore> = if node.config.cluster.peers.is_empty() {
        Arc::clone(&local_store)
    } else {
        Arc::new(
            crate::cluster::ClusterReadStore::new(
                Arc::clone(&local_store),
                Arc::clone(&owned),
                &node.config.cluster,
                &node.config.http,
                tokio::runtime::Handle::current(),
                Arc::clone(&peer_errors),
            )
            // Rollups of a shared log or hot tier cover every node (cluster.rs).
            .rollups_cover_the_cluster(node.config.log.kind == strata_ingest::LogKind::Kafka || node.scylla.is_some()),
        )
    };
    // Delete requests hide what they cover from every read (`erasure`).
    let store: Arc<dyn ReadStore> = Arc::new(crate::erasure::ErasingStore::new(store, Arc::clone(&registry)));
    let regions = match regions_of(&node, &resolver, &store) {
        Ok(r) => r,
        Err(e) => {
            // The audit log could not be opened: no region may be asked or answered unrecorded.
            tracing::error!(error = %format!("{e:#}"), "federation is off: the audit log could not be opened");
            None
        }
    };
    let mut engine = Engine::new(store, node.config.query.clone()).with_policies(Arc::clone(&resolver));
    if let Some(r) = &regions {
        engine = engine.with_federation(Arc::new(crate::regions::RegionFederation(Arc::clone(r))));
    }
    let engine = Arc::new(engine);
    // The query front: its cache only where every write lands on this node.
    let front_registry = Arc::clone(&registry);
    let front = Arc::new(
        strata_query::front::QueryFront::new(
            strata_query::front::FrontSettings::of(&node.config.query),
            node.config.cluster.peers.is_empty() && regions.is_none(),
        )
        .with_epoch(Arc::new(move |t| tombstone_epoch(&front_registry, t))),
    );
    node.write_hook.attach(&front);
    let (usage_node, usage_engine) = (Arc::clone(&node), Arc::clone(&engine));
    let usage_cold = cold.as_ref().map(|c| c.compactor.metrics());
    let usage_resolver = Arc::clone(&resolver);
    let cardinality = crate::cardinality::CardinalityState {
        hot: Arc::clone(&node.hot),
        resolver: Arc::clone(&resolver),
        // A rolled day's series: this node's hot and cold tiers, deletes hidden.
        store: cold.as_ref().map(|_| {
            Arc::new(crate::erasure::ErasingStore::new(Arc::clone(&local_store), Arc::clone(&registry)))
                as Arc<dyn ReadStore>
        }),
    };
    let erasure = crate::erasure::ErasureState {
        registry: Arc::clone(&registry),
        admin_token: Arc::clone(&admin_token),
        purge_within: node.config.erasure.purge_within,
        audit: Arc::new(crate::erasure::audit::ErasureAudit::new(&crate::erasure::audit_dir(
            &node.config,
            &node.data_dir,
        ))),
        peers: node.config.cluster.peers.clone(),
        cluster_token: node.config.cluster.token.as_str().into(),
        client: crate::outbound::client_or_log(
            &node.config.http,
            node.config.cluster.timeout,
            node.config.cluster.timeout.min(std::time::Duration::from_secs(1)),
        ),
    };
    let ops_admin_token = Arc::clone(&admin_token);
    let tasks = crate::progress::TasksState {
        resolver: Arc::clone(&resolver),
        registry: Arc::clone(&registry),
        admin_token: Arc::clone(&admin_token),
    };
    let cold_status = crate::cold_status::ColdStatusState {
        hot: Arc::clone(&node.hot),
        cold: cold.as_ref().map(|c| Arc::clone(c.compactor.cold())),
        resolver: Arc::clone(&resolver),
        registry: Arc::clone(&registry),
        admin_token: Arc::clone(&admin_token),
    };
    let region_routes = regions.map(|regions| {
        crate::regions::router(crate::regions::RegionState { regions, admin_token: Arc::clone(&admin_token) })
    });
    let admin = crate::admin::router(AdminState {
        registry,
        admin_token,
        usage: Arc::new(move |tenant| {
            let mut usage = usage_node.usage(tenant, usage_engine.stats().of(tenant));
            // How close the tenant is to refused writes (the cardinality page shows the same).
            let limit = usage_resolver.policy(tenant).map_or_else(
                || strata_schemas::TenantLimits::default().max_active_series,
                |p| p.limits.max_active_series,
            );
            let used = usage["active_series"].as_u64().unwrap_or(0);
            usage["max_active_series"] = limit.into();
            usage["active_series_ratio"] = if limit == 0 { 0.0 } else { used as f64 / limit as f64 }.into();
            if let Some(m) = &usage_cold {
                // Known once the compactor committed to or maintained the tenant's table since start.
                usage["cold_bytes"] = m.cold_bytes(tenant).into();
            }
            usage
        }),
        purge: purge_invalidating(
            crate::admin::purge_fn(Arc::clone(&node.hot), cold.as_ref().map(|c| Arc::clone(&c.compactor))),
            Arc::clone(&front),
        ),
    });
    let write_state = WriteState {
        log: Arc::clone(&node.log) as Arc<dyn strata_ingest::IngestLog>,
        resolver: Arc::clone(&resolver),
        config: Arc::new(node.config.ingest.clone()),
        metrics: Arc::clone(&node.ingest_metrics),
        series_cache: Arc::clone(&node.series_cache),
        regions: Arc::clone(&node.regions),
        rate_limiter: Arc::new(strata_ingest::limits::RateLimiter::default()),
        store_view: Some(Arc::new(HotStoreView(
            Arc::clone(&node.hot),
            cold.as_ref().map(|c| Arc::clone(&c.compactor)),
        ))),
    };
    let write = strata_ingest::http::router(write_state.clone());
    // Read-your-writes: a query with a write token waits for the write (`read_after`).
    let read_after =
        Arc::new(crate::read_after::ReadAfter::new(Arc::clone(&node.log), &node.config.cluster, &node.config.http));
    let query = strata_query::router(QueryState::new(Arc::clone(&engine), resolver).with_front(Arc::clone(&front)))
        .layer(axum::middleware::from_fn_with_state(read_after, crate::read_after::layer));
    let ops = Router::new()
        .route("/-/ready", get(ready))
        .route("/-/healthy", get(healthy))
        .route("/metrics", get(metrics))
        .route("/internal/flush", post(flush))
        .route("/internal/compact", post(compact))
        .route("/internal/roll", post(roll))
        .route("/internal/status", get(ingest_status))
        .route("/api/v1/status/ingest", get(ingest_status))
        .route("/internal/v1/select", post(peer_select))
        .route("/internal/v1/applied", get(peer_applied))
        .route("/api/v1/rules", get(no_rules))
        .route("/api/v1/alerts", get(no_alerts))
        .with_state(OpsState {
            node,
            cold,
            engine,
            front,
            local_store,
            owned,
            peer_errors,
            admin_token: ops_admin_token,
        });
    let app = ops
        .merge(write)
        .merge(strata_ingest::otlp::router(write_state.clone()))
        .merge(strata_ingest::remote_write::router(write_state))
        .merge(query)
        .merge(crate::cardinality::router(cardinality))
        .merge(crate::console::router())
        .merge(crate::progress::router(tasks))
        .merge(crate::cold_status::router(cold_status))
        .merge(crate::erasure::router(erasure))
        .merge(admin);
    match region_routes {
        Some(r) => app.merge(r),
        None => app,
    }
}

/// Whether `path` belongs to the admin listener when `[http] admin_addr` is set.
pub fn is_admin_path(path: &str) -> bool {
    ["/admin", "/internal"]
        .iter()
        .any(|p| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// The routes one listener serves when `[http] admin_addr` splits them:
/// the admin listener (`admin`) serves `/admin/*`, `/internal/*` and the
/// health checks; the main one everything else, answering `404` for the
/// admin listener's paths.
pub fn for_listener(app: Router, admin: bool) -> Router {
    app.layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| async move {
        let path = req.uri().path();
        let health = matches!(path, "/-/ready" | "/-/healthy");
        if is_admin_path(path) == admin || (admin && health) {
            return next.run(req).await;
        }
        let msg = if admin {
            "not found: this is the admin listener (http.admin_addr); it serves /admin and /internal only"
        } else {
            "not found: /admin and /internal are served on the admin listener (http.admin_addr) only"
        };
        (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"status": "error", "error": msg}))).into_response()
    }))
}

/// The node's inter-region side, when `[federation] regions` names another region.
fn regions_of(
    node: &Arc<Node>,
    resolver: &Arc<dyn TenantResolver>,
    store: &Arc<dyn ReadStore>,
) -> anyhow::Result<Option<Arc<crate::regions::Regions>>> {
    let config = &node.config;
    if !config.federation.regions.iter().any(|r| r.name != config.region) {
        return Ok(None);
    }
    let dir = config.federation.audit_dir.clone().unwrap_or_else(|| node.data_dir.join("audit"));
    let audit = Arc::new(crate::audit::AuditLog::open(&dir)?);
    let regions = crate::regions::Regions::new(
        config,
        Arc::clone(&node.regions),
        Arc::clone(resolver),
        Arc::clone(store),
        audit,
        tokio::runtime::Handle::current(),
    );
    tracing::info!(
        region = %config.region,
        jurisdiction = %config.jurisdiction(),
        regions = config.federation.regions.len(),
        audit_dir = %dir.display(),
        "federation on: inter-region endpoints serve the regions of the directory"
    );
    Ok(Some(Arc::new(regions)))
}

/// A fingerprint of `tenant`'s delete requests (ids, spans, purged flags):
/// the query front drops cached parts computed under another one.
fn tombstone_epoch(registry: &Registry, tenant: &strata_schemas::TenantId) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(stones) = registry.tombstones(tenant) else { return 0 };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in stones.iter() {
        (&t.id, t.start, t.end, t.purged).hash(&mut h);
    }
    h.finish() | 1
}

/// `purge`, then every cached query part of the tenant dropped (also when
/// the purge failed part-way: some data may be gone).
fn purge_invalidating(
    purge: crate::admin::PurgeFn,
    front: Arc<strata_query::front::QueryFront>,
) -> crate::admin::PurgeFn {
    Arc::new(move |tenant| {
        let (purge, front) = (Arc::clone(&purge), Arc::clone(&front));
        Box::pin(async move {
            let out = purge(tenant.clone()).await;
            front.invalidate_tenant(&tenant);
            out
        })
    })
}

/// The write path's view of the hot store: series counts and cold
/// watermarks, per log partition from the compactor's roll state when the
/// cold tier is on (on a shared Kafka log a partition rolled by another node
/// runs ahead of this node's tenant watermark).
#[derive(Debug)]
struct HotStoreView(Arc<strata_hot_store::HotStore>, Option<Arc<strata_compactor::Compactor>>);

impl strata_ingest::http::StoreView for HotStoreView {
    fn count(&self, tenant: &strata_schemas::TenantId) -> u64 {
        self.0.tenant_series(tenant)
    }

    fn contains(
        &self,
        tenant: &strata_schemas::TenantId,
        id: strata_schemas::SeriesId,
        labels: &strata_schemas::Labels,
    ) -> bool {
        self.0.contains_series(tenant, id, labels)
    }

    fn cold_watermark(&self, tenant: &strata_schemas::TenantId) -> Option<i64> {
        self.0.cold_watermark(tenant)
    }

    fn cold_watermark_in(&self, tenant: &strata_schemas::TenantId, partition: u32) -> Option<i64> {
        let rolled = self.1.as_ref().and_then(|c| c.partition_roll_state(tenant, partition));
        match (self.0.cold_watermark(tenant), rolled) {
            (Some(w), Some(r)) => Some(w.max(r)),
            (w, r) => w.or(r),
        }
    }
}

async fn ready() -> &'static str {
    "Strata is Ready.\n"
}

async fn healthy() -> &'static str {
    "Strata is Healthy.\n"
}

/// State of the operational routes.
#[derive(Clone)]
struct OpsState {
    node: Arc<Node>,
    cold: Option<Cold>,
    engine: Arc<Engine>,
    /// The query front (its counters are in `/metrics`).
    front: Arc<strata_query::front::QueryFront>,
    /// This node's own data (hot, or hot and cold), without peers.
    local_store: Arc<dyn ReadStore>,
    owned: crate::cluster::Ownership,
    peer_errors: Arc<AtomicU64>,
    /// Guards the operational endpoints (`/internal/*`, `/api/v1/status/ingest`, per-tenant metrics).
    admin_token: Arc<str>,
}

impl OpsState {
    /// Whether the request carries the admin token (`Authorization: Bearer <t>` or `Token <t>`).
    fn is_admin(&self, headers: &axum::http::HeaderMap) -> bool {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| strata_schemas::tenant::parse_authorization(h).ok())
            .is_some_and(|t| crate::auth::token_eq(t.as_bytes(), self.admin_token.as_bytes()))
    }

    /// Whether the request carries `[metrics] token` (when one is set).
    fn is_metrics_reader(&self, headers: &axum::http::HeaderMap) -> bool {
        let token = &self.node.config.metrics.token;
        !token.is_empty()
            && headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|h| strata_schemas::tenant::parse_authorization(h).ok())
                .is_some_and(|t| crate::auth::token_eq(t.as_bytes(), token.as_bytes()))
    }

    /// The `401` to answer unless the request carries the admin token.
    fn admin_refusal(&self, headers: &axum::http::HeaderMap) -> Option<Response> {
        if self.is_admin(headers) {
            return None;
        }
        let body = serde_json::json!({"status": "error", "error": "this endpoint needs the admin token (Authorization: Bearer <admin token>)"});
        Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
    }
}

impl std::fmt::Debug for OpsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsState").field("node", &self.node).finish_non_exhaustive()
    }
}

/// `GET /api/v1/status/ingest`: the ingest log's state, Prometheus-API style.
async fn ingest_status(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(resp) = s.admin_refusal(&headers) {
        return resp;
    }
    let node = &s.node;
    let mut data = serde_json::json!({
        "kind": node.config.log.kind,
        "partitions": node.config.log.partitions,
        "peers": node.config.cluster.peers,
        "peer_errors": s.peer_errors.load(Ordering::Relaxed),
        "hot_flushed_offsets": node.hot.flushed_offsets(),
    });
    if let Some(log) = &node.local_log {
        let parts: Vec<_> = (0..node.config.log.partitions)
            .map(|p| serde_json::json!({"partition": p, "first_offset": log.first_offset(p), "next_offset": log.next_offset(p)}))
            .collect();
        data["local"] = serde_json::json!({ "disk_bytes": log.disk_bytes(), "partitions": parts });
        data["caught_up"] = true.into();
    }
    if let Some(kafka) = &node.kafka {
        let status = kafka.status();
        data["caught_up"] = status.caught_up().into();
        data["kafka"] = serde_json::to_value(&status).unwrap_or_default();
    }
    axum::Json(serde_json::json!({"status": "success", "data": data})).into_response()
}

/// `POST /internal/v1/select`: this node's own series for a peer's fan-out.
/// Grafana asks a Prometheus data source for its rules and alerts: Strata
/// evaluates none (run vmalert or Prometheus's rule engine against it), so
/// both lists are empty, in Prometheus's shape.
async fn no_rules() -> Response {
    axum::Json(serde_json::json!({"status": "success", "data": {"groups": []}})).into_response()
}

async fn no_alerts() -> Response {
    axum::Json(serde_json::json!({"status": "success", "data": {"alerts": []}})).into_response()
}

/// `None` when the request carries the `[cluster] token`; else the 401 to send.
fn peer_refusal(s: &OpsState, headers: &axum::http::HeaderMap, what: &str) -> Option<Response> {
    let token = &s.node.config.cluster.token;
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token.is_empty() || presented.is_none_or(|p| !crate::auth::token_eq(p.as_bytes(), token.as_bytes())) {
        let body = serde_json::json!({"status": "error", "error": format!("{what} needs the [cluster] token")});
        return Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response());
    }
    None
}

/// How far this node has applied each partition it holds (a peer's read-your-writes wait).
async fn peer_applied(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(refused) = peer_refusal(&s, &headers, "peer applied") {
        return refused;
    }
    axum::Json(crate::read_after::applied(s.node.log.as_ref())).into_response()
}

async fn peer_select(State(s): State<OpsState>, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(refused) = peer_refusal(&s, &headers, "peer select") {
        return refused;
    }
    // Parsed only once the peer is authenticated.
    let req: crate::cluster::PeerSelect = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let body = serde_json::json!({"status": "error", "error": format!("invalid peer select: {e}")});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    let (store, owned) = (Arc::clone(&s.local_store), Arc::clone(&s.owned));
    match tokio::task::spawn_blocking(move || crate::cluster::answer(store.as_ref(), &owned, &req)).await {
        Ok(Ok(answer)) => axum::Json(answer).into_response(),
        Ok(Err(e)) => {
            (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"status": "error", "error": e}))).into_response()
        }
        Err(e) => json_outcome(Err(anyhow::anyhow!("peer select task failed: {e}"))),
    }
}

async fn roll(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(resp) = s.admin_refusal(&headers) {
        return resp;
    }
    let Some(cold) = s.cold else {
        return (
            StatusCode::CONFLICT,
            axum::Json(
                serde_json::json!({"status": "error", "error": "the cold tier is off ([cold] enabled = false)"}),
            ),
        )
            .into_response();
    };
    let result = cold.compactor.roll_once(strata_schemas::time::now_millis()).await;
    json_outcome(
        result
            .map_err(anyhow::Error::from)
            .map(|o| serde_json::json!({ "buckets": o.buckets, "samples": o.samples, "bytes": o.bytes })),
    )
}

async fn flush(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(resp) = s.admin_refusal(&headers) {
        return resp;
    }
    json_outcome(s.node.flush("requested").await.map(|o| {
        // The segment's file name only: the data dir's absolute path is nobody's business.
        let segment = o.segment.map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        serde_json::json!({ "series": o.series, "samples": o.samples, "segment": segment })
    }))
}

async fn compact(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(resp) = s.admin_refusal(&headers) {
        return resp;
    }
    let node = s.node;
    json_outcome(
        node.compact().await.map(
            |o| serde_json::json!({ "input_segments": o.input_segments, "series": o.series, "samples": o.samples }),
        ),
    )
}

/// `{"status":"success", ...fields}` or a 500 with `{"status":"error","error":...}`.
fn json_outcome(result: anyhow::Result<serde_json::Value>) -> Response {
    match result {
        Ok(mut fields) => {
            fields["status"] = "success".into();
            axum::Json(fields).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"status": "error", "error": format!("{e:#}")})),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Response {
    let per_tenant = s.node.config.metrics.per_tenant || s.is_admin(&headers) || s.is_metrics_reader(&headers);
    let OpsState { node, cold, engine, front, peer_errors, .. } = s;
    let mut out = String::with_capacity(4096);
    crate::startup::render_ready(&mut strata_schemas::metrics_text::MetricsText::new(&mut out), true);
    engine.stats().render(&mut out);
    front.render(&mut out);
    if let Some(c) = &cold {
        c.compactor.metrics().render_prometheus(&mut out);
    }
    node.ingest_metrics.render(&mut out);
    strata_ingest::remote_write::RemoteWriteMetrics::shared().render(&mut out);
    crate::erasure::metrics().render(&mut out);
    crate::progress::render_metrics(&mut out);
    let stats = node.hot.stats();
    let gauges: [(&str, &str, f64); 10] = [
        ("strata_hot_memtable_bytes", "Bytes of compressed memtable chunks.", stats.memtable_bytes as f64),
        ("strata_hot_buckets", "Time buckets with segments.", stats.buckets as f64),
        ("strata_hot_quarantined_segments", "Corrupt segments moved to quarantine/.", stats.quarantined as f64),
        ("strata_hot_throttled_applies", "Writes slowed by memtable back-pressure.", stats.throttled_applies as f64),
        ("strata_hot_series", "Series in the hot store index.", stats.series as f64),
        ("strata_hot_memtable_samples", "Samples in the active memtable.", stats.memtable_samples as f64),
        ("strata_hot_segments", "Live hot-store segment files.", stats.segments as f64),
        ("strata_hot_disk_bytes", "Bytes of live hot-store segment files.", stats.disk_bytes as f64),
        ("strata_hot_id_collisions", "Label sets whose series id collided with another's.", stats.id_collisions as f64),
        ("strata_uptime_seconds", "Seconds since the node started.", node.started.elapsed().as_secs_f64()),
    ];
    let mut text = MetricsText::new(&mut out);
    for (name, help, v) in gauges {
        text.gauge(name, help, v);
    }
    let edge_dedup: [(&str, &str, u64); 3] = [
        (
            "strata_ingest_edge_duplicates_skipped_total",
            "Log records not applied because their edge batch (agent id, sequence number) was already applied in their partition (since start, replay included).",
            stats.edge_duplicates_skipped,
        ),
        (
            "strata_ingest_edge_dedup_agents_evicted_total",
            "Edge agents forgotten by de-duplication (over hot_store.edge_dedup_max_agents in a partition): a batch they re-send is applied again.",
            stats.edge_agents_evicted,
        ),
        (
            "strata_ingest_edge_dedup_ranges_dropped_total",
            "Ranges of applied edge sequence numbers forgotten (over hot_store.edge_dedup_max_ranges for an agent in a partition).",
            stats.edge_ranges_dropped,
        ),
    ];
    for (name, help, v) in edge_dedup {
        text.counter(name, help, v);
    }
    let name = "strata_tenant_hot_bytes";
    text.family(name, MetricKind::Gauge, "Bytes of the tenant's hot-store segment files.");
    for (tenant, bytes) in node.hot.disk_bytes_by_tenant() {
        text.sample(name, &[("tenant", tenant.as_str())], bytes);
    }
    if let Some(log) = &node.local_log {
        text.gauge("strata_log_disk_bytes", "Bytes of ingest log segment files.", log.disk_bytes());
        let name = "strata_log_next_offset";
        text.family(name, MetricKind::Gauge, "Offset the next record of a partition gets.");
        for p in 0..node.config.log.partitions {
            text.sample(name, &[("partition", &p.to_string())], log.next_offset(p));
        }
    }
    if let Some(kafka) = &node.kafka {
        render_kafka(&mut text, &kafka.status());
    }
    text.counter(
        "strata_cluster_peer_errors_total",
        "Peer requests of query fan-out that failed.",
        peer_errors.load(Ordering::Relaxed),
    );
    text.family("strata_build_info", MetricKind::Gauge, "Build information.").sample(
        "strata_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1u64,
    );
    if !per_tenant {
        out = without_tenant_series(&out);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

/// The exposition without the per-tenant series (the `strata_tenant_*`
/// families and any sample labelled `tenant`): they name every tenant.
fn without_tenant_series(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let name = match line.strip_prefix("# HELP ").or_else(|| line.strip_prefix("# TYPE ")) {
            Some(rest) => rest.split(' ').next().unwrap_or_default(),
            None => line.split(['{', ' ']).next().unwrap_or_default(),
        };
        let labels = line.find('{').map_or("", |i| &line[i..]);
        if name.starts_with("strata_tenant_") || labels.contains("tenant=\"") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The Kafka log's counters and per-partition gauges in Prometheus text format.
fn render_kafka(text: &mut MetricsText<'_>, st: &strata_ingest::log::kafka::KafkaStatus) {
    let topic = st.topic.as_str();
    let counters: [(&str, &str, u64); 5] = [
        ("strata_kafka_produced_records_total", "Records delivered to the brokers by this node.", st.produced_records),
        ("strata_kafka_produced_bytes_total", "Bytes of records delivered by this node.", st.produced_bytes),
        (
            "strata_kafka_delivery_failures_total",
            "Records the brokers did not confirm (write failed).",
            st.delivery_failures,
        ),
        ("strata_kafka_apply_errors_total", "Failed attempts to apply a consumed record (retried).", st.apply_errors),
        ("strata_kafka_rebalances_total", "Partition assignments and revocations seen.", st.rebalances),
    ];
    for (name, help, v) in counters {
        text.family(name, MetricKind::Counter, help).sample(name, &[("topic", topic)], v);
    }
    type Field = fn(&strata_ingest::log::kafka::PartitionStatus) -> Option<f64>;
    let gauges: [(&str, MetricKind, &str, Field); 7] = [
        ("strata_kafka_partition_assigned", MetricKind::Gauge, "1 while this node consumes the partition.", |p| {
            Some(f64::from(u8::from(p.assigned)))
        }),
        ("strata_kafka_consumer_lag", MetricKind::Gauge, "Records of the partition not yet applied here.", |p| {
            p.lag.map(|v| v as f64)
        }),
        ("strata_kafka_next_offset", MetricKind::Gauge, "Next offset this node applies.", |p| {
            p.next_offset.map(|v| v as f64)
        }),
        ("strata_kafka_high_watermark", MetricKind::Gauge, "The partition's high watermark.", |p| {
            p.high_watermark.map(|v| v as f64)
        }),
        ("strata_kafka_committed_offset", MetricKind::Gauge, "Offset committed to the group (flushed data).", |p| {
            p.committed_offset.map(|v| v as f64)
        }),
        ("strata_kafka_applied_records_total", MetricKind::Counter, "Records applied to the hot store.", |p| {
            Some(p.applied_records as f64)
        }),
        ("strata_kafka_apply_rate", MetricKind::Gauge, "Records applied per second (recent).", |p| Some(p.apply_rate)),
    ];
    for (name, kind, help, field) in gauges {
        text.family(name, kind, help);
        for p in &st.partitions {
            if let Some(v) = field(p) {
                text.sample(name, &[("topic", topic), ("partition", &p.partition.to_string())], v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_series_are_removed_from_the_exposition() {
        let text = "# HELP strata_hot_series Series.\n# TYPE strata_hot_series gauge\nstrata_hot_series 3\n\
                    # HELP strata_tenant_hot_bytes Bytes.\n# TYPE strata_tenant_hot_bytes gauge\n\
                    strata_tenant_hot_bytes{tenant=\"acme\"} 7\n\
                    strata_compactor_x{tenant=\"acme\",table=\"t\"} 1\nstrata_kafka_lag{topic=\"t\"} 0\n";
        assert_eq!(
            without_tenant_series(text),
            "# HELP strata_hot_series Series.\n# TYPE strata_hot_series gauge\nstrata_hot_series 3\n\
             strata_kafka_lag{topic=\"t\"} 0\n"
        );
    }
}
