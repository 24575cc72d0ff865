//! Crash scenarios: the state a crash can leave at each step of the flush
//! protocol, and corruption that must fail loudly.

use strata_hot_store::{Error, HotStore, HotStoreConfig};
use strata_schemas::{ErrorKind, ReadError, ReadStore, TimeRange};

use crate::util::{Log, batch, open, tenant};

/// The failpoints a flush passes, in order (one-thread and parallel flushes alike).
const FLUSH_CRASH_POINTS: [&str; 6] = [
    "segment.before_fsync",
    "segment.before_rename",
    "flush.after_segments",
    "manifest.before_fsync",
    "manifest.before_rename",
    "manifest.after_rename",
];

fn samples(store: &HotStore) -> Vec<(i64, f64)> {
    let got = store.select(&tenant("a"), &[], TimeRange::ALL).unwrap();
    got.iter().flat_map(|s| s.samples.iter().map(|x| (x.ts, x.value))).collect()
}

fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn crash_after_segment_rename_before_manifest_deletes_leftover_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::default();
    let store = open(dir.path());
    log.append_and_apply(&store, 0, 1, batch("a", "m", &[(1, 1.0)]));
    store.flush().unwrap();
    log.append_and_apply(&store, 0, 1, batch("a", "m", &[(2, 2.0)]));
    let manifest_before = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    store.flush().unwrap();
    drop(store);
    std::fs::write(dir.path().join("MANIFEST"), manifest_before).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 2);

    let store = open(dir.path());
    assert_eq!(segment_files(dir.path()).len(), 1, "the unreferenced segment is deleted");
    assert_eq!(store.replay_from(0), 1, "offset 1 is not durable in segments");
    log.replay(&store);
    assert_eq!(samples(&store), vec![(1, 1.0), (2, 2.0)]);
}

#[test]
fn crash_while_writing_leaves_temp_files_that_are_ignored_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0)])).unwrap();
    store.flush().unwrap();
    drop(store);
    let torn_manifest = dir.path().join("MANIFEST.tmp");
    std::fs::write(&torn_manifest, b"SHMF\x01\0\0\0garbage").unwrap();
    let torn_segment = dir.path().join("00000000000000000002.seg.tmp");
    std::fs::write(&torn_segment, b"SHSG\x01").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"operator file").unwrap();

    let store = open(dir.path());
    assert!(!torn_manifest.exists() && !torn_segment.exists());
    assert!(dir.path().join("notes.txt").exists(), "files that are not ours are left alone");
    assert_eq!(samples(&store), vec![(1, 1.0)]);
    assert_eq!(store.replay_from(0), 1);
}

#[test]
fn corrupt_manifest_fails_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0)])).unwrap();
    store.flush().unwrap();
    drop(store);
    let path = dir.path().join("MANIFEST");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { what: "manifest body", .. }), "{err}");
    assert!(err.to_string().contains("MANIFEST"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Corruption);
}

/// Two tenants' segments; returns the store dir's segment of tenant "a".
fn two_tenants(dir: &std::path::Path) -> std::path::PathBuf {
    let store = open(dir);
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0), (2, 2.0)])).unwrap();
    let path = store.flush().unwrap().segment.unwrap();
    store.apply(0, 1, &batch("b", "m", &[(1, 5.0)])).unwrap();
    store.flush().unwrap();
    path
}

fn assert_quarantined(store: &HotStore, dir: &std::path::Path, path: &std::path::Path) {
    let q = store.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!((q[0].path.as_path(), q[0].tenant.as_str(), q[0].bucket), (path, "a", 0));
    assert!(!path.exists(), "moved out of the live directory");
    assert!(dir.join("quarantine").join(path.file_name().unwrap()).exists());
    assert_eq!(store.stats().quarantined, 1);
    let b = store.select(&tenant("b"), &[], TimeRange::ALL).unwrap();
    assert_eq!(b.len(), 1, "the rest keeps serving");
}

#[test]
fn corrupt_segment_index_is_quarantined_on_open_and_the_rest_serves() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_tenants(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 0x08; // last byte of the index section
    std::fs::write(&path, &bytes).unwrap();
    let store = open(dir.path());
    assert_quarantined(&store, dir.path(), &path);
    assert!(store.quarantined()[0].detail.contains("checksum"), "{:?}", store.quarantined());
    assert!(samples(&store).is_empty());
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.stats().segments, 1, "the manifest no longer lists it");
}

