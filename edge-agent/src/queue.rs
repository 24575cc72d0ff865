//! The durable queue: checksummed segment files plus an acknowledged-position
//! cursor, in one directory (byte layout in `src/queue/FORMAT.md`).
//!
//! ```text
//! intake ──append(payload)──► [00000000000000000001.seg] [00000000000000000412.seg] ... (active, appended)
//!                                   ▲ deleted once every frame is ≤ the cursor's prefix
//! forwarder ──next_unacked_below()──► send ──2xx──► ack_one(seq) ──► cursor (tmp + fsync + rename + fsync dir)
//! ```
//!
//! * The cursor holds the contiguous acknowledged prefix and the ranges of
//!   batches acknowledged above it (the forwarder's live lane goes ahead of
//!   the backlog). Reads skip every acknowledged batch; segments are deleted
//!   only behind the prefix.
//!
//! * Every appended batch gets the next sequence number (1, 2, …). The
//!   number is implicit in the files: the next one is one past the largest
//!   of the last frame on disk and the cursor, so it never repeats across
//!   restarts, even after every segment was acknowledged and deleted.
//! * `append` returns once the frame is written and, under
//!   [`FsyncPolicy::EveryBatch`] (the default), fsynced; only then may the
//!   intake answer. A failed write or fsync poisons the queue: it refuses
//!   appends until the agent restarts and reopens (and repairs) the files.
//! * The bound ([`QueueConfig::max_bytes`]) counts the segment files on disk.
//!   [`OverflowPolicy::Refuse`] (the default) refuses the append
//!   ([`Error::Full`]) and keeps everything; [`OverflowPolicy::DropOldest`]
//!   deletes the oldest segment, moving the cursor past it first, with a
//!   counter and a warning per segment.
//! * On open, an incomplete last frame of the last segment (a torn tail: the
//!   process died mid-write) is cut off with a warning. Damage anywhere else
//!   is an error: the agent refuses to start rather than skip data.

mod format;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_schemas::ConfigError;

use crate::error::{Error, Result};
use format::{CursorError, FRAME_HEADER_LEN, MAX_PAYLOAD_LEN, RecordError, SEGMENT_HEADER_LEN};

/// When appended frames are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fsync every batch before the intake answers (default): an
    /// acknowledged batch survives a crash of the process and of the machine.
    #[default]
    EveryBatch,
    /// Never fsync (neither segments nor the cursor; the cursor is still
    /// replaced by an atomic rename): an acknowledged batch survives a crash
    /// of the process (`kill -9`), but on power loss batches the kernel had
    /// not written back are lost and acknowledged ones may be sent again.
    /// For tests and disposable data.
    Never,
}

/// What an append does when the queue is at its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Refuse the batch (the intake answers 503 with `Retry-After`) and
    /// keep everything already queued (default).
    #[default]
    Refuse,
    /// Delete the oldest segment(s) to make room, counting the dropped
    /// batches and logging each dropped segment.
    DropOldest,
}

/// Queue settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Most bytes of segment files on disk (headers and frames included).
    pub max_bytes: u64,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// When frames are fsynced.
    pub fsync: FsyncPolicy,
    /// What happens at the bound.
    pub overflow: OverflowPolicy,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            segment_bytes: 8 << 20,
            fsync: FsyncPolicy::EveryBatch,
            overflow: OverflowPolicy::Refuse,
        }
    }
}

impl QueueConfig {
    /// Rejects settings the queue cannot work with (nothing is fixed in place).
    pub fn validate(&mut self) -> std::result::Result<(), ConfigError> {
        if self.segment_bytes < 4096 {
            return Err(ConfigError::invalid("queue", "segment_bytes", self.segment_bytes, "must be at least 4096"));
        }
        if self.max_bytes < self.segment_bytes {
            let reason = format!("must be at least queue.segment_bytes ({})", self.segment_bytes);
            return Err(ConfigError::invalid("queue", "max_bytes", self.max_bytes, reason));
        }
        Ok(())
    }
}

/// One queued batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Its sequence number.
    pub seq: u64,
    /// When it was queued (ms since the epoch).
    pub enqueued_ms: i64,
    /// The bytes appended.
    pub payload: Vec<u8>,
}

/// What [`Queue::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes cut off a torn tail (0: none).
    pub torn_bytes: u64,
    /// Segments deleted because every frame was behind the cursor.
    pub deleted_segments: usize,
}

