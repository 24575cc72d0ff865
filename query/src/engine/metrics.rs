//! The query engine's `/metrics` families, rendered from its counters
//! ([`TenantQueryStats`], the rollup tiers' and the group rollups' select
//! counts) through the shared Prometheus text renderer
//! ([`strata_schemas::metrics_text`]); the server concatenates them with
//! every other crate's (`server/src/metrics.rs`). The query front renders
//! its own (`QueryFront::render`).
//!
//! | family | type | labels |
//! |---|---|---|
//! | `strata_tenant_queries_total`, `strata_tenant_query_samples_total` | counter | `tenant` (the server drops them unless the reader may see tenants) |
//! | `strata_query_rollup_selects_total` | counter | |
//! | `strata_query_rollup_tier_selects_total` | counter | `tier` (`5m`, `1h`, `1d`) |
//! | `strata_query_group_rollup_selects_total` | counter | |

use strata_schemas::metrics_text::{MetricKind, MetricsText};

use super::{TenantQueryStats, group_rollup};

impl TenantQueryStats {
    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut text = MetricsText::new(out);
        {
            let m = self.by_tenant.lock();
            let name = "strata_tenant_queries_total";
            text.family(name, MetricKind::Counter, "PromQL queries run, per tenant.");
            for (t, (q, _)) in m.iter() {
                text.sample(name, &[("tenant", t.as_str())], *q);
            }
            let name = "strata_tenant_query_samples_total";
            text.family(name, MetricKind::Counter, "Samples loaded and points produced by queries.");
            for (t, (_, n)) in m.iter() {
                text.sample(name, &[("tenant", t.as_str())], *n);
            }
        }
        text.counter(
            "strata_query_rollup_selects_total",
            "Range-function selectors answered from rollups.",
            self.rollup_selects.total(),
        );
        let name = "strata_query_rollup_tier_selects_total";
        text.family(
            name,
            MetricKind::Counter,
            "Range-function selectors answered from rollups, per tier (window width).",
        );
        for (tier, n) in self.rollup_selects.by_tier() {
            text.sample(name, &[("tier", tier)], n);
        }
        text.counter(
            "strata_query_group_rollup_selects_total",
            "Aggregations answered from a declared group rollup.",
            group_rollup::group_selects(),
        );
    }
}

#[cfg(test)]
mod tests {
    use strata_schemas::TenantId;

    use super::TenantQueryStats;

    #[test]
    fn renders_per_tenant_counts_then_the_rollup_tiers_and_group_rollups() {
        let stats = TenantQueryStats::default();
        stats.record(&TenantId::new("acme").unwrap(), 120);
        stats.record(&TenantId::new("acme").unwrap(), 30);
        let mut out = String::new();
        stats.render(&mut out);
        assert!(out.contains("strata_tenant_queries_total{tenant=\"acme\"} 2\n"), "{out}");
        assert!(out.contains("strata_tenant_query_samples_total{tenant=\"acme\"} 150\n"), "{out}");
        assert!(out.contains("strata_query_rollup_selects_total 0\n"), "{out}");
        assert!(out.contains("strata_query_rollup_tier_selects_total{tier=\"5m\"} 0\n"), "{out}");
        let families: Vec<&str> =
            out.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(
            families,
            [
                "strata_tenant_queries_total",
                "strata_tenant_query_samples_total",
                "strata_query_rollup_selects_total",
                "strata_query_rollup_tier_selects_total",
                "strata_query_group_rollup_selects_total"
            ]
        );
    }
}
