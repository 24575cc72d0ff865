//! Where rolls read sealed buckets from: the [`RollSource`] trait, which the
//! embedded hot store implements here and the server's ScyllaDB tier
//! implements beside it (`server/src/hot_tier.rs`).
//!
//! ```text
//!  Compactor ──handoff_plan(now, grace)──► RollSource   (embedded HotStore | ScyllaDB tier)
//!            ──read_bucket(tenant, start)─►
//!            ──set_cold_watermark─────────► HotStore    (always the node's embedded store:
//!                                                        its manifest keeps the watermark the
//!                                                        write path and the federated read use)
//! ```
//!
//! The guarantees of a roll do not depend on the source: a bucket is rolled
//! once per (tenant, partition) through the roll state recorded in the
//! catalog's commit, and the watermark moves only after the commit. What a
//! source must give is the bucket's complete content once it is listed as
//! sealed: every sample the log acknowledged for it is readable. The
//! embedded store lists a bucket only when no sample of it is left in the
//! memtable; the ScyllaDB tier acknowledges a write only once the cluster
//! did, so every acknowledged sample is readable there already (it has no
//! memtable: nothing is ever "unflushed").

use std::collections::BTreeMap;
use std::time::Duration;

use strata_hot_store::{BucketSeries, HotStore, SealedBucket};
use strata_schemas::{ReadError, TenantId};

/// A hot tier the compactor rolls sealed buckets from. Every method may
/// block (the compactor calls them on blocking threads).
pub trait RollSource: Send + Sync + 'static {
    /// The bucket width in milliseconds.
    fn bucket_ms(&self) -> i64;

    /// Buckets ready for the cold tier at `now_ms` (ended at least `grace`
    /// before it), oldest first, and, read from the same state, each
    /// tenant's first bucket still holding samples not readable through
    /// [`RollSource::read_bucket`] (the embedded store's memtable). The
    /// compactor drops buckets at or below the tenant's cold watermark.
    fn handoff_plan(
        &self,
        now_ms: i64,
        grace: Duration,
    ) -> Result<(Vec<SealedBucket>, BTreeMap<TenantId, i64>), ReadError>;

    /// Every series of one bucket with its samples (sorted, one per ts).
    fn read_bucket(&self, tenant: &TenantId, bucket_start: i64) -> Result<Vec<BucketSeries>, ReadError>;

    /// Per tenant holding data, the start of its oldest bucket.
    fn oldest_buckets(&self) -> Result<BTreeMap<TenantId, i64>, ReadError>;

    /// Per tenant, the first bucket still holding unflushed samples.
    fn unflushed_buckets(&self) -> BTreeMap<TenantId, i64>;
}

impl RollSource for HotStore {
    fn bucket_ms(&self) -> i64 {
        HotStore::bucket_ms(self)
    }

    fn handoff_plan(
        &self,
        now_ms: i64,
        grace: Duration,
    ) -> Result<(Vec<SealedBucket>, BTreeMap<TenantId, i64>), ReadError> {
        Ok(HotStore::handoff_plan(self, now_ms, grace))
    }

    fn read_bucket(&self, tenant: &TenantId, bucket_start: i64) -> Result<Vec<BucketSeries>, ReadError> {
        HotStore::read_bucket(self, tenant, bucket_start)
    }

    fn oldest_buckets(&self) -> Result<BTreeMap<TenantId, i64>, ReadError> {
        Ok(HotStore::oldest_buckets(self))
    }

    fn unflushed_buckets(&self) -> BTreeMap<TenantId, i64> {
        HotStore::unflushed_buckets(self)
    }
}

/// The sealed buckets of a source that lists whole buckets per tenant and
/// holds nothing unflushed (the ScyllaDB tier): per tenant, every bucket
/// ending `grace` or more before `now_ms`, oldest first.
pub fn sealed_from_listing(
    listing: impl IntoIterator<Item = (TenantId, Vec<i64>)>,
    bucket_ms: i64,
    now_ms: i64,
    grace: Duration,
) -> Vec<SealedBucket> {
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let mut out: Vec<SealedBucket> = listing
        .into_iter()
        .flat_map(|(tenant, buckets)| {
            buckets.into_iter().filter_map(move |start| {
                let end = start.saturating_add(bucket_ms);
                (end.saturating_add(grace_ms) <= now_ms).then(|| SealedBucket {
                    tenant: tenant.clone(),
                    start,
                    end,
                    segments: Vec::new(),
                })
            })
        })
        .collect();
    out.sort_by(|a, b| (a.start, &a.tenant).cmp(&(b.start, &b.tenant)));
    out.dedup_by(|a, b| a.start == b.start && a.tenant == b.tenant);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_bucket_is_sealed_once_it_ended_a_grace_ago_and_buckets_come_oldest_first() {
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let sealed = sealed_from_listing(
            [(b.clone(), vec![2_000, 0, 1_000]), (a.clone(), vec![1_000, 1_000, 3_000])],
            1_000,
            4_500,
            Duration::from_millis(1_500),
        );
        let got: Vec<(&str, i64, i64)> = sealed.iter().map(|s| (s.tenant.as_str(), s.start, s.end)).collect();
        // 3_000..4_000 ends 500 ms before now: inside the grace.
        assert_eq!(got, vec![("b", 0, 1_000), ("a", 1_000, 2_000), ("b", 1_000, 2_000), ("b", 2_000, 3_000)]);
        assert!(sealed.iter().all(|s| s.segments.is_empty()));
    }
}