/// Counters and gauges of the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Batches not yet acknowledged.
    pub unacked_batches: u64,
    /// Frame bytes of those batches.
    pub unacked_bytes: u64,
    /// Bytes of segment files on disk.
    pub disk_bytes: u64,
    /// Enqueue time of the oldest unacknowledged batch.
    pub oldest_unacked_ms: Option<i64>,
    /// The acknowledged position: every batch up to it is acknowledged
    /// (batches above it may be too, see `acked_above`).
    pub acked_seq: u64,
    /// Batches above `acked_seq` acknowledged out of order (sent by the
    /// live lane ahead of older ones).
    pub acked_above: u64,
    /// The sequence number the next append gets.
    pub next_seq: u64,
    /// Batches deleted unsent by [`OverflowPolicy::DropOldest`] since open.
    pub dropped_batches: u64,
    /// Segments deleted unsent by [`OverflowPolicy::DropOldest`] since open.
    pub dropped_segments: u64,
}

/// The two lanes of the forwarder (see `forward.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LaneStats {
    /// Unacknowledged batches queued before the live window.
    pub backlog_batches: u64,
    /// Unacknowledged batches queued within the live window.
    pub live_batches: u64,
    /// Enqueue time of the oldest unacknowledged backlog batch.
    pub backlog_oldest_ms: Option<i64>,
    /// Enqueue time of the oldest unacknowledged live batch.
    pub live_oldest_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct FrameMeta {
    seq: u64,
    offset: u64,
    len: u32,
    enqueued_ms: i64,
    payload_crc: u32,
}

impl FrameMeta {
    fn size(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.len)
    }
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
    bytes: u64,
    frames: Vec<FrameMeta>,
}

impl Segment {
    fn last_seq(&self) -> Option<u64> {
        self.frames.last().map(|f| f.seq)
    }
}

/// The on-disk queue. Synchronous: call it from a blocking thread.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    config: QueueConfig,
    segments: VecDeque<Segment>,
    /// Append handle of the last segment, if it is still being written.
    active: Option<File>,
    acked: u64,
    /// Batches above `acked` acknowledged out of order (persisted with it).
    above: AckedRanges,
    next_seq: u64,
    disk_bytes: u64,
    /// Frame bytes of the batches after `acked`.
    unacked_bytes: u64,
    /// The active segment holds frames not yet fsynced.
    dirty: bool,
    poisoned: bool,
    dropped_batches: u64,
    dropped_segments: u64,
    scratch: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeleteMode {
    Opening,
    KeepActive,
    Everything,
}

const CURSOR_FILE: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";
const SEGMENT_EXT: &str = "seg";

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{SEGMENT_EXT}")
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| Error::Write { path: dir.to_owned(), source })
}

/// `supported`: the newest version of this kind of file the build reads.
fn record_error(path: &Path, position: u64, e: RecordError, supported: u16) -> Error {
    match e {
        RecordError::Magic => {
            Error::Corrupted { path: path.to_owned(), position, detail: "wrong magic bytes".to_owned() }
        }
        RecordError::Version(found) => Error::UnsupportedFormatVersion { path: path.to_owned(), found, supported },
        RecordError::Checksum(expected, actual) => {
            Error::ChecksumMismatch { path: path.to_owned(), position, expected, actual }
        }
    }
}

