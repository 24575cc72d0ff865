//! Tenant policy: where a tenant's data lives, who may read it from where,
//! and the limits its writes and queries run under.
//!
//! These types are the registry's vocabulary; `ingest` and `query` read
//! them through [`crate::TenantResolver::policy`] and never learn where they
//! are stored.

use crate::TenantId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What may leave the tenant's home region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportPolicy {
    /// Nothing: queries from other regions are refused.
    #[default]
    None,
    /// Only aggregated query results (aggregation pushed down to the home region).
    Aggregates,
    /// Raw samples too.
    Raw,
}

/// Per-tenant limits. Every field has a default; the README lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Sustained samples per second accepted (token bucket refill rate).
    pub ingestion_rate: f64,
    /// Samples accepted in a burst above the rate (token bucket size).
    pub ingestion_burst: u64,
    /// Distinct series that may receive samples within `hot_ttl`.
    pub max_active_series: u64,
    /// Labels per series, `__name__` included.
    pub max_labels_per_series: u32,
    /// Bytes of a label name.
    pub max_label_name_length: u32,
    /// Bytes of a label value.
    pub max_label_value_length: u32,
    /// Bytes of one write request body (as sent, and after decompression).
    pub max_request_bytes: u64,
    /// Series one query may select.
    pub max_query_series: u64,
    /// Samples one query may load.
    pub max_query_samples: u64,
    /// Bytes of label text one query may create (`label_replace`,
    /// `label_join`, `count_values`).
    pub max_query_bytes: u64,
    /// Longest time range one query may cover (`0s`: unlimited).
    #[serde(with = "humantime_serde")]
    pub max_query_range: Duration,
    /// Queries of the tenant running at once; more wait.
    pub max_concurrent_queries: u32,
    /// How long samples stay in the hot store.
    #[serde(with = "humantime_serde")]
    pub hot_ttl: Duration,
    /// How long samples stay in the cold tier (`0s`: forever).
    #[serde(with = "humantime_serde")]
    pub cold_retention: Duration,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            ingestion_rate: 1_000_000.0,
            ingestion_burst: 20_000_000,
            max_active_series: 5_000_000,
            max_labels_per_series: 30,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_request_bytes: 64 << 20,
            max_query_series: 1_000_000,
            max_query_samples: 50_000_000,
            max_query_bytes: 256 << 20,
            max_query_range: Duration::ZERO,
            max_concurrent_queries: 16,
            hot_ttl: Duration::from_secs(7 * 86_400),
            cold_retention: Duration::ZERO,
        }
    }
}

impl TenantLimits {
    /// Rejects values that cannot work (zero rates, zero sizes).
    pub fn validate(&self) -> Result<(), String> {
        let positive: [(&str, f64); 10] = [
            ("ingestion_rate", self.ingestion_rate),
            ("ingestion_burst", self.ingestion_burst as f64),
            ("max_active_series", self.max_active_series as f64),
            ("max_labels_per_series", f64::from(self.max_labels_per_series)),
            ("max_label_name_length", f64::from(self.max_label_name_length)),
            ("max_label_value_length", f64::from(self.max_label_value_length)),
            ("max_request_bytes", self.max_request_bytes as f64),
            ("max_query_series", self.max_query_series as f64),
            ("max_query_bytes", self.max_query_bytes as f64),
            ("max_concurrent_queries", f64::from(self.max_concurrent_queries)),
        ];
        for (name, v) in positive {
            if !(v > 0.0 && v.is_finite()) {
                return Err(format!("limit {name} must be a positive number, got {v}"));
            }
        }
        if self.max_query_samples == 0 {
            return Err("limit max_query_samples must be positive".to_owned());
        }
        if self.hot_ttl.is_zero() {
            return Err("limit hot_ttl must be positive".to_owned());
        }
        Ok(())
    }
}

/// Everything the system knows about a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// The tenant.
    pub id: TenantId,
    /// Name shown to people.
    pub display_name: String,
    /// Region where the tenant's raw data is stored; ingest elsewhere is refused.
    pub home_region: String,
    /// Regions whose query nodes may read the tenant's data.
    pub allowed_query_regions: Vec<String>,
    /// What may cross a region border.
    pub export_policy: ExportPolicy,
    /// Limits.
    pub limits: TenantLimits,
}

impl TenantPolicy {
    /// A policy with default limits, homed and queryable in `region` only.
    pub fn new(id: TenantId, region: &str) -> Self {
        Self {
            display_name: id.as_str().to_owned(),
            id,
            home_region: region.to_owned(),
            allowed_query_regions: vec![region.to_owned()],
            export_policy: ExportPolicy::None,
            limits: TenantLimits::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_partially_with_defaults_and_durations() {
        let l: TenantLimits = serde_json::from_str(r#"{"ingestion_rate": 10, "hot_ttl": "2h"}"#).unwrap();
        assert_eq!(l.ingestion_rate, 10.0);
        assert_eq!(l.hot_ttl, Duration::from_secs(7200));
        assert_eq!(l.max_labels_per_series, 30);
        assert!(serde_json::from_str::<TenantLimits>(r#"{"ingestion_rat": 10}"#).is_err());
    }

    #[test]
    fn validation_names_the_limit() {
        let l = TenantLimits { max_labels_per_series: 0, ..TenantLimits::default() };
        assert!(l.validate().unwrap_err().contains("max_labels_per_series"));
        let l = TenantLimits { max_query_bytes: 0, ..TenantLimits::default() };
        assert!(l.validate().unwrap_err().contains("max_query_bytes"));
        assert!(TenantLimits::default().validate().is_ok());
    }
}
