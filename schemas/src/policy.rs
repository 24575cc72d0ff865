//! Tenant policy: where a tenant's data lives, who may read it from where,
//! and the limits its writes and queries run under.
//!
//! These types are the registry's vocabulary; `ingest` and `query` read
//! them through [`crate::TenantResolver::policy`] and never learn where they
//! are stored.

use crate::TenantId;
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// What may leave a jurisdiction that holds the tenant's data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportPolicy {
    /// Nothing: the data is not reachable from outside its jurisdiction.
    #[default]
    None,
    /// Only aggregated query results (the aggregation is pushed down to a region holding the data).
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
    /// Rejects values that cannot work (zero rates, zero sizes), naming the
    /// limit (section `limits`, the field of [`TenantPolicy::limits`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        const S: &str = "limits";
        if !(self.ingestion_rate > 0.0 && self.ingestion_rate.is_finite()) {
            return Err(ConfigError::invalid(S, "ingestion_rate", self.ingestion_rate, "must be a positive number"));
        }
        let positive: [(&str, u64); 10] = [
            ("ingestion_burst", self.ingestion_burst),
            ("max_active_series", self.max_active_series),
            ("max_labels_per_series", u64::from(self.max_labels_per_series)),
            ("max_label_name_length", u64::from(self.max_label_name_length)),
            ("max_label_value_length", u64::from(self.max_label_value_length)),
            ("max_request_bytes", self.max_request_bytes),
            ("max_query_series", self.max_query_series),
            ("max_query_samples", self.max_query_samples),
            ("max_query_bytes", self.max_query_bytes),
            ("max_concurrent_queries", u64::from(self.max_concurrent_queries)),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(ConfigError::invalid(S, key, v, "must be positive"));
            }
        }
        if self.hot_ttl.is_zero() {
            return Err(ConfigError::invalid(S, "hot_ttl", self.hot_ttl, "must be positive"));
        }
        Ok(())
    }
}

/// Everything the system knows about a tenant.
///
/// **Residency.** `data_regions` are the regions that may store the tenant's
/// raw data (any number, in any jurisdictions; empty means `[home_region]`,
/// the single-home tenants of earlier versions). For data stored in a
/// jurisdiction, `exports` says what may leave it for a query node in
/// another jurisdiction (`export_policy` for jurisdictions it does not list);
/// within one jurisdiction data is always read raw. `residency`, when set,
/// names a label whose value says which jurisdiction a line belongs to: a
/// line labelled for another jurisdiction is refused at ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// The tenant.
    pub id: TenantId,
    /// Name shown to people.
    pub display_name: String,
    /// The tenant's first data region (the only one when `data_regions` is empty).
    pub home_region: String,
    /// Regions that may store the tenant's raw data (empty: `[home_region]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_regions: Vec<String>,
    /// Regions whose query nodes may read the tenant's data.
    pub allowed_query_regions: Vec<String>,
    /// What may leave a jurisdiction that `exports` does not list.
    pub export_policy: ExportPolicy,
    /// Per jurisdiction: what may leave it (to a query node in another jurisdiction).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exports: BTreeMap<String, ExportPolicy>,
    /// The label that pins a series to a jurisdiction, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<Residency>,
    /// OTLP resource attributes copied onto every series of the resource
    /// (e.g. `host.name`, `deployment.environment`), besides `job` and `instance`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub otlp_promoted_attributes: Vec<String>,
    /// Group rollups the compactor maintains for the tenant ([`GroupRollup`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_rollups: Vec<GroupRollup>,
    /// Limits.
    pub limits: TenantLimits,
}

/// The reserved label of a group rollup's series: the declaration's
/// [`GroupRollup::id`] as 16 hex digits. Never on an ingested series (names
/// starting with `__` are refused at ingest).
pub const GROUP_LABEL: &str = "__group__";

