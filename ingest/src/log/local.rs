//! [`LocalLog`]: the embedded ingest log, partitioned segment files on local disk.
//!
//! Layout under the log directory:
//!
//! ```text
//! log.meta                      {"version":1,"partitions":P}  (partition count is fixed)
//! p0000/00000000000000000000.seg
//! p0000/00000000000000052311.seg   file name = base offset of its first record
//! p0000/00000000000000000000.seg.released   a released segment being deleted (deleted on open)
//! p0001/...
//! ```
//!
//! Each partition has one writer thread. It drains every request queued
//! while it was busy, writes their frames with one `write`, has the file
//! synced once for the whole group (group commit), hands the records to the
//! [`LogSink`] in offset order and then acknowledges the waiters. The
//! writers' syncs start in rounds (group commit across partitions, see
//! [`syncer`]): the records of a request that go to several partitions are
//! synced together, by concurrent `fdatasync`s started at the same moment,
//! not at several unrelated ones.
//!
//! With `sync = "interval"` ([`super::SyncMode`]) a writer acknowledges its
//! group once written and applied, without waiting for a sync round, and
//! marks its partition for the background syncs of [`interval`].
//!
//! A write or fsync that fails because the disk (or quota) is full is rolled
//! back: the file is cut back to the end of the last durable group and
//! synced, the group's writers get [`Error::DiskFull`] (nothing of it is
//! acknowledged), and the next group tries again, so writes resume on their
//! own once space is freed. After any other failed write or fsync the
//! partition is poisoned and refuses writes until restart (the kernel may
//! have dropped the dirty pages, so retrying the fsync would lie).
//!
//! On open, every segment of each partition is scanned
//! (see [`super::segment::scan_segment`]):
//!
//! * a **torn tail** of the newest segment (an incomplete last frame, or
//!   zero bytes: a group cut off by a crash, never acknowledged) is
//!   truncated with a warning;
//! * **damage** (a complete frame failing its checksum, bytes followed by
//!   valid frames, a damaged header) does not stop the node: a copy of the
//!   segment goes to `quarantine/pNNNN-<base>.seg`, the valid records before
//!   the damage stay, the valid records after it (the scan resynchronises on
//!   the next frame whose header, offset and checksum validate) move to a
//!   segment file of their own named by their first offset, and the loss
//!   (file, byte range, lost offsets) is logged at error level and counted
//!   in [`LogHealth`] (`strata_ingest_log_quarantined_*` in `/metrics`).
//!
//! Offsets are never reused: the lost offsets stay a gap between two files
//! (replay skips it), and when damage runs to the end of the newest segment,
//! numbering continues past every offset the damaged bytes could have held
//! (one if they are one frame by its length field, else one per 16 bytes),
//! in a new segment. The hot store's flushed offset is
//! still the floor, as before.

use super::segment::{self, FrameError, HEADER_LEN, MAX_RECORD_BYTES};
use super::{AppendFuture, Decoded, IngestLog, LogConfig, LogRecord, LogSink, SyncMode};
use crate::error::{Error, Result};
use crate::metrics::LogHealth;
use crate::stages::{self, Stage};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use syncer::Syncer;
use tokio::sync::{mpsc, oneshot};

mod interval;
pub(crate) mod syncer;

/// Directory under the log directory holding copies of damaged segments.
pub const QUARANTINE_DIR: &str = "quarantine";

#[derive(Debug, Serialize, Deserialize)]
struct LogMeta {
    version: u32,
    partitions: u32,
}

/// One pending append.
struct Request {
    payload: Vec<u8>,
    decoded: Option<Decoded>,
    done: oneshot::Sender<Result<u64>>,
    /// When it was queued (`strata_write_stage_seconds{stage="log_queue"}`).
    queued: Instant,
}

/// What a partition's writer thread is asked to do.
enum Command {
    /// Append a record.
    Append(Request),
    /// Close the active segment (if it holds records) and start a new one,
    /// so the old one can be released.
    Roll(oneshot::Sender<std::io::Result<()>>),
}

/// State of a partition shared between its writer thread and readers.
#[derive(Debug)]
struct Shared {
    id: u32,
    dir: PathBuf,
    /// Base offsets of the partition's segment files, ascending; the last is active.
    segments: Mutex<Vec<u64>>,
    /// Segments whose records end before the next segment's base (damaged
    /// records were quarantined): base → offset one past their last record.
    gaps: Mutex<BTreeMap<u64, u64>>,
    /// Offset the next record gets (= one past the last durable record).
    next_offset: AtomicU64,
    poisoned: AtomicBool,
    health: Arc<LogHealth>,
    /// The active segment file (the writer's own handle), for the
    /// background syncs of an `interval` log ([`interval`]).
    active: Mutex<Option<Arc<File>>>,
    /// Written since the last background sync began (`interval` logs).
    dirty: AtomicBool,
}

