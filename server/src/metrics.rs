//! `GET /metrics`: the node's Prometheus text exposition, concatenated from
//! every crate's renderer.
//!
//! Each crate renders its own families next to the counters it keeps,
//! through the shared renderer [`strata_schemas::metrics_text`]; this module
//! only puts them in order and adds the node's own gauges:
//!
//! ```text
//!  startup::render_ready            strata_ready
//!  query Engine::stats().render     strata_query_*           (engine, rollup reads)
//!  query QueryFront::render         strata_query_front_*
//!  compactor metrics().render_…     strata_compactor_*       (when the cold tier is on)
//!  ingest IngestMetrics::render     strata_ingest_*, strata_tenant_ingest_*
//!  ingest RemoteWriteMetrics        strata_remote_write_*
//!  erasure::metrics().render        strata_erasure_*
//!  progress::render_metrics         strata_progress_*
//!  hot-store render_metrics         strata_hot_*, strata_ingest_edge_*, strata_tenant_hot_bytes
//!  ingest LocalLog / KafkaStatus    strata_log_*, strata_kafka_*
//!  here                             strata_uptime_seconds, strata_cluster_peer_errors_total, strata_build_info
//! ```
//!
//! Per-tenant series (`strata_tenant_*` and any sample labelled `tenant`)
//! name every tenant: they are dropped unless `[metrics] per_tenant` is on or
//! the reader presents the admin token or `[metrics] token`.

use std::sync::Arc;

use strata_query::Engine;
use strata_query::front::QueryFront;
use strata_schemas::metrics_text::{MetricKind, MetricsText};

use crate::node::{Cold, Node};

/// What the exposition is rendered from.
#[derive(Debug)]
pub(crate) struct Sources<'a> {
    pub(crate) node: &'a Arc<Node>,
    pub(crate) cold: Option<&'a Cold>,
    pub(crate) engine: &'a Engine,
    pub(crate) front: &'a QueryFront,
    /// Failed peer requests of the query fan-out.
    pub(crate) peer_errors: u64,
}

/// The whole exposition; without the per-tenant series unless `per_tenant`.
pub(crate) fn exposition(src: &Sources<'_>, per_tenant: bool) -> String {
    let node = src.node;
    let mut out = String::with_capacity(4096);
    crate::startup::render_ready(&mut MetricsText::new(&mut out), true);
    src.engine.stats().render(&mut out);
    src.front.render(&mut out);
    if let Some(c) = src.cold {
        c.compactor.metrics().render_prometheus(&mut out);
    }
    node.ingest_metrics.render(&mut out);
    strata_ingest::remote_write::RemoteWriteMetrics::shared().render(&mut out);
    crate::erasure::metrics().render(&mut out);
    crate::progress::render_metrics(&mut out);
    node.hot.render_metrics(&mut out);
    if let Some(log) = &node.local_log {
        log.render_metrics(&mut out);
    }
    if let Some(kafka) = &node.kafka {
        kafka.status().render_metrics(&mut out);
    }
    let mut text = MetricsText::new(&mut out);
    text.gauge("strata_uptime_seconds", "Seconds since the node started.", node.started.elapsed().as_secs_f64());
    text.counter("strata_cluster_peer_errors_total", "Peer requests of query fan-out that failed.", src.peer_errors);
    text.family("strata_build_info", MetricKind::Gauge, "Build information.").sample(
        "strata_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1u64,
    );
    if per_tenant { out } else { without_tenant_series(&out) }
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
