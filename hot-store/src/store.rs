//! [`HotStore`]: open/recover, apply, flush and stats. Compaction, TTL expiry
//! and quarantine are in `maintenance.rs`.
//!
//! Concurrency scheme:
//!
//! ```text
//!  state: RwLock<State>     apply      write lock, O(samples in the batch)
//!                           select     read lock to resolve postings and snapshot layers, block reads outside it
//!                           flush      write lock to swap memtable → frozen, read lock to group, write lock to install
//!  flush_lock: Mutex        one flush at a time (also taken inline by back-pressure)
//!  compact_lock: Mutex      one compaction / expiry at a time; runs concurrently with flushes
//!  manifest_lock: Mutex     read-modify-write of the manifest (short); the only place the manifest changes
//! ```
//!
//! `State::manifest` is always the file's current content: it is replaced
//! under `manifest_lock` right after the file is.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use strata_schemas::{Labels, Sample, SeriesId, Str, TenantId, WriteBatch};

use crate::config::HotStoreConfig;
use crate::error::{Error, Result};
use crate::format::{MANIFEST_FILE, QUARANTINE_DIR, SEGMENT_EXT, TEMP_EXT, segment_file_name};
use crate::index::{SeriesIndex, SeriesRef};
use crate::manifest::{self, Manifest, SegmentEntry};
use crate::memtable::{Chunk, Memtable};
use crate::origins::{self, PartitionOrigins};
use crate::segment::{
    BlockData, BlockMeta, BlockRecord, EncodedBlocks, LabelArcs, RecordLabels, SegmentFile, SegmentScope,
    SegmentSeries, open_segment, sync_dir, write_segment_with,
};

/// A live segment and where each of its series' blocks lives.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) id: u64,
    pub(crate) seq: u64,
    pub(crate) file: SegmentFile,
    /// Sorted by series handle.
    pub(crate) blocks: Vec<(SeriesRef, BlockMeta)>,
    /// The series handles of `blocks`, in the same order: what a lookup
    /// searches. A query selecting a few series scattered over a large
    /// segment (a regex over one label) probes 4 bytes per entry here, not
    /// the 56 of a `blocks` entry, so its galloping search stays in a few
    /// cache lines per series instead of missing on every probe.
    pub(crate) refs: Vec<SeriesRef>,
}

impl Segment {
    /// A segment of `blocks` (sorted here by series handle).
    pub(crate) fn new(id: u64, seq: u64, file: SegmentFile, blocks: Vec<(SeriesRef, BlockMeta)>) -> Self {
        let blocks = sorted_blocks(blocks);
        let refs = blocks.iter().map(|b| b.0).collect();
        Self { id, seq, file, blocks, refs }
    }

    pub(crate) fn block(&self, r: SeriesRef) -> Option<&BlockMeta> {
        self.refs.binary_search(&r).ok().and_then(|i| self.blocks.get(i)).map(|b| &b.1)
    }

    /// True when some block is a stream block (written by a flush).
    pub(crate) fn has_stream_blocks(&self) -> bool {
        self.blocks.iter().any(|(_, b)| b.stream)
    }

    pub(crate) fn scope(&self) -> &SegmentScope {
        &self.file.scope
    }

    /// True when the segment's bucket may hold samples in `[start, end]`.
    pub(crate) fn overlaps(&self, start: i64, end: i64) -> bool {
        let s = self.scope();
        s.bucket <= end && s.bucket.saturating_add(s.bucket_len - 1) >= start
    }

    fn entry(&self) -> SegmentEntry {
        SegmentEntry {
            id: self.id,
            file: segment_file_name(self.id),
            size: self.file.size,
            tenant: self.scope().tenant.as_str().to_owned(),
            bucket: self.scope().bucket,
            seq: self.seq,
        }
    }
}

/// A segment moved aside because it failed a checksum or structural check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedSegment {
    /// Where the file was (it now lives in `<dir>/quarantine/`).
    pub path: PathBuf,
    /// Tenant and bucket start (ms) of its data, when known.
    pub tenant: String,
    /// Bucket start (ms).
    pub bucket: i64,
    /// What was wrong.
    pub detail: String,
}

/// Everything behind the state lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) index: SeriesIndex,
    pub(crate) memtable: Memtable,
    /// The memtable being flushed; readers see it until its segments are installed.
    pub(crate) frozen: Option<Arc<Memtable>>,
    /// Set when a flush of `frozen` failed because the disk was full: its
    /// offsets, edge origins and sequence number, for the next flush to write it again.
    pub(crate) retry_frozen: Option<(BTreeMap<u32, u64>, Origins, u64)>,
    /// Live segments, ordered by (seq, id): newer data last.
    pub(crate) segments: Vec<Arc<Segment>>,
    /// Per partition: the next offset `apply` accepts.
    next_offsets: BTreeMap<u32, u64>,
    /// Per partition: the edge batches applied up to `next_offsets`
    /// (copy on write: a flush holds the state as of its offsets).
    origins: Origins,
    /// The manifest as it is on disk.
    pub(crate) manifest: Manifest,
    /// Set when a flush failed half-way; the store then refuses writes.
    pub(crate) poisoned: Option<String>,
    /// Per tenant: samples below this were expired and are dropped on apply.
    pub(crate) expired_before: HashMap<TenantId, i64>,
    pub(crate) quarantined: Vec<QuarantinedSegment>,
}

impl State {
    pub(crate) fn insert_segment(&mut self, seg: Arc<Segment>) {
        let pos = self.segments.partition_point(|s| (s.seq, s.id) < (seg.seq, seg.id));
        self.segments.insert(pos, seg);
    }
}

/// Per log partition, the edge batch origins applied (`crate::origins`).
pub(crate) type Origins = BTreeMap<u32, Arc<PartitionOrigins>>;

/// Counters of edge batch de-duplication since open.
#[derive(Debug, Default)]
struct EdgeCounters {
    duplicates_skipped: AtomicU64,
    agents_evicted: AtomicU64,
    ranges_dropped: AtomicU64,
}