#[derive(Debug)]
struct Partition {
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

/// The embedded, file-backed [`IngestLog`].
#[derive(Debug)]
pub struct LocalLog {
    dir: PathBuf,
    partitions: Vec<Partition>,
    health: Arc<LogHealth>,
    syncer: Syncer,
    sync_thread: Mutex<Option<JoinHandle<()>>>,
    /// `sync = "interval"`: the background syncs (stopped by [`LocalLog::close`]).
    interval: Mutex<Option<interval::IntervalSync>>,
    sync_mode: SyncMode,
}

impl LocalLog {
    /// Opens (or creates) the log in `dir`.
    ///
    /// `floor(p)` is the first offset of partition `p` the consumer (the hot
    /// store) still needs; if the log on disk ends before it (the log was
    /// lost or replaced), numbering continues from the floor so no new
    /// record is mistaken for one already applied.
    pub fn open(dir: &Path, config: &LogConfig, floor: impl Fn(u32) -> u64, sink: Arc<dyn LogSink>) -> Result<Self> {
        Self::open_gathering(dir, config, floor, sink, syncer::GATHER_MAX)
    }

    /// [`LocalLog::open`] with the sync rounds' gather bound given (see [`syncer`]).
    fn open_gathering(
        dir: &Path,
        config: &LogConfig,
        floor: impl Fn(u32) -> u64,
        sink: Arc<dyn LogSink>,
        gather_max: Duration,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::OpenLog { path: dir.to_owned(), source })?;
        let resolved = LogConfig { partitions: config.resolved_partitions(dir), ..config.clone() };
        let config = &resolved;
        check_meta(dir, config.partitions)?;
        let health = Arc::new(LogHealth::default());
        let (syncer, sync_thread) = Syncer::start(config.partitions as usize, gather_max)
            .map_err(|source| Error::OpenLog { path: dir.to_owned(), source })?;
        // Built now so that an error below still stops the threads started.
        let mut log = Self {
            dir: dir.to_owned(),
            partitions: Vec::with_capacity(config.partitions as usize),
            health: Arc::clone(&health),
            syncer: syncer.clone(),
            sync_thread: Mutex::new(Some(sync_thread)),
            interval: Mutex::new(None),
            sync_mode: config.sync,
        };
        for id in 0..config.partitions {
            let (shared, writer) =
                open_partition(dir, id, floor(id), config, Arc::clone(&sink), &health, syncer.clone())?;
            let (tx, rx) = mpsc::channel(config.queue_depth);
            let thread = std::thread::Builder::new()
                .name(format!("log-writer-{id}"))
                .spawn(move || writer.run(rx))
                .map_err(|source| Error::OpenLog { path: dir.to_owned(), source })?;
            log.partitions.push(Partition { tx: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)), shared });
        }
        if config.sync == SyncMode::Interval {
            let parts = log.partitions.iter().map(|p| Arc::clone(&p.shared)).collect();
            let started = interval::IntervalSync::start(parts, config.sync_interval)
                .map_err(|source| Error::OpenLog { path: dir.to_owned(), source })?;
            *log.interval.lock() = Some(started);
        }
        Ok(log)
    }

    /// Damage found on open and writes refused for a full disk (rendered in `/metrics`).
    pub fn health(&self) -> Arc<LogHealth> {
        Arc::clone(&self.health)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Offset the next record of `partition` will get.
    pub fn next_offset(&self, partition: u32) -> u64 {
        self.shared(partition).map_or(0, |s| s.next_offset.load(Ordering::Acquire))
    }

    /// First offset still stored for `partition`.
    pub fn first_offset(&self, partition: u32) -> u64 {
        self.shared(partition).and_then(|s| s.segments.lock().first().copied()).unwrap_or(0)
    }

    /// Calls `f(offset, payload)` for every stored record of `partition`
    /// with offset `>= from`, in order. Returns the number of records visited.
    pub fn replay(&self, partition: u32, from: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<()>) -> Result<u64> {
        let Some(shared) = self.shared(partition) else { return Ok(0) };
        let end = shared.next_offset.load(Ordering::Acquire);
        let bases = shared.segments.lock().clone();
        let gaps = shared.gaps.lock().clone();
        let mut visited = 0;
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied().unwrap_or(end);
            let seg_end = gaps.get(&base).map_or(next_base, |&e| e.min(next_base));
            if seg_end <= from {
                continue;
            }
            visited += replay_segment(&shared.segment_path(base), partition, base, seg_end, from, f)?;
        }
        Ok(visited)
    }

    /// Deletes the segment files of `partition` whose records all have
    /// offsets below `below` (the consumer flushed them). The active segment
    /// is never deleted. Returns the number of files removed.
    pub fn release(&self, partition: u32, below: u64) -> Result<usize> {
        let Some(shared) = self.shared(partition) else { return Ok(0) };
        let active_base = shared.segments.lock().last().copied().unwrap_or(0);
        let next = shared.next_offset.load(Ordering::Acquire);
        if next > active_base && next <= below {
            // Everything in the active segment is consumed: roll so it can go too.
            self.roll(partition)?;
        }
        // The files are unlinked without the list's lock held: the writer
        // takes it to start a segment, and an unlink frees the file's page
        // cache (~8 ms a segment): a release of ten segments under the lock
        // held a roll, and the partition's writes, for 100 ms and more.
        // Entries are removed from the front, by a release; the writer
        // only appends.
        let doomed: Vec<u64> = {
            let segments = shared.segments.lock();
            segments.windows(2).take_while(|w| w[1] <= below).map(|w| w[0]).collect()
        };
        let mut removed = 0;
        for base in doomed {
            let path = shared.segment_path(base);
            match shrink_then_remove(&path) {
                // Gone already: a concurrent release took it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::WriteSegment { path, source }),
                Ok(()) => tracing::debug!(partition, path = %path.display(), "released ingest log segment"),
            }
            shared.gaps.lock().remove(&base);
            shared.segments.lock().retain(|&b| b != base);
            removed += 1;
        }
        Ok(removed)
    }

    /// Closes the active segment of `partition` (when it holds records) and
    /// starts a new one, so that once the consumer has flushed past every
    /// record written so far, [`LocalLog::release`] deletes all of their
    /// files, whatever arrives meanwhile. The server's erasure purge seals,
    /// flushes the hot store, then releases. Blocking: call from a blocking thread.
    pub fn seal(&self, partition: u32) -> Result<()> {
        self.roll(partition)
    }

    /// Asks the writer of `partition` to start a new segment if the active
    /// one holds records. Blocking: call from a blocking thread.
    fn roll(&self, partition: u32) -> Result<()> {
        let Some(p) = self.partitions.get(partition as usize) else { return Ok(()) };
        let Some(tx) = p.tx.lock().clone() else { return Ok(()) };
        let (reply, rx) = oneshot::channel();
        if tx.blocking_send(Command::Roll(reply)).is_err() {
            return Ok(()); // closing: nothing to release any more
        }
        match rx.blocking_recv() {
            Ok(result) => result.map_err(|source| Error::WriteSegment { path: p.shared.dir.clone(), source }),
            Err(_) => Ok(()),
        }
    }

    /// Total bytes of all segment files.
    pub fn disk_bytes(&self) -> u64 {
        let mut total = 0;
        for p in &self.partitions {
            let bases = p.shared.segments.lock().clone();
            for base in bases {
                total += std::fs::metadata(p.shared.segment_path(base)).map_or(0, |m| m.len());
            }
        }
        total
    }

    /// Stops accepting appends, lets the writers finish what is queued and
    /// joins them. Idempotent.
    pub fn close(&self) {
        for p in &self.partitions {
            p.tx.lock().take();
        }
        for p in &self.partitions {
            if let Some(t) = p.thread.lock().take()
                && t.join().is_err()
            {
                tracing::error!(partition = p.shared.id, "ingest log writer thread panicked");
            }
        }
        // The writers have synced everything they took; now the round thread can go.
        self.syncer.close();
        if let Some(mut interval) = self.interval.lock().take() {
            interval.stop();
        }
        if let Some(t) = self.sync_thread.lock().take()
            && t.join().is_err()
        {
            tracing::error!("ingest log sync thread panicked");
        }
    }

    /// Sync rounds so far (a round lets every partition written since the last one sync).
    pub fn sync_rounds(&self) -> u64 {
        self.syncer.rounds()
    }

    fn shared(&self, partition: u32) -> Option<&Arc<Shared>> {
        self.partitions.get(partition as usize).map(|p| &p.shared)
    }

    async fn append_all(&self, records: Vec<LogRecord>) -> Result<Vec<u64>> {
        let mut sends = Vec::with_capacity(records.len());
        for LogRecord { partition, payload, decoded } in records {
            if payload.len() > MAX_RECORD_BYTES {
                return Err(Error::RecordTooLarge { size: payload.len(), max: MAX_RECORD_BYTES });
            }
            let p = self.partitions.get(partition as usize).ok_or(Error::Closed)?;
            if p.shared.poisoned.load(Ordering::Acquire) {
                return Err(Error::Poisoned { partition });
            }
            let tx = p.tx.lock().clone().ok_or(Error::Closed)?;
            sends.push((partition, tx, payload, decoded));
        }
        // Every record is owed before the first is queued, so the sync round
        // that takes the first waits for the others (see `syncer`).
        // (An `interval` log's writers do not wait for rounds: nothing is owed.)
        let owing = self.sync_mode == SyncMode::Always;
        let mut owed = Owed { syncer: &self.syncer, unsent: sends.iter().map(|s| s.0).filter(|_| owing).collect() };
        owed.unsent.reverse();
        for p in owed.unsent.iter() {
            self.syncer.owe(*p as usize, 1);
        }
        let mut waits = Vec::with_capacity(sends.len());
        for (_, tx, payload, decoded) in sends {
            let (done, rx) = oneshot::channel();
            let queued = Instant::now();
            let sent = tx.send(Command::Append(Request { payload, decoded, done, queued })).await;
            if sent.is_err() {
                return Err(Error::Closed); // `owed` forgives this one and the rest
            }
            if owing {
                owed.unsent.pop();
            }
            waits.push(rx);
        }
        let mut offsets = Vec::with_capacity(waits.len());
        for rx in waits {
            offsets.push(rx.await.map_err(|_| Error::Closed)??);
        }
        Ok(offsets)
    }
}

