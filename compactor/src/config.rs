//! Compactor configuration (the `[compactor]` section of the server config).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Configuration of the hot → cold roll-up.
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
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(60), grace: None, max_buckets_per_pass: 256 }
    }
}

impl CompactorConfig {
    /// Fixes harmless values: a zero interval or pass size.
    pub fn validate(&mut self) {
        let d = Self::default();
        if self.interval.is_zero() {
            tracing::warn!("compactor.interval is zero; using {:?}", d.interval);
            self.interval = d.interval;
        }
        if self.max_buckets_per_pass == 0 {
            self.max_buckets_per_pass = d.max_buckets_per_pass;
        }
    }
}