impl Queue {
    /// Opens (or creates) the queue in `dir`, repairing a torn tail.
    pub fn open(dir: &Path, mut config: QueueConfig) -> Result<(Queue, OpenReport)> {
        config.validate()?;
        let open_err = |source| Error::OpenQueue { path: dir.to_owned(), source };
        fs::create_dir_all(dir).map_err(open_err)?;
        let _ = fs::remove_file(dir.join(CURSOR_TMP));
        let (acked, ranges) = read_cursor(&dir.join(CURSOR_FILE))?;
        let above = AckedRanges::from_ranges(&ranges);
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(open_err)? {
            let entry = entry.map_err(open_err)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(&format!(".{SEGMENT_EXT}"))
                && let Ok(first) = stem.parse::<u64>()
            {
                names.push((first, entry.path()));
            }
        }
        names.sort();
        let mut report = OpenReport::default();
        let mut segments = VecDeque::new();
        let count = names.len();
        for (i, (first_seq, path)) in names.into_iter().enumerate() {
            let last = i + 1 == count;
            let (segment, torn) = scan_segment(&path, first_seq, last)?;
            report.torn_bytes += torn;
            if let Some(segment) = segment {
                segments.push_back(segment);
            }
        }
        // Sequence continuity across segments.
        let mut expected: Option<u64> = None;
        for s in &segments {
            // A segment may start past the previous one's end only over
            // batches acknowledged already (see the active segment below).
            if let Some(e) = expected
                && s.first_seq != e
                && !s.frames.is_empty()
                && !(s.first_seq > e && above.skip(e.max(acked + 1)) >= s.first_seq)
            {
                return Err(Error::Corrupted {
                    path: s.path.clone(),
                    position: 0,
                    detail: format!("segment starts at batch {} but the previous one ended before {e}", s.first_seq),
                });
            }
            if let Some(l) = s.last_seq() {
                expected = Some(l + 1);
            }
        }
        let last_on_disk = segments.iter().rev().find_map(Segment::last_seq).unwrap_or(0);
        let next_seq =
            last_on_disk.max(acked).max(above.max().unwrap_or(0)).checked_add(1).ok_or_else(|| Error::Corrupted {
                path: dir.to_owned(),
                position: 0,
                detail: "the cursor or a segment holds the last possible sequence number (2^64 - 1)".to_owned(),
            })?;
        let mut queue = Queue {
            dir: dir.to_owned(),
            config,
            segments,
            active: None,
            acked,
            next_seq,
            above,
            disk_bytes: 0,
            unacked_bytes: 0,
            dirty: false,
            poisoned: false,
            dropped_batches: 0,
            dropped_segments: 0,
            scratch: Vec::new(),
        };
        if let Some(first) = queue.segments.iter().find(|s| s.last_seq().is_some_and(|l| l > acked))
            && first.first_seq > acked + 1
        {
            return Err(Error::Corrupted {
                path: first.path.clone(),
                position: 0,
                detail: format!(
                    "batches {}..{} are missing: the cursor is at {acked} but the oldest segment starts at {}",
                    acked + 1,
                    first.first_seq - 1,
                    first.first_seq
                ),
            });
        }
        report.deleted_segments = queue.delete_acked_segments(DeleteMode::Opening)?;
        queue.disk_bytes = queue.segments.iter().map(|s| s.bytes).sum();
        queue.unacked_bytes = queue.bytes_between(acked, queue.next_seq - 1)
            - ranges.iter().map(|&(f, l)| queue.bytes_between(f - 1, l)).sum::<u64>();
        // Appends continue the last segment only if its frames end right
        // before `next_seq`: when the cursor acknowledged batches past them
        // (their frames lost with a torn tail), a new segment starts at `next_seq`.
        if let Some(last) = queue.segments.back()
            && last.bytes < queue.config.segment_bytes
            && last.first_seq + last.frames.len() as u64 == queue.next_seq
        {
            let file = OpenOptions::new()
                .append(true)
                .open(&last.path)
                .map_err(|source| Error::Write { path: last.path.clone(), source })?;
            queue.active = Some(file);
        }
        Ok((queue, report))
    }

    /// The directory of the queue.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one batch; returns its sequence number once it is durable
    /// (under the fsync policy).
    pub fn append(&mut self, payload: &[u8], enqueued_ms: i64) -> Result<u64> {
        let seq = self.append_unsynced(payload, enqueued_ms)?;
        self.sync()?;
        Ok(seq)
    }

    /// fsyncs the active segment if it holds unsynced frames (under `every_batch`).
    fn sync(&mut self) -> Result<()> {
        if !self.dirty || self.config.fsync == FsyncPolicy::Never {
            return Ok(());
        }
        self.dirty = false;
        let (Some(file), Some(segment)) = (&self.active, self.segments.back()) else { return Ok(()) };
        if let Err(source) = file.sync_data() {
            self.poisoned = true;
            tracing::error!(path = %segment.path.display(), error = %source, "queue fsync failed; queue poisoned until restart");
            return Err(Error::Write { path: segment.path.clone(), source });
        }
        Ok(())
    }