/// The embedded hot store. `Send + Sync`; share it as `Arc<HotStore>`.
pub struct HotStore {
    pub(crate) dir: PathBuf,
    pub(crate) config: HotStoreConfig,
    pub(crate) bucket_ms: i64,
    pub(crate) state: RwLock<State>,
    pub(crate) flush_lock: Mutex<()>,
    pub(crate) compact_lock: Mutex<()>,
    pub(crate) manifest_lock: Mutex<()>,
    next_id: AtomicU64,
    /// Mirror of `state.memtable.samples()` readable without the lock (back-pressure).
    mem_samples: AtomicUsize,
    /// Mirror of `state.memtable.series()` (the flush threshold scales with it).
    mem_series: AtomicUsize,
    flush_done: (Mutex<()>, Condvar),
    throttled: AtomicU64,
    edge: EdgeCounters,
    /// Hot TTLs set at runtime (the tenant registry), over `config.tenant_hot_ttl`.
    pub(crate) runtime_ttls: RwLock<BTreeMap<String, std::time::Duration>>,
}

impl fmt::Debug for HotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotStore").field("dir", &self.dir).field("stats", &self.stats()).finish()
    }
}

/// What a [`HotStore::flush`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Per partition, the first log offset not yet durable in segments. The
    /// server may delete ingest-log data below these offsets.
    pub flushed_offsets: BTreeMap<u32, u64>,
    /// Series blocks written (a series with data in two buckets counts twice).
    pub series: usize,
    /// Samples written (after de-duplication).
    pub samples: u64,
    /// The last segment file written, if any.
    pub segment: Option<PathBuf>,
    /// Every segment file written (one per tenant and bucket).
    pub segments: Vec<PathBuf>,
    /// Time a paced flush ([`HotStore::flush_paced`]) slept between parts.
    pub paused: Duration,
}

/// What a [`HotStore::compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactOutcome {
    /// Segments merged (0 when there was nothing to do).
    pub input_segments: usize,
    /// The last segment written, if any.
    pub segment: Option<PathBuf>,
    /// Buckets compacted.
    pub buckets: usize,
    /// Series blocks in the outputs.
    pub series: usize,
    /// Samples in the outputs.
    pub samples: u64,
}

/// A point-in-time summary of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotStoreStats {
    /// Series known to the index (all tenants).
    pub series: usize,
    /// Samples in the active memtable (what the server compares with `max_memtable_samples`).
    pub memtable_samples: usize,
    /// Approximate heap bytes of the active memtable's compressed chunks.
    pub memtable_bytes: usize,
    /// Samples in a memtable currently being flushed.
    pub frozen_samples: usize,
    /// Live segment files.
    pub segments: usize,
    /// Distinct (tenant, bucket) pairs with segments.
    pub buckets: usize,
    /// Bytes of live segment files.
    pub disk_bytes: u64,
    /// Label sets kept apart because their series id collided with another's.
    pub id_collisions: usize,
    /// Segments quarantined since open (corrupt; moved to `quarantine/`).
    pub quarantined: usize,
    /// Times `apply` waited for memory (back-pressure) since open.
    pub throttled_applies: u64,
    /// Records skipped since open because their edge batch (agent id,
    /// sequence number) was applied already in their partition (replay included).
    pub edge_duplicates_skipped: u64,
    /// Edge agents forgotten since open because a partition remembered
    /// `edge_dedup_max_agents` (a batch they re-send is applied again).
    pub edge_agents_evicted: u64,
    /// Ranges of applied sequence numbers forgotten since open because an
    /// agent had more than `edge_dedup_max_ranges` in a partition.
    pub edge_ranges_dropped: u64,
}

/// Index entries a flush or a compaction reads per hold of the state's read
/// lock (`HotStore::group`, `HotStore::pending_series`), letting it go in
/// between. Both run on threads at a lower CPU priority (the server's
/// `background`): on a saturated host such a thread gets a few percent of a
/// core, so a hold costing tens of milliseconds of CPU (a compaction's
/// 100,000 series in one hold, as before) can last a second of wall time,
/// and every apply (the write lock) and every query behind it (parking_lot's
/// lock is fair to a waiting writer) waits that long. (Suspected for the
/// soak's run-7 stalls; those turned out to be an expiry holding the flush
/// lock while it waited for a compaction, `HotStore::expire`.) A slice costs
/// well under a millisecond.
pub(crate) const LOCK_SLICE: usize = 1_024;

/// Samples per buffered series the flush threshold grows to (see
/// [`HotStore::flush_threshold`]).
pub(crate) const SAMPLES_PER_SERIES_PER_FLUSH: usize = 64;

/// Start of the bucket holding `ts`.
pub(crate) fn bucket_start(ts: i64, bucket_ms: i64) -> i64 {
    ts.div_euclid(bucket_ms).saturating_mul(bucket_ms)
}

/// One series of a frozen memtable group (or of a bucket being compacted),
/// with what the segment needs. Labels stay symbol ids until the series is
/// written: a flush of a million series would otherwise hold a million
/// vectors of shared strings at once.
#[derive(Debug)]
pub(crate) struct PendingSeries {
    pub(crate) r: SeriesRef,
    pub(crate) id: strata_schemas::SeriesId,
    pub(crate) device_hash: u64,
    /// `(name, value)` symbol ids, canonical order.
    pub(crate) labels: Box<[(u32, u32)]>,
}

impl PendingSeries {
    pub(crate) fn of(r: SeriesRef, e: &crate::index::SeriesEntry) -> Self {
        PendingSeries { r, id: e.id, device_hash: e.device_hash, labels: e.labels.clone() }
    }

    /// Segment order: (device_hash, series id, labels by string).
    pub(crate) fn sort(v: &mut [PendingSeries], symbols: &[Str]) {
        let text = |p: &PendingSeries| -> LabelArcs { p.label_arcs(symbols) };
        v.sort_unstable_by(|a, b| {
            (a.device_hash, a.id).cmp(&(b.device_hash, b.id)).then_with(|| text(a).cmp(&text(b)))
        });
    }

    pub(crate) fn label_arcs(&self, symbols: &[Str]) -> LabelArcs {
        let get = |i: u32| symbols.get(i as usize).cloned().unwrap_or_default();
        self.labels.iter().map(|&(n, v)| (get(n), get(v))).collect()
    }
}

