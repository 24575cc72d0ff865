use std::path::Path;

use strata_schemas::{BatchSeries, Labels, ReadError, ReadStore, Sample, SeriesData, TenantId, TimeRange, WriteBatch};

use crate::{HotStore, HotStoreConfig};

const SERIES: usize = 3000;

fn tenant() -> TenantId {
    TenantId::new("a").unwrap()
}

/// `SERIES` series with samples at `ts..ts + 3` (value from `seed`).
fn write(store: &HotStore, offset: u64, ts: i64, seed: f64) {
    let series = (0..SERIES)
        .map(|i| {
            let labels = Labels::from_pairs([("__name__", "m"), ("i", &format!("{i:05}"))]);
            BatchSeries {
                id: strata_schemas::series_id(&tenant(), &labels),
                device_hash: i as u64 % 7,
                labels,
                samples: (ts..ts + 3).map(|t| Sample::new(t, seed + i as f64 + t as f64 / 8.0)).collect(),
            }
        })
        .collect();
    store.apply(0, offset, &WriteBatch { tenant: tenant(), series, origin: None }).unwrap();
}

/// Two overlapping segments and a memtable, so series merge three layers.
fn store(dir: &Path) -> HotStore {
    let store = HotStore::open(dir, HotStoreConfig::default()).unwrap();
    write(&store, 0, 10, 0.0);
    store.flush().unwrap();
    write(&store, 1, 12, 0.5);
    store.flush().unwrap();
    write(&store, 2, 14, 0.25);
    store
}

/// What a read hands over, stopping after `limit` series.
fn read(store: &HotStore, split: bool, limit: usize) -> (Vec<SeriesData>, Result<(), ReadError>) {
    let range = TimeRange::new(11, 20);
    let mut candidates = store.snapshot(&tenant(), &[], range).unwrap();
    candidates.sort_unstable_by(|a, b| a.labels.cmp(&b.labels).then(a.r.cmp(&b.r)));
    let mut got = Vec::new();
    let r = store.read_candidates(
        candidates,
        range,
        crate::read::Want::All,
        &mut |s| {
            if got.len() == limit {
                return Err(ReadError::Stopped);
            }
            got.push(s);
            Ok(())
        },
        split,
    );
    (got, r)
}

fn flat(v: &[SeriesData]) -> Vec<(String, Vec<(i64, u64)>)> {
    v.iter().map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect())).collect()
}

#[test]
fn split_read_hands_over_what_the_single_thread_read_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (one, r1) = read(&store, false, usize::MAX);
    let (split, r2) = read(&store, true, usize::MAX);
    assert!(r1.is_ok() && r2.is_ok());
    assert_eq!(one.len(), SERIES);
    assert_eq!(one[7].samples.len(), 6, "ts 11..=16 from three layers");
    assert_eq!(flat(&one), flat(&split));
    // And through the public entry point, which splits at this size.
    let all = store.select(&tenant(), &[], TimeRange::new(11, 20)).unwrap();
    assert_eq!(flat(&all), flat(&one));
}

#[test]
fn a_consumer_that_stops_gets_the_same_prefix_and_the_read_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    for limit in [0, 1, super::CHUNK_SERIES - 1, super::CHUNK_SERIES, 5 * super::CHUNK_SERIES + 3] {
        let (one, r1) = read(&store, false, limit);
        let (split, r2) = read(&store, true, limit);
        assert!(matches!(r1, Err(ReadError::Stopped)) && matches!(r2, Err(ReadError::Stopped)));
        assert_eq!(flat(&one), flat(&split), "limit {limit}");
    }
    // The pool is free again: a full read still completes.
    assert_eq!(read(&store, true, usize::MAX).0.len(), SERIES);
}

#[test]
fn a_corrupt_block_in_a_split_read_fails_after_the_same_series_and_quarantines() {
    let dir = tempfile::tempdir().unwrap();
    let full = {
        let store = store(dir.path());
        store.flush().unwrap();
        store.compact().unwrap();
        flat(&read(&store, false, usize::MAX).0)
    };
    let seg: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert_eq!(seg.len(), 1);
    // A byte in the middle of the sample blocks (they start at byte 12).
    let mut bytes = std::fs::read(&seg[0]).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x10;
    std::fs::write(&seg[0], &bytes).unwrap();
    let store = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap();
    let (got, r) = read(&store, true, usize::MAX);
    match r {
        Err(ReadError::Corrupted { location, .. }) => assert!(location.contains("block"), "{location}"),
        other => panic!("expected Corrupted, got {other:?}"),
    }
    assert!(got.len() < SERIES);
    assert_eq!(flat(&got), full[..got.len()].to_vec(), "the series before the corrupt block, in order");
    assert_eq!(store.quarantined().len(), 1);
}
