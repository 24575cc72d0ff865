//! [`HotStore`]: open/recover, apply, flush and compact.
//!
//! Concurrency scheme:
//!
//! ```text
//!  state: RwLock<State>   apply      write lock, O(samples in the batch)
//!                         select     read lock to snapshot (memtable copies + Arc<Segment>s), file reads outside it
//!                         flush      write lock to swap memtable → frozen, then again to install the segment
//!  maintenance: Mutex     flush / compact hold it for their whole run, so they serialize
//! ```
//!
//! The manifest is only ever written while holding `maintenance`, so
//! `State::manifest` is always the file's current content.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strata_schemas::WriteBatch;

use crate::config::HotStoreConfig;
use crate::error::{Error, Result};
use crate::format::{MANIFEST_FILE, SEGMENT_EXT, TEMP_EXT, segment_file_name};
use crate::index::{SeriesIndex, SeriesKey, SeriesRef};
use crate::manifest::{self, Manifest, SegmentEntry};
use crate::memtable::Memtable;
use crate::segment::{BlockMeta, SegmentFile, SeriesRecord, open_segment, sync_dir, write_segment};

/// A live segment and where each of its series' blocks lives.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) file: SegmentFile,
    pub(crate) blocks: HashMap<SeriesRef, BlockMeta>,
}

/// Everything behind the state lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) index: SeriesIndex,
    pub(crate) memtable: Memtable,
    /// The memtable being flushed; readers see it until its segment is installed.
    pub(crate) frozen: Option<Arc<Memtable>>,
    /// Live segments, oldest first.
    pub(crate) segments: Vec<Arc<Segment>>,
    /// Per partition: the next offset `apply` accepts.
    next_offsets: BTreeMap<u32, u64>,
    /// The manifest as it is on disk.
    manifest: Manifest,
    next_segment_id: u64,
    /// Set when a flush failed half-way; the store then refuses writes.
    poisoned: Option<String>,
}

/// The embedded hot store. `Send + Sync`; share it as `Arc<HotStore>`.
pub struct HotStore {
    dir: PathBuf,
    config: HotStoreConfig,
    pub(crate) state: RwLock<State>,
    maintenance: Mutex<()>,
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
    /// Series written (0 when the memtable was empty).
    pub series: usize,
    /// Samples written (after de-duplication).
    pub samples: u64,
    /// The segment file written, if any.
    pub segment: Option<PathBuf>,
}

/// What a [`HotStore::compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactOutcome {
    /// Segments merged (0 when there was nothing to do).
    pub input_segments: usize,
    /// The segment that replaced them, if any.
    pub segment: Option<PathBuf>,
    /// Series in the output.
    pub series: usize,
    /// Samples in the output.
    pub samples: u64,
}

/// A point-in-time summary of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotStoreStats {
    /// Series known to the index (all tenants).
    pub series: usize,
    /// Samples in the active memtable (what the server compares with `max_memtable_samples`).
    pub memtable_samples: usize,
    /// Samples in a memtable currently being flushed.
    pub frozen_samples: usize,
    /// Live segment files.
    pub segments: usize,
    /// Bytes of live segment files.
    pub disk_bytes: u64,
    /// Label sets kept apart because their series id collided with another's.
    pub id_collisions: usize,
}

