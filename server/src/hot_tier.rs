//! Where a node keeps hot data (`[hot]`): the embedded hot store under the
//! data dir (`kind = "embedded"`, the default, configured by `[hot_store]`)
//! or a ScyllaDB cluster shared by the region's nodes (`kind = "scylla"`,
//! `[hot.scylla]`, crate `strata-hot-scylla`).
//!
//! With ScyllaDB the log's sink and the query engine's hot store are the
//! cluster: records are applied to it (acknowledged at the configured
//! consistency), the flusher records the acknowledged offsets in it and only
//! then releases the embedded log / commits Kafka offsets, and a restarted
//! (or new) node replays the log from those offsets. The embedded hot store
//! still opens (empty) for the parts that read it directly (storage status,
//! usage) and keeps the cold watermark in its manifest.
//!
//! With `[cold]` on, the compactor rolls sealed buckets from the cluster
//! ([`ScyllaRollSource`]): same claims and roll state in the catalog as the
//! embedded path, so a bucket is committed once per (tenant, partition)
//! whichever node of a shared keyspace rolls it; queries split hot/cold at
//! the watermark as on the embedded path. Nodes sharing the keyspace as
//! `[cluster]` peers must name one shared catalog and warehouse (else the
//! cold tier stays off). The cluster's TTL counts from the write: it must
//! outlast a bucket, the grace and a pass or two ([`roll_ttl_problem`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strata_hot_scylla::{HotTtls, ScyllaConfig, ScyllaHot};

/// Which hot tier (`[hot] kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HotKind {
    /// The embedded hot store under the data dir (`[hot_store]`).
    #[default]
    Embedded,
    /// A ScyllaDB (CQL v4) cluster (`[hot.scylla]`).
    Scylla,
}

/// `[hot]`: the hot tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotConfig {
    /// `embedded` (default) or `scylla`.
    pub kind: HotKind,
    /// The cluster, used when `kind = "scylla"`. The hot TTLs are
    /// `[hot_store] default_hot_ttl` / `tenant_hot_ttl`, then the registry's.
    pub scylla: ScyllaConfig,
}

impl HotConfig {
    /// Checks `[hot.scylla]` when it is used.
    pub fn validate(&mut self) -> Result<(), strata_schemas::ConfigError> {
        if self.kind == HotKind::Scylla {
            self.scylla.validate()?;
        }
        Ok(())
    }
}

/// Connects the ScyllaDB tier when `[hot] kind = "scylla"`. Blocking.
///
/// The offsets it records are keyed by the log they count in: with Kafka
/// the region's topic (shared by the region's nodes), with the embedded log
/// this node's own log (its data dir), unless `[hot.scylla] log_id` is set.
pub fn open(
    config: &crate::config::ServerConfig,
    data_dir: &std::path::Path,
) -> anyhow::Result<Option<Arc<ScyllaHot>>> {
    if config.hot.kind != HotKind::Scylla {
        return Ok(None);
    }
    let ttls = HotTtls {
        default: config.hot_store.default_hot_ttl,
        tenants: config.hot_store.tenant_hot_ttl.iter().map(|(t, d)| (t.clone(), **d)).collect(),
    };
    let log_id = match config.log.kind {
        strata_ingest::LogKind::Kafka => format!("{}/kafka", config.region),
        strata_ingest::LogKind::Local => format!("{}/local:{}", config.region, data_dir.display()),
    };
    let tier = ScyllaHot::connect(config.hot.scylla.clone(), &log_id, ttls)
        .map_err(|e| anyhow::anyhow!("opening the ScyllaDB hot tier ([hot] kind = \"scylla\"): {e}"))?;
    Ok(Some(Arc::new(tier)))
}

/// The registry's hot TTLs on top of the configured ones.
pub fn set_ttls(
    tier: &ScyllaHot,
    config: &crate::config::ServerConfig,
    registry: std::collections::BTreeMap<String, std::time::Duration>,
) {
    let mut tenants: std::collections::BTreeMap<String, std::time::Duration> =
        config.hot_store.tenant_hot_ttl.iter().map(|(t, d)| (t.clone(), **d)).collect();
    tenants.extend(registry);
    tier.set_ttls(HotTtls { default: config.hot_store.default_hot_ttl, tenants });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hot_section_parses_and_checks_the_cluster_settings_only_when_used() {
        let c: HotConfig = toml::from_str(
            "kind = \"scylla\"\n[scylla]\nnodes = [\"10.0.0.1:9042\"]\nkeyspace = \"eu_hot\"\nconsistency = \"quorum\"\n",
        )
        .unwrap();
        assert_eq!(c.kind, HotKind::Scylla);
        assert_eq!(c.scylla.nodes, vec!["10.0.0.1:9042"]);
        assert!(c.clone().validate().is_ok());
        let mut bad = c.clone();
        bad.scylla.nodes.clear();
        assert_eq!(bad.validate().unwrap_err().path(), "hot.scylla.nodes");
        bad.kind = HotKind::Embedded;
        assert!(bad.validate().is_ok(), "unused settings are not checked");
        assert!(toml::from_str::<HotConfig>("kind = \"cassandra\"").is_err());
    }

    #[test]
    fn a_hot_ttl_that_would_expire_rows_before_their_roll_is_named() {
        use std::time::Duration;
        let mut c = crate::config::ServerConfig::default();
        c.hot.scylla.bucket = Duration::from_secs(3600);
        c.compactor.interval = Duration::from_secs(60);
        let grace = Duration::from_secs(600);
        c.hot_store.default_hot_ttl = Duration::from_secs(7 * 86_400);
        assert_eq!(roll_ttl_problem(&c, grace), None);
        c.hot_store.default_hot_ttl = Duration::ZERO; // no expiry
        assert_eq!(roll_ttl_problem(&c, grace), None);
        c.hot_store.tenant_hot_ttl.insert("acme".into(), Duration::from_secs(3600).into());
        let p = roll_ttl_problem(&c, grace).unwrap();
        assert!(p.contains("tenant_hot_ttl.acme = 3600s") && p.contains("(4320s)"), "{p}");
    }
}

