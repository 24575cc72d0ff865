//! Right to erasure in the hot tier: the samples of a selector over a time
//! range are physically removed from the memtable and from every segment
//! file, and a verification scan proves they are gone (issue 18).
//!
//! API (what the server's erasure orchestration codes against):
//!
//! ```text
//! pub struct EraseRequest { pub tenant: TenantId, pub selectors: Vec<Vec<Matcher>>, pub start: i64, pub end: i64 }
//! impl EraseRequest { pub fn matches(&self, labels: &Labels) -> bool }
//! #[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
//! pub struct HotEraseReport { pub segments_rewritten: u64, pub segments_dropped: u64, pub samples_removed: u64,
//!                             pub bytes_rewritten: u64, pub memtable_samples_removed: u64, pub series_forgotten: u64 }
//! #[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
//! pub struct HotVerifyReport { pub segments_scanned: u64, pub samples_found: u64,
//!                              pub memtable_samples_found: u64, pub series_found: u64 }
//! impl HotStore {                      // both synchronous, blocking file I/O: call from spawn_blocking
//!     pub fn erase(&self, req: &EraseRequest) -> Result<HotEraseReport>;
//!     pub fn verify_erased(&self, req: &EraseRequest) -> Result<HotVerifyReport>;
//! }
//! ```
//!
//! A request covers every sample of the tenant whose series matches any of
//! its selector sets (each set: all matchers hold, a missing label matching
//! as `""`) with `start <= ts <= end` (ms, inclusive). Invalid requests (no
//! selector set, an empty set, `start > end`) fail with
//! [`Error::InvalidErase`] before anything is touched.
//!
//! ```text
//!  erase(req)
//!   1. memtable      write lock: matching series' chunks re-encoded without the covered samples
//!                    (crash point erase.after_memtable)
//!   2. flush()       the memtable as stripped goes into segments and the manifest's flushed
//!                    offsets move past it: log replay never brings those samples back
//!   3. segments      compact_lock (no compaction or expiry meanwhile; flushes and applies go on)
//!                    plan: live segments of the tenant with a block of a matching series
//!                          whose [min_ts, max_ts] overlaps [start, end] (index postings)
//!                    per segment, from the file's own series table and blocks:
//!                      every series matching and wholly inside → drop:
//!                          manifest without it ─ commit ─► delete the file
//!                      else → <new id>.seg (tmp, fsync, rename, fsync dir) without the covered
//!                          samples; a series left without samples is not written at all (no
//!                          series-table entry, no symbols, no postings)   (erase.after_write)
//!                          manifest: input → output, output keeps the input's seq ─ commit ─►
//!                          (erase.before_delete_input) delete the input file
//!   4. memtable      again, for covered samples applied while 2–3 ran; then series with no
//!                    data left anywhere leave the in-memory index and postings
//! ```
//!
//! **Crash safety and idempotence.** Each segment is replaced through the
//! same protocol as a compaction: the new file is durable before the
//! manifest names it, the manifest rename is the commit point, and a file
//! the manifest no longer (or not yet) names is deleted on the next open.
//! Keeping the input's `seq` keeps "newest wins" between the segments of a
//! bucket. Nothing is ever removed that the request does not cover: a
//! rewrite copies every other sample (timestamp and value bits) as it is,
//! and a segment is dropped only when each of its blocks belongs to a
//! matching series and lies inside the range. So after a crash at any step
//! (or a failed commit, which poisons the store like a failed compaction),
//! reopen, replay the log and call `erase` again: it finds what is left
//! and finishes. A second run on a finished erase changes nothing.
//!
//! **Concurrent writes.** Applies are never blocked for longer than the
//! memtable edits of steps 1 and 4 (the state write lock); step 3 holds
//! only `compact_lock`. Writes outside the request are kept like any other
//! data. A covered sample (a late write with an old timestamp) applied
//! while the erase runs is removed by step 4 if it is still in the
//! memtable; if a concurrent flush already moved it into a new segment it
//! stays there, [`HotStore::verify_erased`] reports it, and calling `erase`
//! again removes it: callers loop `erase` → `verify_erased` until the counts
//! are 0. Samples removed by step 4 (and by step 1, until step 2's flush
//! commits) are still in the ingest log; a restart before the next flush
//! replays them, and the erase must run again.
//!
//! **Index.** Series that no longer have any sample in a segment or
//! memtable are removed from the index (entries, postings, id maps), so the
//! label APIs and [`HotStore::tenant_series`] stop listing them. A series
//! that keeps data keeps its entry; its recorded `[min_ts, max_ts]` may then
//! be wider than its data (only used to skip series, never shown).
//!
//! **Not covered here.** Segments in `quarantine/` (moved aside as corrupt)
//! are neither rewritten nor scanned; a corrupt block met while erasing
//! quarantines its segment (as the read path would) and fails the call.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use croaring::Bitmap;
use strata_schemas::{Labels, Matcher, ReadError, TenantId, TimeRange};

