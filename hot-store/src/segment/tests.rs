use super::*;
use crate::error::Error;

fn labels(pairs: &[(&str, &str)]) -> LabelArcs {
    pairs.iter().map(|(n, v)| (Str::from(*n), Str::from(*v))).collect()
}

fn scope() -> SegmentScope {
    SegmentScope { tenant: TenantId::new("a").unwrap(), bucket: 0, bucket_len: 7_200_000 }
}

fn records() -> Vec<SeriesRecord> {
    let samples = |n: i64, base: f64| (0..n).map(|i| (1000 + i * 10, (base + i as f64).to_bits())).collect();
    let rec = |id: u64, dh: u64, l: &[(&str, &str)], samples| SeriesRecord {
        id: SeriesId(id),
        device_hash: dh,
        labels: labels(l),
        samples,
    };
    vec![
        rec(1, 0, &[("__name__", "m"), ("x", "1")], samples(5, 0.5)),
        rec(1, 0, &[("__name__", "m"), ("x", "2")], samples(1, 7.0)),
        rec(0, 9, &[("__name__", "n")], samples(30, -3.0)),
    ]
}

fn write(dir: &Path) -> PathBuf {
    write_segment(dir, 1, &scope(), records().into_iter().map(Ok)).unwrap().path
}

#[test]
fn round_trips_index_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    assert!(!dir.path().join("00000000000000000001.seg.tmp").exists());
    let (file, index) = open_segment(&path).unwrap();
    assert_eq!(file.scope, scope());
    assert_eq!(index.len(), 3);
    for (s, rec) in index.iter().zip(records()) {
        assert_eq!((s.id, s.device_hash, &s.labels), (rec.id, rec.device_hash, &rec.labels));
        let meta = &s.meta;
        assert_eq!(
            (meta.min_ts, meta.max_ts, meta.count),
            (1000, rec.samples.last().unwrap().0, rec.samples.len() as u32)
        );
        assert_eq!(file.read_block(meta).unwrap(), rec.samples);
    }
}

#[test]
fn header_layout_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(write(dir.path())).unwrap();
    assert_eq!(&bytes[..8], b"SHSG\x03\0\0\0");
    assert_eq!(&bytes[bytes.len() - 4..], b"SHSG");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), crc32fast::hash(b"SHSG\x03\0\0\0"));
}

#[test]
fn corrupt_block_byte_is_reported_with_file_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let (_, index) = open_segment(&path).unwrap();
    let target = index[2].meta;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(target.offset + 3) as usize] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (file, _) = open_segment(&path).expect("the index is intact, so open succeeds");
    assert!(file.read_block(&index[0].meta).is_ok());
    match file.read_block(&target) {
        Err(ReadError::Corrupted { location, detail }) => {
            assert!(location.contains(&path.display().to_string()) && location.contains("block 2"), "{location}");
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
}

#[test]
fn corrupt_index_byte_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - TRAILER_LEN as usize - 5] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = open_segment(&path).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { what: "index", .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn every_flipped_byte_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let good = std::fs::read(&path).unwrap();
    for i in 0..good.len() {
        let mut bytes = good.clone();
        bytes[i] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let detected = match open_segment(&path) {
            Err(_) => true,
            Ok((file, index)) => index.iter().any(|s| file.read_block(&s.meta).is_err()),
        };
        assert!(detected, "flip at byte {i} went unnoticed");
    }
}

#[test]
fn truncated_segment_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let good = std::fs::read(&path).unwrap();
    for cut in [0, 11, 40, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        let err = open_segment(&path).unwrap_err();
        assert_eq!(err.kind(), strata_schemas::ErrorKind::Corruption, "cut {cut}: {err}");
    }
}

#[test]
fn rejects_unsupported_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4] = 1;
    let crc = crc32fast::hash(&bytes[..8]);
    bytes[8..12].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = open_segment(&path).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormatVersion { found: 1, .. }), "{err}");
}

#[test]
fn missing_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000009.seg");
    assert!(matches!(open_segment(&path), Err(Error::MissingSegment { path: p }) if p == path));
}

#[test]
fn empty_segment_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_segment(dir.path(), 3, &scope(), std::iter::empty()).unwrap();
    let (_, index) = open_segment(&w.path).unwrap();
    assert!(index.is_empty());
}