    /// Writes one frame without the fsync (see [`Queue::sync`]).
    fn append_unsynced(&mut self, payload: &[u8], enqueued_ms: i64) -> Result<u64> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if self.next_seq == u64::MAX {
            // Only a damaged cursor or segment gets here: numbers are never reused.
            let detail = "sequence numbers are exhausted (the next would be 2^64 - 1)".to_owned();
            return Err(Error::Corrupted { path: self.dir.clone(), position: 0, detail });
        }
        let frame = FRAME_HEADER_LEN as u64 + payload.len() as u64;
        let worst = frame + SEGMENT_HEADER_LEN as u64;
        if payload.len() as u64 > u64::from(MAX_PAYLOAD_LEN) || worst > self.config.max_bytes {
            return Err(Error::TooLarge { size: worst, max: self.config.max_bytes });
        }
        loop {
            let needed = if self.needs_new_segment() { worst } else { frame };
            if self.disk_bytes + needed <= self.config.max_bytes {
                break;
            }
            // The active segment, once wholly acknowledged, is space to take back first.
            if self.segments.front().is_some_and(|s| s.last_seq().is_some_and(|l| l <= self.acked)) {
                self.delete_acked_segments(DeleteMode::Everything)?;
                continue;
            }
            match self.config.overflow {
                OverflowPolicy::Refuse => {
                    return Err(Error::Full { used: self.disk_bytes, max: self.config.max_bytes, needed });
                }
                OverflowPolicy::DropOldest => {
                    if !self.drop_oldest()? {
                        return Err(Error::Full { used: self.disk_bytes, max: self.config.max_bytes, needed });
                    }
                }
            }
        }
        if self.needs_new_segment() {
            self.start_segment()?;
        }
        let seq = self.next_seq;
        self.scratch.clear();
        format::encode_frame(&mut self.scratch, seq, enqueued_ms, payload);
        let segment = self.segments.back_mut().expect("start_segment leaves an active last segment");
        let file = self.active.as_mut().expect("start_segment leaves an active last segment");
        let offset = segment.bytes;
        if let Err(source) = file.write_all(&self.scratch) {
            self.poisoned = true;
            tracing::error!(path = %segment.path.display(), error = %source, "queue write failed; queue poisoned until restart");
            return Err(Error::Write { path: segment.path.clone(), source });
        }
        segment.bytes += frame;
        segment.frames.push(FrameMeta {
            seq,
            offset,
            len: payload.len() as u32,
            enqueued_ms,
            payload_crc: crc32fast::hash(payload),
        });
        self.disk_bytes += frame;
        self.unacked_bytes += frame;
        self.next_seq += 1;
        self.dirty = true;
        if segment.bytes >= self.config.segment_bytes {
            // Closing the segment: its frames are synced now, as the last fsync it gets.
            self.sync()?;
            self.active = None;
        }
        Ok(seq)
    }

    fn needs_new_segment(&self) -> bool {
        self.active.is_none()
    }

    fn start_segment(&mut self) -> Result<()> {
        let first_seq = self.next_seq;
        let path = self.dir.join(segment_name(first_seq));
        let werr = |source| Error::Write { path: path.clone(), source };
        let mut file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(werr)?;
        let result = file.write_all(&format::encode_segment_header(first_seq)).and_then(|()| match self.config.fsync {
            FsyncPolicy::EveryBatch => file.sync_data(),
            FsyncPolicy::Never => Ok(()),
        });
        if let Err(source) = result {
            self.poisoned = true;
            let _ = fs::remove_file(&path);
            return Err(werr(source));
        }
        if self.config.fsync == FsyncPolicy::EveryBatch
            && let Err(e) = sync_dir(&self.dir)
        {
            self.poisoned = true;
            return Err(e);
        }
        self.disk_bytes += SEGMENT_HEADER_LEN as u64;
        self.segments.push_back(Segment { first_seq, path, bytes: SEGMENT_HEADER_LEN as u64, frames: Vec::new() });
        self.active = Some(file);
        Ok(())
    }

    /// Deletes the oldest segment, moving the cursor past it first; `false`
    /// when there is nothing to drop.
    fn drop_oldest(&mut self) -> Result<bool> {
        let Some(oldest) = self.segments.front() else { return Ok(false) };
        if self.segments.len() == 1 {
            self.active = None;
        }
        let unacked: Vec<u64> =
            oldest.frames.iter().map(|f| f.seq).filter(|&s| s > self.acked && !self.above.contains(s)).collect();
        let unacked_bytes: u64 = unacked.iter().filter_map(|&s| self.frame(s)).map(|(_, f)| f.size()).sum();
        let last = oldest.last_seq().unwrap_or(self.acked).max(self.acked);
        let path = oldest.path.clone();
        let first = oldest.first_seq;
        let mut above = self.above.clone();
        above.remove_up_to(last);
        let acked = above.absorb(last);
        self.store_cursor(acked, above)?;
        self.unacked_bytes -= unacked_bytes;
        let unacked = unacked.len() as u64;
        let oldest = self.segments.pop_front().expect("checked above");
        self.disk_bytes -= oldest.bytes;
        fs::remove_file(&path).map_err(|source| Error::Write { path: path.clone(), source })?;
        self.dropped_batches += unacked;
        self.dropped_segments += 1;
        // The prefix may now reach past the next segments (their batches
        // were acknowledged out of order): those go too.
        self.delete_acked_segments(DeleteMode::KeepActive)?;
        tracing::warn!(
            path = %path.display(),
            batches = unacked,
            first_seq = first,
            last_seq = last,
            "queue full: dropped the oldest segment unsent (overflow = drop_oldest)"
        );
        Ok(true)
    }

    /// The oldest batch not yet acknowledged. A poisoned queue answers
    /// [`Error::Poisoned`]: a batch it cannot acknowledge would be sent again
    /// and again.
    pub fn first_unacked(&self) -> Result<Option<Batch>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.next_unacked(0)
    }

    /// The first unacknowledged batch numbered `seq` or later (the
    /// forwarder's next batch while the acknowledgement of the previous one
    /// is still being stored). Poisoned: [`Error::Poisoned`].
    pub fn next_unacked(&self, seq: u64) -> Result<Option<Batch>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        self.next_unacked_below(seq, u64::MAX)
    }

    /// The first unacknowledged batch numbered from `from` up to (not
    /// including) `below`, skipping batches acknowledged out of order.
    /// Poisoned: [`Error::Poisoned`].
    pub fn next_unacked_below(&self, from: u64, below: u64) -> Result<Option<Batch>> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        match self.first_unacked_seq(from) {
            Some(seq) if seq < below => self.read(seq),
            _ => Ok(None),
        }
    }

    /// The first unacknowledged sequence number from `from` up to (not
    /// including) `below`, without reading the batch.
    pub fn next_unacked_seq_below(&self, from: u64, below: u64) -> Option<u64> {
        self.first_unacked_seq(from).filter(|&s| s < below)
    }

    /// The last (newest) unacknowledged sequence number from `from` up to
    /// (not including) `below`, without reading the batch.
    pub fn last_unacked_seq_below(&self, from: u64, below: u64) -> Option<u64> {
        let low = from.max(self.acked + 1);
        let mut end = below.min(self.next_seq);
        while end > low {
            let seq = end - 1;
            match self.above.containing(seq) {
                Some((first, _)) => end = first,
                None => return Some(seq),
            }
        }
        None
    }

    /// Whether a failed write or fsync poisoned the queue (until reopened).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Whether batch `seq` is acknowledged (in the prefix or a range above
    /// it; a batch dropped by `drop_oldest` counts as acknowledged).
    pub fn is_acked(&self, seq: u64) -> bool {
        seq <= self.acked || self.above.contains(seq)
    }

    /// The first unacknowledged sequence number at or after `from` that is on disk.
    fn first_unacked_seq(&self, from: u64) -> Option<u64> {
        let seq = self.above.skip(from.max(self.acked + 1));
        (seq < self.next_seq).then_some(seq)
    }

    /// The first sequence number of the live lane: the oldest batch queued at
    /// or after `cutoff_ms`, found by binary search on the enqueue times
    /// (they grow with the sequence numbers unless the clock stepped back;
    /// then the boundary is approximate, and both lanes are still sent).
    /// `next_seq` when no batch is that young.
    pub fn live_start(&self, cutoff_ms: i64) -> u64 {
        let i = self.segments.partition_point(|s| s.frames.first().is_some_and(|f| f.enqueued_ms < cutoff_ms));
        // The boundary is in segment i - 1 (or at the start of segment i).
        if let Some(s) = i.checked_sub(1).and_then(|j| self.segments.get(j)) {
            let k = s.frames.partition_point(|f| f.enqueued_ms < cutoff_ms);
            if let Some(f) = s.frames.get(k) {
                return f.seq;
            }
        }
        self.segments.iter().skip(i).find_map(|s| s.frames.first().map(|f| f.seq)).unwrap_or(self.next_seq)
    }

    /// Depth and oldest enqueue time of the backlog lane (unacknowledged
    /// batches before `live_start`) and the live lane (from it on).
    pub fn lanes(&self, live_start: u64) -> LaneStats {
        let count = |from: u64, to: u64| {
            // Unacknowledged batches in from..to.
            let from = from.max(self.acked + 1);
            if from >= to { 0 } else { to - from - self.above.count_in(from, to) }
        };
        let oldest = |from: u64, to: u64| {
            self.first_unacked_seq(from).filter(|&s| s < to).and_then(|s| self.frame(s)).map(|(_, f)| f.enqueued_ms)
        };
        let live_start = live_start.min(self.next_seq);
        LaneStats {
            backlog_batches: count(0, live_start),
            live_batches: count(live_start, self.next_seq),
            backlog_oldest_ms: oldest(0, live_start),
            live_oldest_ms: oldest(live_start, self.next_seq),
        }
    }

    /// The batch with sequence number `seq`, if it is still on disk.
    pub fn read(&self, seq: u64) -> Result<Option<Batch>> {
        let Some((segment, meta)) = self.frame(seq) else { return Ok(None) };
        let rerr = |source| Error::Read { path: segment.path.clone(), source };
        let mut file = File::open(&segment.path).map_err(rerr)?;
        file.seek(SeekFrom::Start(meta.offset + FRAME_HEADER_LEN as u64)).map_err(rerr)?;
        let mut payload = vec![0; meta.len as usize];
        file.read_exact(&mut payload).map_err(rerr)?;
        let actual = crc32fast::hash(&payload);
        if actual != meta.payload_crc {
            return Err(Error::ChecksumMismatch {
                path: segment.path.clone(),
                position: meta.offset,
                expected: meta.payload_crc,
                actual,
            });
        }
        Ok(Some(Batch { seq, enqueued_ms: meta.enqueued_ms, payload }))
    }

    /// Acknowledges every batch up to `seq`: persists the cursor atomically,
    /// then deletes the segments wholly behind it.
    pub fn ack(&mut self, seq: u64) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let seq = seq.min(self.next_seq - 1);
        if seq <= self.acked {
            return Ok(());
        }
        let mut above = self.above.clone();
        let newly: u64 =
            self.frames_between(self.acked, seq).filter(|f| !above.contains(f.seq)).map(FrameMeta::size).sum();
        above.remove_up_to(seq);
        let acked = above.absorb(seq);
        self.store_cursor(acked, above)?;
        self.unacked_bytes -= newly;
        self.delete_acked_segments(DeleteMode::KeepActive)?;
        Ok(())
    }

    /// Acknowledges exactly batch `seq`, in any order: persists the cursor
    /// (the contiguous acknowledged prefix and the acknowledged ranges above
    /// it) atomically, then deletes the segments wholly behind the prefix.
    /// A batch acknowledged before, or never appended, changes nothing.
    pub fn ack_one(&mut self, seq: u64) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if seq <= self.acked || seq >= self.next_seq || self.above.contains(seq) {
            return Ok(());
        }
        let mut above = self.above.clone();
        above.insert(seq);
        let acked = above.absorb(self.acked);
        self.store_cursor(acked, above)?;
        self.unacked_bytes -= self.frame(seq).map_or(0, |(_, f)| f.size());
        self.delete_acked_segments(DeleteMode::KeepActive)?;
        Ok(())
    }

    /// Replaces the cursor file with (`acked`, `above`), then takes them as
    /// the state. A failure poisons the queue (the state is unchanged).
    fn store_cursor(&mut self, acked: u64, above: AckedRanges) -> Result<()> {
        let tmp = self.dir.join(CURSOR_TMP);
        let path = self.dir.join(CURSOR_FILE);
        let sync = self.config.fsync == FsyncPolicy::EveryBatch;
        let bytes = format::encode_cursor(acked, &above.ranges());
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            if sync {
                f.sync_all()?;
            }
            fs::rename(&tmp, &path)
        };
        if let Err(source) = write() {
            self.poisoned = true;
            return Err(Error::Write { path, source });
        }
        if sync && let Err(e) = sync_dir(&self.dir) {
            self.poisoned = true;
            return Err(e);
        }
        self.acked = acked;
        self.above = above;
        Ok(())
    }

    /// Deletes the segments whose frames are all acknowledged. Returns how many.
    fn delete_acked_segments(&mut self, mode: DeleteMode) -> Result<usize> {
        let opening = mode == DeleteMode::Opening;
        let mut deleted = 0;
        while let Some(s) = self.segments.front() {
            // A wholly acknowledged active segment is kept for the next
            // appends (no file churn while the uplink keeps up); its bytes
            // are taken back when an append needs the space.
            if mode == DeleteMode::KeepActive && self.segments.len() == 1 && self.active.is_some() {
                break;
            }
            // Empty segments are kept only as the last (active) one.
            let behind = match s.last_seq() {
                Some(l) => l <= self.acked,
                None => self.segments.len() > 1 || opening && s.first_seq <= self.acked,
            };
            if !behind {
                break;
            }
            if self.segments.len() == 1 {
                self.active = None;
            }
            let s = self.segments.pop_front().expect("front exists");
            if !opening {
                self.disk_bytes -= s.bytes;
            }
            fs::remove_file(&s.path).map_err(|source| Error::Write { path: s.path.clone(), source })?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// The segment holding batch `seq` and the batch's frame (sequence
    /// numbers are contiguous within and across segments).
    fn frame(&self, seq: u64) -> Option<(&Segment, FrameMeta)> {
        let i = self.segments.partition_point(|s| s.first_seq <= seq).checked_sub(1)?;
        let segment = self.segments.get(i)?;
        let meta = *segment.frames.get(usize::try_from(seq - segment.first_seq).ok()?)?;
        debug_assert_eq!(meta.seq, seq, "frames of a segment are numbered from its first_seq");
        Some((segment, meta))
    }

    /// Frame bytes of the batches after `from` up to `to`, that are on disk.
    fn bytes_between(&self, from: u64, to: u64) -> u64 {
        self.frames_between(from, to).map(FrameMeta::size).sum()
    }

    /// The frames on disk numbered after `from` up to `to`, oldest first: a
    /// walk over the frames there are, not over the numbers (a cursor's
    /// numbers may span far more batches than the disk holds).
    fn frames_between(&self, from: u64, to: u64) -> impl Iterator<Item = &FrameMeta> {
        self.segments.iter().flat_map(|s| &s.frames).skip_while(move |f| f.seq <= from).take_while(move |f| f.seq <= to)
    }

    /// Current counters and gauges (constant time).
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            unacked_batches: self.next_seq - 1 - self.acked - self.above.count_in(0, u64::MAX),
            unacked_bytes: self.unacked_bytes,
            disk_bytes: self.disk_bytes,
            oldest_unacked_ms: self.frame(self.acked + 1).map(|(_, f)| f.enqueued_ms),
            acked_seq: self.acked,
            acked_above: self.above.count_in(0, u64::MAX),
            next_seq: self.next_seq,
            dropped_batches: self.dropped_batches,
            dropped_segments: self.dropped_segments,
        }
    }

    /// The configured bound and policies.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }
}

