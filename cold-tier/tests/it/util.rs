//! Shared helpers.

use std::path::Path;

use strata_cold_tier::{ColdTier, ColdTierConfig, SeriesSamples};
use strata_schemas::{Labels, Sample, TenantId};

pub(crate) const BASE: i64 = 1_700_000_000_000;

pub(crate) fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

pub(crate) fn series(t: &TenantId, metric: &str, device: &str, samples: &[(i64, f64)]) -> SeriesSamples {
    let labels = Labels::from_pairs([("__name__", metric), ("device", device), ("site", "north")]);
    SeriesSamples {
        series_id: strata_schemas::series_id(t, &labels),
        device_hash: strata_schemas::device_hash_of(t, device),
        labels,
        samples: samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect(),
    }
}

pub(crate) fn open(rt: &tokio::runtime::Runtime, dir: &Path) -> ColdTier {
    let config = ColdTierConfig { enabled: true, ..ColdTierConfig::default() };
    rt.block_on(ColdTier::open(&config, dir)).unwrap()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}
