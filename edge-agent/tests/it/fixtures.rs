//! Frozen queue files: committed queue directories of every queue format
//! version (`tests/fixtures/queue/v<N>/`: one segment, version 1 in both,
//! and a cursor of version N) and corrupt variants, opened with
//! `Queue::open`. No binary involved. `tests/fixtures/README.md` says how
//! they were made; old versions are never regenerated.

use std::path::{Path, PathBuf};

use strata_edge::Error;
use strata_edge::queue::{Batch, OpenReport, Queue, QueueConfig};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/queue");
/// The queue format version this build writes (its cursor's version).
const CURRENT: u16 = 2;
const SEGMENT: &str = "00000000000000000001.seg";

/// The batches of the fixture segment: `(seq, enqueued_ms, payload)`.
fn fixture_batches() -> Vec<Batch> {
    (1..=5u64)
        .map(|seq| Batch {
            seq,
            enqueued_ms: 1_700_000_000_000 + seq as i64 * 1000,
            payload: format!("soil,dev=d{seq} moisture={seq}.5 {}000000\n", 1_700_000_000_000 + seq as i64 * 1000)
                .into_bytes(),
        })
        .collect()
}

fn config() -> QueueConfig {
    QueueConfig { max_bytes: 1 << 20, segment_bytes: 4096, ..QueueConfig::default() }
}

/// A copy of fixture directory `rel` (files only), optionally with one file
/// replaced by a corrupt variant of the current version.
fn copy(rel: &str, replace: Option<(&str, &str)>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(Path::new(FIXTURES).join(rel)).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
    }
    if let Some((file, variant)) = replace {
        let from = Path::new(FIXTURES).join(format!("v{CURRENT}/corrupt/{variant}"));
        std::fs::copy(from, dir.path().join(file)).unwrap();
    }
    dir
}

/// Every unacknowledged batch, oldest first, read back in full.
fn unacked(q: &Queue) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut next = q.first_unacked().unwrap();
    while let Some(b) = next {
        next = q.next_unacked(b.seq + 1).unwrap();
        assert_eq!(q.read(b.seq).unwrap().as_ref(), Some(&b));
        out.push(b);
    }
    out
}

fn batches(seqs: &[u64]) -> Vec<Batch> {
    fixture_batches().into_iter().filter(|b| seqs.contains(&b.seq)).collect()
}

/// Queue format 1: a version-1 cursor (prefix 2, no ranges).
#[test]
fn queue_v1_fixture_opens_exactly_and_its_cursor_is_rewritten_as_v2() {
    let dir = copy("v1", None);
    assert_eq!(std::fs::read(dir.path().join("cursor")).unwrap()[8], 1);
    let (mut q, report) = Queue::open(dir.path(), config()).unwrap();
    assert_eq!(report, OpenReport::default());
    assert_eq!(unacked(&q), batches(&[3, 4, 5]));
    let s = q.stats();
    assert_eq!((s.acked_seq, s.acked_above, s.next_seq), (2, 0, 6));
    q.ack_one(4).unwrap();
    assert_eq!(std::fs::read(dir.path().join("cursor")).unwrap()[8], 2);
    drop(q);
    let (q, _) = Queue::open(dir.path(), config()).unwrap();
    assert_eq!(unacked(&q), batches(&[3, 5]));
}

/// Queue format 2 (current): a version-2 cursor with prefix 1 and batch 3
/// acknowledged out of order.
#[test]
fn queue_v2_fixture_opens_exactly() {
    let dir = copy("v2", None);
    let (q, report) = Queue::open(dir.path(), config()).unwrap();
    assert_eq!(report, OpenReport::default());
    assert_eq!(unacked(&q), batches(&[2, 4, 5]));
    let s = q.stats();
    assert_eq!((s.acked_seq, s.acked_above, s.next_seq, s.unacked_batches), (1, 1, 6, 3));
    assert!(q.is_acked(3) && !q.is_acked(4));
}

fn open_err(file: &str, variant: &str) -> (PathBuf, Error) {
    let dir = copy(&format!("v{CURRENT}"), Some((file, variant)));
    let err = Queue::open(dir.path(), config()).unwrap_err();
    // The temporary directory is gone once this returns; paths are compared by name.
    (dir.path().join(file), err)
}