use crate::error::{Error, Result};
use crate::index::{LabelPairs, SeriesIndex, SeriesRef};
use crate::maintenance::{forget_dataless_series, output_entry};
use crate::segment::{SegmentFile, SegmentSeries, SeriesRecord, open_segment, write_segment};
use crate::store::{HotStore, Segment, disk_full_before_manifest};

/// Which samples to erase: those of the tenant's series matching any
/// selector set, with a timestamp in `[start, end]` (inclusive, ms).
#[derive(Debug, Clone)]
pub struct EraseRequest {
    /// The tenant whose data is erased (no other tenant is touched).
    pub tenant: TenantId,
    /// Matcher sets; a series matching every matcher of one set is covered.
    pub selectors: Vec<Vec<Matcher>>,
    /// First millisecond erased.
    pub start: i64,
    /// Last millisecond erased.
    pub end: i64,
}

/// What a [`HotStore::erase`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HotEraseReport {
    /// Segment files replaced by a copy without the covered samples.
    pub segments_rewritten: u64,
    /// Segment files deleted because every sample in them was covered.
    pub segments_dropped: u64,
    /// Samples removed from segment files (a timestamp held by two
    /// segments of a bucket counts twice).
    pub samples_removed: u64,
    /// Bytes of the segment files written by the rewrites.
    pub bytes_rewritten: u64,
    /// Samples removed from the memtable.
    pub memtable_samples_removed: u64,
    /// Series removed from the index because no data of theirs is left.
    pub series_forgotten: u64,
}

/// What a [`HotStore::verify_erased`] found; every count but
/// `segments_scanned` is 0 once the request's samples are gone.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HotVerifyReport {
    /// Live segment files of the tenant whose series table was read.
    pub segments_scanned: u64,
    /// Covered samples still in segment files.
    pub samples_found: u64,
    /// Covered samples still in the memtable (or one being flushed).
    pub memtable_samples_found: u64,
    /// Distinct series with a covered sample anywhere in the hot store.
    pub series_found: u64,
}

impl EraseRequest {
    /// True when the request covers a series with these labels.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.selectors.iter().any(|set| Matcher::matches_all(set, labels))
    }

    fn validate(&self) -> Result<()> {
        let invalid = |detail: String| Err(Error::InvalidErase { tenant: self.tenant.to_string(), detail });
        if self.selectors.is_empty() {
            return invalid("no series selector given".to_owned());
        }
        if self.selectors.iter().any(Vec::is_empty) {
            return invalid("a selector without matchers would match every series".to_owned());
        }
        if self.start > self.end {
            return invalid(format!("start {} is after end {}", self.start, self.end));
        }
        Ok(())
    }

    fn covers_ts(&self, ts: i64) -> bool {
        self.start <= ts && ts <= self.end
    }

    fn overlaps(&self, min_ts: i64, max_ts: i64) -> bool {
        min_ts <= self.end && max_ts >= self.start
    }

    /// The tenant's series matching any selector set, via the postings.
    fn matching_refs(&self, index: &SeriesIndex) -> Bitmap {
        let mut out = Bitmap::new();
        for set in &self.selectors {
            out.or_inplace(&index.select(&self.tenant, set));
        }
        out
    }
}

impl HotStore {
    /// Physically removes the request's samples from the hot store: the
    /// memtable's, then (after a flush) every live segment of the tenant
    /// holding one is rewritten without them, or deleted when nothing else
    /// is left in it; see the module doc of `erase.rs` for the steps, the
    /// crash protocol and what concurrent writes see. Idempotent: after a
    /// crash or error at any point, reopen (replaying the log) and call it
    /// again; it never removes a sample the request does not cover.
    pub fn erase(&self, req: &EraseRequest) -> Result<HotEraseReport> {
        req.validate()?;
        let mut report = HotEraseReport::default();
        self.erase_memtable(req, &mut report)?;
        crate::failpoint::hit("erase.after_memtable")
            .map_err(|source| Error::WriteSegment { path: self.dir.clone(), source })?;
        self.flush()?;
        self.erase_segments(req, &mut report)?;
        self.erase_memtable(req, &mut report)?;
        tracing::info!(
            tenant = %req.tenant,
            start = req.start,
            end = req.end,
            segments_rewritten = report.segments_rewritten,
            segments_dropped = report.segments_dropped,
            samples_removed = report.samples_removed,
            memtable_samples_removed = report.memtable_samples_removed,
            series_forgotten = report.series_forgotten,
            "hot store erased samples"
        );
        Ok(report)
    }

