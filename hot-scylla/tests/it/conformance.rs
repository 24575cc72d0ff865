//! The PromQL conformance suite (query/tests/it/promql_conformance/suite.rs),
//! unchanged, over the tier on kassandra: every `load` is written as log
//! records through `ScyllaHot::apply`, every query reads through its
//! `ReadStore`. A `clear` moves to a fresh tenant (the server cannot
//! truncate); the engine's tenant is mapped onto it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strata_hot_scylla::ScyllaHot;
use strata_schemas::{
    BatchSeries, Labels, Matcher, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange, WriteBatch,
};

use crate::kassandra::Kassandra;

#[path = "../../../query/tests/it/promql_conformance/suite.rs"]
#[allow(dead_code, unreachable_pub)]
mod suite;

/// The tier as the suite's store.
struct Tier {
    store: ScyllaHot,
    generation: AtomicU64,
    offset: Mutex<u64>,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier").finish_non_exhaustive()
    }
}

impl Tier {
    fn tenant(&self, t: &TenantId) -> TenantId {
        TenantId::new(format!("{}-g{}", t.as_str(), self.generation.load(Ordering::Relaxed))).expect("tenant id")
    }
}

impl ReadStore for Tier {
    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError> {
        self.store.select(&self.tenant(tenant), matchers, range)
    }

    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError> {
        self.store.series(&self.tenant(tenant), matchers, range)
    }
}

impl suite::SuiteStore for Tier {
    fn add(&self, tenant: &TenantId, labels: Labels, samples: &[Sample]) {
        let tenant = self.tenant(tenant);
        let id = strata_schemas::series_id(&tenant, &labels);
        let device_hash = strata_schemas::device_hash(&tenant, &labels, "device", id);
        let series = BatchSeries { id, device_hash, labels, samples: samples.iter().copied().collect() };
        let batch = WriteBatch { tenant, series: vec![series], origin: None };
        let mut offset = self.offset.lock().unwrap();
        self.store.apply(0, *offset, &batch).expect("write to the tier");
        *offset += 1;
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn promql_conformance_on_the_scylla_tier() {
    let k = Kassandra::start();
    let files = AtomicU64::new(0);
    suite::run_suite(&|| {
        // A keyspace per test file; buckets of a week hold most files' data in one.
        let ks = format!("promql{}", files.fetch_add(1, Ordering::Relaxed));
        let store = k.connect(&ks, Duration::from_secs(7 * 24 * 3600));
        Box::new(Tier { store, generation: AtomicU64::new(0), offset: Mutex::new(0) })
    });
}
