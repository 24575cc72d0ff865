//! Cold-tier configuration (the `[cold]` section of the server config).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use strata_schemas::ConfigError;

/// Configuration of one region's cold tier.
///
/// ```toml
/// [cold]
/// # default: file://<data_dir>/cold/warehouse
/// warehouse = "s3://strata-eu/warehouse"
/// # default: SQLite at <data_dir>/cold/catalog.db
/// catalog_url = "postgres://iceberg@db/iceberg"
/// namespace = "eu"
/// [cold.storage_options]
/// aws_endpoint = "http://127.0.0.1:9000"
/// aws_allow_http = "true"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColdTierConfig {
    /// Turns the cold tier on (the default: a local Iceberg warehouse and
    /// SQLite catalog under the data dir). Off: no catalog is opened, no
    /// bucket is rolled. A node on a Kafka log with `[cluster] peers` keeps it
    /// off whatever this says (rolls are not yet owned per partition, so two
    /// nodes could roll the same bucket), with a startup line saying so.
    pub enabled: bool,
    /// Where data and metadata files live: `file:///abs/path`, `s3://bucket/prefix`
    /// or `memory://name` (tests). Empty = `file://<data_dir>/cold/warehouse`.
    pub warehouse: String,
    /// The Iceberg SQL catalog: `sqlite:///abs/path/catalog.db` or
    /// `postgres://user:pass@host/db`. Empty = SQLite at `<data_dir>/cold/catalog.db`.
    pub catalog_url: String,
    /// The catalog name (the `catalog_name` column of `iceberg_tables`);
    /// other engines must open the catalog under the same name.
    pub catalog_name: String,
    /// The Iceberg namespace holding this region's tenant tables.
    pub namespace: String,
    /// Target size of a Parquet data file in bytes; a writer rolls to a new
    /// file once it passes this.
    pub target_file_size: u64,
    /// Number of `device_hash` buckets in the partition spec. Fixed when a
    /// tenant's table is created. More buckets prune a one-device query to a
    /// smaller share of a day, fewer make larger files that compress better
    /// (each file has its own dictionaries) and fewer files per roll: 8
    /// (peer-bench IoT, one 2 h bucket: 1.44 B/sample; 16: 1.60).
    pub device_buckets: u32,
    /// Rows per Parquet row group (the unit of statistics pruning).
    pub row_group_rows: usize,
    /// The label whose value identifies a device (must match ingest's).
    pub device_label: String,
    /// Extra `object_store` options, e.g. `aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`. For
    /// `s3://` the `AWS_*` environment variables are read first.
    pub storage_options: BTreeMap<String, String>,
}

impl Default for ColdTierConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            warehouse: String::new(),
            catalog_url: String::new(),
            catalog_name: "strata".into(),
            namespace: "strata".into(),
            target_file_size: 128 * 1024 * 1024,
            device_buckets: 8,
            row_group_rows: 1 << 20,
            device_label: strata_schemas::hash::DEFAULT_DEVICE_LABEL.into(),
            storage_options: BTreeMap::new(),
        }
    }
}

impl ColdTierConfig {
    /// Fixes harmless values (with a warning) and rejects dangerous ones.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let d = Self::default();
        if self.target_file_size < 1024 * 1024 {
            tracing::warn!(value = self.target_file_size, "cold.target_file_size below 1 MiB; using 1 MiB");
            self.target_file_size = 1024 * 1024;
        }
        if self.row_group_rows == 0 {
            self.row_group_rows = d.row_group_rows;
        }
        if self.device_buckets == 0 {
            return Err(ConfigError::invalid("cold", "device_buckets", self.device_buckets, "must be at least 1"));
        }
        for (key, v) in [("namespace", &self.namespace), ("catalog_name", &self.catalog_name)] {
            if v.is_empty() || v.contains('.') {
                return Err(ConfigError::invalid("cold", key, v, "must be non-empty without '.'"));
            }
        }
        Ok(())
    }

    /// The warehouse URL, defaulting under `data_dir`.
    pub fn warehouse_url(&self, data_dir: &Path) -> String {
        if self.warehouse.is_empty() {
            format!("file://{}", data_dir.join("cold").join("warehouse").display())
        } else {
            self.warehouse.trim_end_matches('/').to_owned()
        }
    }

    /// The catalog URL, defaulting to SQLite under `data_dir` (created on open).
    pub fn catalog_url(&self, data_dir: &Path) -> String {
        if self.catalog_url.is_empty() {
            format!("sqlite://{}?mode=rwc", data_dir.join("cold").join("catalog.db").display())
        } else {
            self.catalog_url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_live_under_the_data_dir() {
        let c = ColdTierConfig::default();
        assert_eq!(c.warehouse_url(Path::new("/d")), "file:///d/cold/warehouse");
        assert_eq!(c.catalog_url(Path::new("/d")), "sqlite:///d/cold/catalog.db?mode=rwc");
    }

    #[test]
    fn parses_partial_toml_and_validates() {
        let mut c: ColdTierConfig = toml::from_str("enabled = true\nnamespace = \"eu\"\n").unwrap();
        c.validate().unwrap();
        assert!(c.enabled);
        assert_eq!(c.namespace, "eu");
        assert_eq!(c.device_buckets, 8);
        c.device_buckets = 0;
        let e = c.validate().unwrap_err();
        assert_eq!(e.to_string(), "[cold] device_buckets = 0: must be at least 1");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        for (bad, key) in [
            (ColdTierConfig { namespace: "eu.west".into(), ..ColdTierConfig::default() }, "cold.namespace"),
            (ColdTierConfig { catalog_name: String::new(), ..ColdTierConfig::default() }, "cold.catalog_name"),
            (ColdTierConfig { device_buckets: 0, ..ColdTierConfig::default() }, "cold.device_buckets"),
        ] {
            let e = bad.clone().validate().unwrap_err();
            assert_eq!(e.path(), key, "{e}");
            assert_eq!(e.kind(), strata_schemas::ErrorKind::InvalidInput);
        }
        let mut fixed = ColdTierConfig { target_file_size: 1, row_group_rows: 0, ..ColdTierConfig::default() };
        fixed.validate().unwrap();
        assert_eq!((fixed.target_file_size, fixed.row_group_rows), (1024 * 1024, 1 << 20), "harmless values fixed");
    }
}