/// Records owed to the sync rounds but not queued yet: forgiven on drop
/// (a failed send, or the append's future dropped half-way), so no round
/// waits for records that will never come.
struct Owed<'a> {
    syncer: &'a Syncer,
    /// Partitions of the records not queued yet, the next one last.
    unsent: Vec<u32>,
}

impl Drop for Owed<'_> {
    fn drop(&mut self) {
        for &p in &self.unsent {
            self.syncer.forgive(p as usize, 1);
        }
    }
}

impl Drop for LocalLog {
    fn drop(&mut self) {
        self.close();
    }
}

impl IngestLog for LocalLog {
    fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    fn append(&self, records: Vec<LogRecord>) -> AppendFuture<'_> {
        Box::pin(self.append_all(records))
    }

    /// Every record appended is applied before its append resolves, so a
    /// token from an acknowledged write is always below the log's end.
    fn applied(&self, partition: u32) -> Option<u64> {
        (partition < self.partitions()).then(|| self.next_offset(partition))
    }
}

impl Shared {
    fn segment_path(&self, base: u64) -> PathBuf {
        self.dir.join(format!("{base:020}.seg"))
    }
}

/// The partition count `dir/log.meta` records; `None` when there is no
/// readable one.
pub(crate) fn meta_partitions(dir: &Path) -> Option<u32> {
    let bytes = std::fs::read(dir.join("log.meta")).ok()?;
    serde_json::from_slice::<LogMeta>(&bytes).ok().map(|m| m.partitions).filter(|&n| n > 0)
}

