//! Disk decoders: the write batch (the ingest log's record), the hot
//! store's segments and manifest, the embedded ingest log's segment files
//! and the edge agent's queue.
//!
//! The directory targets (`ingest_log`, `edge_queue`) take a leading flag
//! byte: bit 0 repairs every checksum the layout lets the harness find
//! before the files are written, bit 1 (edge queue: bit 2) splits the bytes
//! into two segment files at a `u16` position that follows.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use strata_edge::queue::{FsyncPolicy, OverflowPolicy, Queue, QueueConfig};
use strata_hot_store::fuzz::{manifest_reencode, segment_blocks, segment_read, segment_rewrite};
use strata_ingest::{IngestLog, LocalLog, LogConfig, LogRecord};
use strata_schemas::{DiscardSink, LogSink, WriteBatch};

use crate::scratch::{block_on, fresh_dir, put_crc, u32_at, u64_at, write};

/// The write batch, every version: decode → encode → decode → encode gives the same bytes.
pub fn write_batch(data: &[u8]) {
    let Ok(batch) = WriteBatch::decode(data) else { return };
    let bytes = batch.to_bytes();
    let again = WriteBatch::decode(&bytes).expect("a decoded batch re-encodes to a valid batch");
    assert_eq!(again.to_bytes(), bytes, "a batch does not survive decode → encode → decode");
    assert_eq!(again.sample_count(), batch.sample_count());
}

