use super::*;

fn sample() -> Manifest {
    Manifest {
        generation: 3,
        bucket_ms: 7_200_000,
        segments: vec![SegmentEntry {
            id: 2,
            file: "00000000000000000002.seg".into(),
            size: 99,
            tenant: "acme".into(),
            bucket: 7_200_000,
            seq: 2,
        }],
        flushed_offsets: BTreeMap::from([(0, 10), (7, 3)]),
        expired_before: BTreeMap::from([("acme".into(), 0)]),
        cold_watermarks: BTreeMap::new(),
        edge_origins: BTreeMap::from([(7, BTreeMap::from([("gw-1".into(), "1-3,9 @2".into())]))]),
    }
}

#[test]
fn round_trips() {
    assert_eq!(decode(&encode(&sample())).unwrap(), sample());
}

#[test]
fn header_layout_is_stable() {
    let bytes = encode(&Manifest::default());
    assert_eq!(&bytes[..8], b"SHMF\x06\0\0\0");
    assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize, bytes.len() - 20);
}

#[test]
fn rejects_any_flipped_byte_or_truncation() {
    let bytes = encode(&sample());
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x20;
        assert!(decode(&b).is_err(), "flip at {i}");
        assert!(decode(&bytes[..i]).is_err(), "cut at {i}");
    }
}

/// A version-4 manifest (before edge origins), frozen.
const FROZEN_V4: &[u8] = include_bytes!("../../tests/fixtures/manifest/v4/MANIFEST");
/// A version-5 manifest with edge origins, frozen.
const FROZEN_V5: &[u8] = include_bytes!("../../tests/fixtures/manifest/v5/MANIFEST");
/// The same manifest in version 6 (segments changed, the manifest body
/// did not), frozen: what this build writes.
const FROZEN_V6: &[u8] = include_bytes!("../../tests/fixtures/manifest/v6/MANIFEST");

fn frozen(generation: u64, edge_origins: BTreeMap<u32, BTreeMap<String, String>>) -> Manifest {
    Manifest {
        generation,
        bucket_ms: 7_200_000,
        segments: Vec::new(),
        flushed_offsets: BTreeMap::from([(0, 5), (3, 2)]),
        expired_before: BTreeMap::from([("acme".into(), 0)]),
        cold_watermarks: BTreeMap::new(),
        edge_origins,
    }
}

#[test]
fn still_reads_version_4() {
    assert_eq!(FROZEN_V4[4], 4);
    assert_eq!(decode(FROZEN_V4).unwrap(), frozen(3, BTreeMap::new()));
}

fn with_origins() -> Manifest {
    let agents = |v: &[(&str, &str)]| v.iter().map(|&(a, s)| (a.to_owned(), s.to_owned())).collect();
    frozen(
        4,
        BTreeMap::from([(0, agents(&[("gw-1", "1-3,9 @4"), ("gw-2", "7 @2")])), (3, agents(&[("gw-1", "1-3 @1")]))]),
    )
}

#[test]
fn still_reads_version_5() {
    assert_eq!(FROZEN_V5[4], 5);
    assert_eq!(decode(FROZEN_V5).unwrap(), with_origins());
}

#[test]
fn version_6_is_frozen() {
    let m = with_origins();
    assert_eq!(decode(FROZEN_V6).unwrap(), m);
    assert_eq!(encode(&m), FROZEN_V6);
    // Only the version byte changed from V5.
    assert_eq!((&FROZEN_V6[..4], &FROZEN_V6[5..]), (&FROZEN_V5[..4], &FROZEN_V5[5..]));
    // Without edge origins the body is a version-4 body.
    let v4 = frozen(3, BTreeMap::new());
    assert_eq!(encode(&v4)[20..], FROZEN_V4[20..]);
}

#[test]
fn rejects_future_versions() {
    let mut b = encode(&sample());
    b[4] = 9;
    assert!(matches!(decode(&b), Err(Invalid::Version(9))));
}

#[test]
fn store_then_load_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load(dir.path()).unwrap(), None);
    store(dir.path(), &Manifest::default()).unwrap();
    store(dir.path(), &sample()).unwrap();
    assert_eq!(load(dir.path()).unwrap(), Some(sample()));
    assert!(!dir.path().join("MANIFEST.tmp").exists());
}
