//! Frozen local-log files: a committed log directory written by this build
//! (`tests/fixtures/log/v1/`: `log.meta` and one segment per partition) and
//! corrupt variants of a segment, opened with `LocalLog::open`.
//! `tests/fixtures/README.md` says how they were made; old versions are
//! never regenerated.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use strata_ingest::log::IngestLog;
use strata_ingest::{Error, LocalLog, LogConfig, LogRecord};
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{
    BatchOrigin, BatchSeries, DiscardSink, ErrorKind, Labels, Sample, SeriesId, TenantId, WriteBatch,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/log");
/// The log format version this build writes (segment header byte 8).
const CURRENT: u8 = 1;
/// Partition 0's only segment in the fixture.
const P0_SEGMENT: &str = "p0000/00000000000000000000.seg";

fn config() -> LogConfig {
    LogConfig { partitions: 2, ..LogConfig::default() }
}

fn open(dir: &Path) -> strata_ingest::Result<LocalLog> {
    LocalLog::open(dir, &config(), |_| 0, Arc::new(DiscardSink))
}

/// One series of [`batch`]: labels and `(ts, value bits)`.
type SeriesSpec<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, u64)]);

fn batch(tenant: &str, origin: Option<(&str, u64)>, series: &[SeriesSpec<'_>]) -> WriteBatch {
    let tenant = TenantId::new(tenant).unwrap();
    let series = series
        .iter()
        .map(|(labels, samples)| {
            let labels = Labels::from_pairs(labels.iter().copied());
            let id = strata_schemas::series_id(&tenant, &labels);
            BatchSeries {
                id,
                device_hash: strata_schemas::device_hash(&tenant, &labels, "device", id),
                labels,
                samples: samples.iter().map(|&(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect(),
            }
        })
        .collect();
    WriteBatch { tenant, series, origin: origin.map(|(a, s)| BatchOrigin::new(a, s).unwrap()) }
}

/// The records of the fixture log, per partition in offset order.
fn fixture_records() -> [Vec<WriteBatch>; 2] {
    let t = 1_700_000_000_000;
    let p0 = vec![
        batch(
            "acme",
            None,
            &[(&[("__name__", "temp"), ("device", "d1")], &[(t, 21.5f64.to_bits()), (t + 10_000, 21.75f64.to_bits())])],
        ),
        batch(
            "acme",
            Some(("farm-7-gw-1.0123456789abcdef", 41)),
            &[
                (&[("__name__", "temp"), ("device", "d1")], &[(t + 20_000, 22.0f64.to_bits())]),
                (
                    &[("__name__", "hum"), ("device", "d1")],
                    &[(t + 20_000, 55.0f64.to_bits()), (t + 30_000, STALE_NAN_BITS)],
                ),
            ],
        ),
        batch("acme", None, &[(&[("__name__", "temp"), ("device", "d1")], &[(t - 5_000, (-0.0f64).to_bits())])]),
    ];
    let p1 = vec![
        batch("globex", None, &[(&[("__name__", "up"), ("job", "x")], &[(t, 1.0f64.to_bits())])]),
        batch("globex", Some(("gw", 1)), &[(&[("__name__", "up"), ("job", "x")], &[(t + 1, 0.0f64.to_bits())])]),
    ];
    [p0, p1]
}

/// A series of [`Bits`]: id, device hash, labels text, `(ts, value bits)`.
type BitsSeries = (SeriesId, u64, String, Vec<(i64, u64)>);

/// A batch with its values as bit patterns (NaN compares equal to itself).
#[derive(Debug, PartialEq)]
struct Bits {
    tenant: String,
    origin: Option<BatchOrigin>,
    series: Vec<BitsSeries>,
}

fn bits(b: &WriteBatch) -> Bits {
    Bits {
        tenant: b.tenant.as_str().to_owned(),
        origin: b.origin.clone(),
        series: b
            .series
            .iter()
            .map(|s| {
                let samples = s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect();
                (s.id, s.device_hash, s.labels.to_string(), samples)
            })
            .collect(),
    }
}

/// `(offset, decoded record)` of partition `p`, from offset 0 on.
fn replay(log: &LocalLog, p: u32) -> Vec<(u64, Bits)> {
    let mut out = Vec::new();
    log.replay(p, 0, &mut |o, payload| {
        out.push((o, bits(&WriteBatch::decode(payload).expect("a frozen record decodes"))));
        Ok(())
    })
    .unwrap();
    out
}

fn numbered(records: &[WriteBatch], offsets: &[u64]) -> Vec<(u64, Bits)> {
    offsets.iter().map(|&o| (o, bits(&records[o as usize]))).collect()
}

/// Copies the fixture log directory (not its `corrupt/` variants) into a
/// temporary one: opening repairs and writes.
fn copy_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = Path::new(FIXTURES).join(format!("v{CURRENT}"));
    std::fs::copy(from.join("log.meta"), dir.path().join("log.meta")).unwrap();
    for p in ["p0000", "p0001"] {
        std::fs::create_dir(dir.path().join(p)).unwrap();
        for e in std::fs::read_dir(from.join(p)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join(p).join(e.file_name())).unwrap();
        }
    }
    dir
}

/// The fixture log with partition 0's segment replaced by variant `name`.
fn corrupt_log(name: &str) -> tempfile::TempDir {
    let dir = copy_log();
    let variant = Path::new(FIXTURES).join(format!("v{CURRENT}/corrupt/{name}"));
    std::fs::copy(variant, dir.path().join(P0_SEGMENT)).unwrap();
    dir
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn log_v1_fixture_replays_exactly() {
    let bytes = std::fs::read(Path::new(FIXTURES).join(format!("v1/{P0_SEGMENT}"))).unwrap();
    assert_eq!((&bytes[..8], bytes[8]), (&b"STRATLOG"[..], 1));
    let meta = std::fs::read_to_string(Path::new(FIXTURES).join("v1/log.meta")).unwrap();
    assert_eq!(meta, r#"{"version":1,"partitions":2}"#);
    let dir = copy_log();
    let log = open(dir.path()).unwrap();
    let [p0, p1] = fixture_records();
    assert_eq!(replay(&log, 0), numbered(&p0, &[0, 1, 2]));
    assert_eq!(replay(&log, 1), numbered(&p1, &[0, 1]));
    assert_eq!((log.next_offset(0), log.next_offset(1)), (3, 2));
    assert_eq!(log.health().quarantined_segments.load(Ordering::Relaxed), 0);
    // Values compare bitwise: the staleness marker and −0.0 survive.
    assert_eq!(replay(&log, 0)[1].1.series[1].3[1].1, STALE_NAN_BITS);
    assert_eq!(replay(&log, 0)[2].1.series[0].3[0].1, (-0.0f64).to_bits());
    log.close();
    assert!(!dir.path().join("quarantine").exists());
}

/// A byte flipped in the payload of record 1: damage. A copy goes to
/// `quarantine/`, record 0 stays, record 2 moves to a file of its own,
/// offset 1 is lost (a gap) and counted.
#[test]
fn log_segment_with_a_flipped_payload_byte_is_quarantined_and_the_rest_kept() {
    let dir = corrupt_log("flipped-frame.seg");
    let log = open(dir.path()).unwrap();
    let [p0, p1] = fixture_records();
    assert_eq!(replay(&log, 0), numbered(&p0, &[0, 2]));
    assert_eq!(replay(&log, 1), numbered(&p1, &[0, 1]), "other partitions untouched");
    assert_eq!(log.next_offset(0), 3);
    let h = log.health();
    assert_eq!(h.quarantined_segments.load(Ordering::Relaxed), 1);
    assert_eq!(h.lost_offsets.load(Ordering::Relaxed), 1);
    let variant = std::fs::read(Path::new(FIXTURES).join("v1/corrupt/flipped-frame.seg")).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("quarantine/p0000-00000000000000000000.seg")).unwrap(),
        variant,
        "a copy of the whole file"
    );
    let files = segment_files(&dir.path().join("p0000"));
    let names: Vec<_> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["00000000000000000000.seg", "00000000000000000002.seg"]);
    log.close();
}