/// Where the log starts replaying a partition: the ScyllaDB tier's recorded
/// offsets, or the hot store's flushed ones.
#[derive(Debug, Clone)]
pub struct Floor {
    /// The embedded hot store.
    pub hot: Arc<strata_hot_store::HotStore>,
    /// The ScyllaDB tier, when configured.
    pub scylla: Option<Arc<ScyllaHot>>,
}

impl Floor {
    /// The first offset of `partition` to replay. A cluster that cannot be
    /// asked gives 0 (everything the log holds is applied again: upserts).
    pub fn replay_from(&self, partition: u32) -> u64 {
        match &self.scylla {
            None => self.hot.replay_from(partition),
            Some(s) => s.replay_from(partition).unwrap_or_else(|e| {
                tracing::warn!(partition, error = %e, "cannot read the ScyllaDB tier's log offsets; replaying from 0");
                0
            }),
        }
    }
}

/// The ScyllaDB tier as the compactor's roll source: sealed buckets are
/// listed from `tenants` and `tenant_buckets`, a bucket is read from
/// `bucket_series` and `samples` (one slice per series). Every write was
/// acknowledged by the cluster before it was acknowledged to its client
/// (and before its log offset counted), so a bucket listed here holds every
/// acknowledged sample of it: nothing is ever unflushed.
#[derive(Debug)]
pub struct ScyllaRollSource(pub Arc<ScyllaHot>);

impl ScyllaRollSource {
    /// Per tenant, its bucket starts (ascending).
    fn listing(&self) -> Result<Vec<(strata_schemas::TenantId, Vec<i64>)>, strata_schemas::ReadError> {
        let mut out = Vec::new();
        for tenant in self.0.tenants()? {
            let buckets = self.0.tenant_buckets(&tenant)?;
            if !buckets.is_empty() {
                out.push((tenant, buckets));
            }
        }
        Ok(out)
    }
}

impl strata_compactor::RollSource for ScyllaRollSource {
    fn bucket_ms(&self) -> i64 {
        self.0.bucket_ms()
    }

    fn handoff_plan(
        &self,
        now_ms: i64,
        grace: std::time::Duration,
    ) -> Result<
        (Vec<strata_hot_store::SealedBucket>, std::collections::BTreeMap<strata_schemas::TenantId, i64>),
        strata_schemas::ReadError,
    > {
        let sealed = strata_compactor::sealed_from_listing(self.listing()?, self.0.bucket_ms(), now_ms, grace);
        Ok((sealed, std::collections::BTreeMap::new()))
    }

    fn read_bucket(
        &self,
        tenant: &strata_schemas::TenantId,
        bucket_start: i64,
    ) -> Result<Vec<strata_hot_store::BucketSeries>, strata_schemas::ReadError> {
        Ok(self
            .0
            .read_bucket(tenant, bucket_start)?
            .into_iter()
            .map(|s| strata_hot_store::BucketSeries {
                labels: s.labels,
                series_id: strata_schemas::SeriesId(s.series_id),
                device_hash: s.device_hash,
                samples: s.samples,
            })
            .collect())
    }

    fn oldest_buckets(
        &self,
    ) -> Result<std::collections::BTreeMap<strata_schemas::TenantId, i64>, strata_schemas::ReadError> {
        Ok(self.listing()?.into_iter().filter_map(|(t, b)| Some((t, *b.first()?))).collect())
    }

    fn unflushed_buckets(&self) -> std::collections::BTreeMap<strata_schemas::TenantId, i64> {
        std::collections::BTreeMap::new()
    }
}

/// Why the cold tier cannot roll from the ScyllaDB tier with this
/// configuration, if it cannot: a hot TTL shorter than a bucket, the grace
/// and two compactor passes lets the cluster expire rows before they are
/// rolled (the cluster's TTL counts from the write, not from the roll).
pub fn roll_ttl_problem(config: &crate::config::ServerConfig, grace: std::time::Duration) -> Option<String> {
    let need = config.hot.scylla.bucket + grace + 2 * config.compactor.interval;
    let short: Vec<String> = std::iter::once(("default_hot_ttl".to_owned(), config.hot_store.default_hot_ttl))
        .chain(config.hot_store.tenant_hot_ttl.iter().map(|(t, d)| (format!("tenant_hot_ttl.{t}"), **d)))
        .filter(|(_, d)| !d.is_zero() && *d < need)
        .map(|(k, d)| format!("{k} = {d:?}"))
        .collect();
    (!short.is_empty()).then(|| {
        format!(
            "[hot_store] {} is shorter than [hot.scylla] bucket + [compactor] grace + 2 × interval ({:?}): the \
             cluster would expire samples before the compactor rolls them",
            short.join(", "),
            need
        )
    })
}
