//! [`LocalLog`]: the embedded ingest log, partitioned segment files on local disk.
//!
//! Layout under the log directory:
//!
//! ```text
//! log.meta                      {"version":1,"partitions":P}  (partition count is fixed)
//! p0000/00000000000000000000.seg
//! p0000/00000000000000052311.seg   file name = base offset of its first record
//! p0001/...
//! ```
//!
//! Each partition has one writer thread. It drains every request queued
//! while it was busy, writes their frames with one `write`, calls
//! `fdatasync` once for the whole group (group commit), hands the records
//! to the [`LogSink`] in offset order and then acknowledges the waiters.
//! After a failed write or fsync the partition is poisoned and refuses
//! writes until restart (the kernel may have dropped the dirty pages, so
//! retrying the fsync would lie).
//!
//! On open, the newest segment of each partition is scanned: a torn tail (a
//! group cut off by a crash, never acknowledged) is truncated with a warning;
//! damage followed by valid records is refused (see [`super::segment::scan_tail`]).

use super::segment::{self, FrameError, HEADER_LEN, MAX_RECORD_BYTES};
use super::{AppendFuture, Decoded, IngestLog, LogConfig, LogRecord, LogSink};
use crate::error::{Error, Result};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

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
    /// Offset the next record gets (= one past the last durable record).
    next_offset: AtomicU64,
    poisoned: AtomicBool,
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
}

impl LocalLog {
    /// Opens (or creates) the log in `dir`.
    ///
    /// `floor(p)` is the first offset of partition `p` the consumer (the hot
    /// store) still needs; if the log on disk ends before it (the log was
    /// lost or replaced), numbering continues from the floor so no new
    /// record is mistaken for one already applied.
    pub fn open(dir: &Path, config: &LogConfig, floor: impl Fn(u32) -> u64, sink: Arc<dyn LogSink>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::OpenLog { path: dir.to_owned(), source })?;
        check_meta(dir, config.partitions)?;
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for id in 0..config.partitions {
            let (shared, writer) = open_partition(dir, id, floor(id), config, Arc::clone(&sink))?;
            let (tx, rx) = mpsc::channel(config.queue_depth);
            let thread = std::thread::Builder::new()
                .name(format!("log-writer-{id}"))
                .spawn(move || writer.run(rx))
                .map_err(|source| Error::OpenLog { path: dir.to_owned(), source })?;
            partitions.push(Partition { tx: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)), shared });
        }
        Ok(Self { dir: dir.to_owned(), partitions })
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
        let mut visited = 0;
        for (i, &base) in bases.iter().enumerate() {
            let seg_end = bases.get(i + 1).copied().unwrap_or(end);
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
        let mut segments = shared.segments.lock();
        let mut removed = 0;
        while segments.len() >= 2 && segments[1] <= below {
            let path = shared.segment_path(segments[0]);
            std::fs::remove_file(&path).map_err(|source| Error::WriteSegment { path: path.clone(), source })?;
            tracing::debug!(partition, path = %path.display(), "released ingest log segment");
            segments.remove(0);
            removed += 1;
        }
        Ok(removed)
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
    }

    fn shared(&self, partition: u32) -> Option<&Arc<Shared>> {
        self.partitions.get(partition as usize).map(|p| &p.shared)
    }

    async fn append_all(&self, records: Vec<LogRecord>) -> Result<Vec<u64>> {
        let mut waits = Vec::with_capacity(records.len());
        for LogRecord { partition, payload, decoded } in records {
            if payload.len() > MAX_RECORD_BYTES {
                return Err(Error::RecordTooLarge { size: payload.len(), max: MAX_RECORD_BYTES });
            }
            let p = self.partitions.get(partition as usize).ok_or(Error::Closed)?;
            if p.shared.poisoned.load(Ordering::Acquire) {
                return Err(Error::Poisoned { partition });
            }
            let tx = p.tx.lock().clone().ok_or(Error::Closed)?;
            let (done, rx) = oneshot::channel();
            tx.send(Command::Append(Request { payload, decoded, done })).await.map_err(|_| Error::Closed)?;
            waits.push(rx);
        }
        let mut offsets = Vec::with_capacity(waits.len());
        for rx in waits {
            offsets.push(rx.await.map_err(|_| Error::Closed)??);
        }
        Ok(offsets)
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
}

