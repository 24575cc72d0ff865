//! The hand-off to the cold tier: which buckets are sealed, and their content.
//!
//! ```text
//!  compactor                         hot store
//!  ─────────                         ─────────
//!  sealed_buckets(now, grace) ──►    (tenant, bucket) with segments, ended ≥ grace ago,
//!                                    nothing of it in the memtable / frozen memtable,
//!                                    ending above the tenant's cold watermark
//!  read_bucket(tenant, start) ──►    every series of the bucket (id, device hash,
//!                                    labels, merged samples, newest write wins)
//!  … write + commit to cold …
//!  set_cold_watermark(tenant, end)   bucket may now expire (hot TTL permitting)
//! ```
//!
//! Read-only: nothing here changes the on-disk format or the manifest.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_schemas::{Labels, ReadError, Sample, SeriesId, TenantId, TimeRange};

use crate::store::{HotStore, bucket_start};

/// A (tenant, bucket) whose data is complete in segments and old enough to
/// move to the cold tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBucket {
    /// Owner of the data.
    pub tenant: TenantId,
    /// First millisecond of the bucket.
    pub start: i64,
    /// First millisecond after the bucket (`start + bucket length`).
    pub end: i64,
    /// Ids of the live segments holding the bucket (diagnostics: hot-store
    /// compaction replaces them, so they are not an identity).
    pub segments: Vec<u64>,
}

/// One series of a bucket as the cold tier stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSeries {
    /// The series' labels, `__name__` included.
    pub labels: Labels,
    /// `schemas::series_id` of the labels (colliding label sets share it).
    pub series_id: SeriesId,
    /// `schemas::device_hash` as computed at ingest.
    pub device_hash: u64,
    /// Samples of the bucket, sorted, one per timestamp (latest write wins).
    pub samples: Vec<Sample>,
}

impl HotStore {
    /// The bucket length in milliseconds (fixed at store creation).
    pub fn bucket_ms(&self) -> i64 {
        self.bucket_ms
    }

    /// Buckets ready for the cold tier at `now_ms`, oldest first: the bucket
    /// has segments, ended at least `grace` before `now_ms`, ends above the
    /// tenant's cold watermark (an older one is already in the cold tier), and
    /// neither it nor an older bucket of the tenant has samples left in the
    /// memtable (or a memtable being flushed). The last rule keeps the
    /// watermark, which covers everything below it, from passing unflushed data.
    ///
    /// `grace` should cover late data: one flush interval plus the lateness
    /// the ingest path accepts. A sample that arrives for a bucket after it
    /// was handed over lands below the watermark and is not served (the
    /// federated read answers that range from the cold tier).
    pub fn sealed_buckets(&self, now_ms: i64, grace: Duration) -> Vec<SealedBucket> {
        self.handoff_plan(now_ms, grace).0
    }

    /// [`HotStore::sealed_buckets`] and [`HotStore::unflushed_buckets`] read
    /// from one state, so that every bucket holding data at that instant is
    /// either sealed or at or above its tenant's first unflushed bucket. The
    /// compactor of a node sharing a Kafka log advances partitions without
    /// data only below both: taken apart, a flush between the two calls would
    /// hide a bucket that was neither (held back by its memtable samples,
    /// then flushed), and that bucket would count as empty.
    pub fn handoff_plan(&self, now_ms: i64, grace: Duration) -> (Vec<SealedBucket>, BTreeMap<TenantId, i64>) {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let st = self.state.read();
        // Per tenant, the oldest bucket with unflushed samples: it and every
        // later bucket wait, so the watermark never passes data not yet in cold.
        let mut first_unflushed: BTreeMap<TenantId, i64> = BTreeMap::new();
        for m in st.frozen.as_deref().into_iter().chain(Some(&st.memtable)) {
            for (r, bucket, _) in m.iter() {
                if let Some(t) = st.index.get(r).and_then(|e| st.index.tenant_of(e)) {
                    let e = first_unflushed.entry(t.clone()).or_insert(bucket);
                    *e = (*e).min(bucket);
                }
            }
        }
        let mut out: BTreeMap<(i64, TenantId), SealedBucket> = BTreeMap::new();
        for seg in &st.segments {
            let scope = seg.scope();
            let start = bucket_start(scope.bucket, self.bucket_ms);
            let end = start.saturating_add(self.bucket_ms);
            let watermark = st.manifest.cold_watermarks.get(scope.tenant.as_str()).copied().unwrap_or(i64::MIN);
            let blocked = first_unflushed.get(&scope.tenant).is_some_and(|&u| start >= u);
            if end.saturating_add(grace_ms) > now_ms || end <= watermark || blocked {
                continue;
            }
            out.entry((start, scope.tenant.clone()))
                .or_insert_with(|| SealedBucket { tenant: scope.tenant.clone(), start, end, segments: Vec::new() })
                .segments
                .push(seg.id);
        }
        (out.into_values().collect(), first_unflushed)
    }