#[test]
fn corrupt_sample_block_fails_select_naming_file_and_bucket_then_quarantines() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_tenants(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[13] ^= 0x02; // inside block 0 (blocks start at byte 12)
    std::fs::write(&path, &bytes).unwrap();
    let store = open(dir.path());
    match store.select(&tenant("a"), &[], TimeRange::ALL) {
        Err(ReadError::Corrupted { location, .. }) => {
            assert!(location.contains(&path.display().to_string()) && location.contains("block 0"), "{location}");
            assert!(location.contains("tenant a, bucket 0"), "{location}");
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
    assert_quarantined(&store, dir.path(), &path);
    assert!(samples(&store).is_empty(), "later queries serve what is left");
}

#[test]
fn corrupt_block_found_by_compaction_quarantines_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0), (2, 2.0)])).unwrap();
    let path = store.flush().unwrap().segment.unwrap();
    store.apply(0, 1, &batch("a", "m", &[(3, 3.0)])).unwrap();
    store.flush().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[13] ^= 0x02;
    std::fs::write(&path, &bytes).unwrap();
    let out = store.compact().unwrap();
    assert_eq!(out.buckets, 0, "the bucket is skipped");
    assert_eq!(store.quarantined().len(), 1);
    assert_eq!(samples(&store), vec![(3, 3.0)]);
}

#[test]
fn missing_segment_fails_open_and_truncated_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0)])).unwrap();
    let path = store.flush().unwrap().segment.unwrap();
    drop(store);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let err = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap_err();
    assert!(matches!(&err, Error::MissingSegment { path: p } if *p == path), "{err}");
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let store = open(dir.path());
    assert_eq!(store.quarantined().len(), 1);
    assert!(store.quarantined()[0].detail.contains(&path.display().to_string()), "{:?}", store.quarantined());
}

/// Every crash point of a flush: reopen + replay returns exactly the acknowledged data.
#[test]
fn crash_at_every_flush_point_recovers_acknowledged_data() {
    for point in FLUSH_CRASH_POINTS {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::default();
        let store = open(dir.path());
        log.append_and_apply(&store, 0, 1, batch("a", "m", &[(1, 1.0)]));
        store.flush().unwrap();
        log.append_and_apply(&store, 0, 1, batch("a", "m", &[(2, 2.0), (1, 9.0)]));
        strata_hot_store::failpoint::arm(point);
        assert!(store.flush().is_err(), "{point} was reached");
        assert!(store.apply(0, 99, &batch("a", "m", &[(5, 5.0)])).is_err(), "poisoned after {point}");
        drop(store);
        let store = open(dir.path());
        log.replay(&store);
        assert_eq!(samples(&store), vec![(1, 9.0), (2, 2.0)], "{point}");
        assert!(
            std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        );
    }
}

/// Every crash point of a compaction and of an expiry.
#[test]
fn crash_at_every_compaction_and_expiry_point_is_clean() {
    for (point, expiry) in [
        ("compact.after_write", false),
        ("manifest.before_rename", false),
        ("manifest.after_rename", false),
        ("compact.before_delete_inputs", false),
        ("manifest.before_rename", true),
        ("expire.before_delete", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::default();
        let store = open(dir.path());
        for i in 0..3 {
            log.append_and_apply(&store, 0, 1, batch("a", "m", &[(i, i as f64)]));
            store.flush().unwrap();
        }
        log.append_and_apply(&store, 0, 1, batch("a", "m", &[(8_000_000, 7.0)]));
        store.flush().unwrap();
        strata_hot_store::failpoint::arm(point);
        let failed =
            if expiry { store.expire(2 * 3_600_000 + 7 * 86_400_000).is_err() } else { store.compact().is_err() };
        assert!(failed, "{point} was reached");
        drop(store);
        let store = open(dir.path());
        log.replay(&store);
        let got = samples(&store);
        let committed =
            point == "manifest.after_rename" || point.starts_with("compact.before") || point.starts_with("expire.");
        let want: Vec<(i64, f64)> = if expiry && committed {
            vec![(8_000_000, 7.0)]
        } else {
            vec![(0, 0.0), (1, 1.0), (2, 2.0), (8_000_000, 7.0)]
        };
        assert_eq!(got, want, "{point} expiry={expiry}");
        let live: Vec<_> = segment_files(dir.path());
        assert_eq!(live.len(), store.stats().segments, "{point}: no leftover files after reopen");
    }
}

#[test]
fn segments_without_a_manifest_are_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0)])).unwrap();
    let path = store.flush().unwrap().segment.unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    let err = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap_err();
    assert!(matches!(err, Error::ManifestMissing { .. }), "{err}");
    assert!(path.exists());
}