fn check_meta(dir: &Path, partitions: u32) -> Result<()> {
    let path = dir.join("log.meta");
    let io_err = |source| Error::OpenLog { path: path.clone(), source };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let meta: LogMeta = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupted {
                path: path.clone(),
                position: 0,
                detail: format!("unreadable log metadata: {e}"),
            })?;
            if meta.partitions != partitions {
                return Err(Error::PartitionCountChanged { path, on_disk: meta.partitions, configured: partitions });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let meta = serde_json::to_vec(&LogMeta { version: 1, partitions }).unwrap_or_default();
            let tmp = dir.join("log.meta.tmp");
            write_synced(&tmp, &meta).map_err(io_err)?;
            std::fs::rename(&tmp, &path).map_err(io_err)?;
            sync_dir(dir).map_err(io_err)
        }
        Err(e) => Err(io_err(e)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Fsyncs a directory so a rename or create in it is durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens one partition: lists its segments, checks every one of them
/// (repairing a torn tail, quarantining damage), and returns its shared
/// state and its writer.
fn open_partition(
    dir: &Path,
    id: u32,
    floor: u64,
    config: &LogConfig,
    sink: Arc<dyn LogSink>,
    health: &Arc<LogHealth>,
    syncer: Syncer,
) -> Result<(Arc<Shared>, Writer)> {
    let pdir = dir.join(format!("p{id:04}"));
    std::fs::create_dir_all(&pdir).map_err(|source| Error::OpenLog { path: pdir.clone(), source })?;
    let mut bases = list_segments(&pdir)?;
    let shared = Arc::new(Shared {
        id,
        dir: pdir,
        segments: Mutex::new(Vec::new()),
        gaps: Mutex::new(BTreeMap::new()),
        next_offset: AtomicU64::new(0),
        poisoned: AtomicBool::new(false),
        health: Arc::clone(health),
        active: Mutex::new(None),
        dirty: AtomicBool::new(false),
    });
    let mut gaps = BTreeMap::new();
    // (records end of the newest segment, its size, offsets to skip past)
    let mut tail = (floor, 0, None);
    let mut i = 0;
    while i < bases.len() {
        let base = bases[i];
        let limit = bases.get(i + 1).copied().unwrap_or(u64::MAX);
        let newest = i + 1 == bases.len();
        let r = recover_segment(dir, &shared, base, limit, newest, floor)?;
        let mut ends = vec![(base, r.end)];
        for (k, &(b, end)) in r.moved.iter().enumerate() {
            bases.insert(i + 1 + k, b);
            ends.push((b, end));
        }
        for (k, &(b, end)) in ends.iter().enumerate() {
            let next_base = ends.get(k + 1).map_or(limit, |e| e.0);
            if end < next_base && next_base != u64::MAX {
                gaps.insert(b, end);
            }
        }
        i += 1 + r.moved.len();
        if i == bases.len() {
            tail = (ends.last().map_or(base, |e| e.1), r.last_size, r.skip_to);
        }
    }
    let (last_end, mut size, skip_to) = tail;
    let mut next = last_end.max(skip_to.unwrap_or(0));
    if next < floor {
        if !bases.is_empty() {
            tracing::warn!(
                partition = id,
                log_end = next,
                consumer_needs = floor,
                "ingest log ends before the offset the hot store expects (log lost or replaced?); \
                 continuing numbering at {floor}"
            );
        }
        next = floor;
    }
    if bases.is_empty() || next != last_end {
        if next > i64::MAX as u64 {
            // The file it would start is one the next open refuses (see `list_segments`).
            let detail = format!("partition {id} would start a segment at offset {next}, past 2^63 - 1");
            return Err(Error::Corrupted { path: shared.dir.clone(), position: 0, detail });
        }
        // Records are numbered densely within a file, so numbering that
        // jumps (past lost offsets, or up to the floor) starts a new file.
        if let Some(&b) = bases.last() {
            gaps.insert(b, last_end);
        }
        create_segment(&shared.dir, id, next, &[])?;
        bases.push(next);
        size = HEADER_LEN as u64;
    }
    let active = *bases.last().unwrap_or(&next);
    gaps.remove(&active);
    let path = shared.segment_path(active);
    let file = Arc::new(
        OpenOptions::new().append(true).open(&path).map_err(|source| Error::OpenLog { path: path.clone(), source })?,
    );
    *shared.active.lock() = Some(Arc::clone(&file));
    *shared.segments.lock() = bases;
    *shared.gaps.lock() = gaps;
    shared.next_offset.store(next, Ordering::Release);
    let writer = Writer {
        shared: Arc::clone(&shared),
        file,
        path,
        size,
        config: config.clone(),
        sink,
        buf: Vec::new(),
        syncer,
        sync_turn: std::sync::mpsc::sync_channel(1),
    };
    Ok((shared, writer))
}

fn list_segments(pdir: &Path) -> Result<Vec<u64>> {
    let read_err = |source| Error::OpenLog { path: pdir.to_owned(), source };
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(pdir).map_err(read_err)? {
        let name = entry.map_err(read_err)?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".seg")
            && let Ok(base) = stem.parse::<u64>()
        {
            // Offsets stay below 2^63 (as Kafka's do): a file named past it is
            // damage, and would break recovery ("no next segment" is u64::MAX)
            // or overflow the offsets of the next appends.
            if base > i64::MAX as u64 {
                let detail = format!("segment file named after offset {base}, past 2^63 - 1");
                return Err(Error::Corrupted { path: pdir.join(&*name), position: 0, detail });
            }
            bases.push(base);
        } else if name.ends_with(".seg.tmp") || name.ends_with(RELEASED_SUFFIX) {
            // A segment whose creation was cut off by a crash (it holds no
            // record), or a released one whose deletion was.
            let _ = std::fs::remove_file(pdir.join(&*name));
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// What checking one segment on open left.
struct Recovered {
    /// Offset one past the last record kept in the file.
    end: u64,
    /// Segment files written for valid records found after damage:
    /// `(base, end)`, ascending, all between this file's base and the next one's.
    moved: Vec<(u64, u64)>,
    /// Size of the last of the files (this one or the last moved one).
    last_size: u64,
    /// For the newest segment with damage running to its end: the offset
    /// numbering must continue from, so no offset the damaged bytes may
    /// have held is handed out again.
    skip_to: Option<u64>,
}

/// Checks one segment. A torn tail of the newest segment is truncated with a
/// warning. Damage is never fatal: a copy of the whole file goes to
/// `<log dir>/quarantine/`, the valid records before the damage stay in
/// the file (which is cut after them), the valid records found after it are
/// written to segment files of their own (named by their first offset), and
/// the loss is logged at error level and counted in [`LogHealth`].
///
/// Crash safety: the quarantine copy and the new files are durable before
/// the original is cut; if a crash interrupts the repair, the next open
/// finds the same damage again, and records of the original at or past the
/// next file's base (`limit`) count as part of the damage, since that file
/// holds them.
fn recover_segment(
    log_dir: &Path,
    shared: &Shared,
    base: u64,
    limit: u64,
    newest: bool,
    floor: u64,
) -> Result<Recovered> {
    let partition = shared.id;
    let path = shared.segment_path(base);
    let bytes = std::fs::read(&path).map_err(|source| Error::ReadSegment { path: path.clone(), source })?;
    let header_ok = segment::header_intact(&bytes);
    if header_ok {
        // An intact header naming another partition, base or version is not
        // damage but a misplaced or newer file: refuse it.
        let header_base = segment::decode_header(&path, &bytes, partition)?;
        if header_base != base {
            return Err(Error::Corrupted {
                path: path.clone(),
                position: 0,
                detail: format!("header base offset {header_base} does not match the file name"),
            });
        }
    }
    let scan = segment::scan_segment(&bytes, base, limit, newest);
    let write_err = |source| Error::WriteSegment { path: path.clone(), source };
    if let Some((pos, reason)) = &scan.torn {
        tracing::warn!(
            path = %path.display(),
            valid_bytes = pos,
            torn_bytes = bytes.len() - pos,
            reason = %reason,
            next_offset = scan.next_offset(base),
            "truncating torn tail of ingest log segment (an unacknowledged write cut off by a crash)"
        );
    }
    if header_ok && scan.damage.is_empty() {
        let size = scan.torn.as_ref().map_or(bytes.len(), |t| t.0) as u64;
        if scan.torn.is_some() {
            truncate(&path, size).map_err(write_err)?;
        }
        return Ok(Recovered { end: scan.next_offset(base), moved: Vec::new(), last_size: size, skip_to: None });
    }

    let quarantined = quarantine_copy(log_dir, partition, base, &bytes)?;
    let mut damaged_bytes = if header_ok { 0 } else { HEADER_LEN.min(bytes.len()) as u64 };
    let mut lost_offsets = 0;
    let mut skip_to = None;
    if !header_ok {
        tracing::error!(
            path = %path.display(),
            bytes = %format!("0..{}", HEADER_LEN.min(bytes.len())),
            quarantine = %quarantined.display(),
            "corrupt ingest log segment header (checksum or magic wrong): copy quarantined, \
             header rewritten from the file name, records checked one by one"
        );
    }
    for d in &scan.damage {
        let (lost_end, exact) = match d.resumed_at {
            Some(at) => (at, true),
            None if limit != u64::MAX => (limit, true),
            None => {
                // Damage to the end of the newest segment: exactly one record
                // if the bytes are one frame by its length field, else at most
                // one per frame header's worth of bytes.
                let len = bytes.get(d.start..d.start + 4).map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]));
                let one = len.is_some_and(|l| d.start + segment::FRAME_HEADER_LEN + l as usize == d.end);
                let most = if one { 1 } else { ((d.end - d.start) / segment::FRAME_HEADER_LEN).max(1) as u64 };
                // Saturating: a damaged segment may be named after an offset near u64::MAX.
                skip_to = Some(d.first_lost.saturating_add(most));
                (d.first_lost.saturating_add(most), one)
            }
        };
        // Records below the hot store's flushed offset are in its segments already.
        let lost = lost_end.saturating_sub(d.first_lost.max(floor));
        damaged_bytes += (d.end - d.start) as u64;
        lost_offsets += lost;
        tracing::error!(
            path = %path.display(),
            bytes = %format!("{}..{}", d.start, d.end),
            damaged_bytes = d.end - d.start,
            offsets = %format!("{}..{lost_end}", d.first_lost),
            records_lost = %if exact { lost.to_string() } else { format!("at most {lost}") },
            hot_store_flushed_to = floor,
            resumed_at = ?d.resumed_at,
            detail = %d.detail,
            quarantine = %quarantined.display(),
            "corrupt ingest log segment (acknowledged records damaged, not a torn write): damaged bytes \
             quarantined, their records not yet in the hot store's segments are lost; the valid records \
             before and after are kept and the node keeps serving"
        );
    }
    shared.health.quarantined_segments.fetch_add(1, Ordering::Relaxed);
    shared.health.quarantined_bytes.fetch_add(damaged_bytes, Ordering::Relaxed);
    shared.health.lost_offsets.fetch_add(lost_offsets, Ordering::Relaxed);

    let keep_first = header_ok && scan.runs.first().is_some_and(|r| r.start == HEADER_LEN);
    let (kept, others) = match keep_first {
        true => (scan.runs.first(), scan.runs.get(1..).unwrap_or_default()),
        false => (None, &scan.runs[..]),
    };
    // The original keeps its valid prefix (or, with a damaged header, is
    // rewritten with the run that starts at its base, if any).
    let (mut end, mut last_size) = (kept.map_or(base, |r| r.next), kept.map_or(HEADER_LEN, |r| r.end) as u64);
    let mut moved = Vec::new();
    for run in others {
        create_segment(&shared.dir, partition, run.first, &bytes[run.start..run.end])?;
        last_size = (HEADER_LEN + run.end - run.start) as u64;
        if run.first == base {
            end = run.next;
        } else {
            moved.push((run.first, run.next));
        }
    }
    // A run that starts at the base offset (after damage, with or without an
    // intact header) was just written under this file's name: it is the file now.
    let rewritten = others.first().is_some_and(|r| r.first == base);
    if header_ok && !rewritten {
        truncate(&path, kept.map_or(HEADER_LEN, |r| r.end) as u64).map_err(write_err)?;
    } else if !header_ok && !rewritten {
        create_segment(&shared.dir, partition, base, &[])?;
        if moved.is_empty() {
            last_size = HEADER_LEN as u64;
        }
    }
    Ok(Recovered { end, moved, last_size, skip_to })
}