fn read_cursor(path: &Path) -> Result<(u64, Vec<(u64, u64)>)> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, Vec::new())),
        Err(source) => return Err(Error::Read { path: path.to_owned(), source }),
    };
    format::decode_cursor(&bytes).map_err(|e| match e {
        CursorError::Record(e) => record_error(path, 0, e, format::CURSOR_VERSION),
        CursorError::Layout(detail) => Error::Corrupted { path: path.to_owned(), position: 0, detail },
    })
}

/// Batches acknowledged above the contiguous prefix: inclusive ranges
/// `first → last`, disjoint and not adjacent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AckedRanges {
    ranges: BTreeMap<u64, u64>,
    /// Batches in the ranges.
    count: u64,
}

impl AckedRanges {
    fn from_ranges(ranges: &[(u64, u64)]) -> Self {
        let mut out = AckedRanges::default();
        for &(f, l) in ranges {
            out.ranges.insert(f, l);
            out.count += l - f + 1;
        }
        out
    }

    fn ranges(&self) -> Vec<(u64, u64)> {
        self.ranges.iter().map(|(&f, &l)| (f, l)).collect()
    }

    fn max(&self) -> Option<u64> {
        self.ranges.last_key_value().map(|(_, &l)| l)
    }

    /// The range holding `seq`, if any.
    fn containing(&self, seq: u64) -> Option<(u64, u64)> {
        self.ranges.range(..=seq).next_back().map(|(&f, &l)| (f, l)).filter(|&(_, l)| l >= seq)
    }

