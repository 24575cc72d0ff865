//! Configuration of the write path (`[ingest]` in the config file).

use serde::{Deserialize, Serialize};
use std::time::Duration;
use strata_schemas::ConfigError;

/// Write-path settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest accepted request body in bytes, applied to the body as sent
    /// and again to the decompressed body of a gzip request.
    pub max_body_bytes: usize,
    /// The label whose value identifies a device; its hash picks the log
    /// partition, so a device's samples stay together and in order.
    pub device_label: String,
    /// Most rejected lines listed individually in a 400 response (the
    /// response always carries the total count).
    pub max_reported_errors: usize,
    /// Series whose label sets the write path keeps to skip rebuilding them
    /// (about 250 bytes each for six labels: the label set, its share of the
    /// device's tag strings and the cache entry; 0 disables).
    pub series_cache_entries: usize,
    /// Most distinct fields on one line-protocol line: a line with more is
    /// refused (error at the first field over it) and its other fields are
    /// not parsed; the other lines are stored. Tags are bounded by the
    /// tenant's `max_labels_per_series`.
    pub max_fields_per_line: usize,
    /// How far ahead of the node's clock a sample may be (Mimir's
    /// `creation_grace_period`); later samples are refused, per line or
    /// series, so a bad device clock cannot write samples that never expire.
    #[serde(with = "humantime_serde")]
    pub creation_grace_period: Duration,
    /// How far behind the node's clock a sample may be (Mimir's
    /// `past_grace_period`). `0s`: the tenant's `hot_ttl`, past which a
    /// sample would be deleted before anyone reads it. With the cold tier,
    /// samples older than the tenant's cold watermark are refused as well.
    #[serde(with = "humantime_serde")]
    pub past_grace_period: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 20,
            device_label: strata_schemas::hash::DEFAULT_DEVICE_LABEL.to_owned(),
            max_reported_errors: 1000,
            series_cache_entries: 1 << 20,
            max_fields_per_line: 1000,
            creation_grace_period: Duration::from_secs(600),
            past_grace_period: Duration::ZERO,
        }
    }
}

impl IngestConfig {
    /// Rejects settings the write path cannot run with (nothing is fixed in place).
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid("ingest", "max_body_bytes", self.max_body_bytes, "must be at least 1024"));
        }
        if self.device_label.is_empty() {
            return Err(ConfigError::new("ingest", "device_label", "must not be empty"));
        }
        if self.max_fields_per_line == 0 {
            return Err(ConfigError::invalid("ingest", "max_fields_per_line", 0, "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_its_key() {
        IngestConfig::default().validate().unwrap();
        let small_body = IngestConfig { max_body_bytes: 10, ..IngestConfig::default() };
        let no_label = IngestConfig { device_label: String::new(), ..IngestConfig::default() };
        let no_fields = IngestConfig { max_fields_per_line: 0, ..IngestConfig::default() };
        for (mut bad, key) in [
            (small_body, "ingest.max_body_bytes"),
            (no_label, "ingest.device_label"),
            (no_fields, "ingest.max_fields_per_line"),
        ] {
            assert_eq!(bad.validate().unwrap_err().path(), key);
        }
        let mut small_body = IngestConfig { max_body_bytes: 10, ..IngestConfig::default() };
        assert_eq!(
            small_body.validate().unwrap_err().to_string(),
            "[ingest] max_body_bytes = 10: must be at least 1024"
        );
    }
}
