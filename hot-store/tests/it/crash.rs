//! Crash scenarios: the state a crash can leave at each step of the flush
//! protocol, and corruption that must fail loudly.

use strata_hot_store::{Error, HotStore, HotStoreConfig};
use strata_schemas::{ErrorKind, ReadError, ReadStore, TimeRange};

use crate::util::{Log, batch, open, tenant};

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

#[test]
fn corrupt_segment_index_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0), (2, 2.0)])).unwrap();
    let path = store.flush().unwrap().segment.unwrap();
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 0x08; // last byte of the index section
    std::fs::write(&path, &bytes).unwrap();
    let err = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn corrupt_sample_block_fails_select_naming_file_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0), (2, 2.0)])).unwrap();
    let path = store.flush().unwrap().segment.unwrap();
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[13] ^= 0x02; // inside block 0 (blocks start at byte 12)
    std::fs::write(&path, &bytes).unwrap();
    let store = open(dir.path());
    match store.select(&tenant("a"), &[], TimeRange::ALL) {
        Err(ReadError::Corrupted { location, .. }) => {
            assert!(location.contains(&path.display().to_string()) && location.contains("block 0"), "{location}");
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
    assert!(store.compact().is_ok(), "one segment: nothing to compact");
}

#[test]
fn missing_or_truncated_segment_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.apply(0, 0, &batch("a", "m", &[(1, 1.0)])).unwrap();
    let path = store.flush().unwrap().segment.unwrap();
    drop(store);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let err = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap_err();
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    std::fs::remove_file(&path).unwrap();
    let err = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap_err();
    assert!(matches!(&err, Error::MissingSegment { path: p } if *p == path), "{err}");
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