/// A byte flipped in the payload of batch 3 (not the last): damage, which
/// is an error naming the file and position, never skipped.
#[test]
fn queue_segment_with_a_flipped_payload_byte_refuses_to_open() {
    let (path, err) = open_err(SEGMENT, "flipped-payload.seg");
    let frame3 = 24 + 2 * (28 + fixture_batches()[0].payload.len() as u64);
    match &err {
        Error::ChecksumMismatch { path: p, position, .. } | Error::Corrupted { path: p, position, .. } => {
            assert_eq!((p, *position), (&path, frame3), "{err}");
        }
        other => panic!("expected a checksum error, got {other}"),
    }
}

/// The last 5 bytes missing: a torn tail of the last segment, truncated;
/// batch 5 is gone and its number is given to the next batch.
#[test]
fn queue_segment_with_a_torn_tail_is_truncated() {
    let dir = copy(&format!("v{CURRENT}"), Some((SEGMENT, "truncated.seg")));
    let (mut q, report) = Queue::open(dir.path(), config()).unwrap();
    let frame5 = 28 + fixture_batches()[4].payload.len() as u64;
    assert_eq!(report.torn_bytes, frame5 - 5);
    assert_eq!(unacked(&q), batches(&[2, 4]));
    assert_eq!(q.append(b"m v=1 1\n", 0).unwrap(), 5);
}

#[test]
fn queue_segment_with_a_bad_magic_refuses_to_open() {
    let (path, err) = open_err(SEGMENT, "bad-magic.seg");
    assert!(matches!(&err, Error::Corrupted { path: p, position: 0, .. } if *p == path), "{err}");
}

#[test]
fn queue_segment_of_another_version_refuses_to_open() {
    let (path, err) = open_err(SEGMENT, "version-2.seg");
    assert!(matches!(&err, Error::UnsupportedFormatVersion { path: p, found: 2, supported: 1 } if *p == path), "{err}");
}

#[test]
fn damaged_cursors_refuse_to_open() {
    let (path, err) = open_err("cursor", "flipped-cursor");
    assert!(matches!(&err, Error::ChecksumMismatch { path: p, .. } if *p == path), "{err}");
    // A cursor names the newest cursor version read (2), not the segment's (1).
    let (path, err) = open_err("cursor", "cursor-version-3");
    assert!(matches!(&err, Error::UnsupportedFormatVersion { path: p, found: 3, supported: 2 } if *p == path), "{err}");
}

/// Writes the current version's fixture (`queue/v<CURRENT>/`) and its
/// corrupt variants through `Queue`. Run only when a new version is added,
/// never to refresh an old one:
/// `cargo test -p strata-edge --test it fixtures::regenerate_current_fixtures -- --ignored`.
#[test]
#[ignore = "writes tests/fixtures/queue/v<CURRENT>; run by hand after a format change"]
fn regenerate_current_fixtures() {
    let out = Path::new(FIXTURES).join(format!("v{CURRENT}"));
    std::fs::create_dir_all(out.join("corrupt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = Queue::open(dir.path(), config()).unwrap();
    for b in fixture_batches() {
        assert_eq!(q.append(&b.payload, b.enqueued_ms).unwrap(), b.seq);
    }
    q.ack_one(1).unwrap();
    q.ack_one(3).unwrap();
    drop(q);
    for name in [SEGMENT, "cursor"] {
        std::fs::copy(dir.path().join(name), out.join(name)).unwrap();
    }
    let seg = std::fs::read(out.join(SEGMENT)).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join("corrupt").join(name), bytes).unwrap();
    let frame = |i: usize| 24 + i * (28 + fixture_batches()[0].payload.len());
    let mut b = seg.clone();
    b[frame(2) + 28 + 5] ^= 0x01;
    write("flipped-payload.seg", &b);
    write("truncated.seg", &seg[..seg.len() - 5]);
    let mut b = seg.clone();
    b[..8].copy_from_slice(b"STEDGSEX");
    write("bad-magic.seg", &b);
    let mut b = seg.clone();
    b[8] = 2;
    let crc = crc32fast::hash(&b[..20]);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    write("version-2.seg", &b);
    let cursor = std::fs::read(out.join("cursor")).unwrap();
    let mut b = cursor.clone();
    b[14] ^= 0x01;
    write("flipped-cursor", &b);
    let mut b = cursor.clone();
    b[8] = 3;
    let n = b.len();
    let crc = crc32fast::hash(&b[..n - 4]);
    b[n - 4..].copy_from_slice(&crc.to_le_bytes());
    write("cursor-version-3", &b);
}
