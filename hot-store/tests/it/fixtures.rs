//! Frozen on-disk formats: committed store directories of every shipped
//! segment version (`tests/fixtures/segment/v<N>/`: a `MANIFEST` and one
//! segment), manifests (`tests/fixtures/manifest/v<N>/`) and corrupt
//! variants, opened through `HotStore::open` and the segment reader.
//! `tests/fixtures/README.md` says how they were made; old versions are
//! never regenerated.

use std::path::{Path, PathBuf};

use strata_hot_store::{Error, FormatVersion, HotStore, HotStoreConfig};
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{BatchSeries, ErrorKind, Labels, ReadError, ReadStore, Sample, SeriesId, TimeRange, WriteBatch};

use crate::util::{open, tenant};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// The one segment of every segment fixture directory.
const SEGMENT: &str = "00000000000000000002.seg";
/// Start of the fixtures' 2 h bucket.
const BUCKET: i64 = 1_700_006_400_000;
/// The id the `pkts_total` series is written with: not the hash of its
/// labels (a V4+ entry then carries it explicitly).
const EXPLICIT_ID: u64 = 0x0123_4567_89ab_cdef;

/// Samples as `(ts, value bits)`: NaN payloads compare.
type Bits = Vec<(i64, u64)>;
/// Series as `(labels text, samples)`, sorted by labels.
type Contents = Vec<(String, Bits)>;

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

/// The series every segment fixture holds: labels, explicit id if any, and
/// `(ts, value bits)`. Chosen to reach every block and entry encoding:
/// exact and jittered cadences, decimal and smooth (packed) readings,
/// arbitrary doubles and a staleness marker (Gorilla), two series of one
/// device, an id that is not the labels' hash.
fn fixture_series() -> Vec<(Labels, Option<u64>, Bits)> {
    let temp: Bits = (0..20)
        .map(|i| {
            let m = 2037 + [0, 1, -1, 2, 0, -3, 1][i as usize % 7] * i;
            (BUCKET + 60_000 + i * 30_000, (m as f64 / 100.0).to_bits())
        })
        .collect();
    let jitter = [0, 13, -7, 250, -120, 0, 0, 31, -255, 4];
    let hum: Bits = (0..20)
        .map(|i| {
            (BUCKET + 61_000 + i * 30_000 + jitter[i as usize % 10], (f64::from(555 + (i % 4) as i32) / 10.0).to_bits())
        })
        .collect();
    let mut status: Bits =
        (0..7).map(|i| (BUCKET + 3_600_000 + i * 15_000, (i as f64 + 2.0).sqrt().to_bits())).collect();
    status.push((BUCKET + 3_600_000 + 7 * 15_000, STALE_NAN_BITS));
    let pkts: Bits = (0..10).map(|i| (BUCKET + 7_140_000 + i * 6_000, ((i * i * 5) as f64).to_bits())).collect();
    let l = |pairs: &[(&str, &str)]| Labels::from_pairs(pairs.iter().copied());
    vec![
        (l(&[("__name__", "temp"), ("dev", "d1"), ("site", "s1")]), None, temp),
        (l(&[("__name__", "hum"), ("dev", "d1"), ("site", "s1")]), None, hum),
        (l(&[("__name__", "status"), ("dev", "d2")]), None, status),
        (l(&[("__name__", "pkts_total"), ("dev", "d2")]), Some(EXPLICIT_ID), pkts),
    ]
}

/// The fixture series as `(labels text, samples)`, sorted by labels.
fn expected() -> Contents {
    let mut v: Vec<_> = fixture_series().into_iter().map(|(l, _, s)| (l.to_string(), s)).collect();
    v.sort();
    v
}

/// Everything tenant `acme` holds, as [`expected`] lays it out (value bits,
/// so NaN payloads compare).
fn read_all(store: &HotStore) -> Result<Contents, ReadError> {
    let got = store.select(&tenant("acme"), &[], TimeRange::ALL)?;
    let mut v: Vec<_> = got
        .into_iter()
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
        .collect();
    v.sort();
    Ok(v)
}