#[test]
fn crash_after_compaction_manifest_before_deleting_inputs_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..3 {
        store.apply(0, i, &batch("a", "m", &[(i as i64, i as f64)])).unwrap();
        store.flush().unwrap();
    }
    let inputs: Vec<Vec<u8>> = segment_files(dir.path()).iter().map(|p| std::fs::read(p).unwrap()).collect();
    let names = segment_files(dir.path());
    store.compact().unwrap();
    drop(store);
    for (p, b) in names.iter().zip(inputs) {
        std::fs::write(p, b).unwrap(); // as if the process died before deleting the inputs
    }
    let store = open(dir.path());
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(samples(&store), vec![(0, 0.0), (1, 1.0), (2, 2.0)]);
}

#[test]
fn expiry_needs_ttl_and_cold_watermark_and_drops_late_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hour = 3_600_000;
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0), (2 * hour + 1, 2.0)])).unwrap();
    store.flush().unwrap();
    assert_eq!(store.stats().buckets, 2);
    let now = 2 * hour + 7 * 86_400_000; // bucket 0 ended exactly TTL ago; bucket 1 not yet
    store.set_cold_watermark(&tenant("a"), hour).unwrap();
    assert_eq!(store.expire(now).unwrap().segments, 0, "the cold tier has not released bucket 0 yet");
    store.set_cold_watermark(&tenant("a"), 2 * hour).unwrap();
    store.set_cold_watermark(&tenant("a"), hour).unwrap(); // never moves back
    let out = store.expire(now).unwrap();
    assert_eq!((out.segments, out.series), (1, 0));
    assert_eq!(samples(&store), vec![(2 * hour + 1, 2.0)]);
    store.apply(0, 1, &batch("a", "m", &[(5, 5.0), (2 * hour + 2, 3.0)])).unwrap();
    assert_eq!(
        samples(&store),
        vec![(2 * hour + 1, 2.0), (2 * hour + 2, 3.0)],
        "late write into a deleted bucket is dropped"
    );
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.cold_watermark(&tenant("a")), Some(2 * hour));
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[test]
fn runtime_hot_ttls_override_the_configured_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hour = 3_600_000;
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0), (4 * hour + 1, 2.0)])).unwrap();
    store.flush().unwrap();
    let now = 5 * hour;
    assert_eq!(store.expire(now).unwrap().segments, 0, "the configured 7d TTL keeps both buckets");
    store.set_hot_ttls(std::collections::BTreeMap::from([("a".to_owned(), std::time::Duration::from_secs(3600))]));
    assert_eq!(store.hot_ttl("a"), std::time::Duration::from_secs(3600));
    assert_eq!(store.hot_ttl("b"), std::time::Duration::from_secs(7 * 86_400));
    assert_eq!(store.expire(now).unwrap().segments, 1, "a 1h TTL expires the bucket that ended 3h ago");
    assert_eq!(samples(&store), vec![(4 * hour + 1, 2.0)]);
}

