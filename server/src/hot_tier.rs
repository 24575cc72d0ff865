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
//! usage); the cold tier does not roll from ScyllaDB yet and stays off.

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
