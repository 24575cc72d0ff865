//! The node's HTTP surface: write, query, health, metrics and internal endpoints.
//!
//! | path | what |
//! |---|---|
//! | `POST /api/v2/write`, `POST /write` | line protocol ([`strata_ingest::http`]) |
//! | `/api/v1/*` | Prometheus HTTP API ([`strata_query::http`]) |
//! | `GET /-/ready`, `GET /-/healthy` | readiness / liveness (200 once storage is open) |
//! | `GET /metrics` | Prometheus text exposition of the node's counters and gauges |
//! | `/admin/v1/*` | tenants, tokens, limits, usage ([`crate::admin`]) |
//! | `POST /internal/flush` | flush the memtable to a segment now (benchmarks, operations) |
//! | `POST /internal/roll` | roll sealed hot buckets into the cold tier now (when it is on) |
//! | `POST /internal/compact` | merge the hot store's segments into one now |

use crate::admin::AdminState;
use crate::node::{Cold, Node};
use crate::registry::Registry;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::fmt::Write;
use std::sync::Arc;
use strata_ingest::http::WriteState;
use strata_query::{Engine, QueryState};
use strata_schemas::{ReadStore, TenantResolver};

/// Builds the full router of a node.
pub fn app(node: Arc<Node>, registry: Arc<Registry>, admin_token: Arc<str>, cold: Option<Cold>) -> Router {
    let resolver: Arc<dyn TenantResolver> = Arc::clone(&registry) as Arc<dyn TenantResolver>;
    let store: Arc<dyn ReadStore> = match &cold {
        Some(c) => Arc::clone(&c.store),
        None => Arc::clone(&node.hot) as Arc<dyn ReadStore>,
    };
    let engine = Arc::new(Engine::new(store, node.config.query.clone()).with_policies(Arc::clone(&resolver)));
    let (usage_node, usage_engine) = (Arc::clone(&node), Arc::clone(&engine));
    let admin = crate::admin::router(AdminState {
        registry,
        admin_token,
        usage: Arc::new(move |tenant| usage_node.usage(tenant, usage_engine.stats().of(tenant))),
        purge: crate::admin::purge_fn(Arc::clone(&node.hot), cold.as_ref().map(|c| Arc::clone(&c.compactor))),
    });
    let write_state = WriteState {
        log: Arc::clone(&node.log) as Arc<dyn strata_ingest::IngestLog>,
        resolver: Arc::clone(&resolver),
        config: Arc::new(node.config.ingest.clone()),
        metrics: Arc::clone(&node.ingest_metrics),
        series_cache: Arc::clone(&node.series_cache),
        region: node.config.region.as_str().into(),
        rate_limiter: Arc::new(strata_ingest::limits::RateLimiter::default()),
        store_view: Some(Arc::new(HotStoreView(Arc::clone(&node.hot)))),
    };
    let write = strata_ingest::http::router(write_state.clone());
    let query = strata_query::router(QueryState::new(Arc::clone(&engine), resolver));
    let ops = Router::new()
        .route("/-/ready", get(ready))
        .route("/-/healthy", get(healthy))
        .route("/metrics", get(metrics))
        .route("/internal/flush", post(flush).get(flush))
        .route("/internal/compact", post(compact).get(compact))
        .route("/internal/roll", post(roll).get(roll))
        .with_state(OpsState { node, cold, engine });
    ops.merge(write).merge(strata_ingest::remote_write::router(write_state)).merge(query).merge(admin)
}

/// The write path's view of the hot store: series counts and cold watermarks.
#[derive(Debug)]
struct HotStoreView(Arc<strata_hot_store::HotStore>);

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
}

async fn ready() -> &'static str {
    "Strata is Ready.\n"
}

async fn healthy() -> &'static str {
    "Strata is Healthy.\n"
}

/// State of the operational routes.
#[derive(Debug, Clone)]
struct OpsState {
    node: Arc<Node>,
    cold: Option<Cold>,
    engine: Arc<Engine>,
}

async fn roll(State(s): State<OpsState>) -> Response {
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

async fn flush(State(OpsState { node, .. }): State<OpsState>) -> Response {
    json_outcome(node.flush("requested").await.map(|o| {
        serde_json::json!({
            "series": o.series,
            "samples": o.samples,
            "segment": o.segment.map(|p| p.display().to_string()),
        })
    }))
}

async fn compact(State(OpsState { node, .. }): State<OpsState>) -> Response {
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

async fn metrics(State(OpsState { node, cold, engine }): State<OpsState>) -> Response {
    let mut out = String::with_capacity(4096);
    engine.stats().render(&mut out);
    if let Some(c) = &cold {
        c.compactor.metrics().render_prometheus(&mut out);
    }
    node.ingest_metrics.render(&mut out);
    strata_ingest::remote_write::RemoteWriteMetrics::shared().render(&mut out);
    let stats = node.hot.stats();
    let gauges: [(&str, &str, f64); 11] = [
        ("strata_hot_memtable_bytes", "Bytes of compressed memtable chunks.", stats.memtable_bytes as f64),
        ("strata_hot_buckets", "Time buckets with segments.", stats.buckets as f64),
        ("strata_hot_quarantined_segments", "Corrupt segments moved to quarantine/.", stats.quarantined as f64),
        ("strata_hot_throttled_applies", "Writes slowed by memtable back-pressure.", stats.throttled_applies as f64),
        ("strata_hot_series", "Series in the hot store index.", stats.series as f64),
        ("strata_hot_memtable_samples", "Samples in the active memtable.", stats.memtable_samples as f64),
        ("strata_hot_segments", "Live hot-store segment files.", stats.segments as f64),
        ("strata_hot_disk_bytes", "Bytes of live hot-store segment files.", stats.disk_bytes as f64),
        ("strata_hot_id_collisions", "Label sets whose series id collided with another's.", stats.id_collisions as f64),
        ("strata_log_disk_bytes", "Bytes of ingest log segment files.", node.log.disk_bytes() as f64),
        ("strata_uptime_seconds", "Seconds since the node started.", node.started.elapsed().as_secs_f64()),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    let _ = writeln!(out, "# HELP strata_log_next_offset Offset the next record of a partition gets.");
    let _ = writeln!(out, "# TYPE strata_log_next_offset gauge");
    for p in 0..node.config.log.partitions {
        let _ = writeln!(out, "strata_log_next_offset{{partition=\"{p}\"}} {}", node.log.next_offset(p));
    }
    let _ = writeln!(out, "# HELP strata_build_info Build information.\n# TYPE strata_build_info gauge");
    let _ = writeln!(out, "strata_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