impl HotStore {
    /// Opens (or creates) the store in `dir`: loads the manifest and the
    /// index of every live segment, quarantines corrupt segments, and
    /// deletes leftovers of a crash.
    pub fn open(dir: &Path, mut config: HotStoreConfig) -> Result<HotStore> {
        config.validate()?;
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir { path: dir.to_path_buf(), source })?;
        let manifest = match manifest::load(dir)? {
            Some(m) => m,
            None => create_initial_manifest(dir, config.bucket_ms())?,
        };
        remove_leftovers(dir, &manifest)?;
        let bucket_ms = if manifest.bucket_ms > 0 { manifest.bucket_ms } else { config.bucket_ms() };
        if bucket_ms != config.bucket_ms() {
            tracing::warn!(
                configured = config.bucket_ms(),
                stored = bucket_ms,
                "hot_store.bucket differs from the store's; keeping the store's"
            );
        }
        let mut state = State { next_offsets: manifest.flushed_offsets.clone(), ..State::default() };
        for (&p, agents) in &manifest.edge_origins {
            let o = PartitionOrigins::from_persisted(agents)
                .map_err(|detail| Error::Corrupted { path: manifest::manifest_path(dir), detail })?;
            state.origins.insert(p, Arc::new(o));
        }
        for (t, &b) in &manifest.expired_before {
            if let Ok(t) = TenantId::new(t.as_str()) {
                state.expired_before.insert(t, b);
            }
        }
        let mut corrupt = Vec::new();
        for entry in &manifest.segments {
            match open_listed_segment(dir, entry) {
                Ok((file, series)) => install_segment(&mut state, entry.id, entry.seq, file, series),
                Err(e)
                    if e.kind() == strata_schemas::ErrorKind::Corruption
                        && !matches!(e, Error::MissingSegment { .. }) =>
                {
                    corrupt.push((entry.clone(), e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        let next_id = manifest.segments.iter().map(|s| s.id.max(s.seq) + 1).max().unwrap_or(1);
        state.manifest = manifest;
        let store = HotStore {
            dir: dir.to_path_buf(),
            config,
            bucket_ms,
            state: RwLock::new(state),
            flush_lock: Mutex::new(()),
            compact_lock: Mutex::new(()),
            runtime_ttls: RwLock::new(BTreeMap::new()),
            manifest_lock: Mutex::new(()),
            next_id: AtomicU64::new(next_id),
            mem_samples: AtomicUsize::new(0),
            mem_series: AtomicUsize::new(0),
            flush_done: (Mutex::new(()), Condvar::new()),
            throttled: AtomicU64::new(0),
            edge: EdgeCounters::default(),
        };
        for (entry, detail) in corrupt {
            store.quarantine_entry(&entry, detail)?;
        }
        let stats = store.stats();
        tracing::info!(
            dir = %dir.display(),
            segments = stats.segments,
            buckets = stats.buckets,
            series = stats.series,
            disk_bytes = stats.disk_bytes,
            quarantined = stats.quarantined,
            flushed_offsets = ?store.flushed_offsets(),
            "hot store opened"
        );
        Ok(store)
    }

    /// The configuration the store was opened with (after validation).
    pub fn config(&self) -> &HotStoreConfig {
        &self.config
    }

    /// The first log offset of `partition` not yet durable in segments (0 if
    /// none): on startup the server replays the log from here.
    pub fn replay_from(&self, partition: u32) -> u64 {
        self.state.read().manifest.flushed_offsets.get(&partition).copied().unwrap_or(0)
    }

    /// Applies one log record. Records of a partition arrive in increasing
    /// offset order; a record below the next expected offset was applied
    /// already (replay overlap) and is skipped, so `apply` is idempotent.
    /// A record carrying an edge batch origin (agent id, sequence number)
    /// already applied in this partition is skipped too (a re-sent batch;
    /// see `origins.rs`). Samples in buckets that TTL expiry already removed
    /// are dropped.
    ///
    /// Back-pressure: when the memtable is at its hard limit this blocks
    /// until a flush has swapped it out (flushing inline if none is running).
    pub fn apply(&self, partition: u32, offset: u64, batch: &WriteBatch) -> Result<()> {
        self.throttle();
        // The series are looked up under the shared lock, so that the log's
        // partitions (one writer thread each) and queries overlap here; the
        // exclusive lock below then only appends samples (and creates the
        // series seen for the first time).
        let (known, removals) = {
            let st = self.state.read();
            if offset < st.next_offsets.get(&partition).copied().unwrap_or(0) {
                tracing::trace!(partition, offset, "skipping already applied record");
                return Ok(());
            }
            let slot = st.index.slot_of(&batch.tenant);
            // The id's slot of a series ahead: with many series it is a cache
            // miss (see `IdTable`).
            let known: Vec<Option<(SeriesRef, bool)>> = match slot {
                None => vec![None; batch.series.len()],
                Some(t) => (batch.series.iter().enumerate())
                    .map(|(i, s)| {
                        if let Some(ahead) = batch.series.get(i + 8) {
                            st.index.prefetch_id(t, ahead.id);
                        }
                        st.index.lookup_in(t, s.id, &s.labels)
                    })
                    .collect(),
            };
            (known, st.index.removals())
        };
        let mut guard = self.state.write();
        let st = &mut *guard;
        if let Some(cause) = &st.poisoned {
            return Err(Error::ApplyRefused { partition, offset, cause: cause.clone() });
        }
        if offset < st.next_offsets.get(&partition).copied().unwrap_or(0) {
            tracing::trace!(partition, offset, "skipping already applied record");
            return Ok(());
        }
        if let Some(origin) = &batch.origin {
            let limits = origins::Limits {
                max_agents: self.config.edge_dedup_max_agents,
                max_ranges: self.config.edge_dedup_max_ranges,
            };
            let adm = Arc::make_mut(st.origins.entry(partition).or_default()).admit(origin, offset, limits);
            if adm.agents_evicted > 0 {
                self.edge.agents_evicted.fetch_add(adm.agents_evicted, Ordering::Relaxed);
                tracing::debug!(
                    partition,
                    max_agents = limits.max_agents,
                    "forgot the edge agent seen least recently in this partition (a batch it re-sends is applied again)"
                );
            }
            if adm.ranges_dropped > 0 {
                self.edge.ranges_dropped.fetch_add(adm.ranges_dropped, Ordering::Relaxed);
                tracing::warn!(
                    partition,
                    agent = origin.agent_id(),
                    max_ranges = limits.max_ranges,
                    "edge agent has too many gaps in its applied sequence numbers; forgot its lowest range \
                     (a batch in it that is re-sent is applied again)"
                );
            }
            if adm.duplicate {
                self.edge.duplicates_skipped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    partition,
                    offset,
                    agent = origin.agent_id(),
                    seq = origin.seq(),
                    "skipping a re-sent edge batch already applied"
                );
                st.next_offsets.insert(partition, offset.saturating_add(1));
                return Ok(());
            }
        }
        // A series removed in between (TTL, purge) invalidates the handles.
        let known_valid = st.index.removals() == removals;
        let floor = st.expired_before.get(&batch.tenant).copied().unwrap_or(i64::MIN);
        let bucket_ms = self.bucket_ms;
        let mut kept: Vec<Sample> = Vec::new();
        // Looked up once, at the first series with samples (an empty batch
        // must not register the tenant).
        let mut slot = None;
        // The memtable's memory of the series ahead, level by level (see
        // `Memtable::prefetch`): with many series, each level is a cache miss.
        let ahead = |i: usize| known.get(i).copied().flatten().filter(|_| known_valid).map(|(r, _)| r);
        for (i, (s, known)) in batch.series.iter().zip(known.iter().copied()).enumerate() {
            for (level, distance) in [(0u8, 12usize), (1, 8), (2, 4)] {
                if let Some(r) = ahead(i + distance) {
                    st.memtable.prefetch(r, level);
                }
            }
            if s.samples.is_empty() {
                continue;
            }
            let samples: &[Sample] = if s.samples.iter().any(|x| x.ts < floor) {
                kept.clear();
                kept.extend(s.samples.iter().filter(|x| x.ts >= floor));
                &kept
            } else {
                &s.samples
            };
            if samples.is_empty() {
                continue;
            }
            let r = match known.filter(|_| known_valid) {
                Some((r, true)) => r,
                Some((r, false)) => {
                    st.index.remember_labels_addr(r, s.labels.addr());
                    r
                }
                None => {
                    let t = match slot {
                        Some(t) => t,
                        None => *slot.insert(st.index.tenant_slot(&batch.tenant)),
                    };
                    st.index.resolve_in(t, s.id, s.device_hash, &s.labels)
                }
            };
            if let Some((min, max)) = st.memtable.insert(r, samples, |ts| bucket_start(ts, bucket_ms)) {
                st.index.extend_range(r, min, max);
            }
        }
        st.next_offsets.insert(partition, offset.saturating_add(1));
        self.mem_samples.store(st.memtable.samples(), Ordering::Relaxed);
        self.mem_series.store(st.memtable.series(), Ordering::Relaxed);
        Ok(())
    }

    /// Blocks while the memtable is at its hard limit (see [`HotStore::apply`]).
    fn throttle(&self) {
        let mut counted = false;
        while self.mem_samples.load(Ordering::Relaxed) >= self.hard_limit() {
            if !counted {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                counted = true;
            }
            if let Some(guard) = self.flush_lock.try_lock() {
                let result = self.flush_locked(FlushEncoding { threads: 1, cpu_share: 1.0 });
                drop(guard);
                self.notify_flushed();
                if let Err(e) = result {
                    tracing::warn!(error = %e, "back-pressure flush failed");
                    return;
                }
            } else {
                let mut g = self.flush_done.0.lock();
                self.flush_done.1.wait_for(&mut g, Duration::from_millis(50));
            }
        }
    }

    /// Samples at which the memtable should be flushed: `max_memtable_samples`,
    /// raised to `SAMPLES_PER_SERIES_PER_FLUSH` per buffered series (at most
    /// 8× the setting). With a million series, 2M samples would be two a
    /// series: every segment would be mostly series table and postings, and
    /// flushes would cost per series, not per sample. Buffered samples cost
    /// ~2 bytes each, compressed; the series are in memory anyway. 64 a series
    /// (peer-bench at 100k series: 60 samples each arrive in one flush instead
    /// of three) keeps per-series costs (index entry, block header, postings)
    /// at a fraction of a byte per sample.
    pub fn flush_threshold(&self) -> usize {
        let base = self.config.max_memtable_samples;
        let per_series = self.mem_series.load(Ordering::Relaxed).saturating_mul(SAMPLES_PER_SERIES_PER_FLUSH);
        per_series.clamp(base, base.saturating_mul(8))
    }

    /// Back-pressure limit: the configured one, or twice the flush threshold if higher.
    fn hard_limit(&self) -> usize {
        self.config.hard_limit_samples().max(self.flush_threshold().saturating_mul(2))
    }

    fn notify_flushed(&self) {
        let _g = self.flush_done.0.lock();
        self.flush_done.1.notify_all();
    }

    /// Live series of `tenant` (series with data in the memtable or a segment).
    pub fn tenant_series(&self, tenant: &TenantId) -> u64 {
        self.state.read().index.tenant_series(tenant)
    }

    /// True when `tenant` already has the series `id` with exactly `labels`.
    pub fn contains_series(&self, tenant: &TenantId, id: SeriesId, labels: &Labels) -> bool {
        self.state.read().index.contains(tenant, id, labels)
    }

    /// Samples in the active memtable (what the server compares with `max_memtable_samples`).
    pub fn memtable_samples(&self) -> usize {
        self.state.read().memtable.samples()
    }

    /// Per partition, the first log offset not yet durable in segments.
    pub fn flushed_offsets(&self) -> BTreeMap<u32, u64> {
        self.state.read().manifest.flushed_offsets.clone()
    }

    /// Segments quarantined since open.
    pub fn quarantined(&self) -> Vec<QuarantinedSegment> {
        self.state.read().quarantined.clone()
    }

    /// A summary of the store.
    pub fn stats(&self) -> HotStoreStats {
        let st = self.state.read();
        let mut buckets: Vec<(&TenantId, i64)> =
            st.segments.iter().map(|s| (&s.scope().tenant, s.scope().bucket)).collect();
        buckets.sort_unstable();
        buckets.dedup();
        HotStoreStats {
            series: st.index.len(),
            memtable_samples: st.memtable.samples(),
            memtable_bytes: st.memtable.heap_bytes(),
            frozen_samples: st.frozen.as_ref().map_or(0, |f| f.samples()),
            segments: st.segments.len(),
            buckets: buckets.len(),
            disk_bytes: st.segments.iter().map(|s| s.file.size).sum(),
            id_collisions: st.index.collisions(),
            quarantined: st.quarantined.len(),
            throttled_applies: self.throttled.load(Ordering::Relaxed),
            edge_duplicates_skipped: self.edge.duplicates_skipped.load(Ordering::Relaxed),
            edge_agents_evicted: self.edge.agents_evicted.load(Ordering::Relaxed),
            edge_ranges_dropped: self.edge.ranges_dropped.load(Ordering::Relaxed),
        }
    }

    /// Bytes of live segment files per tenant (what the tenant stores on the
    /// hot tier's disk; the memtable is not counted).
    pub fn disk_bytes_by_tenant(&self) -> BTreeMap<String, u64> {
        let st = self.state.read();
        let mut out = BTreeMap::new();
        for s in &st.segments {
            *out.entry(s.scope().tenant.as_str().to_owned()).or_insert(0) += s.file.size;
        }
        out
    }

    /// Refreshes the lock-free mirrors of the memtable's size after samples
    /// were removed from it (erasure).
    pub(crate) fn sync_mem_counters(&self, st: &State) {
        self.mem_samples.store(st.memtable.samples(), Ordering::Relaxed);
        self.mem_series.store(st.memtable.series(), Ordering::Relaxed);
    }

    pub(crate) fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Freezes the memtable, writes one segment per (tenant, bucket) it
    /// holds, atomically replaces the manifest (recording per-partition
    /// flushed offsets), then drops the frozen memtable. Applies and reads
    /// continue while the files are written.
    ///
    /// A failure because the disk (or quota) is full before the manifest was
    /// replaced changes nothing on disk (the files written so far are
    /// deleted): the frozen memtable stays readable and the next flush
    /// writes it again, so flushing resumes on its own once space is freed.
    /// After any other failure the store is poisoned (it keeps serving
    /// reads, refuses writes); after a restart the log replay restores the
    /// unflushed data.
    pub fn flush(&self) -> Result<FlushOutcome> {
        self.flush_on(1)
    }

    /// [`HotStore::flush`] with each segment's series blocks encoded on up
    /// to `threads` threads, the calling one included (`crate::parallel`):
    /// for a flush someone waits for (an explicit request, shutdown), where
    /// the encoding is most of the time. The files, the manifest and the
    /// order of every write and fsync are those of a one-thread flush; only
    /// the encoding of blocks is spread.
    pub fn flush_on(&self, threads: usize) -> Result<FlushOutcome> {
        self.flush_with(FlushEncoding { threads, cpu_share: 1.0 })
    }

    /// [`HotStore::flush`] on one thread that uses about `[hot_store]
    /// flush_cpu_share` of a core while the new memtable has room (see
    /// [`HotStoreConfig::flush_cpu_share`]): the server's own flushes
    /// (memtable full, interval), which nobody waits for.
    pub fn flush_paced(&self) -> Result<FlushOutcome> {
        self.flush_with(FlushEncoding { threads: 1, cpu_share: self.config.flush_cpu_share })
    }

    fn flush_with(&self, how: FlushEncoding) -> Result<FlushOutcome> {
        let guard = self.flush_lock.lock();
        let result = self.flush_locked(how);
        drop(guard);
        self.notify_flushed();
        result
    }

    /// The flush body; the caller holds `flush_lock`.
    fn flush_locked(&self, how: FlushEncoding) -> Result<FlushOutcome> {
        if !self.flush_pending() {
            return self.flush_once(how);
        }
        // First the memtable a flush failed to write for a full disk, then the current one.
        let retried = self.flush_once(how)?;
        let mut outcome = self.flush_once(how)?;
        outcome.series += retried.series;
        outcome.samples += retried.samples;
        outcome.segment = outcome.segment.or(retried.segment);
        outcome.segments.splice(0..0, retried.segments);
        outcome.paused += retried.paused;
        Ok(outcome)
    }

    /// Freezes and writes one memtable.
    fn flush_once(&self, how: FlushEncoding) -> Result<FlushOutcome> {
        let Some((frozen, offsets, origins, seq)) = self.freeze()? else {
            let flushed_offsets = self.flushed_offsets();
            return Ok(FlushOutcome {
                flushed_offsets,
                series: 0,
                samples: 0,
                segment: None,
                segments: Vec::new(),
                paused: Duration::ZERO,
            });
        };
        let retry = (offsets.clone(), origins.clone(), seq);
        self.write_frozen(&frozen, offsets, &origins, seq, how).inspect_err(|e| {
            if disk_full_before_manifest(e) {
                tracing::warn!(error = %e, "flush failed: disk full; the memtable stays in memory and is flushed again later");
                self.state.write().retry_frozen = Some(retry);
            } else {
                tracing::error!(error = %e, "flush failed; hot store poisoned until restart");
                self.state.write().poisoned = Some(e.to_string());
            }
        })
    }

    /// True while a flush that failed for a full disk waits to be retried.
    pub fn flush_pending(&self) -> bool {
        self.state.read().retry_frozen.is_some()
    }

    /// Swaps the memtable out; `None` when there is nothing new to persist.
    #[expect(clippy::type_complexity, reason = "private helper returning the pieces of one frozen memtable")]
    fn freeze(&self) -> Result<Option<(Arc<Memtable>, BTreeMap<u32, u64>, Origins, u64)>> {
        // The next memtable, sized for the series the current one has seen,
        // is built before the lock: growing it to a million slots on the
        // first apply after the swap would hold the write lock meanwhile.
        let fresh = Memtable::with_slots(self.state.read().memtable.slots());
        let mut guard = self.state.write();
        let st = &mut *guard;
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned { operation: "flush", cause: cause.clone() });
        }
        if let (Some(frozen), Some((offsets, origins, seq))) = (&st.frozen, st.retry_frozen.take()) {
            // A flush failed for a full disk: write that memtable first (the
            // current one follows with the next flush).
            return Ok(Some((Arc::clone(frozen), offsets, origins, seq)));
        }
        if st.memtable.is_empty() && st.next_offsets == st.manifest.flushed_offsets {
            return Ok(None);
        }
        let frozen = Arc::new(std::mem::replace(&mut st.memtable, fresh));
        st.frozen = Some(Arc::clone(&frozen));
        self.mem_samples.store(0, Ordering::Relaxed);
        self.mem_series.store(0, Ordering::Relaxed);
        // The origins as of these offsets: one `Arc` per partition, copied
        // by the next apply to it while this flush holds them.
        Ok(Some((frozen, st.next_offsets.clone(), st.origins.clone(), self.alloc_id())))
    }

    /// Groups a frozen memtable by (tenant, bucket), each sorted in segment order.
    #[expect(clippy::type_complexity, reason = "private helper: the groups and the symbols their ids refer to")]
    ///
    /// The state lock is taken for [`LOCK_SLICE`] chunks at a time and let
    /// go in between: applies wait for the write lock, and a flush of a
    /// million series would otherwise hold them off for the whole walk
    /// (the frozen memtable itself is immutable; an index entry removed
    /// meanwhile is skipped, as it would have been before the walk). The
    /// symbol table only grows, so the snapshot taken last covers every id.
    fn group(&self, frozen: &Memtable) -> (BTreeMap<(TenantId, i64), Vec<PendingSeries>>, Arc<[Str]>) {
        let mut by_tenant: HashMap<u32, TenantId> = HashMap::new();
        let mut groups: BTreeMap<(TenantId, i64), Vec<PendingSeries>> = BTreeMap::new();
        let mut chunks = frozen.iter().peekable();
        let symbols = loop {
            let st = self.state.read();
            for (r, bucket, _) in chunks.by_ref().take(LOCK_SLICE) {
                let Some(e) = st.index.get(r) else { continue };
                let tenant = match by_tenant.get(&e.tenant) {
                    Some(t) => t.clone(),
                    None => {
                        let Some(t) = st.index.tenant_of(e) else { continue };
                        by_tenant.insert(e.tenant, t.clone());
                        t.clone()
                    }
                };
                groups.entry((tenant, bucket)).or_default().push(PendingSeries::of(r, e));
            }
            if chunks.peek().is_none() {
                break st.index.symbols.snapshot();
            }
        };
        for v in groups.values_mut() {
            PendingSeries::sort(v, &symbols);
        }
        (groups, symbols)
    }

    /// The index entries of `refs` (sorted, distinct) as [`PendingSeries`],
    /// read [`LOCK_SLICE`] at a time under the state's read lock (a series
    /// removed meanwhile is skipped, as a single walk would have skipped
    /// it), and the symbols they refer to: the table only grows, so the
    /// snapshot taken last covers every id.
    pub(crate) fn pending_series(&self, refs: &[SeriesRef]) -> (Vec<PendingSeries>, Arc<[Str]>) {
        let mut out = Vec::with_capacity(refs.len());
        let mut parts = refs.chunks(LOCK_SLICE).peekable();
        loop {
            let st = self.state.read();
            if let Some(part) = parts.next() {
                out.extend(part.iter().filter_map(|&r| st.index.get(r).map(|e| PendingSeries::of(r, e))));
            }
            if parts.peek().is_none() {
                break (out, st.index.symbols.snapshot());
            }
        }
    }

    fn write_frozen(
        &self,
        frozen: &Memtable,
        offsets: BTreeMap<u32, u64>,
        origins: &Origins,
        seq: u64,
        how: FlushEncoding,
    ) -> Result<FlushOutcome> {
        let mut outcome = FlushOutcome {
            flushed_offsets: offsets.clone(),
            series: 0,
            samples: 0,
            segment: None,
            segments: Vec::new(),
            paused: Duration::ZERO,
        };
        let mut installed = Vec::new();
        let written = self.write_frozen_segments(frozen, seq, how, &mut outcome, &mut installed);
        let result = written.and_then(|()| {
            crate::failpoint::hit("flush.after_segments")
                .map_err(|source| Error::WriteSegment { path: self.dir.clone(), source })?;
            let entries: Vec<SegmentEntry> = installed.iter().map(|s| s.entry()).collect();
            let edge_origins: BTreeMap<u32, BTreeMap<String, String>> =
                origins.iter().map(|(&p, o)| (p, o.to_persisted())).filter(|(_, o)| !o.is_empty()).collect();
            let installed = std::mem::take(&mut installed);
            self.commit(
                |m| {
                    m.segments.extend(entries);
                    m.segments.sort_by_key(|s| (s.seq, s.id));
                    m.flushed_offsets = offsets;
                    m.edge_origins = edge_origins;
                    true
                },
                |st| {
                    for s in installed {
                        st.insert_segment(s);
                    }
                    st.frozen = None;
                },
            )
        });
        if let Err(e) = result {
            if disk_full_before_manifest(&e) {
                // Not in the manifest: gone, to free the space and not leak files.
                for path in &outcome.segments {
                    let _ = std::fs::remove_file(path);
                }
            }
            return Err(e);
        }
        tracing::debug!(
            segments = outcome.segments.len(),
            series = outcome.series,
            samples = outcome.samples,
            "hot store flushed"
        );
        Ok(outcome)
    }

    /// Writes one segment per (tenant, bucket) of a frozen memtable, the
    /// blocks of each encoded on up to `how.threads` threads (one: paced
    /// to `how.cpu_share` of a core, [`Pacer`]).
    fn write_frozen_segments(
        &self,
        frozen: &Memtable,
        seq: u64,
        how: FlushEncoding,
        outcome: &mut FlushOutcome,
        installed: &mut Vec<Arc<Segment>>,
    ) -> Result<()> {
        let (groups, symbols) = self.group(frozen);
        let threads = how.threads;
        let mut pacer = Pacer::new(self, how.cpu_share);
        for ((tenant, bucket), series) in groups {
            let id = self.alloc_id();
            let scope = SegmentScope { tenant, bucket, bucket_len: self.bucket_ms };
            let refs: Vec<SeriesRef> = series.iter().map(|p| p.r).collect();
            let hint = series.len();
            let record = |p: PendingSeries| flush_record(frozen, bucket, &symbols, p);
            let written = write_segment_with(&self.dir, id, &scope, hint, |w| {
                if threads <= 1 {
                    return series.into_iter().enumerate().try_for_each(|(i, p)| {
                        if i % FLUSH_PART_SERIES == FLUSH_PART_SERIES - 1 {
                            pacer.pause();
                        }
                        w.push(record(p)?)
                    });
                }
                let parts = split_owned(series, FLUSH_PART_SERIES);
                let encode = |part: Vec<PendingSeries>| {
                    let mut enc = EncodedBlocks::default();
                    for p in part {
                        enc.push(record(p)?);
                    }
                    Ok::<_, Error>(enc)
                };
                crate::parallel::map_ordered(parts, threads, 2 * threads, encode, |enc| w.append(enc?))
            })?;
            // Every frozen series has samples in its bucket, so blocks and refs pair up.
            debug_assert_eq!(written.blocks.len(), refs.len());
            let blocks = refs.into_iter().zip(written.blocks).collect();
            outcome.series += written.series;
            outcome.samples += written.samples;
            outcome.segments.push(written.path.clone());
            outcome.segment = Some(written.path);
            installed.push(Arc::new(Segment::new(id, seq, written.file, blocks)));
        }
        outcome.paused = pacer.slept;
        Ok(())
    }

    /// Replaces the manifest with `edit` applied (if `edit` returns true),
    /// then updates the in-memory state with `install`, under `manifest_lock`.
    /// Returns whether the manifest was written.
    pub(crate) fn commit(
        &self,
        edit: impl FnOnce(&mut Manifest) -> bool,
        install: impl FnOnce(&mut State),
    ) -> Result<bool> {
        let _m = self.manifest_lock.lock();
        let mut m = self.state.read().manifest.clone();
        if !edit(&mut m) {
            return Ok(false);
        }
        m.generation += 1;
        m.bucket_ms = self.bucket_ms;
        manifest::store(&self.dir, &m)?;
        let mut st = self.state.write();
        st.manifest = m;
        install(&mut st);
        Ok(true)
    }

    /// Moves a listed-but-corrupt segment aside and drops it from the manifest.
    pub(crate) fn quarantine_entry(&self, entry: &SegmentEntry, detail: String) -> Result<()> {
        let path = self.dir.join(&entry.file);
        tracing::error!(
            path = %path.display(),
            tenant = %entry.tenant,
            bucket = entry.bucket,
            detail = %detail,
            "corrupt hot-store segment; quarantining it (its samples are no longer served)"
        );
        let id = entry.id;
        let report =
            QuarantinedSegment { path: path.clone(), tenant: entry.tenant.clone(), bucket: entry.bucket, detail };
        self.commit(
            |m| {
                m.segments.retain(|s| s.id != id);
                true
            },
            |st| {
                st.segments.retain(|s| s.id != id);
                st.quarantined.push(report);
            },
        )?;
        move_to_quarantine(&self.dir, &path);
        Ok(())
    }
}

/// Series per part a parallel flush hands to a thread
/// ([`HotStore::flush_on`]): small enough to balance two cores over a
/// 100k-series flush, large enough that claiming a part costs nothing next
/// to encoding it.
const FLUSH_PART_SERIES: usize = 2048;

/// The record of one series of a frozen memtable in `bucket`. A chunk with
/// no out-of-order samples aside is copied as a stream block (no decoding,
/// no re-encoding); one with some is merged in its own mode and then
/// copied; the rest are encoded. Compaction rewrites stream blocks in the
/// V4 layout.
fn flush_record<'a>(
    frozen: &'a Memtable,
    bucket: i64,
    symbols: &'a [Str],
    p: PendingSeries,
) -> Result<BlockRecord<'a>> {
    let chunk = frozen.get(p.r).iter().find(|(b, _)| *b == bucket).map(|(_, c)| c);
    let data = match (chunk.and_then(Chunk::stream_block), chunk.and_then(Chunk::merged)) {
        (Some(view), _) => BlockData::Stream(view),
        (None, Some(merged)) => BlockData::Merged(Box::new(merged)),
        (None, None) => {
            let samples = chunk
                .map(|c| c.samples())
                .transpose()
                .map_err(|detail| Error::Corrupted { path: PathBuf::from("<memtable>"), detail: detail.to_owned() })?;
            BlockData::Samples(samples.unwrap_or_default())
        }
    };
    let labels = RecordLabels::Symbols(p.labels, symbols);
    Ok(BlockRecord { id: p.id, device_hash: p.device_hash, labels, data })
}