/// Cuts a file to `len` bytes durably.
fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

/// Writes a copy of a damaged segment to `<log dir>/quarantine/pNNNN-<base>.seg`
/// (`.1.seg`, `.2.seg`, … if taken) durably, and returns its path.
fn quarantine_copy(log_dir: &Path, partition: u32, base: u64, bytes: &[u8]) -> Result<PathBuf> {
    let qdir = log_dir.join(QUARANTINE_DIR);
    let io_err = |source| Error::WriteSegment { path: qdir.clone(), source };
    std::fs::create_dir_all(&qdir).map_err(io_err)?;
    let stem = format!("p{partition:04}-{base:020}");
    let path = (0..)
        .map(|n| match n {
            0 => qdir.join(format!("{stem}.seg")),
            n => qdir.join(format!("{stem}.{n}.seg")),
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| qdir.join(format!("{stem}.seg")));
    let tmp = qdir.join(format!("{stem}.tmp"));
    write_synced(&tmp, bytes).map_err(io_err)?;
    std::fs::rename(&tmp, &path).map_err(io_err)?;
    sync_dir(&qdir).and_then(|()| sync_dir(log_dir)).map_err(io_err)?;
    Ok(path)
}

/// Creates a segment durably (temp file, fsync, rename, dir fsync): the
/// header for `base`, then `frames` (already encoded, dense from `base`).
fn create_segment(pdir: &Path, partition: u32, base: u64, frames: &[u8]) -> Result<PathBuf> {
    let path = pdir.join(format!("{base:020}.seg"));
    let tmp = pdir.join(format!("{base:020}.seg.tmp"));
    let write_err = |source| Error::WriteSegment { path: path.clone(), source };
    let mut bytes = segment::encode_header(partition, base).to_vec();
    bytes.extend_from_slice(frames);
    write_synced(&tmp, &bytes).map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    sync_dir(pdir).map_err(write_err)?;
    Ok(path)
}

/// Reads the records `[max(from, base), end)` of one segment.
fn replay_segment(
    path: &Path,
    partition: u32,
    base: u64,
    end: u64,
    from: u64,
    f: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let bytes = std::fs::read(path).map_err(|source| Error::ReadSegment { path: path.to_owned(), source })?;
    segment::decode_header(path, &bytes, partition)?;
    let mut pos = HEADER_LEN;
    let mut visited = 0;
    for expected in base..end {
        let frame = segment::decode_frame(bytes.get(pos..).unwrap_or_default(), expected, true).map_err(|e| {
            let detail = match e {
                FrameError::Truncated => format!("record {expected} is missing or incomplete"),
                FrameError::Invalid(d) => d,
            };
            Error::Corrupted { path: path.to_owned(), position: pos as u64, detail }
        })?;
        if expected >= from {
            f(expected, frame.payload)?;
            visited += 1;
        }
        pos += frame.size;
    }
    Ok(visited)
}

/// The writer thread of one partition.
struct Writer {
    shared: Arc<Shared>,
    /// The active segment (shared with the background syncs of an `interval` log).
    file: Arc<File>,
    path: PathBuf,
    size: u64,
    config: LogConfig,
    sink: Arc<dyn LogSink>,
    buf: Vec<u8>,
    syncer: Syncer,
    /// This writer's channel for the round thread's "go".
    sync_turn: (std::sync::mpsc::SyncSender<()>, std::sync::mpsc::Receiver<()>),
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut group = Vec::with_capacity(self.config.max_group_records);
        while let Some(cmd) = rx.blocking_recv() {
            let mut next = Some(cmd);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Roll(reply) => {
                        let t0 = Instant::now();
                        let rolled = self.roll_if_used();
                        stages::global().observe(Stage::LogRoll, t0.elapsed());
                        let _ = reply.send(rolled);
                    }
                    Command::Append(first) => {
                        group.push(first);
                        // Group commit: take everything queued meanwhile.
                        while group.len() < self.config.max_group_records {
                            match rx.try_recv() {
                                Ok(Command::Append(r)) => group.push(r),
                                Ok(other) => {
                                    next = Some(other);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        self.commit(&mut group);
                    }
                }
            }
        }
        if self.config.sync == SyncMode::Interval
            && !self.shared.poisoned.load(Ordering::Acquire)
            && let Err(error) = self.file.sync_data()
        {
            tracing::error!(partition = self.shared.id, %error, "ingest log: the final sync at close failed");
        }
    }

    /// Rolls to a new segment unless the active one is still empty.
    fn roll_if_used(&mut self) -> std::io::Result<()> {
        if self.shared.poisoned.load(Ordering::Acquire) || self.size <= HEADER_LEN as u64 {
            return Ok(());
        }
        self.roll(self.shared.next_offset.load(Ordering::Acquire))
    }

    /// Writes, syncs, applies and acknowledges one group of requests.
    fn commit(&mut self, group: &mut Vec<Request>) {
        let partition = self.shared.id;
        if self.shared.poisoned.load(Ordering::Acquire) {
            self.syncer.forgive(partition as usize, group.len() as u64);
            for r in group.drain(..) {
                let _ = r.done.send(Err(Error::Poisoned { partition }));
            }
            return;
        }
        let taken = Instant::now();
        for r in group.iter() {
            stages::global().observe(Stage::LogQueue, taken.saturating_duration_since(r.queued));
        }
        let first = self.shared.next_offset.load(Ordering::Acquire);
        if let Err(e) = self.write_group(group, first) {
            if is_disk_full(&e) {
                match self.roll_back() {
                    Ok(()) => {
                        self.shared.health.disk_full_refusals.fetch_add(group.len() as u64, Ordering::Relaxed);
                        tracing::warn!(
                            partition,
                            path = %self.path.display(),
                            error = %e,
                            "ingest log disk full: write refused and rolled back; writes resume once space is freed"
                        );
                        let (path, kind, msg) = (self.path.clone(), e.kind(), e.to_string());
                        for r in group.drain(..) {
                            let source = std::io::Error::new(kind, msg.clone());
                            let _ = r.done.send(Err(Error::DiskFull { path: path.clone(), source }));
                        }
                        return;
                    }
                    Err(rollback) => {
                        tracing::error!(partition, error = %rollback, "rolling back a write refused for a full disk failed");
                    }
                }
            }
            self.shared.poisoned.store(true, Ordering::Release);
            tracing::error!(partition, error = %e, "ingest log write failed; partition poisoned until restart");
            let (path, kind, msg) = (self.path.clone(), e.kind(), e.to_string());
            for r in group.drain(..) {
                let source = std::io::Error::new(kind, msg.clone());
                let _ = r.done.send(Err(Error::WriteSegment { path: path.clone(), source }));
            }
            return;
        }
        self.shared.next_offset.store(first + group.len() as u64, Ordering::Release);
        for (i, r) in group.drain(..).enumerate() {
            let offset = first + i as u64;
            let t0 = Instant::now();
            let result = self
                .sink
                .apply(partition, offset, &r.payload, r.decoded.as_deref())
                .map(|()| offset)
                .map_err(|e| Error::Apply { partition, offset, kind: e.kind, detail: e.message });
            stages::global().observe(Stage::Apply, t0.elapsed());
            let _ = r.done.send(result);
        }
    }

    /// Writes one group's frames and syncs them in the next round (the
    /// group's records are owed to the rounds until then, see [`syncer`]);
    /// an `interval` log marks the partition for the next background sync
    /// instead ([`interval`]).
    fn write_group(&mut self, group: &[Request], first: u64) -> std::io::Result<()> {
        let records = group.len() as u64;
        let always = self.config.sync == SyncMode::Always;
        let written = self.write_frames(group, first);
        if let Err(e) = written {
            if always {
                self.syncer.forgive(self.shared.id as usize, records);
            }
            return Err(e);
        }
        if always {
            self.syncer.sync(self.shared.id as usize, &self.file, records, &self.sync_turn)?;
        } else {
            self.shared.dirty.store(true, Ordering::Release);
        }
        self.size += self.buf.len() as u64;
        Ok(())
    }

    /// Rolls if the active segment is full, then writes the group's frames (one `write`).
    fn write_frames(&mut self, group: &[Request], first: u64) -> std::io::Result<()> {
        if self.size >= self.config.segment_bytes {
            let t0 = Instant::now();
            self.roll(first)?;
            stages::global().observe(Stage::LogRoll, t0.elapsed());
        }
        self.buf.clear();
        for (i, r) in group.iter().enumerate() {
            segment::encode_frame(&mut self.buf, first + i as u64, &r.payload);
        }
        let t0 = Instant::now();
        (&*self.file).write_all(&self.buf)?;
        stages::global().observe(Stage::LogWrite, t0.elapsed());
        Ok(())
    }

    /// Cuts the active segment back to the end of the last durable group
    /// (dropping whatever part of a failed group reached the file) and
    /// syncs that. Sound after a failed fsync too: everything kept was
    /// synced by an earlier, successful fsync, and the pages the failure may
    /// have dropped belong to the bytes cut off.
    fn roll_back(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.size)?;
        self.file.sync_all()
    }

    /// Starts a new segment whose first record will be `base` (an
    /// `interval` log first syncs the old one: the background syncs only
    /// know the active segment).
    fn roll(&mut self, base: u64) -> std::io::Result<()> {
        if self.config.sync == SyncMode::Interval {
            self.file.sync_data()?;
        }
        let path = create_segment(&self.shared.dir, self.shared.id, base, &[]).map_err(|e| match e {
            Error::WriteSegment { source, .. } => source,
            other => std::io::Error::other(other),
        })?;
        self.file = Arc::new(OpenOptions::new().append(true).open(&path)?);
        *self.shared.active.lock() = Some(Arc::clone(&self.file));
        self.path = path;
        self.size = HEADER_LEN as u64;
        self.shared.segments.lock().push(base);
        Ok(())
    }
}

