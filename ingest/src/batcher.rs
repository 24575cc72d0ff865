//! Groups the series of one write request into one [`WriteBatch`] per log
//! partition, shared by every write protocol.
//!
//! ```text
//!  (series id, device_hash, labels, samples) ──► partition = device_hash % P ──► WriteBatch of that partition
//! ```
//!
//! A series that appears several times in one request (several lines, or
//! repeated entries of a remote-write request) becomes one [`BatchSeries`]
//! whose samples keep arrival order. Two different label sets never merge,
//! even when their 64-bit ids collide.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use strata_schemas::{BatchSeries, Labels, Sample, SeriesId, TenantId, WriteBatch};

use crate::series_cache::IdHasher;

/// The identity of one series a request writes to.
#[derive(Debug)]
pub(crate) struct SeriesKey {
    /// [`strata_schemas::series_id_of`] of the tenant and labels.
    pub(crate) id: SeriesId,
    /// [`strata_schemas::device_hash_of`] of the device label, or the id.
    pub(crate) device_hash: u64,
    /// The canonical label set.
    pub(crate) labels: Labels,
}

/// Builds the per-partition batches of one request for one tenant.
#[derive(Debug)]
pub(crate) struct BatchBuilder<'a> {
    tenant: &'a TenantId,
    partitions: u32,
    /// One batch per partition, created on first use.
    batches: Vec<Option<WriteBatch>>,
    /// Series already seen in this request → (partition, index in its batch)
    /// (ids are xxh3 hashes already: used as their own hash).
    seen: HashMap<SeriesId, (u32, usize), BuildHasherDefault<IdHasher>>,
    /// Series a partition's batch is created with room for.
    per_batch: usize,
}

impl<'a> BatchBuilder<'a> {
    /// An empty builder for `tenant` over a log of `partitions` partitions,
    /// sized for about `series` series (a hint: growing past it is fine).
    pub(crate) fn new(tenant: &'a TenantId, partitions: u32, series: usize) -> Self {
        let batches = (0..partitions.max(1)).map(|_| None).collect();
        let seen = HashMap::with_capacity_and_hasher(series, BuildHasherDefault::default());
        Self { tenant, partitions, batches, seen, per_batch: series.div_ceil(partitions.max(1) as usize) }
    }

    /// Appends `samples` to the series `key`, creating it in its partition's batch when new.
    pub(crate) fn add(&mut self, key: SeriesKey, samples: impl IntoIterator<Item = Sample>) {
        let SeriesKey { id, device_hash, labels } = key;
        if let Some(series) = self.existing(id, &labels) {
            series.samples.extend(samples);
            return;
        }
        let partition = (device_hash % u64::from(self.partitions.max(1))) as u32;
        let (tenant, per_batch) = (self.tenant, self.per_batch);
        let p = partition as usize;
        if self.batches.len() <= p {
            // Not reached (one slot per partition from `new`); never drop a series.
            self.batches.resize_with(p + 1, || None);
        }
        let batch = self.batches[p].get_or_insert_with(|| WriteBatch {
            tenant: tenant.clone(),
            series: Vec::with_capacity(per_batch),
            origin: None,
        });
        batch.series.push(BatchSeries { id, device_hash, labels, samples: samples.into_iter().collect() });
        self.seen.entry(id).or_insert((partition, batch.series.len() - 1));
    }

    /// The series with exactly `labels` added earlier in this request, if any.
    fn existing(&mut self, id: SeriesId, labels: &Labels) -> Option<&mut BatchSeries> {
        let &(p, i) = self.seen.get(&id)?;
        let same = |s: &BatchSeries| s.labels.ptr_eq(labels) || s.labels == *labels;
        let batch = |b: &Option<WriteBatch>| b.as_ref().and_then(|b| b.series.get(i)).is_some_and(same);
        if self.batches.get(p as usize).is_some_and(batch) {
            return self.batches.get_mut(p as usize)?.as_mut()?.series.get_mut(i);
        }
        // A 64-bit id collision within one request (astronomically rare):
        // find the exact label set, or let the caller add it as a series of its own.
        self.batches.iter_mut().flatten().flat_map(|b| b.series.iter_mut()).find(|s| s.labels == *labels)
    }

    /// The batches, sorted by partition.
    pub(crate) fn finish(self) -> Vec<(u32, WriteBatch)> {
        (0u32..).zip(self.batches).filter_map(|(p, b)| Some((p, b?))).collect()
    }
}
