//! Query engine configuration.

use serde::{Deserialize, Serialize};
use std::time::Duration;

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
    /// Step of subqueries written without one (`[1h:]`), Prometheus's global evaluation interval.
    #[serde(with = "humantime_serde")]
    pub default_subquery_step: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            max_points_per_series: 11_000,
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

impl QueryConfig {
    /// Fixes harmless values (with a warning) and rejects dangerous ones.
    pub fn validate(&mut self) -> Result<(), String> {
        if self.lookback_delta.is_zero() {
            tracing::warn!("query.lookback_delta of 0 is not allowed, using 5m");
            self.lookback_delta = Duration::from_secs(300);
        }
        if self.default_subquery_step.is_zero() {
            tracing::warn!("query.default_subquery_step of 0 is not allowed, using 1m");
            self.default_subquery_step = Duration::from_secs(60);
        }
        if self.timeout.is_zero() {
            return Err("query.timeout must be positive".into());
        }
        if self.max_samples == 0 || self.max_points_per_series == 0 {
            return Err("query.max_samples and query.max_points_per_series must be positive".into());
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
        let c: QueryConfig = serde_json::from_str(r#"{"lookback_delta":"1m","timeout":"30s"}"#).unwrap();
        assert_eq!(c.lookback_delta, Duration::from_secs(60));
    }

    #[test]
    fn validate_rejects_zero_timeout() {
        let mut c = QueryConfig { timeout: Duration::ZERO, ..QueryConfig::default() };
        assert!(c.validate().is_err());
    }
}
