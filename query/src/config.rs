//! Query engine configuration.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use strata_schemas::ConfigError;

/// Limits and defaults of the PromQL engine. Every field has a serde default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// How far back an instant selector looks for the latest sample (Prometheus `--query.lookback-delta`).
    #[serde(with = "humantime_serde")]
    pub lookback_delta: Duration,
    /// Maximum wall time of one query (`--query.timeout`); a request's `timeout` can only lower it.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Maximum number of samples a query may hold in memory (`--query.max-samples`).
    pub max_samples: usize,
    /// Maximum number of steps of a range query (Prometheus's fixed 11,000).
    pub max_points_per_series: usize,
    /// Maximum bytes of label text one query may create (`label_replace`,
    /// `label_join`, `count_values`); 0: no limit. The points a query holds
    /// are bounded by `max_samples`.
    pub max_bytes: usize,
    /// Maximum length in bytes of a query's text (and of each `match[]`
    /// selector); 0: no limit. The expression's depth is bounded too, by a
    /// fixed [`crate::engine::prescan::MAX_EXPR_DEPTH`] levels.
    pub max_query_length: usize,
    /// Step of subqueries written without one (`[1h:]`), Prometheus's global evaluation interval.
    #[serde(with = "humantime_serde")]
    pub default_subquery_step: Duration,
    /// Maximum number of series the selectors of one query may load (0: no limit).
    pub max_series: usize,
    /// Maximum number of items one metadata answer (`/api/v1/series`,
    /// `/labels`, `/label/<name>/values`) lists; past it the answer is cut
    /// with a warning naming this setting, as a request's `limit` cuts it
    /// (0: no limit; a request's smaller `limit` still applies).
    pub max_metadata_results: usize,
    /// Maximum time span one query may read through one selector, including
    /// range, lookback and the query's own range (0: no limit).
    #[serde(with = "humantime_serde")]
    pub max_range: Duration,
    /// Per-tenant overrides of `max_series`, `max_samples`, `max_bytes` and `max_range`, by tenant id.
    pub tenant_limits: BTreeMap<String, QueryLimits>,
    /// Prometheus's `promql-delayed-name-removal` feature: `__name__` is removed
    /// at the end of evaluation instead of by each operator (off by default, as in Prometheus).
    pub delayed_name_removal: bool,
    /// The query front (`crate::front`): coalesce identical in-flight
    /// queries, and split range queries by UTC day with a cache of the
    /// settled parts.
    pub front: bool,
    /// Byte bound of the front's cache (0: no cache, coalescing only).
    pub front_cache_bytes: usize,
    /// Steps whose reads all end this long before now are served from the
    /// front's cache; later ones are always evaluated.
    #[serde(with = "humantime_serde")]
    pub front_settle: Duration,
    /// Longest life of a cached part (earlier, at random, with XFetch).
    #[serde(with = "humantime_serde")]
    pub front_ttl: Duration,
}

/// Per-tenant query limits; unset fields fall back to the global [`QueryConfig`] values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryLimits {
    /// Maximum number of series one query may load (0: no limit).
    pub max_series: Option<usize>,
    /// Maximum number of samples one query may hold in memory.
    pub max_samples: Option<usize>,
    /// Maximum bytes of label text one query may create (0: no limit).
    pub max_bytes: Option<usize>,
    /// Maximum time span one selector may read (0: no limit).
    #[serde(with = "humantime_serde")]
    pub max_range: Option<Duration>,
}

/// The limits in force for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLimits {
    /// Maximum series per query (0: no limit).
    pub max_series: usize,
    /// Maximum samples per query.
    pub max_samples: usize,
    /// Maximum bytes of label text created per query (0: no limit).
    pub max_bytes: usize,
    /// Maximum span per selector (zero: no limit).
    pub max_range: Duration,
}

impl EffectiveLimits {
    /// Lowers each limit to the tenant's registry limit where that is stricter
    /// (0 means "no limit" on both sides).
    pub fn tighten(&mut self, t: &strata_schemas::TenantLimits) {
        let min_nonzero = |a: usize, b: usize| match (a, b) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.max_series = min_nonzero(self.max_series, usize::try_from(t.max_query_series).unwrap_or(usize::MAX));
        self.max_samples = min_nonzero(self.max_samples, usize::try_from(t.max_query_samples).unwrap_or(usize::MAX));
        self.max_bytes = min_nonzero(self.max_bytes, usize::try_from(t.max_query_bytes).unwrap_or(usize::MAX));
        self.max_range = match (self.max_range.is_zero(), t.max_query_range.is_zero()) {
            (true, _) => t.max_query_range,
            (_, true) => self.max_range,
            _ => self.max_range.min(t.max_query_range),
        };
    }
}

/// Default of `max_metadata_results`: VictoriaMetrics's `-search.maxTagValues`.
pub const DEFAULT_MAX_METADATA_RESULTS: usize = 100_000;

/// Default of `max_bytes` (and of the registry's `max_query_bytes`): 256 MiB.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
            max_bytes: DEFAULT_MAX_BYTES,
            max_query_length: crate::engine::prescan::DEFAULT_MAX_QUERY_LENGTH,
            default_subquery_step: Duration::from_secs(60),
            max_series: 0,
            max_metadata_results: DEFAULT_MAX_METADATA_RESULTS,
            max_range: Duration::ZERO,
            tenant_limits: BTreeMap::new(),
            delayed_name_removal: false,
            front: true,
            front_cache_bytes: 64 << 20,
            front_settle: Duration::from_secs(60),
            front_ttl: Duration::from_secs(600),
        }
    }
}