/// The last 5 bytes missing: a torn tail (never acknowledged). Truncated to
/// the last whole frame, no quarantine, and offset 2 is handed out again.
#[test]
fn log_segment_with_a_torn_tail_is_truncated() {
    let dir = corrupt_log("truncated.seg");
    let log = open(dir.path()).unwrap();
    let [p0, _] = fixture_records();
    assert_eq!(replay(&log, 0), numbered(&p0, &[0, 1]));
    assert_eq!(log.next_offset(0), 2, "the torn record's offset is reused");
    assert_eq!(log.health().quarantined_segments.load(Ordering::Relaxed), 0);
    assert!(!dir.path().join("quarantine").exists());
    let full = std::fs::read(Path::new(FIXTURES).join(format!("v1/{P0_SEGMENT}"))).unwrap();
    let kept = std::fs::read(dir.path().join(P0_SEGMENT)).unwrap();
    assert!(full.starts_with(&kept) && kept.len() < full.len() - 5, "cut after record 1");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let offsets = rt.block_on(log.append(vec![LogRecord::new(0, p0[2].to_bytes())])).unwrap();
    assert_eq!(offsets, [2]);
    assert_eq!(replay(&log, 0), numbered(&p0, &[0, 1, 2]));
    log.close();
}

/// A header whose magic is wrong: damage to acknowledged records. The file
/// is quarantined (a copy), its header rewritten from the file name, and
/// every frame (intact) is kept.
#[test]
fn log_segment_with_a_bad_magic_is_quarantined_and_its_header_rewritten() {
    let dir = corrupt_log("bad-magic.seg");
    let log = open(dir.path()).unwrap();
    let [p0, _] = fixture_records();
    assert_eq!(replay(&log, 0), numbered(&p0, &[0, 1, 2]));
    assert_eq!(log.health().quarantined_segments.load(Ordering::Relaxed), 1);
    assert_eq!(log.health().lost_offsets.load(Ordering::Relaxed), 0);
    assert!(dir.path().join("quarantine/p0000-00000000000000000000.seg").exists());
    let fixed = std::fs::read(dir.path().join(P0_SEGMENT)).unwrap();
    let good = std::fs::read(Path::new(FIXTURES).join(format!("v1/{P0_SEGMENT}"))).unwrap();
    assert_eq!(fixed, good, "the header is rewritten as this build writes it");
    log.close();
}