/// A copy of fixture directory `rel` in a temporary directory (open
/// rewrites manifests and moves corrupt segments: fixtures stay read-only).
fn copy_dir(rel: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture(rel)).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && e.file_name() != "README.md" {
            std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
    }
    dir
}

/// Opens the committed store directory of segment version `v` and checks
/// it serves exactly the fixture series, then reads the segment file alone
/// through the segment reader.
fn segment_fixture_reads_exactly(v: u8) {
    let rel = format!("segment/v{v}");
    let seg = fixture(&format!("{rel}/{SEGMENT}"));
    let bytes = std::fs::read(&seg).unwrap();
    assert_eq!((&bytes[..4], bytes[4]), (&b"SHSG"[..], v), "{}", seg.display());
    assert!(bytes.len() < 4096, "keep fixtures small: {} bytes", bytes.len());

    let dir = copy_dir(&rel);
    let store = open(dir.path());
    assert_eq!(store.stats().segments, 1);
    assert!(store.quarantined().is_empty(), "{:?}", store.quarantined());
    assert_eq!(read_all(&store).unwrap(), expected(), "v{v}");
    for (labels, id, _) in fixture_series() {
        let id = id.map_or_else(|| strata_schemas::series_id(&tenant("acme"), &labels), SeriesId);
        assert!(store.contains_series(&tenant("acme"), id, &labels), "v{v}: {labels} with id {id:?}");
    }
    assert_eq!(store.replay_from(0), 4, "v{v}: the manifest's flushed offset");

    let mut direct: Contents = strata_hot_store::fuzz::segment_read(&seg)
        .unwrap()
        .into_iter()
        .map(|(labels, samples)| (Labels::from_pairs(labels).to_string(), samples))
        .collect();
    direct.sort();
    assert_eq!(direct, expected(), "v{v} through the segment reader");
}

#[test]
fn segment_v2_fixture_reads_exactly() {
    segment_fixture_reads_exactly(2);
}

#[test]
fn segment_v3_fixture_reads_exactly() {
    segment_fixture_reads_exactly(3);
}

#[test]
fn segment_v4_fixture_reads_exactly() {
    segment_fixture_reads_exactly(4);
}

#[test]
fn segment_v5_fixture_reads_exactly() {
    segment_fixture_reads_exactly(5);
}

/// V6: the segment a flush wrote holds stream blocks (memtable chunks
/// copied), in decimal and Gorilla modes.
#[test]
fn segment_v6_fixture_reads_exactly() {
    segment_fixture_reads_exactly(6);
}

/// The v6 fixture's stream blocks are what makes compaction rewrite a
/// bucket's only segment: afterwards its blocks are V4 blocks (a second
/// compaction has nothing to do) with the same samples.
#[test]
fn v6_stream_blocks_compact_into_v4_blocks_with_the_same_samples() {
    let dir = copy_dir("segment/v6");
    let store = open(dir.path());
    let out = store.compact().unwrap();
    assert_eq!((out.buckets, out.input_segments, out.samples), (1, 1, 58));
    assert_eq!(read_all(&store).unwrap(), expected());
    assert_eq!(store.compact().unwrap().buckets, 0, "nothing left to rewrite");
    drop(store);
    assert_eq!(read_all(&open(dir.path())).unwrap(), expected(), "after reopening");
}

/// An old segment in a bucket that gets a new flush is rewritten in the
/// current version by compaction, with the same samples.
#[test]
fn old_segments_compact_into_the_current_version() {
    for v in [2, 3, 4, 5] {
        let dir = copy_dir(&format!("segment/v{v}"));
        let store = open(dir.path());
        let batch = crate::util::batch("acme", "extra", &[(BUCKET + 5, 1.0)]);
        store.apply(0, 4, &batch).unwrap();
        store.flush().unwrap();
        assert_eq!(store.compact().unwrap().buckets, 1, "v{v}");
        let mut want = expected();
        want.push(("extra{}".to_owned(), vec![(BUCKET + 5, 1.0f64.to_bits())]));
        want.sort();
        assert_eq!(read_all(&store).unwrap(), want, "v{v}");
        drop(store);
        let segs: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        assert_eq!(segs.len(), 1, "v{v}: {segs:?}");
        assert_eq!(std::fs::read(&segs[0]).unwrap()[4], FormatVersion::CURRENT.as_u8(), "v{v}");
        assert_eq!(read_all(&open(dir.path())).unwrap(), want, "v{v} after reopen");
    }
}