    /// Scans every live segment file of the tenant (its own series table and
    /// the blocks that may hold covered samples, not the in-memory index)
    /// and the memtables for samples the request covers: the proof that an
    /// erase is complete (all counts but `segments_scanned` 0). Read-only;
    /// holds `compact_lock` while it reads the files.
    pub fn verify_erased(&self, req: &EraseRequest) -> Result<HotVerifyReport> {
        req.validate()?;
        let mut report = HotVerifyReport::default();
        let mut found: BTreeSet<Labels> = BTreeSet::new();
        {
            let _c = self.compact_lock.lock();
            let segs: Vec<Arc<Segment>> =
                self.state.read().segments.iter().filter(|s| s.scope().tenant == req.tenant).cloned().collect();
            for seg in segs {
                let (file, series) = open_segment(&seg.file.path)?;
                report.segments_scanned += 1;
                for s in series.iter().filter(|s| req.overlaps(s.meta.min_ts, s.meta.max_ts)) {
                    let labels = s.labels.as_slice().to_labels();
                    if !req.matches(&labels) {
                        continue;
                    }
                    let n = read_block(&file, s)?.iter().filter(|&&(ts, _)| req.covers_ts(ts)).count() as u64;
                    if n > 0 {
                        report.samples_found += n;
                        found.insert(labels);
                    }
                }
            }
        }
        let st = self.state.read();
        let range = TimeRange::new(req.start, req.end);
        for m in st.frozen.as_deref().into_iter().chain(Some(&st.memtable)) {
            for (r, _, chunk) in m.iter() {
                let Some(e) = st.index.get(r) else { continue };
                if st.index.tenant_of(e) != Some(&req.tenant) {
                    continue;
                }
                let labels = st.index.labels(e);
                if !req.matches(&labels) {
                    continue;
                }
                let n = chunk.in_range(range).map_err(memtable_error)?.len() as u64;
                if n > 0 {
                    report.memtable_samples_found += n;
                    found.insert(labels);
                }
            }
        }
        report.series_found = found.len() as u64;
        Ok(report)
    }

    /// Removes the covered samples from the active memtable, then forgets
    /// series left without data anywhere.
    fn erase_memtable(&self, req: &EraseRequest, report: &mut HotEraseReport) -> Result<()> {
        let mut guard = self.state.write();
        let st = &mut *guard;
        let matching = req.matching_refs(&st.index);
        for r in matching.iter() {
            let n = st.memtable.remove_range(r, req.start, req.end).map_err(memtable_error)?;
            report.memtable_samples_removed += n as u64;
        }
        report.series_forgotten += forget_dataless_series(st) as u64;
        self.sync_mem_counters(st);
        Ok(())
    }

    /// Step 3: rewrites or drops every live segment holding covered samples.
    fn erase_segments(&self, req: &EraseRequest, report: &mut HotEraseReport) -> Result<()> {
        let _c = self.compact_lock.lock();
        let plan: Vec<Arc<Segment>> = {
            let st = self.state.read();
            if let Some(cause) = &st.poisoned {
                return Err(Error::Poisoned { operation: "erase", cause: cause.clone() });
            }
            let matching = req.matching_refs(&st.index);
            st.segments
                .iter()
                .filter(|s| s.scope().tenant == req.tenant && s.overlaps(req.start, req.end))
                .filter(|s| s.blocks.iter().any(|(r, b)| matching.contains(*r) && req.overlaps(b.min_ts, b.max_ts)))
                .cloned()
                .collect()
        };
        for seg in plan {
            self.erase_segment(&seg, req, report)?;
        }
        Ok(())
    }

    /// Rewrites one segment without the covered samples, or drops it.
    fn erase_segment(&self, seg: &Arc<Segment>, req: &EraseRequest, report: &mut HotEraseReport) -> Result<()> {
        let (file, mut series) = open_segment(&seg.file.path)?;
        // Segment order, whatever version wrote the file.
        series.sort_by(|a, b| (a.device_hash, a.id, &a.labels).cmp(&(b.device_hash, b.id, &b.labels)));
        let hits: Vec<bool> = series
            .iter()
            .map(|s| req.overlaps(s.meta.min_ts, s.meta.max_ts) && req.matches(&s.labels.as_slice().to_labels()))
            .collect();
        if !hits.contains(&true) {
            return Ok(()); // the index and the file disagree; the file decides
        }
        let inside = |s: &SegmentSeries| s.meta.min_ts >= req.start && s.meta.max_ts <= req.end;
        if series.iter().zip(&hits).all(|(s, &hit)| hit && inside(s)) {
            if self.replace_segment(seg, None)? {
                report.segments_dropped += 1;
                report.samples_removed += series.iter().map(|s| u64::from(s.meta.count)).sum::<u64>();
            }
            return Ok(());
        }
        self.rewrite_segment(seg, &file, &series, &hits, req, report)
    }

