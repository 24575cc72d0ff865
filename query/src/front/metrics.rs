//! The query front's `/metrics` families, rendered from its counters and
//! its cache's through the shared Prometheus text renderer
//! ([`strata_schemas::metrics_text`]); the server concatenates them with
//! every other crate's (`server/src/metrics.rs`). A child module of
//! `front`, so the counters stay private to it.
//!
//! | family | type |
//! |---|---|
//! | `strata_query_front_flights_total`, `…_coalesced_total`, `…_evaluations_total` | counter |
//! | `strata_query_front_cache_{hits,misses,extends,evictions,invalidations,not_stored}_total` | counter |
//! | `strata_query_front_bypassed_total` | counter |
//! | `strata_query_front_cache_bytes`, `strata_query_front_cache_entries` | gauge |

use std::sync::atomic::{AtomicU64, Ordering};

use strata_schemas::metrics_text::MetricsText;

use super::QueryFront;

impl QueryFront {
    /// Appends the front's counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let m = &self.metrics;
        let (bytes, entries, evictions, invalidations) = {
            let st = self.state.lock();
            (st.cache.bytes(), st.cache.len(), st.cache.evictions, st.cache.invalidations)
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, u64); 10] = [
            (
                "strata_query_front_flights_total",
                "Queries the front evaluated for a flight of identical requests (leaders).",
                load(&m.flights),
            ),
            (
                "strata_query_front_coalesced_total",
                "Requests answered by another identical request's evaluation.",
                load(&m.coalesced),
            ),
            (
                "strata_query_front_evaluations_total",
                "Engine evaluations run for the front's requests (whole queries and parts).",
                load(&m.evaluations),
            ),
            (
                "strata_query_front_cache_hits_total",
                "Settled range-query parts answered from the cache.",
                load(&m.hits),
            ),
            (
                "strata_query_front_cache_misses_total",
                "Settled range-query parts evaluated and stored.",
                load(&m.misses),
            ),
            (
                "strata_query_front_cache_extends_total",
                "Cached parts extended by the steps settled since.",
                load(&m.extends),
            ),
            (
                "strata_query_front_cache_evictions_total",
                "Cached parts evicted for room (front_cache_bytes).",
                evictions,
            ),
            (
                "strata_query_front_cache_invalidations_total",
                "Cached parts dropped by writes, delete requests or purges.",
                invalidations,
            ),
            (
                "strata_query_front_cache_not_stored_total",
                "Parts not stored because a write touched them while they were computed.",
                load(&m.not_stored),
            ),
            (
                "strata_query_front_bypassed_total",
                "Range queries evaluated unsplit: @ start()/end(), annotations or failing parts.",
                load(&m.bypassed),
            ),
        ];
        let mut text = MetricsText::new(out);
        for (name, help, v) in counters {
            text.counter(name, help, v);
        }
        text.gauge("strata_query_front_cache_bytes", "Estimated bytes held by the front's cache.", bytes);
        text.gauge("strata_query_front_cache_entries", "Parts held by the front's cache.", entries);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FrontSettings, QueryFront};

    /// The families, their order and their values on a fresh front: what
    /// `/metrics` showed before the renderer moved here.
    #[test]
    fn renders_ten_counters_then_the_cache_gauges() {
        let settings =
            FrontSettings { enabled: true, cache_bytes: 1 << 20, settle_ms: 60_000, ttl_ms: 3_600_000, beta: 1.0 };
        let front = QueryFront::new(settings, true);
        let mut out = String::new();
        front.render(&mut out);
        let families: Vec<(&str, &str)> =
            out.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split_once(' ').unwrap()).collect();
        assert_eq!(
            families,
            [
                ("strata_query_front_flights_total", "counter"),
                ("strata_query_front_coalesced_total", "counter"),
                ("strata_query_front_evaluations_total", "counter"),
                ("strata_query_front_cache_hits_total", "counter"),
                ("strata_query_front_cache_misses_total", "counter"),
                ("strata_query_front_cache_extends_total", "counter"),
                ("strata_query_front_cache_evictions_total", "counter"),
                ("strata_query_front_cache_invalidations_total", "counter"),
                ("strata_query_front_cache_not_stored_total", "counter"),
                ("strata_query_front_bypassed_total", "counter"),
                ("strata_query_front_cache_bytes", "gauge"),
                ("strata_query_front_cache_entries", "gauge"),
            ]
        );
        assert!(out.contains("\nstrata_query_front_flights_total 0\n"), "{out}");
        assert!(out.contains("\nstrata_query_front_cache_entries 0\n"), "{out}");
        assert!(
            out.contains(
                "# HELP strata_query_front_cache_hits_total Settled range-query parts answered from the cache.\n"
            ),
            "{out}"
        );
    }
}