    /// Per tenant with samples in the memtable (or a memtable being
    /// flushed), the start of the oldest such bucket: [`HotStore::sealed_buckets`]
    /// holds that bucket and every later one of the tenant back. The
    /// compactor of a node sharing a Kafka log advances a partition's roll
    /// state over buckets without data only below it.
    pub fn unflushed_buckets(&self) -> BTreeMap<TenantId, i64> {
        let st = self.state.read();
        let mut out: BTreeMap<TenantId, i64> = BTreeMap::new();
        for m in st.frozen.as_deref().into_iter().chain(Some(&st.memtable)) {
            for (r, bucket, _) in m.iter() {
                if let Some(t) = st.index.get(r).and_then(|e| st.index.tenant_of(e)) {
                    let e = out.entry(t.clone()).or_insert(bucket);
                    *e = (*e).min(bucket);
                }
            }
        }
        out
    }

    /// Per tenant holding any data (segments or memtables), the start of its
    /// oldest bucket. The compactor gives a tenant without a cold watermark
    /// one at this point, so that from then on expiry waits for the cold tier
    /// (a tenant without a watermark expires by hot TTL alone).
    pub fn oldest_buckets(&self) -> BTreeMap<TenantId, i64> {
        let st = self.state.read();
        let mut out: BTreeMap<TenantId, i64> = BTreeMap::new();
        let mut note = |t: &TenantId, b: i64| {
            let e = out.entry(t.clone()).or_insert(b);
            *e = (*e).min(b);
        };
        for seg in &st.segments {
            note(&seg.scope().tenant, bucket_start(seg.scope().bucket, self.bucket_ms));
        }
        for m in st.frozen.as_deref().into_iter().chain(Some(&st.memtable)) {
            for (r, bucket, _) in m.iter() {
                if let Some(t) = st.index.get(r).and_then(|e| st.index.tenant_of(e)) {
                    note(t, bucket);
                }
            }
        }
        out
    }

    /// Every series of `tenant` with samples in the bucket starting at
    /// `bucket_start` (ms), merged across segments and memtables exactly as
    /// a query would see them, sorted by labels. Holds the whole bucket in
    /// memory.
    pub fn read_bucket(&self, tenant: &TenantId, bucket_start: i64) -> Result<Vec<BucketSeries>, ReadError> {
        let range = TimeRange::new(bucket_start, bucket_start.saturating_add(self.bucket_ms - 1));
        let mut out = Vec::new();
        for c in self.snapshot(tenant, &[], range)? {
            let (labels, series_id, device_hash) = (c.labels, c.id, c.device_hash);
            let samples = self.merge(c.layers, range)?;
            if samples.is_empty() {
                continue;
            }
            let samples = samples.into_iter().map(|(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect();
            out.push(BucketSeries { labels, series_id, device_hash, samples });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