/// How a flush encodes the blocks of its segments.
#[derive(Debug, Clone, Copy)]
struct FlushEncoding {
    /// Threads encoding blocks, the flushing one included.
    threads: usize,
    /// Share of a core a one-thread flush uses while the new memtable has
    /// room (1: no pauses).
    cpu_share: f64,
}

/// Paces a one-thread flush to a share of a core: [`Pacer::pause`] between
/// parts of [`FLUSH_PART_SERIES`] series sleeps `worked × (1 - share) /
/// share`, where `worked` is the time since the last pause; not once the
/// new memtable holds half the flush threshold (the flush must finish
/// before writes reach the hard limit and wait for it).
struct Pacer<'a> {
    store: &'a HotStore,
    share: f64,
    since: Instant,
    /// Time slept ([`FlushOutcome::paused`]).
    slept: Duration,
}

impl<'a> Pacer<'a> {
    fn new(store: &'a HotStore, share: f64) -> Self {
        Pacer { store, share, since: Instant::now(), slept: Duration::ZERO }
    }

    fn pause(&mut self) {
        let worked = self.since.elapsed();
        let room = self.store.mem_samples.load(Ordering::Relaxed) < self.store.flush_threshold() / 2;
        if self.share < 1.0 && room {
            let nap = worked.mul_f64((1.0 - self.share) / self.share).min(MAX_PACE_NAP);
            std::thread::sleep(nap);
            self.slept += nap;
        }
        self.since = Instant::now();
    }
}