/// The current version's directory with its segment replaced by corrupt
/// variant `name`; returns the directory and the live segment's path.
fn corrupt_store(name: &str) -> (tempfile::TempDir, PathBuf) {
    let v = FormatVersion::CURRENT.as_u8();
    let dir = copy_dir(&format!("segment/v{v}"));
    let seg = dir.path().join(SEGMENT);
    std::fs::copy(fixture(&format!("segment/v{v}/corrupt/{name}")), &seg).unwrap();
    (dir, seg)
}

fn corrupt_segment(name: &str) -> PathBuf {
    fixture(&format!("segment/v{}/corrupt/{name}", FormatVersion::CURRENT.as_u8()))
}

/// Open quarantined the segment: nothing served, the file moved aside, the
/// manifest no longer lists it.
fn assert_quarantined_on_open(dir: &Path, seg: &Path, store: &HotStore, detail: &str) {
    let q = store.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!((q[0].path.as_path(), q[0].tenant.as_str(), q[0].bucket), (seg, "acme", BUCKET));
    assert!(q[0].detail.contains(detail), "{:?}", q[0].detail);
    assert!(!seg.exists() && dir.join("quarantine").join(SEGMENT).exists());
    assert_eq!(read_all(store).unwrap(), vec![]);
    assert_eq!(open(dir).stats().segments, 0, "the manifest dropped it");
}

/// A byte flipped inside sample block 1: the index is intact, so the store
/// opens; the read fails naming file, tenant, bucket, block and offset, and
/// the segment is quarantined.
#[test]
fn segment_with_a_flipped_block_byte_fails_the_read_and_is_quarantined() {
    let blocks = strata_hot_store::fuzz::segment_blocks(&corrupt_segment("flipped-block.seg")).unwrap();
    let offset = blocks[1].0;
    let err = strata_hot_store::fuzz::segment_read(&corrupt_segment("flipped-block.seg")).unwrap_err();
    assert!(err.contains(&format!("block 1 at offset {offset}")) && err.contains("checksum"), "{err}");

    let (dir, seg) = corrupt_store("flipped-block.seg");
    let store = open(dir.path());
    assert!(store.quarantined().is_empty());
    match read_all(&store) {
        Err(ReadError::Corrupted { location, detail }) => {
            let want = format!("{} (tenant acme, bucket {BUCKET}) block 1 at offset {offset}", seg.display());
            assert_eq!(location, want);
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected Corrupted, got {other:?}"),
    }
    assert_quarantined_on_open(dir.path(), &seg, &store, "checksum");
}

/// A byte flipped in the middle of the index section: open checks its CRC
/// and quarantines the segment.
#[test]
fn segment_with_a_flipped_index_byte_is_quarantined_on_open() {
    let path = corrupt_segment("flipped-index.seg");
    let err = strata_hot_store::fuzz::segment_blocks(&path).unwrap_err();
    assert!(matches!(&err, Error::ChecksumMismatch { what: "index", path: p, .. } if *p == path), "{err}");
    let (dir, seg) = corrupt_store("flipped-index.seg");
    let store = open(dir.path());
    assert_quarantined_on_open(dir.path(), &seg, &store, "checksum mismatch in index");
}

/// The last 9 bytes missing (a torn write): the trailer's magic is gone.
#[test]
fn truncated_segment_is_quarantined_on_open() {
    let path = corrupt_segment("truncated.seg");
    let err = strata_hot_store::fuzz::segment_blocks(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { detail, .. } if detail == "bad trailing magic (torn or truncated segment)"),
        "{err}"
    );
    let (dir, seg) = corrupt_store("truncated.seg");
    let store = open(dir.path());
    assert_quarantined_on_open(dir.path(), &seg, &store, &seg.display().to_string());
}