impl Shared {
    fn segment_path(&self, base: u64) -> PathBuf {
        self.dir.join(format!("{base:020}.seg"))
    }
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

/// Opens one partition: lists its segments, repairs a torn tail, and
/// returns its shared state and its writer.
fn open_partition(
    dir: &Path,
    id: u32,
    floor: u64,
    config: &LogConfig,
    sink: Arc<dyn LogSink>,
) -> Result<(Arc<Shared>, Writer)> {
    let pdir = dir.join(format!("p{id:04}"));
    std::fs::create_dir_all(&pdir).map_err(|source| Error::OpenLog { path: pdir.clone(), source })?;
    let mut bases = list_segments(&pdir)?;
    let shared = Arc::new(Shared {
        id,
        dir: pdir,
        segments: Mutex::new(Vec::new()),
        next_offset: AtomicU64::new(0),
        poisoned: AtomicBool::new(false),
    });
    let (mut next, mut size) = match bases.last() {
        Some(&base) => recover_tail(&shared.segment_path(base), id, base)?,
        None => (floor, 0),
    };
    if bases.is_empty() || next < floor {
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
        create_segment(&shared.dir, id, next)?;
        bases.push(next);
        size = HEADER_LEN as u64;
    }
    let active = *bases.last().unwrap_or(&next);
    let path = shared.segment_path(active);
    let file =
        OpenOptions::new().append(true).open(&path).map_err(|source| Error::OpenLog { path: path.clone(), source })?;
    *shared.segments.lock() = bases;
    shared.next_offset.store(next, Ordering::Release);
    let writer =
        Writer { shared: Arc::clone(&shared), file, path, size, config: config.clone(), sink, buf: Vec::new() };
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
            bases.push(base);
        } else if name.ends_with(".seg.tmp") {
            // A segment whose creation was cut off by a crash: it holds no record.
            let _ = std::fs::remove_file(pdir.join(&*name));
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Scans the newest segment, truncates a torn tail, and returns (next offset, file size).
fn recover_tail(path: &Path, partition: u32, base: u64) -> Result<(u64, u64)> {
    let bytes = std::fs::read(path).map_err(|source| Error::ReadSegment { path: path.to_owned(), source })?;
    let header_base = segment::decode_header(path, &bytes, partition)?;
    if header_base != base {
        return Err(Error::Corrupted {
            path: path.to_owned(),
            position: 0,
            detail: format!("header base offset {header_base} does not match the file name"),
        });
    }
    let scan = segment::scan_tail(path, &bytes, base)?;
    if let Some((torn_bytes, reason)) = &scan.torn {
        tracing::warn!(
            path = %path.display(),
            valid_bytes = scan.valid_len,
            torn_bytes,
            reason = %reason,
            next_offset = scan.next_offset,
            "truncating torn tail of ingest log segment (an unacknowledged write cut off by a crash)"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|source| Error::WriteSegment { path: path.to_owned(), source })?;
        f.set_len(scan.valid_len)
            .and_then(|()| f.sync_all())
            .map_err(|source| Error::WriteSegment { path: path.to_owned(), source })?;
    }
    Ok((scan.next_offset, scan.valid_len))
}

/// Creates a new, empty segment durably (temp file, fsync, rename, dir fsync).
fn create_segment(pdir: &Path, partition: u32, base: u64) -> Result<PathBuf> {
    let path = pdir.join(format!("{base:020}.seg"));
    let tmp = pdir.join(format!("{base:020}.seg.tmp"));
    let write_err = |source| Error::WriteSegment { path: path.clone(), source };
    write_synced(&tmp, &segment::encode_header(partition, base)).map_err(write_err)?;
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
    file: File,
    path: PathBuf,
    size: u64,
    config: LogConfig,
    sink: Arc<dyn LogSink>,
    buf: Vec<u8>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut group = Vec::with_capacity(self.config.max_group_records);
        while let Some(cmd) = rx.blocking_recv() {
            let mut next = Some(cmd);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Roll(reply) => {
                        let _ = reply.send(self.roll_if_used());
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
            for r in group.drain(..) {
                let _ = r.done.send(Err(Error::Poisoned { partition }));
            }
            return;
        }
        let first = self.shared.next_offset.load(Ordering::Acquire);
        if let Err(e) = self.write_group(group, first) {
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
            let result = self
                .sink
                .apply(partition, offset, &r.payload, r.decoded.as_deref())
                .map(|()| offset)
                .map_err(|detail| Error::Apply { partition, offset, detail });
            let _ = r.done.send(result);
        }
    }

    fn write_group(&mut self, group: &[Request], first: u64) -> std::io::Result<()> {
        if self.size >= self.config.segment_bytes {
            self.roll(first)?;
        }
        self.buf.clear();
        for (i, r) in group.iter().enumerate() {
            segment::encode_frame(&mut self.buf, first + i as u64, &r.payload);
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        self.size += self.buf.len() as u64;
        Ok(())
    }

    /// Starts a new segment whose first record will be `base`.
    fn roll(&mut self, base: u64) -> std::io::Result<()> {
        let path = create_segment(&self.shared.dir, self.shared.id, base).map_err(std::io::Error::other)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.path = path;
        self.size = HEADER_LEN as u64;
        self.shared.segments.lock().push(base);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