/// The hot store's manifest: `data` as a whole file, and as the JSON body
/// of a file with a valid header. A manifest that decodes re-encodes to
/// one that decodes to itself.
pub fn hot_manifest(data: &[u8]) {
    manifest(data);
    let mut file = Vec::with_capacity(20 + data.len());
    file.extend_from_slice(b"SHMF");
    file.extend_from_slice(&[strata_hot_store::FormatVersion::CURRENT.as_u8(), 0, 0, 0]);
    file.extend_from_slice(&(data.len() as u64).to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    file.extend_from_slice(data);
    manifest(&file);
}

fn manifest(bytes: &[u8]) {
    let Ok(encoded) = manifest_reencode(bytes) else { return };
    let again = manifest_reencode(&encoded).unwrap_or_else(|e| panic!("a re-encoded manifest does not decode: {e}"));
    assert_eq!(again, encoded, "a manifest does not survive decode → encode → decode");
}

/// A hot-store segment file: opened and read as it is, then with its
/// header, trailer, index and block checksums repaired (and the index
/// length fitted to the file). A segment whose blocks all read, written
/// again, reads back the same series and samples.
pub fn hot_segment(data: &[u8]) {
    let dir = fresh_dir("hot-segment");
    let path = dir.join("00000000000000000007.seg");
    write(&path, data);
    let _ = segment_read(&path);
    let mut fixed = data.to_vec();
    repair_segment_index(&mut fixed);
    write(&path, &fixed);
    let Ok(blocks) = segment_blocks(&path) else { return };
    for (offset, len) in blocks {
        let (start, end) = (offset as usize, (offset + len) as usize);
        if len >= 4 && end <= fixed.len() {
            put_crc(&mut fixed, start, end - 4, end - 4);
        }
    }
    write(&path, &fixed);
    let Ok(mut series) = segment_read(&path) else { return };
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("creating the rewrite directory");
    let rewritten =
        segment_rewrite(&path, &out).unwrap_or_else(|e| panic!("a segment that reads does not rewrite: {e}"));
    let mut again = segment_read(&rewritten).unwrap_or_else(|e| panic!("a rewritten segment does not read: {e}"));
    series.sort();
    again.sort();
    assert_eq!(again, series, "a rewritten segment holds other series or samples");
}

/// Repairs the header CRC, fits the index length to the trailer's
/// position, and repairs the index and trailer CRCs (`hot-store/FORMAT.md`).
fn repair_segment_index(b: &mut [u8]) {
    put_crc(b, 0, 8, 8);
    let Some(trailer) = b.len().checked_sub(28).filter(|&t| t >= 12) else { return };
    let Some(index_offset) = u64_at(b, trailer).filter(|&o| (12..=trailer as u64).contains(&o)) else { return };
    let index_len = trailer as u64 - index_offset;
    b[trailer + 8..trailer + 16].copy_from_slice(&index_len.to_le_bytes());
    put_crc(b, index_offset as usize, trailer, trailer + 16);
    put_crc(b, trailer, trailer + 20, trailer + 20);
}

/// Splits `rest` into one or two files: two when `split`, at the `u16` LE
/// position its first two bytes give (modulo the length of what follows).
fn split_files(split: bool, rest: &[u8]) -> Vec<&[u8]> {
    if !split || rest.len() < 2 {
        return vec![rest];
    }
    let (at, rest) = rest.split_at(2);
    let at = usize::from(u16::from_le_bytes([at[0], at[1]])) % (rest.len() + 1);
    let (a, b) = rest.split_at(at);
    vec![a, b]
}

const APPENDED: &[u8] = b"appended after open";

/// The embedded ingest log (`ingest/src/log`): partition 0 of a one-partition
/// log holds the segment file(s) of `data` (flags in byte 0: bit 0 repairs
/// the header checksum and partition and every complete frame's checksum;
/// bit 1 makes two files), each named by its header's base offset.
///
/// If the log opens: replayed offsets increase and lie below the log's
/// end; a record appended gets the next offset; a second open finds no
/// damage and replays the same records plus the appended one.
pub fn ingest_log(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let dir = fresh_dir("ingest-log");
    let pdir = dir.join("p0000");
    std::fs::create_dir_all(&pdir).expect("creating the partition directory");
    let mut names = Vec::new();
    for file in split_files(flags & 2 != 0, rest) {
        let mut file = file.to_vec();
        if flags & 1 != 0 {
            repair_log_segment(&mut file);
        }
        let base = u64_at(&file, 13).unwrap_or(0);
        if !names.contains(&base) {
            names.push(base);
            write(&pdir.join(format!("{base:020}.seg")), &file);
        }
    }
    let config = LogConfig { partitions: 1, ..LogConfig::default() };
    let sink: Arc<dyn LogSink> = Arc::new(DiscardSink);
    let Ok(log) = LocalLog::open(&dir, &config, |_| 0, Arc::clone(&sink)) else { return };
    let mut records = replay(&log);
    let end = log.next_offset(0);
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0), "replayed offsets do not increase");
    assert!(records.last().is_none_or(|r| r.0 < end), "a replayed offset at or past the log's end {end}");
    let appended = block_on(log.append(vec![LogRecord::new(0, APPENDED.to_vec())]));
    assert_eq!(appended.expect("an append after a repairing open"), [end]);
    records.push((end, APPENDED.to_vec()));
    drop(log);
    let log = LocalLog::open(&dir, &config, |_| 0, sink).expect("a log opens again after its repair");
    let health = log.health();
    assert_eq!(health.quarantined_segments.load(Ordering::Relaxed), 0, "a second open finds damage");
    assert_eq!(replay(&log), records, "a second open replays other records");
}

fn replay(log: &LocalLog) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    log.replay(0, 0, &mut |offset, payload| {
        out.push((offset, payload.to_vec()));
        Ok(())
    })
    .expect("replaying an open log");
    out
}

/// Repairs an ingest log segment: header partition (0) and checksum, and
/// the checksum of every complete frame (`ingest/src/log/segment.rs`).
fn repair_log_segment(b: &mut [u8]) {
    if b.len() >= 25 {
        b[9..13].copy_from_slice(&0u32.to_le_bytes());
        put_crc(b, 0, 21, 21);
    }
    let mut pos = 25;
    while let Some(len) = u32_at(b, pos) {
        let Some(end) = (pos + 16).checked_add(len as usize).filter(|&e| e <= b.len()) else { break };
        let mut h = crc32fast::Hasher::new();
        h.update(&b[pos..pos + 4]);
        h.update(&b[pos + 8..pos + 16]);
        h.update(&b[pos + 16..end]);
        b[pos + 4..pos + 8].copy_from_slice(&h.finalize().to_le_bytes());
        pos = end;
    }
}