    fn contains(&self, seq: u64) -> bool {
        self.containing(seq).is_some()
    }

    /// The first sequence number at or after `seq` not in a range.
    fn skip(&self, seq: u64) -> u64 {
        self.containing(seq).map_or(seq, |(_, l)| l + 1)
    }

    fn insert(&mut self, seq: u64) {
        if self.contains(seq) {
            return;
        }
        let (mut first, mut last) = (seq, seq);
        if let Some((f, _)) = seq.checked_sub(1).and_then(|p| self.containing(p)) {
            self.ranges.remove(&f);
            first = f;
        }
        if let Some(l) = self.ranges.remove(&(seq + 1)) {
            last = l;
        }
        self.ranges.insert(first, last);
        self.count += 1;
    }

    /// Forgets every batch up to `seq`.
    fn remove_up_to(&mut self, seq: u64) {
        while let Some((&f, &l)) = self.ranges.first_key_value() {
            if f > seq {
                break;
            }
            self.ranges.remove(&f);
            if l > seq {
                self.ranges.insert(seq + 1, l);
                self.count -= seq + 1 - f;
                break;
            }
            self.count -= l - f + 1;
        }
    }

    /// With every batch up to `acked` acknowledged: moves the range that
    /// continues it into the prefix; returns the new prefix.
    fn absorb(&mut self, acked: u64) -> u64 {
        self.remove_up_to(acked);
        match self.ranges.remove(&(acked + 1)) {
            Some(l) => {
                self.count -= l - acked;
                l
            }
            None => acked,
        }
    }