/// Not a segment: the header magic is wrong (its checksum is right).
#[test]
fn segment_with_a_bad_magic_is_quarantined_on_open() {
    let err = strata_hot_store::fuzz::segment_blocks(&corrupt_segment("bad-magic.seg")).unwrap_err();
    assert!(matches!(&err, Error::Corrupted { detail, .. } if detail.contains("bad header magic")), "{err}");
    let (dir, seg) = corrupt_store("bad-magic.seg");
    let store = open(dir.path());
    assert_quarantined_on_open(dir.path(), &seg, &store, "bad header magic");
}

/// Version bytes this build does not read (1: the retired first format; 6:
/// a future one), header checksums right: `UnsupportedFormatVersion`, which
/// is a corruption for a segment the manifest lists, so it is quarantined.
#[test]
fn segment_with_an_unsupported_version_is_refused_and_quarantined() {
    for found in [1, FormatVersion::CURRENT.as_u8() + 1] {
        let name = &format!("version-{found}.seg");
        let err = strata_hot_store::fuzz::segment_blocks(&corrupt_segment(name)).unwrap_err();
        assert!(matches!(err, Error::UnsupportedFormatVersion { found: f, .. } if f == found), "{err}");
        assert_eq!(err.kind(), ErrorKind::Corruption);
        let (dir, seg) = corrupt_store(name);
        let store = open(dir.path());
        assert_quarantined_on_open(dir.path(), &seg, &store, &format!("unsupported format version {found}"));
    }
}

// ---- manifest ----

/// Every shipped manifest version opens: v2 and v3 (the segment fixture
/// directories' own), v4, v5 and v6 (`manifest/`; v5 and v6 with edge
/// origins), and the store writes the current version on its next flush.
#[test]
fn every_manifest_version_opens_and_is_rewritten_as_current() {
    for rel in ["segment/v2", "segment/v3", "manifest/v4", "manifest/v5", "manifest/v6"] {
        let dir = copy_dir(rel);
        let v = std::fs::read(dir.path().join("MANIFEST")).unwrap()[4];
        let store = open(dir.path());
        let (p0, p3) = (store.replay_from(0), store.replay_from(3));
        assert_eq!(format!("v{v}"), rel.rsplit('/').next().unwrap());
        let want = if rel.starts_with("manifest") { (5, 2) } else { (4, 0) };
        assert_eq!((p0, p3), want, "{rel}");
        let batch = crate::util::batch("acme", "m", &[(BUCKET, 1.0)]);
        store.apply(0, p0, &batch).unwrap();
        store.flush().unwrap();
        drop(store);
        let rewritten = std::fs::read(dir.path().join("MANIFEST")).unwrap();
        assert_eq!(rewritten[4], FormatVersion::CURRENT.as_u8(), "{rel} (was v{v})");
        assert_eq!(open(dir.path()).replay_from(0), p0 + 1, "{rel}");
    }
}

