//! Hot-store configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_schemas::ConfigError;

/// Configuration of the hot store (the `[hot_store]` section of the server config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotStoreConfig {
    /// The server flushes the memtable to a segment at least this often
    /// (humantime, e.g. `"5m"`). Shorter means less log to replay on restart
    /// and more, smaller segments.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// The server flushes as soon as the memtable holds more samples than
    /// this, or than 64 per buffered series if that is more (up to 8× this
    /// value), so segments of many series are not mostly index. Bounds
    /// memory (about 2 bytes per buffered sample, compressed) and replay time.
    pub max_memtable_samples: usize,
    /// The server calls `compact()` (merge every bucket that has two or more
    /// segments) once the store holds more than this many segments in total.
    /// 0 disables automatic compaction.
    pub compact_segments: usize,
    /// Length of a time bucket (humantime, default `"2h"`). Fixed when the
    /// store is created: a different value on reopen is ignored with a warning.
    #[serde(with = "humantime_serde")]
    pub bucket: Duration,
    /// Hot TTL of tenants without an entry in `tenant_hot_ttl` (default `"7d"`).
    /// A bucket is deleted once it ended more than this long ago and, for a
    /// tenant with a cold watermark, once the cold tier holds it.
    #[serde(with = "humantime_serde")]
    pub default_hot_ttl: Duration,
    /// Per-tenant hot TTL overrides (tenant id → humantime duration).
    pub tenant_hot_ttl: BTreeMap<String, humantime_serde::Serde<Duration>>,
    /// Back-pressure: once the active memtable holds this many samples,
    /// `apply` blocks until a flush has swapped it out (flushing inline if no
    /// flush is running). 0 = twice `max_memtable_samples`.
    pub memtable_hard_limit_samples: usize,
    /// Edge batches applied once: at most this many agents are remembered
    /// per log partition; past it the agent seen least recently is
    /// forgotten (counted), and a batch it re-sends after that is applied
    /// again. 0 = the default (100,000).
    pub edge_dedup_max_agents: usize,
    /// At most this many ranges of applied sequence numbers are remembered
    /// per agent and partition (the contiguous prefix plus the ranges above
    /// it; a gap that never fills costs one); past it the lowest range is
    /// forgotten (counted, warned). 0 = the default (64).
    pub edge_dedup_max_ranges: usize,
    /// Share of one core a flush the server starts on its own (memtable
    /// full, interval) uses while the new memtable has room: after each
    /// part of its series it sleeps for as long as the part took times
    /// `(1 - share) / share`, so write requests keep the other cycles.
    /// Once the new memtable reaches half its flush threshold the flush
    /// stops pausing. 1 (the default) = never pause: on two cores, 0.5 did
    /// not lower the p99 write acknowledgement at 50 % or 80 % of capacity
    /// in an A/B of two runs each (`docs/benchmarks/2026-12-05-write-latency.md`).
    /// A flush someone waits for (`POST /internal/flush`, shutdown) and an
    /// apply's inline flush at the hard limit are never paced.
    pub flush_cpu_share: f64,
    /// Added to the nice value of the thread of the server's own flushes
    /// (memtable full, interval; Linux, per thread), 0–19: the write path's
    /// threads then take the CPU first when the cores are short (a nice-0
    /// thread gets ~9× the CPU of a nice-10 one), and the flush has what
    /// they leave; the compaction runs at 10 too. 10 (the default): on two
    /// cores at 80 % of capacity, the p99 write acknowledgement fell from
    /// 78–170 ms to 19–36 ms (`[log] sync = "interval"`, three runs each)
    /// and from 109 to 38–96 ms (`always`, two runs each), the flushes taking
    /// ~0.5 s instead of ~0.4 (`docs/benchmarks/2026-12-06-write-latency-s18.md`).
    /// 0: the node's priority. A flush that falls behind still ends at the
    /// memtable's hard limit, where an apply flushes inline at the writer's
    /// priority; a flush someone waits for runs at the caller's.
    pub flush_nice: i32,
}

impl Default for HotStoreConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(5 * 60),
            max_memtable_samples: 2_000_000,
            compact_segments: 8,
            bucket: Duration::from_secs(2 * 3600),
            default_hot_ttl: Duration::from_secs(7 * 24 * 3600),
            tenant_hot_ttl: BTreeMap::new(),
            memtable_hard_limit_samples: 0,
            edge_dedup_max_agents: 100_000,
            edge_dedup_max_ranges: 64,
            flush_cpu_share: 1.0,
            flush_nice: 10,
        }
    }
}