    fn rewrite_segment(
        &self,
        seg: &Arc<Segment>,
        file: &SegmentFile,
        series: &[SegmentSeries],
        hits: &[bool],
        req: &EraseRequest,
        report: &mut HotEraseReport,
    ) -> Result<()> {
        let refs: HashMap<u64, SeriesRef> = seg.blocks.iter().map(|(r, b)| (b.offset, *r)).collect();
        let mut kept: Vec<SeriesRef> = Vec::with_capacity(series.len());
        let mut removed = 0u64;
        let records = series.iter().zip(hits).filter_map(|(s, &hit)| {
            let Some(&r) = refs.get(&s.meta.offset) else {
                let detail = format!("block at offset {} is not in the loaded segment", s.meta.offset);
                return Some(Err(Error::Corrupted { path: file.path.clone(), detail }));
            };
            let mut samples = match read_block(file, s) {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            if hit {
                let before = samples.len();
                samples.retain(|&(ts, _)| !req.covers_ts(ts));
                removed += (before - samples.len()) as u64;
            }
            if samples.is_empty() {
                return None; // the series leaves the segment: no entry, no label bytes
            }
            kept.push(r);
            Some(Ok(SeriesRecord { id: s.id, device_hash: s.device_hash, labels: s.labels.clone(), samples }))
        });
        let id = self.alloc_id();
        let written = match write_segment(&self.dir, id, &file.scope, records) {
            Ok(w) => w,
            Err(e) => {
                if let Error::EraseRead { source: source @ ReadError::Corrupted { .. }, .. } = &e {
                    tracing::warn!(error = %e, "segment is corrupt; quarantining it instead of erasing from it");
                    self.quarantine_segment(seg, source.to_string());
                }
                return Err(e);
            }
        };
        crate::failpoint::hit("erase.after_write")
            .map_err(|source| Error::WriteSegment { path: written.path.clone(), source })?;
        debug_assert_eq!(written.blocks.len(), kept.len());
        let bytes = written.file.size;
        let blocks = kept.into_iter().zip(written.blocks).collect();
        let output = Arc::new(Segment::new(id, seg.seq, written.file, blocks));
        if self.replace_segment(seg, Some(output))? {
            report.segments_rewritten += 1;
            report.samples_removed += removed;
            report.bytes_rewritten += bytes;
        }
        Ok(())
    }

    /// Commits `input → output` (or the removal of `input`) to the manifest,
    /// installs it, then deletes the input file. False (and the output
    /// deleted) when the input left the manifest meanwhile (quarantined).
    fn replace_segment(&self, input: &Segment, output: Option<Arc<Segment>>) -> Result<bool> {
        let input_id = input.id;
        let entry = output.as_deref().map(output_entry);
        let out_path: Option<PathBuf> = output.as_ref().map(|o| o.file.path.clone());
        let remove_output = || {
            if let Some(p) = &out_path {
                let _ = std::fs::remove_file(p);
            }
        };
        let committed = self
            .commit(
                |m| {
                    if !m.segments.iter().any(|s| s.id == input_id) {
                        return false;
                    }
                    m.segments.retain(|s| s.id != input_id);
                    if let Some(e) = entry {
                        m.segments.push(e);
                        m.segments.sort_by_key(|s| (s.seq, s.id));
                    }
                    true
                },
                |st| {
                    st.segments.retain(|s| s.id != input_id);
                    if let Some(o) = output {
                        st.insert_segment(o);
                    }
                },
            )
            .inspect_err(|e| {
                if disk_full_before_manifest(e) {
                    tracing::warn!(error = %e, "erase failed: disk full; the segment stays as it was");
                    remove_output();
                } else {
                    tracing::error!(error = %e, "erase manifest write failed; hot store poisoned until restart");
                    self.state.write().poisoned = Some(e.to_string());
                }
            })?;
        if !committed {
            remove_output();
            return Ok(false);
        }
        crate::failpoint::hit("erase.before_delete_input")
            .map_err(|source| Error::WriteSegment { path: input.file.path.clone(), source })?;
        self.remove_files(std::iter::once(&input.file.path));
        Ok(true)
    }
}

fn read_block(file: &SegmentFile, s: &SegmentSeries) -> Result<Vec<(i64, u64)>> {
    file.read_block(&s.meta).map_err(|source| Error::EraseRead { path: file.path.clone(), source })
}

fn memtable_error(detail: &'static str) -> Error {
    Error::EraseMemtable { detail: detail.to_owned() }
}

#[cfg(test)]
mod tests;
