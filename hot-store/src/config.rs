//! Hot-store configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Configuration of the hot store (the `[hot_store]` section of the server config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotStoreConfig {
    /// The server flushes the memtable to a segment at least this often
    /// (humantime, e.g. `"5m"`). Shorter means less log to replay on restart
    /// and more, smaller segments.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// The server flushes as soon as the memtable holds more samples than
    /// this. Bounds memory (roughly 16 bytes per buffered sample) and replay time.
    pub max_memtable_samples: usize,
    /// The server merges all segments into one once there are more than
    /// this many (reads touch every segment until the time-bucketed engine
    /// lands). 0 disables automatic compaction.
    pub compact_segments: usize,
}

impl Default for HotStoreConfig {
    fn default() -> Self {
        Self { flush_interval: Duration::from_secs(5 * 60), max_memtable_samples: 2_000_000, compact_segments: 8 }
    }
}

impl HotStoreConfig {
    /// Fixes harmless values with a warning: a zero flush interval or a zero
    /// sample limit would make the server flush continuously.
    pub fn validate(&mut self) {
        let default = Self::default();
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
    }

    #[test]
    fn validate_replaces_zero_values_with_defaults() {
        let mut c = HotStoreConfig { flush_interval: Duration::ZERO, max_memtable_samples: 0, compact_segments: 8 };
        c.validate();
        assert_eq!(c, HotStoreConfig::default());
    }
}
