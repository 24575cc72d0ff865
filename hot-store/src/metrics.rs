//! The hot store's `/metrics` families, rendered through the shared
//! Prometheus text renderer ([`strata_schemas::metrics_text`]).
//!
//! [`HotStore::render_metrics`] appends them; the server concatenates every
//! crate's families into one exposition (`server/src/metrics.rs`).
//!
//! | family | type | from |
//! |---|---|---|
//! | `strata_hot_{memtable_bytes,buckets,quarantined_segments,throttled_applies,series,memtable_samples,segments,disk_bytes,id_collisions}` | gauge | [`HotStore::stats`] |
//! | `strata_ingest_edge_{duplicates_skipped,dedup_agents_evicted,dedup_ranges_dropped}_total` | counter | edge batches applied once (`origins`) |
//! | `strata_tenant_hot_bytes{tenant}` | gauge | [`HotStore::disk_bytes_by_tenant`] (per tenant: the server drops it unless the reader may see tenants) |

use strata_schemas::metrics_text::{MetricKind, MetricsText};

use crate::HotStore;

impl HotStore {
    /// Appends the hot store's families to `out` (Prometheus text format).
    pub fn render_metrics(&self, out: &mut String) {
        let stats = self.stats();
        let gauges: [(&str, &str, f64); 9] = [
            ("strata_hot_memtable_bytes", "Bytes of compressed memtable chunks.", stats.memtable_bytes as f64),
            ("strata_hot_buckets", "Time buckets with segments.", stats.buckets as f64),
            ("strata_hot_quarantined_segments", "Corrupt segments moved to quarantine/.", stats.quarantined as f64),
            (
                "strata_hot_throttled_applies",
                "Writes slowed by memtable back-pressure.",
                stats.throttled_applies as f64,
            ),
            ("strata_hot_series", "Series in the hot store index.", stats.series as f64),
            ("strata_hot_memtable_samples", "Samples in the active memtable.", stats.memtable_samples as f64),
            ("strata_hot_segments", "Live hot-store segment files.", stats.segments as f64),
            ("strata_hot_disk_bytes", "Bytes of live hot-store segment files.", stats.disk_bytes as f64),
            (
                "strata_hot_id_collisions",
                "Label sets whose series id collided with another's.",
                stats.id_collisions as f64,
            ),
        ];
        let mut text = MetricsText::new(out);
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
        for (tenant, bytes) in self.disk_bytes_by_tenant() {
            text.sample(name, &[("tenant", tenant.as_str())], bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use strata_schemas::{BatchSeries, Labels, Sample, TenantId, WriteBatch};

    use crate::{HotStore, HotStoreConfig};

    #[test]
    fn renders_the_stats_edge_counters_and_bytes_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let hot = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap();
        let tenant = TenantId::new("acme").unwrap();
        let labels = Labels::from_pairs([("__name__", "temp"), ("device", "d1")]);
        let series = BatchSeries {
            id: strata_schemas::series_id(&tenant, &labels),
            device_hash: 0,
            labels,
            samples: vec![Sample::new(1_000, 1.0), Sample::new(2_000, 2.0)].into(),
        };
        hot.apply(0, 0, &WriteBatch { tenant, series: vec![series], origin: None }).unwrap();
        let mut out = String::new();
        hot.render_metrics(&mut out);
        assert!(out.contains("# TYPE strata_hot_series gauge\nstrata_hot_series 1\n"), "{out}");
        assert!(out.contains("strata_hot_memtable_samples 2\n"), "{out}");
        assert!(out.contains("# TYPE strata_ingest_edge_duplicates_skipped_total counter\n"), "{out}");
        assert!(out.contains("# TYPE strata_tenant_hot_bytes gauge\n"), "{out}");
        let families = out.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(families, 13, "{out}");
        hot.flush().unwrap();
        let mut out = String::new();
        hot.render_metrics(&mut out);
        assert!(out.contains("strata_hot_segments 1\n"), "{out}");
        assert!(out.contains("strata_tenant_hot_bytes{tenant=\"acme\"} "), "{out}");
    }
}