/// The longest pause of a paced flush (a part that took long because the
/// host was busy is not made to wait as long again).
const MAX_PACE_NAP: Duration = Duration::from_millis(50);

/// `v` cut into owned parts of `size` items (the last one shorter), in order.
fn split_owned<T>(v: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut parts = Vec::with_capacity(v.len().div_ceil(size.max(1)));
    let mut it = v.into_iter();
    loop {
        let part: Vec<T> = it.by_ref().take(size.max(1)).collect();
        if part.is_empty() {
            return parts;
        }
        parts.push(part);
    }
}

/// Whether a flush failed because the disk (or quota) was full before the
/// manifest was replaced (a failure writing a segment or the manifest's
/// temporary file), so nothing on disk refers to what it wrote and it can
/// simply be tried again. A failure at or after the manifest's rename is
/// not: the manifest on disk may already be the new one.
pub(crate) fn disk_full_before_manifest(e: &Error) -> bool {
    let full =
        |s: &std::io::Error| matches!(s.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded);
    match e {
        Error::WriteSegment { source, .. } => full(source),
        Error::WriteManifest { path, source } => {
            full(source) && path.extension().is_some_and(|x| x == crate::format::TEMP_EXT)
        }
        _ => false,
    }
}

/// Moves `path` into `<dir>/quarantine/` (best effort: failures only log).
pub(crate) fn move_to_quarantine(dir: &Path, path: &Path) {
    let qdir = dir.join(QUARANTINE_DIR);
    let result = std::fs::create_dir_all(&qdir).and_then(|()| match path.file_name() {
        Some(name) => std::fs::rename(path, qdir.join(name)),
        None => Ok(()),
    });
    if let Err(e) = result.and_then(|()| sync_dir(dir)) {
        tracing::warn!(path = %path.display(), error = %e, "could not move corrupt segment into quarantine/");
    }
}