impl HotStoreConfig {
    /// Fixes harmless values with a warning: a zero flush interval or a zero
    /// sample limit would make the server flush continuously. Rejects a
    /// `flush_cpu_share` outside (0, 1].
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let default = Self::default();
        if !(self.flush_cpu_share > 0.0 && self.flush_cpu_share <= 1.0) {
            return Err(ConfigError::invalid(
                "hot_store",
                "flush_cpu_share",
                self.flush_cpu_share,
                "must be in (0, 1]",
            ));
        }
        if !(0..=19).contains(&self.flush_nice) {
            return Err(ConfigError::invalid("hot_store", "flush_nice", self.flush_nice, "must be in 0..=19"));
        }
        if self.flush_interval.is_zero() {
            tracing::warn!(default = ?default.flush_interval, "hot_store.flush_interval is 0; using the default");
            self.flush_interval = default.flush_interval;
        }
        if self.max_memtable_samples == 0 {
            tracing::warn!(
                default = default.max_memtable_samples,
                "hot_store.max_memtable_samples is 0; using the default"
            );
            self.max_memtable_samples = default.max_memtable_samples;
        }
        if self.edge_dedup_max_agents == 0 {
            self.edge_dedup_max_agents = default.edge_dedup_max_agents;
        }
        if self.edge_dedup_max_ranges == 0 {
            self.edge_dedup_max_ranges = default.edge_dedup_max_ranges;
        }
        if self.bucket.as_millis() == 0 {
            tracing::warn!(default = ?default.bucket, "hot_store.bucket is below 1ms; using the default");
            self.bucket = default.bucket;
        }
        Ok(())
    }

    /// Bucket length in milliseconds.
    pub fn bucket_ms(&self) -> i64 {
        i64::try_from(self.bucket.as_millis()).unwrap_or(i64::MAX).max(1)
    }

    /// The hot TTL of `tenant`.
    pub fn hot_ttl(&self, tenant: &str) -> Duration {
        self.tenant_hot_ttl.get(tenant).map_or(self.default_hot_ttl, |d| **d)
    }

    /// The effective back-pressure limit in samples.
    pub fn hard_limit_samples(&self) -> usize {
        match self.memtable_hard_limit_samples {
            0 => self.max_memtable_samples.saturating_mul(2),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_humantime_and_fills_defaults() {
        let c: HotStoreConfig = serde_json::from_str(r#"{"flush_interval":"90s"}"#).unwrap();
        assert_eq!(c.flush_interval, Duration::from_secs(90));
        assert_eq!(c.max_memtable_samples, 2_000_000);
        let c: HotStoreConfig =
            serde_json::from_str(r#"{"bucket":"1h","default_hot_ttl":"2d","tenant_hot_ttl":{"acme":"30d"}}"#).unwrap();
        assert_eq!(c.bucket_ms(), 3_600_000);
        assert_eq!(c.hot_ttl("acme"), Duration::from_secs(30 * 86_400));
        assert_eq!(c.hot_ttl("other"), Duration::from_secs(2 * 86_400));
        assert_eq!(c.hard_limit_samples(), 4_000_000);
    }

    #[test]
    fn validate_replaces_zero_values_with_defaults() {
        let mut c = HotStoreConfig {
            flush_interval: Duration::ZERO,
            max_memtable_samples: 0,
            bucket: Duration::ZERO,
            edge_dedup_max_agents: 0,
            edge_dedup_max_ranges: 0,
            ..HotStoreConfig::default()
        };
        c.validate().unwrap();
        assert_eq!(c, HotStoreConfig::default());
    }

    #[test]
    fn a_flush_cpu_share_outside_zero_to_one_is_refused() {
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let mut c = HotStoreConfig { flush_cpu_share: bad, ..HotStoreConfig::default() };
            let e = c.validate().unwrap_err();
            assert!(e.to_string().starts_with("[hot_store] flush_cpu_share = "), "{e}");
            assert!(e.to_string().ends_with("must be in (0, 1]"), "{e}");
        }
        let mut c = HotStoreConfig { flush_cpu_share: 1.0, ..HotStoreConfig::default() };
        c.validate().unwrap();
    }

    #[test]
    fn a_flush_nice_outside_0_to_19_is_refused() {
        for bad in [-1, 20] {
            let mut c = HotStoreConfig { flush_nice: bad, ..HotStoreConfig::default() };
            let e = c.validate().unwrap_err();
            assert_eq!(e.to_string(), format!("[hot_store] flush_nice = {bad}: must be in 0..=19"));
        }
        for good in [0, 10, 19] {
            HotStoreConfig { flush_nice: good, ..HotStoreConfig::default() }.validate().unwrap();
        }
    }
}