impl QueryConfig {
    /// The limits of `tenant`: its override where set, the global value otherwise.
    pub fn limits_for(&self, tenant: &str) -> EffectiveLimits {
        let o = self.tenant_limits.get(tenant);
        EffectiveLimits {
            max_series: o.and_then(|o| o.max_series).unwrap_or(self.max_series),
            max_samples: o.and_then(|o| o.max_samples).unwrap_or(self.max_samples),
            max_bytes: o.and_then(|o| o.max_bytes).unwrap_or(self.max_bytes),
            max_range: o.and_then(|o| o.max_range).unwrap_or(self.max_range),
        }
    }

    /// Fixes harmless values (with a warning) and rejects dangerous ones.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if self.lookback_delta.is_zero() {
            tracing::warn!("query.lookback_delta of 0 is not allowed, using 5m");
            self.lookback_delta = Duration::from_secs(300);
        }
        if self.default_subquery_step.is_zero() {
            tracing::warn!("query.default_subquery_step of 0 is not allowed, using 1m");
            self.default_subquery_step = Duration::from_secs(60);
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid("query", "timeout", self.timeout, "must be positive"));
        }
        for (key, v) in [("max_samples", self.max_samples), ("max_points_per_series", self.max_points_per_series)] {
            if v == 0 {
                return Err(ConfigError::invalid("query", key, v, "must be positive"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_prometheus() {
        let c: QueryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, QueryConfig::default());
        assert_eq!(c.lookback_delta, Duration::from_secs(300));
        assert_eq!(c.max_points_per_series, 11_000);
        assert_eq!(c.max_query_length, 65_536);
        assert_eq!(c.max_bytes, 256 << 20);
        let c: QueryConfig = serde_json::from_str(r#"{"lookback_delta":"1m","timeout":"30s"}"#).unwrap();
        assert_eq!(c.lookback_delta, Duration::from_secs(60));
    }

    #[test]
    fn registry_limits_tighten_but_never_loosen() {
        let mut l =
            EffectiveLimits { max_series: 0, max_samples: 1000, max_bytes: 0, max_range: Duration::from_secs(3600) };
        let t = strata_schemas::TenantLimits {
            max_query_series: 50,
            max_query_samples: 5000,
            max_query_bytes: 4096,
            max_query_range: Duration::from_secs(60),
            ..strata_schemas::TenantLimits::default()
        };
        l.tighten(&t);
        assert_eq!((l.max_series, l.max_samples, l.max_range), (50, 1000, Duration::from_secs(60)));
        assert_eq!(l.max_bytes, 4096, "0 (no limit) takes the registry's");
        let mut open = EffectiveLimits { max_series: 10, max_samples: 10, max_bytes: 10, max_range: Duration::ZERO };
        open.tighten(&strata_schemas::TenantLimits { max_query_range: Duration::ZERO, ..t });
        assert_eq!(open.max_range, Duration::ZERO, "0 on both sides stays unlimited");
    }

    #[test]
    fn tenant_limits_override_globals() {
        let c: QueryConfig =
            serde_json::from_str(r#"{"max_series":1000,"tenant_limits":{"acme":{"max_series":10,"max_range":"1d"}}}"#)
                .unwrap();
        let acme = c.limits_for("acme");
        assert_eq!(acme.max_series, 10);
        assert_eq!(acme.max_range, Duration::from_secs(86_400));
        assert_eq!(acme.max_samples, c.max_samples);
        assert_eq!(c.limits_for("other").max_series, 1000);
    }

    #[test]
    fn the_front_is_on_by_default_and_configurable() {
        let c = QueryConfig::default();
        assert!(c.front);
        assert_eq!(
            (c.front_cache_bytes, c.front_settle, c.front_ttl),
            (64 << 20, Duration::from_secs(60), Duration::from_secs(600))
        );
        let c: QueryConfig =
            serde_json::from_str(r#"{"front":false,"front_cache_bytes":0,"front_settle":"5m","front_ttl":"1h"}"#)
                .unwrap();
        assert!(!c.front);
        assert_eq!(
            (c.front_cache_bytes, c.front_settle, c.front_ttl),
            (0, Duration::from_secs(300), Duration::from_secs(3600))
        );
        let s = crate::front::FrontSettings::of(&c);
        assert_eq!((s.enabled, s.cache_bytes, s.settle_ms, s.ttl_ms), (false, 0, 300_000, 3_600_000));
    }

    #[test]
    fn validate_rejects_zero_timeout() {
        let mut c = QueryConfig { timeout: Duration::ZERO, ..QueryConfig::default() };
        assert_eq!(c.validate().unwrap_err().to_string(), "[query] timeout = 0ns: must be positive");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let zero_samples = QueryConfig { max_samples: 0, ..QueryConfig::default() };
        let zero_points = QueryConfig { max_points_per_series: 0, ..QueryConfig::default() };
        for (mut bad, key) in [(zero_samples, "query.max_samples"), (zero_points, "query.max_points_per_series")] {
            assert_eq!(bad.validate().unwrap_err().path(), key);
        }
        let mut fixed = QueryConfig {
            lookback_delta: Duration::ZERO,
            default_subquery_step: Duration::ZERO,
            ..QueryConfig::default()
        };
        fixed.validate().unwrap();
        assert_eq!(fixed, QueryConfig::default(), "zero lookback and subquery step take the defaults");
    }
}