/// A group rollup declaration: the compactor stores, per window of the
/// rollup tiers (5 m, 1 h, 1 d), the min, max, sum and count of `metric`'s
/// samples per group of series with equal values of the `by` labels, as one
/// series per group (cold-tier `FORMAT.md`, "Group rollup tables"). The
/// engine answers `max by (by) (max_over_time(metric[r]))`, `min … min_over_time`,
/// `sum … sum_over_time` and `sum … count_over_time` from it when that is
/// exactly the raw answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRollup {
    /// The metric (`__name__`).
    pub metric: String,
    /// The grouping labels (order and duplicates do not matter).
    #[serde(default)]
    pub by: Vec<String>,
}

impl GroupRollup {
    /// The `by` labels sorted, without duplicates.
    pub fn by_sorted(&self) -> Vec<&str> {
        let mut by: Vec<&str> = self.by.iter().map(String::as_str).collect();
        by.sort_unstable();
        by.dedup();
        by
    }

    /// The declaration's id: xxh3 of the metric and the sorted `by` labels,
    /// so an engine that sees `agg by (l…) (f(metric[r]))` computes it from
    /// the query alone. Stable: it names the declaration's cold tables.
    pub fn id(&self) -> u64 {
        group_rollup_id(&self.metric, &self.by_sorted())
    }

    /// Refuses an empty or malformed metric, `by` labels that are not label
    /// names (or start with `__`), naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let ok_metric = !self.metric.is_empty()
            && self
                .metric
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
        if !ok_metric {
            return Err(format!(
                "group_rollups: metric {:?} is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                self.metric
            ));
        }
        for l in &self.by {
            let ok = !l.starts_with("__")
                && !l.is_empty()
                && l.chars()
                    .enumerate()
                    .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()));
            if !ok {
                return Err(format!(
                    "group_rollups: by label {l:?} of metric {:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with \"__\")",
                    self.metric
                ));
            }
        }
        Ok(())
    }
}

/// [`GroupRollup::id`] of `metric` grouped by `by` (sorted, distinct).
pub fn group_rollup_id(metric: &str, by: &[&str]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"group-rollup-v1\xff");
    h.update(metric.as_bytes());
    for l in by {
        h.update(b"\xff");
        h.update(l.as_bytes());
    }
    h.digest()
}

/// A label whose value pins a series to a jurisdiction (e.g. `country`:
/// `de` → `eu`, `br` → `br`). Values the map does not list are not pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Residency {
    /// Label name.
    pub label: String,
    /// Label value → jurisdiction.
    pub jurisdictions: BTreeMap<String, String>,
}

impl Residency {
    /// The jurisdiction a series with `value` for the residency label belongs to.
    pub fn jurisdiction_of(&self, value: &str) -> Option<&str> {
        self.jurisdictions.get(value).map(String::as_str)
    }
}

impl TenantPolicy {
    /// A policy with default limits, homed and queryable in `region` only.
    pub fn new(id: TenantId, region: &str) -> Self {
        Self {
            display_name: id.as_str().to_owned(),
            id,
            home_region: region.to_owned(),
            data_regions: Vec::new(),
            allowed_query_regions: vec![region.to_owned()],
            export_policy: ExportPolicy::None,
            exports: BTreeMap::new(),
            residency: None,
            otlp_promoted_attributes: Vec::new(),
            group_rollups: Vec::new(),
            limits: TenantLimits::default(),
        }
    }

    /// Regions that may store the tenant's raw data, in preference order.
    pub fn data_regions(&self) -> Vec<&str> {
        if self.data_regions.is_empty() {
            vec![self.home_region.as_str()]
        } else {
            self.data_regions.iter().map(String::as_str).collect()
        }
    }

    /// Whether `region` may store the tenant's raw data.
    pub fn stores_in(&self, region: &str) -> bool {
        self.data_regions().contains(&region)
    }

    /// What may leave `jurisdiction` for a query node elsewhere.
    pub fn export_of(&self, jurisdiction: &str) -> ExportPolicy {
        self.exports.get(jurisdiction).copied().unwrap_or(self.export_policy)
    }

    /// What a query node in jurisdiction `asking` may read of data stored in
    /// jurisdiction `data`: everything within one jurisdiction, else the
    /// data jurisdiction's export policy.
    pub fn readable(&self, data: &str, asking: &str) -> ExportPolicy {
        if data == asking { ExportPolicy::Raw } else { self.export_of(data) }
    }