/// An intact header (checksum right) of a version this build does not
/// write: the log refuses to open, naming the file.
#[test]
fn log_segment_of_another_version_refuses_to_open() {
    let dir = corrupt_log("version-2.seg");
    let err = open(dir.path()).unwrap_err();
    let path = dir.path().join(P0_SEGMENT);
    assert!(matches!(&err, Error::UnsupportedFormatVersion { path: p, found: 2, supported: 1 } if *p == path), "{err}");
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

/// Writes the current version's fixture (`tests/fixtures/log/v<CURRENT>/`)
/// and its corrupt variants through `LocalLog::append`. Run only when a new
/// version is added, never to refresh an old one:
/// `cargo test -p strata-ingest --test it regenerate_current_fixtures -- --ignored`.
#[test]
#[ignore = "writes tests/fixtures/log/v<CURRENT>; run by hand after a format change"]
fn regenerate_current_fixtures() {
    let out = Path::new(FIXTURES).join(format!("v{CURRENT}"));
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (p, records) in fixture_records().iter().enumerate() {
        for r in records {
            rt.block_on(log.append(vec![LogRecord::new(p as u32, r.to_bytes())])).unwrap();
        }
    }
    log.close();
    std::fs::create_dir_all(out.join("corrupt")).unwrap();
    std::fs::copy(dir.path().join("log.meta"), out.join("log.meta")).unwrap();
    for p in ["p0000", "p0001"] {
        std::fs::create_dir_all(out.join(p)).unwrap();
        let files = segment_files(&dir.path().join(p));
        assert_eq!(files.len(), 1, "{files:?}");
        std::fs::copy(&files[0], out.join(p).join(files[0].file_name().unwrap())).unwrap();
    }
    let good = std::fs::read(out.join(P0_SEGMENT)).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join("corrupt").join(name), bytes).unwrap();
    // Record 1's frame: after the 25-byte header and record 0's frame.
    let len0 = u32::from_le_bytes(good[25..29].try_into().unwrap()) as usize;
    let frame1 = 25 + 16 + len0;
    let len1 = u32::from_le_bytes(good[frame1..frame1 + 4].try_into().unwrap()) as usize;
    let mut b = good.clone();
    b[frame1 + 16 + len1 / 2] ^= 0x04;
    write("flipped-frame.seg", &b);
    write("truncated.seg", &good[..good.len() - 5]);
    let mut b = good.clone();
    b[..8].copy_from_slice(b"STRATLOX");
    write("bad-magic.seg", &b);
    let mut b = good.clone();
    b[8] = CURRENT + 1;
    let crc = crc32fast::hash(&b[..21]);
    b[21..25].copy_from_slice(&crc.to_le_bytes());
    write(&format!("version-{}.seg", CURRENT + 1), &b);
}