/// The edge agent's queue (`edge-agent/src/queue`): flags in byte 0 (bit 0
/// repairs checksums, bit 1 writes a cursor file, bit 2 makes two segment
/// files); with bit 1, a `u16` LE length and that many cursor bytes; the
/// rest is segment bytes, each file named by its header's first sequence number.
///
/// If the queue opens: unacknowledged batches come in increasing order and
/// are not acknowledged; a batch appended gets a higher number and reads
/// back; a reopen lists the same batches plus the appended one.
pub fn edge_queue(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let dir = fresh_dir("edge-queue");
    if flags & 2 != 0 && rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let mut cursor = rest[2..2 + len].to_vec();
        if flags & 1 != 0 {
            repair_cursor(&mut cursor);
        }
        write(&dir.join("cursor"), &cursor);
        rest = &rest[2 + len..];
    }
    let mut names = Vec::new();
    for file in split_files(flags & 4 != 0, rest) {
        let mut file = file.to_vec();
        if flags & 1 != 0 {
            repair_queue_segment(&mut file);
        }
        let first = u64_at(&file, 12).unwrap_or(1);
        if !names.contains(&first) {
            names.push(first);
            write(&dir.join(format!("{first:020}.seg")), &file);
        }
    }
    let config = QueueConfig {
        max_bytes: 1 << 24,
        segment_bytes: 4096,
        fsync: FsyncPolicy::Never,
        overflow: OverflowPolicy::Refuse,
    };
    let Ok((mut queue, _)) = Queue::open(&dir, config.clone()) else { return };
    let Some(mut batches) = unacked(&queue) else { return };
    assert!(batches.windows(2).all(|w| w[0].0 < w[1].0), "unacknowledged batches out of order");
    assert!(batches.iter().all(|b| !queue.is_acked(b.0)), "an acknowledged batch is listed as unacknowledged");
    let stats = queue.stats();
    assert!(stats.unacked_batches >= batches.len() as u64, "{stats:?} counts fewer than {} batches", batches.len());
    // Batches the cursor leaves unacknowledged but no segment holds (lost
    // with `fsync = never` and a power loss): the queue opens, as its tests
    // require, but once a batch is appended past them the next open refuses
    // the gap ("batches … are missing"). A known open question of the queue's
    // recovery (reported with the fuzzing results), not checked here.
    let missing = stats.unacked_batches > batches.len() as u64;
    let Ok(seq) = queue.append(APPENDED, 7) else { return };
    assert!(batches.last().is_none_or(|b| b.0 < seq), "appended batch {seq} is not after the queued ones");
    let read = queue.read(seq).expect("reading the appended batch").expect("the appended batch is on disk");
    assert_eq!(read.payload, APPENDED);
    batches.push((seq, APPENDED.to_vec()));
    drop(queue);
    if missing {
        return;
    }
    let (queue, _) = Queue::open(&dir, config).expect("a queue opens again after an append");
    assert_eq!(unacked(&queue), Some(batches), "a reopened queue lists other batches");
}

/// The unacknowledged batches `(seq, payload)`, oldest first; `None` when one does not read.
fn unacked(queue: &Queue) -> Option<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut next = queue.first_unacked().ok()?;
    while let Some(b) = next {
        out.push((b.seq, b.payload));
        next = queue.next_unacked(b.seq.checked_add(1)?).ok()?;
    }
    Some(out)
}

/// Repairs an edge queue segment: header checksum and both checksums of every complete frame.
fn repair_queue_segment(b: &mut [u8]) {
    put_crc(b, 0, 20, 20);
    let mut pos = 24;
    while let Some(len) = u32_at(b, pos) {
        let Some(end) = (pos + 28).checked_add(len as usize).filter(|&e| e <= b.len()) else { break };
        put_crc(b, pos + 28, end, pos + 20);
        put_crc(b, pos, pos + 24, pos + 24);
        pos = end;
    }
}

/// Repairs a cursor file: version 1, its checksum; version 2, its range
/// count (from its size, dropping a partial range) and its checksum.
fn repair_cursor(b: &mut Vec<u8>) {
    match b.get(8..10) {
        Some([1, 0]) => put_crc(b, 0, 20, 20),
        Some([2, 0]) if b.len() >= 28 => {
            let n = (b.len() - 28) / 16;
            b[20..24].copy_from_slice(&(n as u32).to_le_bytes());
            b.truncate(28 + 16 * n);
            let end = b.len() - 4;
            put_crc(b, 0, end, end);
        }
        _ => {}
    }
}