    /// Whether a query node of `region` may query the tenant.
    pub fn queryable_from(&self, region: &str) -> bool {
        self.allowed_query_regions.iter().any(|r| r == region)
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
    fn a_group_rollup_declaration_is_validated_and_its_id_ignores_label_order() {
        let d: GroupRollup = serde_json::from_str(r#"{"metric": "soil_moisture", "by": ["region", "farm"]}"#).unwrap();
        assert!(d.validate().is_ok());
        let same =
            GroupRollup { metric: "soil_moisture".into(), by: vec!["farm".into(), "region".into(), "farm".into()] };
        assert_eq!(d.id(), same.id());
        assert_eq!(d.id(), group_rollup_id("soil_moisture", &["farm", "region"]));
        assert_ne!(d.id(), group_rollup_id("soil_moisture", &["farm"]));
        let bad = GroupRollup { metric: "temp".into(), by: vec!["__name__".into()] };
        assert!(bad.validate().unwrap_err().contains("\"__name__\""));
        let bad = GroupRollup { metric: "1temp".into(), by: vec![] };
        assert!(bad.validate().unwrap_err().contains("metric \"1temp\""));
        assert!(
            serde_json::from_str::<GroupRollup>(r#"{"metric": "t", "agg": "avg"}"#).is_err(),
            "unknown fields refused"
        );
    }

    #[test]
    fn validation_names_the_limit() {
        let l = TenantLimits { max_labels_per_series: 0, ..TenantLimits::default() };
        assert_eq!(l.validate().unwrap_err().to_string(), "[limits] max_labels_per_series = 0: must be positive");
        let l = TenantLimits { max_query_bytes: 0, ..TenantLimits::default() };
        assert_eq!(l.validate().unwrap_err().path(), "limits.max_query_bytes");
        let l = TenantLimits { ingestion_rate: f64::NAN, ..TenantLimits::default() };
        assert_eq!(l.validate().unwrap_err().to_string(), "[limits] ingestion_rate = NaN: must be a positive number");
        let l = TenantLimits { hot_ttl: Duration::ZERO, ..TenantLimits::default() };
        assert_eq!(l.validate().unwrap_err().path(), "limits.hot_ttl");
        assert!(TenantLimits::default().validate().is_ok());
    }

    #[test]
    fn single_home_policies_read_as_one_data_region() {
        // A policy stored by an earlier version (no data_regions, exports, residency).
        let old = r#"{"id":"acme","display_name":"Acme","home_region":"eu-central",
            "allowed_query_regions":["eu-central"],"export_policy":"none","limits":{}}"#;
        let p: TenantPolicy = serde_json::from_str(old).unwrap();
        assert_eq!(p.data_regions(), vec!["eu-central"]);
        assert!(p.stores_in("eu-central") && !p.stores_in("eu-west"));
        assert_eq!(p.export_of("eu"), ExportPolicy::None);
        assert_eq!(p.readable("eu", "eu"), ExportPolicy::Raw);
        assert_eq!(p.readable("eu", "us"), ExportPolicy::None);
        // Written back without the new fields.
        let back = serde_json::to_string(&p).unwrap();
        assert!(!back.contains("data_regions") && !back.contains("exports") && !back.contains("residency"));
    }

    #[test]
    fn exports_are_per_jurisdiction_with_a_default() {
        let mut p = TenantPolicy::new(TenantId::new("acme").unwrap(), "us-east");
        p.data_regions = vec!["us-east".into(), "us-west".into(), "eu-central".into()];
        p.exports.insert("eu".into(), ExportPolicy::Aggregates);
        p.export_policy = ExportPolicy::Raw;
        assert_eq!(p.readable("eu", "us"), ExportPolicy::Aggregates);
        assert_eq!(p.readable("us", "eu"), ExportPolicy::Raw);
        assert_eq!(p.data_regions(), vec!["us-east", "us-west", "eu-central"]);
        let r = Residency { label: "country".into(), jurisdictions: [("de".into(), "eu".into())].into() };
        assert_eq!(r.jurisdiction_of("de"), Some("eu"));
        assert_eq!(r.jurisdiction_of("us"), None);
    }
}