    /// Batches in the ranges within `from..to`.
    fn count_in(&self, from: u64, to: u64) -> u64 {
        if from == 0 && to == u64::MAX {
            return self.count;
        }
        if from >= to {
            return 0;
        }
        let mut n = 0;
        let start = self.containing(from).map_or(from, |(f, _)| f);
        for (&f, &l) in self.ranges.range(start..to) {
            let (a, b) = (f.max(from), l.min(to.saturating_sub(1)));
            if a <= b {
                n += b - a + 1;
            }
        }
        n
    }
}

/// Reads a segment's frames. A torn tail of the last segment is cut off
/// (returned: the bytes removed); any other damage is an error. `None`
/// when the last segment was torn inside its header (it is deleted).
fn scan_segment(path: &Path, first_seq: u64, last: bool) -> Result<(Option<Segment>, u64)> {
    let bytes = fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let file_len = bytes.len() as u64;
    let Some(header) = bytes.first_chunk::<SEGMENT_HEADER_LEN>() else {
        if last {
            tracing::warn!(path = %path.display(), bytes = file_len, "queue: torn segment header, segment removed");
            fs::remove_file(path).map_err(|source| Error::Write { path: path.to_owned(), source })?;
            return Ok((None, file_len));
        }
        return Err(Error::Corrupted {
            path: path.to_owned(),
            position: 0,
            detail: format!("segment of {file_len} bytes is shorter than its header"),
        });
    };
    let named = format::decode_segment_header(header).map_err(|e| record_error(path, 0, e, format::VERSION))?;
    if named != first_seq {
        return Err(Error::Corrupted {
            path: path.to_owned(),
            position: 0,
            detail: format!("header says the first batch is {named}, the file name says {first_seq}"),
        });
    }
    let mut frames = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    let mut expected_seq = first_seq;
    let mut torn_at: Option<(usize, &'static str)> = None;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some(h) = rest.first_chunk::<FRAME_HEADER_LEN>() else {
            torn_at = Some((at, "incomplete frame header"));
            break;
        };
        let header = match format::decode_frame_header(h) {
            Ok(h) => h,
            Err((expected, actual)) => {
                if rest.iter().all(|&b| b == 0) {
                    torn_at = Some((at, "zero-filled tail"));
                    break;
                }
                return Err(Error::ChecksumMismatch { path: path.to_owned(), position: at as u64, expected, actual });
            }
        };
        if header.seq != expected_seq || header.len > MAX_PAYLOAD_LEN {
            return Err(Error::Corrupted {
                path: path.to_owned(),
                position: at as u64,
                detail: format!("frame of batch {} (length {}), expected batch {expected_seq}", header.seq, header.len),
            });
        }
        let end = at + FRAME_HEADER_LEN + header.len as usize;
        if end > bytes.len() {
            torn_at = Some((at, "incomplete frame payload"));
            break;
        }
        let actual = crc32fast::hash(&bytes[at + FRAME_HEADER_LEN..end]);
        if actual != header.payload_crc {
            if end == bytes.len() {
                torn_at = Some((at, "last frame's payload checksum mismatch"));
                break;
            }
            return Err(Error::ChecksumMismatch {
                path: path.to_owned(),
                position: at as u64,
                expected: header.payload_crc,
                actual,
            });
        }
        frames.push(FrameMeta {
            seq: header.seq,
            offset: at as u64,
            len: header.len,
            enqueued_ms: header.enqueued_ms,
            payload_crc: header.payload_crc,
        });
        expected_seq += 1;
        at = end;
    }
    let mut torn = 0;
    if let Some((offset, why)) = torn_at {
        if !last {
            return Err(Error::Corrupted { path: path.to_owned(), position: offset as u64, detail: why.to_owned() });
        }
        torn = file_len - offset as u64;
        tracing::warn!(
            path = %path.display(),
            offset,
            bytes = torn,
            reason = why,
            "queue: torn tail truncated (the process stopped mid-write; that batch was never acknowledged)"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| Error::Write { path: path.to_owned(), source })?;
        f.set_len(offset as u64)
            .and_then(|()| f.sync_all())
            .map_err(|source| Error::Write { path: path.to_owned(), source })?;
    }
    Ok((Some(Segment { first_seq, path: path.to_owned(), bytes: at as u64, frames }), torn))
}