fn open_manifest_variant(name: &str) -> (PathBuf, Error) {
    let dir = tempfile::tempdir().unwrap();
    let v = FormatVersion::CURRENT.as_u8();
    std::fs::copy(fixture(&format!("manifest/v{v}/corrupt/{name}")), dir.path().join("MANIFEST")).unwrap();
    let err = HotStore::open(dir.path(), HotStoreConfig::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{name}: {err}");
    (dir.path().join("MANIFEST"), err)
}

/// A corrupt manifest fails the open (it is never guessed around), naming
/// the file and what is wrong.
#[test]
fn corrupt_manifests_fail_open_with_the_specific_error() {
    let (path, err) = open_manifest_variant("flipped-body");
    assert!(matches!(&err, Error::ChecksumMismatch { what: "manifest body", path: p, .. } if *p == path), "{err}");
    let (path, err) = open_manifest_variant("truncated");
    assert!(
        matches!(&err, Error::Corrupted { detail, path: p } if *p == path && detail.contains("header says")),
        "{err}"
    );
    let (_, err) = open_manifest_variant("bad-magic");
    assert!(matches!(&err, Error::Corrupted { detail, .. } if detail == "bad magic (not a manifest)"), "{err}");
    for found in [1, FormatVersion::CURRENT.as_u8() + 1] {
        let (path, err) = open_manifest_variant(&format!("version-{found}"));
        assert!(
            matches!(&err, Error::UnsupportedFormatVersion { found: f, path: p, .. } if *f == found && *p == path),
            "{err}"
        );
    }
}

// ---- generator ----

/// Writes the current version's fixtures: `segment/v<CURRENT>/` (a store
/// directory written by this build) and its corrupt variants. Run after a
/// format change has added a new version, never to refresh an old one:
/// `cargo test -p strata-hot-store --test it regenerate_current_fixtures -- --ignored`.
#[test]
#[ignore = "writes tests/fixtures/segment/v<CURRENT>; run by hand after a format change"]
fn regenerate_current_fixtures() {
    let v = FormatVersion::CURRENT.as_u8();
    let out = fixture(&format!("segment/v{v}"));
    std::fs::create_dir_all(out.join("corrupt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let acme = tenant("acme");
    for (offset, (labels, id, samples)) in fixture_series().into_iter().enumerate() {
        let id = id.map_or_else(|| strata_schemas::series_id(&acme, &labels), SeriesId);
        let device_hash = strata_schemas::device_hash(&acme, &labels, "dev", id);
        let samples = samples.iter().map(|&(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect();
        let batch = WriteBatch {
            tenant: acme.clone(),
            series: vec![BatchSeries { id, device_hash, labels, samples }],
            origin: None,
        };
        store.apply(0, offset as u64, &batch).unwrap();
    }
    let flushed = store.flush().unwrap();
    assert_eq!(flushed.segments, [dir.path().join(SEGMENT)], "one segment");
    drop(store);
    for name in ["MANIFEST", SEGMENT] {
        std::fs::copy(dir.path().join(name), out.join(name)).unwrap();
    }
    let good = std::fs::read(out.join(SEGMENT)).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join("corrupt").join(name), bytes).unwrap();
    let blocks = strata_hot_store::fuzz::segment_blocks(&out.join(SEGMENT)).unwrap();
    let mut b = good.clone();
    b[(blocks[1].0 + blocks[1].1 / 2) as usize] ^= 0x10;
    write("flipped-block.seg", &b);
    let index_offset = u64::from_le_bytes(good[good.len() - 28..good.len() - 20].try_into().unwrap()) as usize;
    let mut b = good.clone();
    b[(index_offset + good.len() - 28) / 2] ^= 0x10;
    write("flipped-index.seg", &b);
    write("truncated.seg", &good[..good.len() - 9]);
    let with_header = |magic: &[u8; 4], version: u8| {
        let mut b = good.clone();
        b[..4].copy_from_slice(magic);
        b[4] = version;
        let crc = crc32fast::hash(&b[..8]);
        b[8..12].copy_from_slice(&crc.to_le_bytes());
        b
    };
    write("bad-magic.seg", &with_header(b"SHSX", v));
    write("version-1.seg", &with_header(b"SHSG", 1));
    write(&format!("version-{}.seg", v + 1), &with_header(b"SHSG", v + 1));

    // Manifest variants, from the current version's frozen manifest
    // (written byte for byte by `manifest::tests::version_6_is_frozen`).
    let out = fixture(&format!("manifest/v{v}/corrupt"));
    std::fs::create_dir_all(&out).unwrap();
    let good = std::fs::read(fixture(&format!("manifest/v{v}/MANIFEST"))).unwrap();
    assert_eq!(good[4], v);
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join(name), bytes).unwrap();
    let mut b = good.clone();
    b[20 + (good.len() - 20) / 2] ^= 0x01;
    write("flipped-body", &b);
    write("truncated", &good[..good.len() - 9]);
    let mut b = good.clone();
    b[..4].copy_from_slice(b"SHMX");
    write("bad-magic", &b);
    for found in [1, v + 1] {
        let mut b = good.clone();
        b[4] = found;
        write(&format!("version-{found}"), &b);
    }
}