impl HotStore {
    /// Opens (or creates) the store in `dir`: loads the manifest and the
    /// index of every live segment, and deletes leftovers of a crash.
    pub fn open(dir: &Path, mut config: HotStoreConfig) -> Result<HotStore> {
        config.validate();
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir { path: dir.to_path_buf(), source })?;
        let manifest = match manifest::load(dir)? {
            Some(m) => m,
            None => create_initial_manifest(dir)?,
        };
        remove_leftovers(dir, &manifest)?;
        let mut state = State { next_offsets: manifest.flushed_offsets.clone(), ..State::default() };
        for entry in &manifest.segments {
            let (file, blocks) = open_listed_segment(dir, entry)?;
            install_segment(&mut state, file, blocks);
        }
        state.next_segment_id = manifest.segments.iter().map(|s| s.id + 1).max().unwrap_or(1);
        state.manifest = manifest;
        let store = HotStore { dir: dir.to_path_buf(), config, state: RwLock::new(state), maintenance: Mutex::new(()) };
        let stats = store.stats();
        tracing::info!(
            dir = %dir.display(),
            segments = stats.segments,
            series = stats.series,
            disk_bytes = stats.disk_bytes,
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
    pub fn apply(&self, partition: u32, offset: u64, batch: &WriteBatch) -> Result<()> {
        let mut guard = self.state.write();
        let st = &mut *guard;
        if let Some(cause) = &st.poisoned {
            return Err(Error::ApplyRefused { partition, offset, cause: cause.clone() });
        }
        if offset < st.next_offsets.get(&partition).copied().unwrap_or(0) {
            tracing::trace!(partition, offset, "skipping already applied record");
            return Ok(());
        }
        for s in batch.series.iter().filter(|s| !s.samples.is_empty()) {
            let r = st.index.resolve(&batch.tenant, s.id, &s.labels);
            if let Some((min, max)) = st.memtable.insert(r, &s.samples) {
                st.index.extend_range(r, min, max);
            }
        }
        st.next_offsets.insert(partition, offset.saturating_add(1));
        Ok(())
    }

    /// Samples in the active memtable.
    pub fn memtable_samples(&self) -> usize {
        self.state.read().memtable.samples()
    }

    /// Per partition, the first log offset not yet durable in segments.
    pub fn flushed_offsets(&self) -> BTreeMap<u32, u64> {
        self.state.read().manifest.flushed_offsets.clone()
    }

    /// A summary of the store.
    pub fn stats(&self) -> HotStoreStats {
        let st = self.state.read();
        HotStoreStats {
            series: st.index.len(),
            memtable_samples: st.memtable.samples(),
            frozen_samples: st.frozen.as_ref().map_or(0, |f| f.samples()),
            segments: st.segments.len(),
            disk_bytes: st.segments.iter().map(|s| s.file.size).sum(),
            id_collisions: st.index.collisions(),
        }
    }

    /// Freezes the memtable, writes it as a segment, atomically replaces the
    /// manifest (recording per-partition flushed offsets), then drops the
    /// frozen memtable. Applies and reads continue while the file is written.
    ///
    /// On failure the store is poisoned (it keeps serving reads, refuses
    /// writes); after a restart the log replay restores the unflushed data.
    pub fn flush(&self) -> Result<FlushOutcome> {
        let _maintenance = self.maintenance.lock();
        let Some((frozen, keys, offsets, id)) = self.freeze()? else {
            return Ok(FlushOutcome { flushed_offsets: self.flushed_offsets(), series: 0, samples: 0, segment: None });
        };
        self.write_frozen(&frozen, keys, offsets, id).inspect_err(|e| {
            tracing::error!(error = %e, "flush failed; hot store poisoned until restart");
            self.state.write().poisoned = Some(e.to_string());
        })
    }

    /// Swaps the memtable out; `None` when there is nothing new to persist.
    #[expect(clippy::type_complexity, reason = "private helper returning the pieces of one frozen memtable")]
    fn freeze(&self) -> Result<Option<(Arc<Memtable>, Vec<(Arc<SeriesKey>, SeriesRef)>, BTreeMap<u32, u64>, u64)>> {
        let mut guard = self.state.write();
        let st = &mut *guard;
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned { operation: "flush", cause: cause.clone() });
        }
        if st.memtable.is_empty() && st.next_offsets == st.manifest.flushed_offsets {
            return Ok(None);
        }
        let frozen = Arc::new(std::mem::take(&mut st.memtable));
        st.frozen = Some(Arc::clone(&frozen));
        let mut keys: Vec<(Arc<SeriesKey>, SeriesRef)> =
            frozen.iter().filter_map(|(r, _)| st.index.get(r).map(|e| (Arc::clone(&e.key), r))).collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let id = st.next_segment_id;
        st.next_segment_id += 1;
        Ok(Some((frozen, keys, st.next_offsets.clone(), id)))
    }

    fn write_frozen(
        &self,
        frozen: &Memtable,
        keys: Vec<(Arc<SeriesKey>, SeriesRef)>,
        offsets: BTreeMap<u32, u64>,
        id: u64,
    ) -> Result<FlushOutcome> {
        let mut new_manifest = self.state.read().manifest.clone();
        new_manifest.generation += 1;
        new_manifest.flushed_offsets = offsets.clone();
        let mut outcome = FlushOutcome { flushed_offsets: offsets, series: 0, samples: 0, segment: None };
        let mut installed = None;
        if !keys.is_empty() {
            let records = keys.into_iter().filter_map(|(key, r)| {
                frozen.get(r).map(|buf| Ok(SeriesRecord { key, samples: buf.sorted_unique().into_owned() }))
            });
            let written = write_segment(&self.dir, id, records)?;
            let (file, blocks) = open_segment(&written.path)?;
            new_manifest.segments.push(SegmentEntry { id, file: segment_file_name(id), size: file.size });
            (outcome.series, outcome.samples, outcome.segment) = (written.series, written.samples, Some(written.path));
            installed = Some((file, blocks));
        }
        manifest::store(&self.dir, &new_manifest)?;
        let mut st = self.state.write();
        if let Some((file, blocks)) = installed {
            install_segment(&mut st, file, blocks);
        }
        st.frozen = None;
        st.manifest = new_manifest;
        tracing::info!(segment = ?outcome.segment, series = outcome.series, samples = outcome.samples, "hot store flushed");
        Ok(outcome)
    }

    /// Merges every live segment into one (latest write wins), with the same
    /// atomic manifest protocol as a flush, then deletes the inputs. Keeps the
    /// segment count bounded until the time-bucketed engine lands.
    pub fn compact(&self) -> Result<CompactOutcome> {
        let _maintenance = self.maintenance.lock();
        let Some((inputs, keys, id)) = self.plan_compaction()? else {
            return Ok(CompactOutcome { input_segments: 0, segment: None, series: 0, samples: 0 });
        };
        let records =
            keys.into_iter().map(|(key, r)| merge_segments(&inputs, r).map(|samples| SeriesRecord { key, samples }));
        let written = write_segment(&self.dir, id, records)?;
        let (file, blocks) = open_segment(&written.path)?;
        let mut new_manifest = self.state.read().manifest.clone();
        new_manifest.generation += 1;
        new_manifest.segments = vec![SegmentEntry { id, file: segment_file_name(id), size: file.size }];
        manifest::store(&self.dir, &new_manifest).inspect_err(|e| {
            tracing::error!(error = %e, "compaction manifest write failed; hot store poisoned until restart");
            self.state.write().poisoned = Some(e.to_string());
        })?;
        {
            let mut st = self.state.write();
            st.segments.clear();
            install_segment(&mut st, file, blocks);
            st.manifest = new_manifest;
        }
        self.remove_replaced(&inputs);
        tracing::info!(inputs = inputs.len(), segment = %written.path.display(), "hot store compacted");
        Ok(CompactOutcome {
            input_segments: inputs.len(),
            segment: Some(written.path),
            series: written.series,
            samples: written.samples,
        })
    }

    /// The segments to merge, their series in file order, and the output id;
    /// `None` when fewer than two segments are live.
    #[expect(clippy::type_complexity, reason = "private helper returning the pieces of one compaction")]
    fn plan_compaction(&self) -> Result<Option<(Vec<Arc<Segment>>, Vec<(Arc<SeriesKey>, SeriesRef)>, u64)>> {
        let mut st = self.state.write();
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned { operation: "compact", cause: cause.clone() });
        }
        if st.segments.len() < 2 {
            return Ok(None);
        }
        let mut refs: Vec<SeriesRef> = st.segments.iter().flat_map(|s| s.blocks.keys().copied()).collect();
        refs.sort_unstable();
        refs.dedup();
        let mut keys: Vec<(Arc<SeriesKey>, SeriesRef)> =
            refs.into_iter().filter_map(|r| st.index.get(r).map(|e| (Arc::clone(&e.key), r))).collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let id = st.next_segment_id;
        st.next_segment_id += 1;
        Ok(Some((st.segments.clone(), keys, id)))
    }

    /// Deletes segment files no manifest references any more. Failures only
    /// warn: the next open deletes leftovers anyway.
    fn remove_replaced(&self, inputs: &[Arc<Segment>]) {
        for s in inputs {
            if let Err(e) = std::fs::remove_file(&s.file.path) {
                tracing::warn!(path = %s.file.path.display(), error = %e, "could not delete compacted segment");
            }
        }
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not sync directory after compaction");
        }
    }
}

