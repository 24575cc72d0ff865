use std::time::Duration;

use strata_schemas::{BatchSeries, Labels, ReadStore, Sample, TenantId, TimeRange, WriteBatch};

use crate::{HotStore, HotStoreConfig};

const B: i64 = 1000;

fn open(dir: &std::path::Path) -> HotStore {
    let config = HotStoreConfig { bucket: Duration::from_millis(B as u64), ..HotStoreConfig::default() };
    HotStore::open(dir, config).unwrap()
}

fn batch(tenant: &str, device: &str, samples: &[(i64, f64)]) -> WriteBatch {
    let t = TenantId::new(tenant).unwrap();
    let labels = Labels::from_pairs([("__name__", "temp"), ("device", device)]);
    let id = strata_schemas::series_id(&t, &labels);
    WriteBatch {
        tenant: t.clone(),
        series: vec![BatchSeries {
            id,
            device_hash: strata_schemas::device_hash_of(&t, device),
            labels,
            samples: samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect(),
        }],
        origin: None,
    }
}

#[test]
fn sealed_buckets_need_age_flush_and_no_watermark_cover() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let acme = TenantId::new("acme").unwrap();
    store.apply(0, 0, &batch("acme", "d1", &[(10, 1.0), (1500, 2.0)])).unwrap();
    // Unflushed data is never sealed.
    assert!(store.sealed_buckets(10_000, Duration::ZERO).is_empty());
    store.flush().unwrap();
    let sealed = store.sealed_buckets(10_000, Duration::ZERO);
    assert_eq!(sealed.iter().map(|b| (b.start, b.end)).collect::<Vec<_>>(), vec![(0, 1000), (1000, 2000)]);
    // Too young: bucket [1000, 2000) with a 500 ms grace is sealed only from 2500.
    let young = store.sealed_buckets(2499, Duration::from_millis(500));
    assert_eq!(young.iter().map(|b| b.start).collect::<Vec<_>>(), vec![0]);
    // Late data in the memtable holds back its bucket and every later one until flushed.
    store.apply(0, 1, &batch("acme", "d1", &[(20, 3.0)])).unwrap();
    store.apply(0, 2, &batch("other", "d1", &[(30, 3.0)])).unwrap();
    assert!(store.sealed_buckets(10_000, Duration::ZERO).is_empty());
    store.flush().unwrap();
    store.apply(0, 3, &batch("acme", "d1", &[(1600, 3.0)])).unwrap();
    let starts = store.sealed_buckets(10_000, Duration::ZERO);
    assert_eq!(
        starts.iter().map(|b| (b.tenant.as_str(), b.start)).collect::<Vec<_>>(),
        vec![("acme", 0), ("other", 0)]
    );
    store.flush().unwrap();
    // Covered by the watermark: gone from the list.
    store.set_cold_watermark(&acme, 1000).unwrap();
    let sealed = store.sealed_buckets(10_000, Duration::ZERO);
    assert_eq!(
        sealed.iter().map(|b| (b.tenant.as_str(), b.start)).collect::<Vec<_>>(),
        vec![("other", 0), ("acme", 1000)]
    );
}

#[test]
fn read_bucket_returns_merged_series_with_ids_and_device_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let acme = TenantId::new("acme").unwrap();
    let b1 = batch("acme", "d1", &[(10, 1.0), (20, 2.0), (1500, 9.0)]);
    store.apply(0, 0, &b1).unwrap();
    store.flush().unwrap();
    store.apply(0, 1, &batch("acme", "d1", &[(20, 5.0)])).unwrap(); // overwrite, second segment
    store.apply(0, 2, &batch("other", "d1", &[(30, 7.0)])).unwrap();
    store.flush().unwrap();
    let got = store.read_bucket(&acme, 0).unwrap();
    assert_eq!(got.len(), 1);
    let s = &got[0];
    assert_eq!(s.series_id, b1.series[0].id);
    assert_eq!(s.device_hash, b1.series[0].device_hash);
    assert_eq!(s.samples, vec![Sample::new(10, 1.0), Sample::new(20, 5.0)]);
    let via_select = store.select(&acme, &[], TimeRange::new(0, 999)).unwrap();
    assert_eq!(via_select[0].samples, s.samples);
}

#[test]
fn oldest_buckets_cover_segments_and_memtable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &batch("acme", "d1", &[(2500, 1.0)])).unwrap();
    store.flush().unwrap();
    store.apply(0, 1, &batch("acme", "d1", &[(1500, 1.0)])).unwrap();
    store.apply(0, 2, &batch("other", "d1", &[(-10, 1.0)])).unwrap();
    let got: Vec<(String, i64)> = store.oldest_buckets().into_iter().map(|(t, b)| (t.as_str().to_owned(), b)).collect();
    assert_eq!(got, vec![("acme".to_owned(), 1000), ("other".to_owned(), -1000)]);
}
