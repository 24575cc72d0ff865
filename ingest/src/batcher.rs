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
use strata_schemas::batch::Samples;
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
    /// The last device hash placed and its partition: a line's fields share
    /// their device, and the remainder is a 64-bit division (~40 cycles).
    last_placed: Option<(u64, u32)>,
}

impl<'a> BatchBuilder<'a> {
    /// An empty builder for `tenant` over a log of `partitions` partitions,
    /// sized for about `series` series (a hint: growing past it is fine).
    pub(crate) fn new(tenant: &'a TenantId, partitions: u32, series: usize) -> Self {
        let batches = (0..partitions.max(1)).map(|_| None).collect();
        let seen = HashMap::with_capacity_and_hasher(series, BuildHasherDefault::default());
        let per_batch = series.div_ceil(partitions.max(1) as usize);
        Self { tenant, partitions, batches, seen, per_batch, last_placed: None }
    }

    /// Appends `samples` to the series `key`, creating it in its partition's batch when new.
    pub(crate) fn add(&mut self, key: SeriesKey, samples: impl IntoIterator<Item = Sample>) {
        if let Some(series) = self.existing(key.id, &key.labels) {
            series.samples.extend(samples);
            return;
        }
        self.push_new(key, samples.into_iter().collect());
    }

    /// [`BatchBuilder::add`] of one sample (a line protocol field): the
    /// series' samples are made in place, without an iterator.
    pub(crate) fn add_one(&mut self, key: SeriesKey, sample: Sample) {
        if let Some(series) = self.existing(key.id, &key.labels) {
            series.samples.push(sample);
            return;
        }
        self.push_new(key, Samples::from_buf([sample]));
    }

    /// A series not added before in this request.
    fn push_new(&mut self, key: SeriesKey, samples: Samples) {
        let SeriesKey { id, device_hash, labels } = key;
        let partition = match self.last_placed {
            Some((h, p)) if h == device_hash => p,
            _ => {
                let p = (device_hash % u64::from(self.partitions.max(1))) as u32;
                self.last_placed = Some((device_hash, p));
                p
            }
        };
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
        batch.series.push(BatchSeries { id, device_hash, labels, samples });
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

#[cfg(test)]
mod tests {
    use super::*;
    use strata_schemas::Label;

    fn key(i: u64, device_hash: u64) -> SeriesKey {
        let labels = Labels::new(vec![Label::new("__name__", "m"), Label::new("i", i.to_string().as_str())]);
        SeriesKey { id: SeriesId(i), device_hash, labels }
    }

    /// Runs of one device and alternating devices alike land in
    /// `device_hash % partitions`, each series once with all its samples.
    #[test]
    fn each_series_lands_in_its_devices_partition() {
        let tenant = TenantId::new("t").unwrap();
        let mut b = BatchBuilder::new(&tenant, 7, 4);
        let hashes = [u64::MAX, 3, 3, 3, 1 << 40, 3, (1 << 40) + 1, u64::MAX];
        for (i, &h) in hashes.iter().enumerate() {
            b.add_one(key(i as u64, h), Sample::new(i as i64, 1.0));
        }
        b.add_one(key(1, 3), Sample::new(100, 2.0));
        let mut seen = 0;
        for (p, batch) in b.finish() {
            for s in &batch.series {
                assert_eq!(u64::from(p), hashes[s.id.0 as usize] % 7, "series {}", s.id.0);
                let want = if s.id.0 == 1 { 2 } else { 1 };
                assert_eq!(s.samples.len(), want);
                seen += 1;
            }
        }
        assert_eq!(seen, hashes.len());
    }
}
