//! The compactor's `/metrics` families, rendered from [`CompactorMetrics`]
//! through the shared Prometheus text renderer
//! ([`strata_schemas::metrics_text`]); the server concatenates them with
//! every other crate's (`server/src/metrics.rs`).
//!
//! | family | type | from |
//! |---|---|---|
//! | `strata_compactor_*_total` (rolls, rollups, group rollups, maintenance, merges, retention, purges, errors) | counter | the [`CompactorMetrics`] counters the roll and maintenance passes bump |
//! | `strata_tenant_cold_bytes{tenant}` | gauge | `CompactorMetrics::cold_bytes` (per tenant: the server drops it unless the reader may see tenants) |

use std::sync::atomic::{AtomicU64, Ordering};

use strata_schemas::metrics_text::{MetricKind, MetricsText};

use crate::CompactorMetrics;

impl CompactorMetrics {
    /// Appends the counters in Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        let rows: [(&str, &str, &AtomicU64); 21] = [
            ("strata_compactor_buckets_rolled_total", "hot buckets committed to the cold tier", &self.buckets_rolled),
            ("strata_compactor_samples_rolled_total", "samples committed to the cold tier", &self.samples_rolled),
            ("strata_compactor_bytes_written_total", "Parquet bytes committed", &self.bytes_written),
            ("strata_compactor_files_written_total", "Parquet data files committed", &self.files_written),
            (
                "strata_compactor_duplicate_commits_avoided_total",
                "buckets found already committed after a crash",
                &self.duplicate_commits_avoided,
            ),
            ("strata_compactor_errors_total", "failed bucket rolls", &self.errors),
            (
                "strata_compactor_rollup_windows_written_total",
                "rollup rows (series x 5m/1h/1d window) committed",
                &self.rollup_windows_written,
            ),
            (
                "strata_compactor_group_rollup_rows_written_total",
                "group rollup rows (declared group x 5m/1h/1d window) committed",
                &self.group_rollup_rows_written,
            ),
            ("strata_compactor_maintenance_passes_total", "cold maintenance passes finished", &self.maintenance_passes),
            ("strata_compactor_snapshots_expired_total", "cold table snapshots expired", &self.snapshots_expired),
            (
                "strata_compactor_orphan_files_deleted_total",
                "unreferenced cold files deleted (crashed writes, expired snapshots)",
                &self.orphan_files_deleted,
            ),
            (
                "strata_compactor_orphan_bytes_deleted_total",
                "bytes of unreferenced cold files deleted",
                &self.orphan_bytes_deleted,
            ),
            (
                "strata_compactor_retention_files_removed_total",
                "cold data files removed by cold_retention",
                &self.retention_files_removed,
            ),
            (
                "strata_compactor_retention_samples_removed_total",
                "cold samples removed by cold_retention",
                &self.retention_samples_removed,
            ),
            ("strata_compactor_merges_total", "cold partition merges committed", &self.merges),
            ("strata_compactor_merge_files_in_total", "small cold files replaced by merges", &self.merge_files_in),
            ("strata_compactor_merge_files_out_total", "cold files written by merges", &self.merge_files_out),
            ("strata_compactor_merge_samples_total", "samples rewritten by merges", &self.merge_samples),
            (
                "strata_compactor_merges_lost_total",
                "merges given up because an erase replaced their files first (planned again next pass)",
                &self.merges_lost,
            ),
            (
                "strata_compactor_tenants_purged_total",
                "tenants whose hot and cold data was purged",
                &self.tenants_purged,
            ),
            ("strata_compactor_maintenance_errors_total", "failed cold maintenance steps", &self.maintenance_errors),
        ];
        let mut text = MetricsText::new(out);
        for (name, help, v) in rows {
            text.counter(name, help, v.load(Ordering::Relaxed));
        }
        let name = "strata_tenant_cold_bytes";
        text.family(name, MetricKind::Gauge, "Bytes of data files in the tenant's cold table.");
        for (tenant, bytes) in self.cold_bytes.lock().iter() {
            text.sample(name, &[("tenant", tenant.as_str())], *bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::CompactorMetrics;

    #[test]
    fn renders_every_counter_and_the_cold_bytes_per_tenant() {
        let m = CompactorMetrics::default();
        m.samples_rolled.fetch_add(864, Ordering::Relaxed);
        m.cold_bytes.lock().insert("acme".into(), 4096);
        let mut out = String::new();
        m.render_prometheus(&mut out);
        assert!(
            out.contains(
                "# TYPE strata_compactor_samples_rolled_total counter\nstrata_compactor_samples_rolled_total 864\n"
            ),
            "{out}"
        );
        assert!(out.contains("strata_tenant_cold_bytes{tenant=\"acme\"} 4096\n"), "{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with("# TYPE ")).count(), 22, "{out}");
    }
}
