//! Helpers shared by the integration tests.

use std::path::Path;

use strata_hot_store::{HotStore, HotStoreConfig};
use strata_schemas::{BatchSeries, Labels, Sample, TenantId, WriteBatch};

pub(crate) fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

pub(crate) fn open(dir: &Path) -> HotStore {
    HotStore::open(dir, HotStoreConfig::default()).unwrap()
}

pub(crate) fn batch(t: &str, metric: &str, samples: &[(i64, f64)]) -> WriteBatch {
    let labels = Labels::from_pairs([("__name__", metric)]);
    WriteBatch {
        tenant: tenant(t),
        series: vec![BatchSeries {
            id: strata_schemas::series_id(&tenant(t), &labels),
            device_hash: 0,
            labels,
            samples: samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect(),
        }],
        origin: None,
    }
}

/// An in-test ingest log: records per partition, in offset order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Log {
    pub(crate) partitions: Vec<Vec<(u64, WriteBatch)>>,
}

impl Log {
    /// Appends a record and applies it, as the server does for an acknowledged write.
    pub(crate) fn append_and_apply(&mut self, store: &HotStore, partition: u32, gap: u64, b: WriteBatch) {
        let p = partition as usize;
        if self.partitions.len() <= p {
            self.partitions.resize_with(p + 1, Vec::new);
        }
        let offset = self.partitions[p].last().map_or(gap.saturating_sub(1), |(o, _)| o + gap);
        store.apply(partition, offset, &b).unwrap();
        self.partitions[p].push((offset, b));
    }

    /// Replays every record at or after `replay_from`, as the server does on startup.
    pub(crate) fn replay(&self, store: &HotStore) {
        for (p, records) in self.partitions.iter().enumerate() {
            let from = store.replay_from(p as u32);
            for (offset, b) in records.iter().filter(|(o, _)| *o >= from) {
                store.apply(p as u32, *offset, b).unwrap();
            }
        }
    }
}
