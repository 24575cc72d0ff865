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
use crate::error::{Error, Result};
use crate::node::{Cold, Node};
use crate::registry::Registry;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_ingest::http::WriteState;
use strata_query::{Engine, QueryState};
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
            let limit = usage_resolver.limits(tenant).max_active_series;
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
        Error::NotFound(msg.into()).into_response()
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
    fn admin_only(&self, headers: &axum::http::HeaderMap) -> Result<()> {
        if self.is_admin(headers) {
            return Ok(());
        }
        Err(Error::Unauthenticated("this endpoint needs the admin token (Authorization: Bearer <admin token>)".into()))
    }
}

impl std::fmt::Debug for OpsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsState").field("node", &self.node).finish_non_exhaustive()
    }
}

/// `GET /api/v1/status/ingest`: the ingest log's state, Prometheus-API style.
async fn ingest_status(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Result<Response> {
    s.admin_only(&headers)?;
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
    Ok(axum::Json(serde_json::json!({"status": "success", "data": data})).into_response())
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

/// `Ok` when the request carries the `[cluster] token`; else the 401 to send.
fn peer_only(s: &OpsState, headers: &axum::http::HeaderMap, what: &str) -> Result<()> {
    let token = &s.node.config.cluster.token;
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token.is_empty() || presented.is_none_or(|p| !crate::auth::token_eq(p.as_bytes(), token.as_bytes())) {
        return Err(Error::Unauthenticated(format!("{what} needs the [cluster] token")));
    }
    Ok(())
}

/// How far this node has applied each partition it holds (a peer's read-your-writes wait).
async fn peer_applied(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Result<Response> {
    peer_only(&s, &headers, "peer applied")?;
    Ok(axum::Json(crate::read_after::applied(s.node.log.as_ref())).into_response())
}

async fn peer_select(
    State(s): State<OpsState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    peer_only(&s, &headers, "peer select")?;
    // Parsed only once the peer is authenticated.
    let req: crate::cluster::PeerSelect =
        serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("invalid peer select: {e}")))?;
    let (store, owned) = (Arc::clone(&s.local_store), Arc::clone(&s.owned));
    let answer = tokio::task::spawn_blocking(move || crate::cluster::answer(store.as_ref(), &owned, &req))
        .await
        .map_err(Error::task("peer select"))?
        .map_err(Error::BadRequest)?;
    Ok(axum::Json(answer).into_response())
}

async fn roll(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Result<Response> {
    s.admin_only(&headers)?;
    let Some(cold) = s.cold else {
        return Err(Error::Conflict("the cold tier is off ([cold] enabled = false)".into()));
    };
    let o = cold.compactor.roll_once(strata_schemas::time::now_millis()).await?;
    Ok(success(serde_json::json!({ "buckets": o.buckets, "samples": o.samples, "bytes": o.bytes })))
}

async fn flush(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Result<Response> {
    s.admin_only(&headers)?;
    let o = s.node.flush_requested("requested").await?;
    // The segment's file name only: the data dir's absolute path is nobody's business.
    let segment = o.segment.map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    Ok(success(serde_json::json!({ "series": o.series, "samples": o.samples, "segment": segment })))
}

async fn compact(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Result<Response> {
    s.admin_only(&headers)?;
    let o = s.node.compact().await?;
    Ok(success(serde_json::json!({ "input_segments": o.input_segments, "series": o.series, "samples": o.samples })))
}

/// `{"status":"success", ...fields}`.
fn success(mut fields: serde_json::Value) -> Response {
    fields["status"] = "success".into();
    axum::Json(fields).into_response()
}

async fn metrics(State(s): State<OpsState>, headers: axum::http::HeaderMap) -> Response {
    let per_tenant = s.node.config.metrics.per_tenant || s.is_admin(&headers) || s.is_metrics_reader(&headers);
    let sources = crate::metrics::Sources {
        node: &s.node,
        cold: s.cold.as_ref(),
        engine: &s.engine,
        front: &s.front,
        peer_errors: s.peer_errors.load(Ordering::Relaxed),
    };
    let out = crate::metrics::exposition(&sources, per_tenant);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