/// Merges one series' blocks from `segments` (oldest first; newer wins).
fn merge_segments(segments: &[Arc<Segment>], r: SeriesRef) -> Result<Vec<(i64, u64)>> {
    let mut merged = BTreeMap::new();
    for seg in segments {
        if let Some(meta) = seg.blocks.get(&r) {
            let samples = seg
                .file
                .read_block(meta)
                .map_err(|source| Error::CompactRead { path: seg.file.path.clone(), source })?;
            merged.extend(samples);
        }
    }
    Ok(merged.into_iter().collect())
}

fn create_initial_manifest(dir: &Path) -> Result<Manifest> {
    let segments: Vec<String> =
        list_dir(dir)?.into_iter().filter(|n| n.ends_with(&format!(".{SEGMENT_EXT}"))).collect();
    if !segments.is_empty() {
        return Err(Error::ManifestMissing { path: manifest::manifest_path(dir), files: segments.join(", ") });
    }
    let m = Manifest::default();
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
/// leftovers of a crash between writing a file and committing the manifest.
fn remove_leftovers(dir: &Path, manifest: &Manifest) -> Result<()> {
    let mut removed = false;
    for name in list_dir(dir)? {
        let ours = name.ends_with(&format!(".{SEGMENT_EXT}")) || name.ends_with(&format!(".{TEMP_EXT}"));
        if name == MANIFEST_FILE || manifest.segments.iter().any(|s| s.file == name) {
            continue;
        }
        let path = dir.join(&name);
        if !ours {
            tracing::warn!(path = %path.display(), "unknown file in hot-store directory; leaving it");
            continue;
        }
        tracing::warn!(path = %path.display(), "deleting leftover of an interrupted flush or compaction");
        std::fs::remove_file(&path).map_err(|source| Error::RemoveLeftover { path, source })?;
        removed = true;
    }
    if removed {
        sync_dir(dir).map_err(|source| Error::AccessDir { path: dir.to_path_buf(), source })?;
    }
    Ok(())
}

fn open_listed_segment(dir: &Path, entry: &SegmentEntry) -> Result<(SegmentFile, Vec<(SeriesKey, BlockMeta)>)> {
    let path = dir.join(&entry.file);
    if entry.file != segment_file_name(entry.id) {
        return Err(Error::Corrupted {
            path: manifest::manifest_path(dir),
            detail: format!("segment {} has unexpected file name {:?}", entry.id, entry.file),
        });
    }
    let (file, blocks) = open_segment(&path)?;
    if file.size != entry.size {
        let detail = format!("file is {} bytes, the manifest recorded {}", file.size, entry.size);
        return Err(Error::Corrupted { path, detail });
    }
    Ok((file, blocks))
}

/// Registers a segment's series in the index and appends it as the newest segment.
fn install_segment(st: &mut State, file: SegmentFile, entries: Vec<(SeriesKey, BlockMeta)>) {
    let mut blocks = HashMap::with_capacity(entries.len());
    for (key, meta) in entries {
        let r = st.index.resolve(&key.tenant, key.id, &key.labels);
        st.index.extend_range(r, meta.min_ts, meta.max_ts);
        blocks.insert(r, meta);
    }
    st.segments.push(Arc::new(Segment { file, blocks }));
}

#[cfg(test)]
mod tests;