/// How much of a released segment file is freed at a time, and the pause
/// after each step ([`shrink_then_remove`]).
const RELEASE_STEP: u64 = 4 << 20;
const RELEASE_PAUSE: Duration = Duration::from_millis(10);

/// Suffix of a released segment file being deleted ([`shrink_then_remove`]).
const RELEASED_SUFFIX: &str = ".seg.released";

/// Deletes a released segment file, first cutting it down [`RELEASE_STEP`]
/// bytes at a time with a pause after each step. It is renamed to
/// `<base>.seg.released` first: a crash while it is cut down leaves a file
/// that opening the log deletes, not a segment cut short.
///
/// Freeing a file's blocks is work in the file system's journal (and, on a
/// file system mounted with `discard`, a discard of the blocks), and every
/// `fdatasync` of the log waits for the journal commit that carries it: a
/// release after a flush frees four or five 64 MiB segments at once, and
/// unlinked in one go they held the writers' syncs 30–66 ms for the ~150 ms
/// the unlinks took (measured on this host, ext4 with `discard`, 4 × 64 MiB:
/// concurrent 60 kB appends' `fdatasync` ≤ 3–6 ms while the files were cut
/// down 4 MiB every 10 ms, apart from one later 37–54 ms stall). A release
/// takes ~0.2 s per 64 MiB segment; the next flush waits for it (and an
/// erasure's purge and a shutdown, which release before they answer).
fn shrink_then_remove(path: &Path) -> std::io::Result<()> {
    let released = path.with_extension(&RELEASED_SUFFIX[1..]);
    std::fs::rename(path, &released)?;
    if let Some(pdir) = path.parent() {
        sync_dir(pdir)?;
    }
    let path = released.as_path();
    let file = OpenOptions::new().write(true).open(path)?;
    let mut len = file.metadata()?.len();
    while len > RELEASE_STEP {
        len -= RELEASE_STEP;
        file.set_len(len)?;
        std::thread::sleep(RELEASE_PAUSE);
    }
    drop(file);
    std::fs::remove_file(path)
}

/// Whether an I/O error means the disk (or the user's quota) is full: a
/// condition that goes away when space is freed, unlike a failing device.
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

#[cfg(test)]
mod tests;