#[test]
fn purge_tenant_deletes_its_segments_and_buffered_samples_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hour = 3_600_000;
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0), (2 * hour + 1, 2.0)])).unwrap();
    store.apply(0, 1, &batch("b", "m", &[(1, 5.0)])).unwrap();
    store.flush().unwrap();
    store.set_cold_watermark(&tenant("a"), hour).unwrap();
    store.apply(0, 2, &batch("a", "m", &[(3, 3.0)])).unwrap(); // buffered only
    let bytes = store.disk_bytes_by_tenant();
    assert_eq!(bytes.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert!(bytes["a"] > 0 && bytes["b"] > 0);
    let before = segment_files(dir.path()).len();

    let out = store.purge_tenant(&tenant("a")).unwrap();
    assert_eq!(out.segments, 3, "two buckets flushed earlier plus the flushed buffer");
    assert_eq!(out.series, 1);
    assert!(store.select(&tenant("a"), &[], TimeRange::ALL).unwrap().is_empty());
    assert_eq!(store.select(&tenant("b"), &[], TimeRange::ALL).unwrap().len(), 1, "other tenants keep their data");
    assert_eq!(store.tenant_series(&tenant("a")), 0);
    assert_eq!(store.cold_watermark(&tenant("a")), None);
    assert_eq!(store.disk_bytes_by_tenant().keys().collect::<Vec<_>>(), ["b"]);
    assert_eq!(segment_files(dir.path()).len(), before + 1 - 3);

    // A tenant created again under the same id starts empty and accepts old timestamps.
    store.apply(0, 3, &batch("a", "m", &[(7, 7.0)])).unwrap();
    assert_eq!(samples(&store), vec![(7, 7.0)]);
    store.flush().unwrap();
    drop(store);
    assert_eq!(samples(&open(dir.path())), vec![(7, 7.0)], "the purge is durable; nothing purged comes back");
}

#[test]
fn flush_threshold_grows_with_buffered_series() {
    let dir = tempfile::tempdir().unwrap();
    let config = HotStoreConfig { max_memtable_samples: 1000, ..HotStoreConfig::default() };
    let store = HotStore::open(dir.path(), config).unwrap();
    assert_eq!(store.flush_threshold(), 1000);
    for i in 0..20 {
        store.apply(0, i, &batch("a", &format!("m{i}"), &[(1, 1.0)])).unwrap();
    }
    assert_eq!(store.flush_threshold(), 20 * 64, "64 samples per buffered series");
    for i in 20..200 {
        store.apply(0, i, &batch("a", &format!("m{i}"), &[(1, 1.0)])).unwrap();
    }
    assert_eq!(store.flush_threshold(), 8000, "capped at 8x max_memtable_samples");
    store.flush().unwrap();
    assert_eq!(store.flush_threshold(), 1000, "back to the setting once flushed");
}

/// The crash points of a flush that encodes on several threads
/// (`HotStore::flush_on`, an explicit flush request): every file write,
/// fsync and rename stays on the flushing thread, so each point is reached
/// as in a one-thread flush, and reopen + replay returns exactly the
/// acknowledged data of every series.
#[test]
fn crash_at_every_point_of_a_flush_on_several_threads_recovers_acknowledged_data() {
    let n = 9_000usize;
    let many = |samples: &dyn Fn(usize) -> Vec<(i64, f64)>| -> strata_schemas::WriteBatch {
        let series = (0..n)
            .map(|i| {
                let labels = strata_schemas::Labels::from_pairs([("__name__", "m".to_owned()), ("i", i.to_string())]);
                strata_schemas::BatchSeries {
                    id: strata_schemas::series_id(&tenant("a"), &labels),
                    device_hash: i as u64 % 13,
                    labels,
                    samples: samples(i).into_iter().map(|(ts, v)| strata_schemas::Sample::new(ts, v)).collect(),
                }
            })
            .collect();
        strata_schemas::WriteBatch { tenant: tenant("a"), series, origin: None }
    };
    let all = |store: &HotStore| -> Vec<(String, Vec<(i64, f64)>)> {
        let got = store.select(&tenant("a"), &[], TimeRange::ALL).unwrap();
        let mut v: Vec<(String, Vec<(i64, f64)>)> = got
            .into_iter()
            .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value)).collect()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    for point in FLUSH_CRASH_POINTS {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::default();
        let store = open(dir.path());
        log.append_and_apply(&store, 0, 1, many(&|i| vec![(1_000, i as f64), (2_000, 0.5)]));
        store.flush_on(4).unwrap();
        log.append_and_apply(&store, 0, 1, many(&|i| vec![(3_000, 3.0), (1_000, 9.0 + i as f64)]));
        let want = all(&store);
        strata_hot_store::failpoint::arm(point);
        assert!(store.flush_on(4).is_err(), "{point} was reached");
        assert!(!strata_hot_store::failpoint::armed(), "{point} fired on the flushing thread");
        assert!(store.apply(0, 99, &batch("a", "m", &[(5, 5.0)])).is_err(), "poisoned after {point}");
        drop(store);
        let store = open(dir.path());
        log.replay(&store);
        assert_eq!(all(&store), want, "{point}");
        assert!(
            std::fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
        );
    }
}
