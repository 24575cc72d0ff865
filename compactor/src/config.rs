//! Compactor configuration (the `[compactor]` section of the server config).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_schemas::ConfigError;

/// Configuration of the hot → cold roll-up and of cold-table maintenance.
///
/// ```toml
/// [compactor]
/// interval = "1m"
/// maintenance_interval = "1h"
/// snapshot_retention = "1d"
/// orphan_grace = "1d"
/// merge_min_files = 8
/// merge_small_file_bytes = 16777216
/// merge_max_bytes = 67108864
/// max_manifests = 32
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// How often the compactor looks for sealed buckets (humantime).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long after a bucket's end it is rolled (humantime). Unset = the hot
    /// store's bucket length plus its flush interval, so late samples within
    /// that window still land in hot before the bucket moves.
    #[serde(with = "humantime_serde")]
    pub grace: Option<Duration>,
    /// At most this many buckets per pass (bounds one pass's duration).
    pub max_buckets_per_pass: usize,
    /// How often cold-table maintenance runs (cold retention, small-file
    /// merge, snapshot expiry, orphan-file removal), in the compactor loop.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
    /// How long a snapshot stays after it stopped being current: readers
    /// that planned a scan on it have this long to finish (and time travel
    /// reaches this far back). Snapshots the compactor still needs for
    /// exactly-once are kept regardless.
    #[serde(with = "humantime_serde")]
    pub snapshot_retention: Duration,
    /// Unreferenced files (orphans of crashed writes, files of expired
    /// snapshots) are deleted once older than this; a write in flight is
    /// younger. Must exceed the longest write-to-commit time.
    #[serde(with = "humantime_serde")]
    pub orphan_grace: Duration,
    /// A data file smaller than this counts as small for the merge.
    pub merge_small_file_bytes: u64,
    /// A partition is merged once it has at least this many small files
    /// (0 turns the merge off).
    pub merge_min_files: usize,
    /// At most this many files are merged into one partition rewrite.
    pub merge_max_files: usize,
    /// At most this many bytes (Parquet, compressed) are merged into one
    /// partition rewrite; the merge holds the rows in memory.
    pub merge_max_bytes: u64,
    /// A table's manifests are folded into one once there are more than
    /// this many (each roll adds one; scan planning reads them all).
    pub max_manifests: usize,
    /// At most this many partition merges per maintenance pass.
    pub max_merges_per_pass: usize,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            grace: None,
            max_buckets_per_pass: 256,
            maintenance_interval: Duration::from_secs(3600),
            snapshot_retention: Duration::from_secs(86_400),
            orphan_grace: Duration::from_secs(86_400),
            merge_small_file_bytes: 16 * 1024 * 1024,
            merge_min_files: 8,
            merge_max_files: 128,
            merge_max_bytes: 64 * 1024 * 1024,
            max_manifests: 32,
            max_merges_per_pass: 64,
        }
    }
}

impl CompactorConfig {
    /// Fixes harmless values: zero intervals or pass sizes. No value is
    /// rejected today (zero `snapshot_retention` and `orphan_grace` are
    /// allowed: tests use them); the `Result` is the signature every crate's
    /// config shares ([`ConfigError`]).
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.fix_harmless();
        Ok(())
    }

    /// The fixes of [`Self::validate`], for [`crate::Compactor::new`], which
    /// takes a config as given and cannot fail.
    pub(crate) fn fix_harmless(&mut self) {
        let d = Self::default();
        if self.interval.is_zero() {
            tracing::warn!("compactor.interval is zero; using {:?}", d.interval);
            self.interval = d.interval;
        }
        if self.maintenance_interval.is_zero() {
            tracing::warn!("compactor.maintenance_interval is zero; using {:?}", d.maintenance_interval);
            self.maintenance_interval = d.maintenance_interval;
        }
        if self.max_buckets_per_pass == 0 {
            self.max_buckets_per_pass = d.max_buckets_per_pass;
        }
        if self.merge_max_files < 2 {
            self.merge_max_files = d.merge_max_files;
        }
        if self.merge_max_bytes == 0 {
            self.merge_max_bytes = d.merge_max_bytes;
        }
        if self.max_manifests == 0 {
            self.max_manifests = d.max_manifests;
        }
        if self.max_merges_per_pass == 0 {
            self.max_merges_per_pass = d.max_merges_per_pass;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_replaces_zero_values_with_defaults() {
        let mut c = CompactorConfig {
            interval: Duration::ZERO,
            maintenance_interval: Duration::ZERO,
            max_buckets_per_pass: 0,
            merge_max_files: 1,
            merge_max_bytes: 0,
            max_manifests: 0,
            max_merges_per_pass: 0,
            ..CompactorConfig::default()
        };
        c.validate().unwrap();
        assert_eq!(c, CompactorConfig::default());
    }
}