fn sorted_blocks(mut blocks: Vec<(SeriesRef, BlockMeta)>) -> Vec<(SeriesRef, BlockMeta)> {
    blocks.sort_unstable_by_key(|b| b.0);
    blocks
}

fn create_initial_manifest(dir: &Path, bucket_ms: i64) -> Result<Manifest> {
    let segments: Vec<String> =
        list_dir(dir)?.into_iter().filter(|n| n.ends_with(&format!(".{SEGMENT_EXT}"))).collect();
    if !segments.is_empty() {
        return Err(Error::ManifestMissing { path: manifest::manifest_path(dir), files: segments.join(", ") });
    }
    let m = Manifest { bucket_ms, ..Manifest::default() };
    manifest::store(dir, &m)?;
    tracing::info!(dir = %dir.display(), "created empty hot store");
    Ok(m)
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let io = |source| Error::AccessDir { path: dir.to_path_buf(), source };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        names.push(entry.map_err(io)?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Deletes segment and temp files the manifest does not reference: they are
/// leftovers of a crash between writing a file and committing the manifest
/// (or between committing a compaction or expiry and deleting its inputs).
fn remove_leftovers(dir: &Path, manifest: &Manifest) -> Result<()> {
    let mut removed = false;
    for name in list_dir(dir)? {
        let ours = name.ends_with(&format!(".{SEGMENT_EXT}")) || name.ends_with(&format!(".{TEMP_EXT}"));
        if name == MANIFEST_FILE || name == QUARANTINE_DIR || manifest.segments.iter().any(|s| s.file == name) {
            continue;
        }
        let path = dir.join(&name);
        if !ours {
            tracing::warn!(path = %path.display(), "unknown file in hot-store directory; leaving it");
            continue;
        }
        tracing::warn!(path = %path.display(), "deleting leftover of an interrupted flush, compaction or expiry");
        std::fs::remove_file(&path).map_err(|source| Error::RemoveLeftover { path, source })?;
        removed = true;
    }
    if removed {
        sync_dir(dir).map_err(|source| Error::AccessDir { path: dir.to_path_buf(), source })?;
    }
    Ok(())
}

fn open_listed_segment(dir: &Path, entry: &SegmentEntry) -> Result<(SegmentFile, Vec<SegmentSeries>)> {
    let path = dir.join(&entry.file);
    if entry.file != segment_file_name(entry.id) {
        return Err(Error::Corrupted {
            path: manifest::manifest_path(dir),
            detail: format!("segment {} has unexpected file name {:?}", entry.id, entry.file),
        });
    }
    let (file, series) = open_segment(&path)?;
    if file.size != entry.size {
        let detail = format!("file is {} bytes, the manifest recorded {}", file.size, entry.size);
        return Err(Error::Corrupted { path, detail });
    }
    if file.scope.tenant.as_str() != entry.tenant || file.scope.bucket != entry.bucket {
        let detail = format!(
            "segment holds tenant {} bucket {}, the manifest says {} {}",
            file.scope.tenant, file.scope.bucket, entry.tenant, entry.bucket
        );
        return Err(Error::Corrupted { path, detail });
    }
    Ok((file, series))
}

/// Registers a segment's series in the index and inserts it in (seq, id) order.
pub(crate) fn install_segment(st: &mut State, id: u64, seq: u64, file: SegmentFile, series: Vec<SegmentSeries>) {
    let mut blocks = Vec::with_capacity(series.len());
    let tenant = file.scope.tenant.clone();
    for s in series {
        let r = st.index.resolve(&tenant, s.id, s.device_hash, s.labels.as_slice());
        st.index.extend_range(r, s.meta.min_ts, s.meta.max_ts);
        blocks.push((r, s.meta));
    }
    st.insert_segment(Arc::new(Segment::new(id, seq, file, blocks)));
}

#[cfg(test)]
mod tests;
