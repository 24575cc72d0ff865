//! Right to erasure in the cold tier: physically remove the samples of the
//! series a request selects over a time range, from every table and every
//! retained snapshot, and prove it.
//!
//! ```text
//! pub struct EraseRequest { pub selectors: Vec<Vec<Matcher>>, pub start: i64, pub end: i64 }
//! pub struct EraseOptions { pub orphan_grace: Duration }            // Default: 1 h
//! pub struct ColdEraseReport { files_rewritten, files_removed, rows_removed, bytes_rewritten,
//!     rollup_files_rewritten, rollup_rows_recomputed, series_rows_removed, snapshots_expired,
//!     objects_deleted: u64 }                                       // Debug, Default, Clone, Serialize
//! pub struct ColdVerifyReport { snapshots_scanned, files_scanned, rows_found, rollup_rows_found,
//!     series_rows_found, unreferenced_objects: u64 }               // Debug, Default, Clone, Serialize
//! impl ColdTier {   // on any view (samples, rollup or series handle): it erases every table
//!     pub async fn erase(&self, tenant: &TenantId, req: &EraseRequest) -> Result<ColdEraseReport>;
//!     pub async fn erase_with(&self, tenant: &TenantId, req: &EraseRequest, opts: &EraseOptions)
//!         -> Result<ColdEraseReport>;
//!     pub async fn verify_erased(&self, tenant: &TenantId, req: &EraseRequest) -> Result<ColdVerifyReport>;
//! }
//! ```
//!
//! A row is **covered** when its series' labels satisfy every matcher of at
//! least one selector set and its `ts` is in `[start, end]` (ms, both
//! included). Errors: [`Error::InvalidEraseRequest`] (no selector, an
//! empty set, a set whose matchers all match the empty string, `start >
//! end`), [`Error::Conflict`] (the tables kept changing; retry later), the
//! usual I/O errors (retry). Every error leaves the tables consistent and a
//! later `erase` completes the job.
//!
//! ```text
//!  1 samples   live files of the current snapshot that may hold covered rows
//!              (partition day × device bucket, column bounds of ts, device_hash, metric)
//!              → count covered rows (labels, series_id, ts only) → if any: stream the rows kept
//!              into new files of the same partition (prefix "erase-"), none when all were covered
//!              → one `overwrite` (`delete` when nothing is added) snapshot, strata.operation = erase
//!  2 rollups   5m, 1h (every `Rollup::ALL`): rows of covered series whose window (end − w, end]
//!              meets [start, end] → recomputed from the samples left (step 1 is committed):
//!              each partial row keeps its share of the window, (previous partial's last_ts,
//!              its last_ts], so the result is what the rolls of the remaining data wrote;
//!              a partial with no sample left is dropped; other rows are copied unchanged
//!  3 series    rows of covered series with no sample and no rollup row left → dropped
//!  4 expiry    per table: every non-current snapshot that references a data file that is no
//!              longer live and may hold covered rows (step 1–3's removed files, and older ones)
//!              → objects only those snapshots reach (data files, manifests, manifest lists)
//!              listed in metadata/erase-pending-<uuid>.json → snapshots expired (their
//!              strata.source kept in the table property strata.erased-sources, so exactly-once
//!              rolls still see them) → listed objects nothing retained reaches deleted → list deleted
//!  5 orphans   unreferenced objects named erase-* (this module's, of a crashed run) deleted at
//!              once; other unreferenced objects once older than `orphan_grace` (writes in flight)
//! ```
//!
//! **Idempotent and crash-safe.** No step keeps state outside the tables:
//! each plans from what is committed, and finds nothing to do when it is
//! done (step 2 recomputes a window from the same remaining samples and the
//! same partial boundaries, and writes only when the stored rows differ).
//! Step 4's pending list is written before the expiry commit and processed by
//! the next run if the deletion was cut short. Every rewrite is a
//! compare-and-swap of the catalog row (the `replace_files` path); a
//! concurrent commit makes it re-stage, and a file a concurrent merge
//! replaced makes the step re-plan (up to 4 times, then [`Error::Conflict`]).
//! Rows that are not covered are copied as stored, in their order (values'
//! NaN bits, duplicate timestamps, partial rollup rows).
//!
//! **Caller's part.** Run one erase per tenant at a time. A roll whose
//! samples are committed but whose rollups are not yet (the compactor's
//! crash window) is safe: step 2 never counts samples after a window's last
//! stored partial. Snapshot summaries carry the counts and the range, never
//! the selectors (they hold personal data; keep them in the request log).
//! When `series_rows_removed > 0`, a compactor that caches the series it
//! recorded (`known_series`) must forget the tenant's cache, or a later roll
//! of the same series will not record it again (reads then fall back to the
//! rollup rows' labels: correct, slower). Crash tests arm the failpoints
//! `erase_samples_before_commit`, `erase_after_samples`,
//! `erase_rollup_before_commit`, `erase_after_rollup5m`, `erase_after_rollup1h`,
//! `erase_after_series`, `erase_before_expiry`, `erase_after_expiry` with
//! `ColdTier::arm_failpoint` (cargo feature `failpoints`; without it the
//! points are inlined `Ok(())`).
//!
//! **Limits.** A samples file is streamed (`rewrite.rs`: its compressed bytes
//! and one record batch in memory); a rollup or series file with covered
//! rows is decoded whole (they are a small fraction of the samples). Rollup windows written as
//! one merged row by the small-file merge are recomputed as one row: min,
//! max, count and last are exact, the sum is the Kahan sum of the remaining
//! samples rather than a sum of per-roll partial sums (equal up to rounding).

mod plan;
mod rewrite;
mod verify;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use iceberg::spec::Operation;
use serde::Serialize;
use strata_schemas::{Labels, Matcher, RollupPoint, Sample, TenantId, TimeRange};

use crate::error::{Error, Result};
use crate::maintenance::SUMMARY_OPERATION;
use crate::rollup::SeriesRollup;
use crate::series::SeriesEntry;
use crate::table::{Rollup, TableKind};
use crate::tier::ColdTier;
use plan::Prune;

/// `strata.operation` of an erase snapshot.
pub const OPERATION_ERASE: &str = "erase";
/// Snapshot summary key: first covered millisecond of the request.
pub const SUMMARY_ERASE_START: &str = "strata.erase-start";
/// Snapshot summary key: last covered millisecond of the request.
pub const SUMMARY_ERASE_END: &str = "strata.erase-end";
/// Snapshot summary key: rows removed (samples table), windows recomputed
/// (rollup tables) or series rows removed (series table) by the snapshot.
pub const SUMMARY_ERASE_ROWS: &str = "strata.erase-rows";

/// How often a step re-plans after a conflicting concurrent commit.
const ATTEMPTS: usize = 4;

/// Which series and time an erase covers.
#[derive(Debug, Clone)]
pub struct EraseRequest {
    /// Series matching every matcher of any one set (Prometheus `match[]`).
    pub selectors: Vec<Vec<Matcher>>,
    /// First covered millisecond (included).
    pub start: i64,
    /// Last covered millisecond (included).
    pub end: i64,
}

impl EraseRequest {
    /// Rejects requests that select nothing sensible (or everything).
    pub fn validate(&self, tenant: &TenantId) -> Result<()> {
        let bad = |detail: &str| Err(Error::InvalidEraseRequest { tenant: tenant.clone(), detail: detail.into() });
        if self.selectors.is_empty() {
            return bad("no selector");
        }
        if self.selectors.iter().any(|s| s.iter().all(Matcher::matches_empty)) {
            return bad("a selector must have a matcher that does not match the empty string");
        }
        if self.start > self.end {
            return bad("start is after end");
        }
        Ok(())
    }

    /// True when `labels` is selected (whatever the time).
    pub fn selects(&self, labels: &Labels) -> bool {
        self.selectors.iter().any(|s| Matcher::matches_all(s, labels))
    }

    /// True when `ts` is inside the range.
    pub fn in_range(&self, ts: i64) -> bool {
        self.start <= ts && ts <= self.end
    }

    /// Window ends `e` whose window `(e − w, e]` meets `[start, end]`.
    fn window_ends(&self, width: i64) -> (i64, i64) {
        (self.start, self.end.saturating_add(width - 1))
    }
}

/// Tunables of [`ColdTier::erase_with`].
#[derive(Debug, Clone, Copy)]
pub struct EraseOptions {
    /// Unreferenced objects not written by an erase are deleted once older
    /// than this (a roll or merge in flight writes its files before its
    /// commit). Default 1 h.
    pub orphan_grace: Duration,
}

impl Default for EraseOptions {
    fn default() -> Self {
        Self { orphan_grace: Duration::from_secs(3600) }
    }
}

/// What [`ColdTier::erase`] did (this run only; a re-run that finds
/// nothing to do reports zeros).
#[derive(Debug, Default, Clone, Serialize)]
pub struct ColdEraseReport {
    /// Samples files replaced by files without the covered rows.
    pub files_rewritten: u64,
    /// Samples files dropped because every row was covered.
    pub files_removed: u64,
    /// Covered samples removed.
    pub rows_removed: u64,
    /// Bytes of Parquet written (every table).
    pub bytes_rewritten: u64,
    /// Rollup files replaced or dropped.
    pub rollup_files_rewritten: u64,
    /// Rollup windows recomputed or dropped.
    pub rollup_rows_recomputed: u64,
    /// Series-table rows removed.
    pub series_rows_removed: u64,
    /// Snapshots expired (every table).
    pub snapshots_expired: u64,
    /// Objects deleted from the object store (every table).
    pub objects_deleted: u64,
}

/// What [`ColdTier::verify_erased`] found; all zero once an erase is done.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ColdVerifyReport {
    /// Snapshots looked at (every table).
    pub snapshots_scanned: u64,
    /// Data files read (those pruning could not rule out).
    pub files_scanned: u64,
    /// Covered samples in some retained snapshot's data files.
    pub rows_found: u64,
    /// Rollup rows that still include a covered sample: a window inside the
    /// range, a row whose last sample is covered, or (current snapshot) a
    /// window that differs from the remaining samples' aggregates.
    pub rollup_rows_found: u64,
    /// Series-table rows of covered series with no sample or rollup row left.
    pub series_rows_found: u64,
    /// Objects under the tables' locations that nothing retained references.
    pub unreferenced_objects: u64,
}

/// Remaining samples of the covered series near the range, by labels.
pub(crate) type Remaining = HashMap<Labels, Vec<Sample>>;

impl ColdTier {
    fn view(&self, kind: TableKind) -> ColdTier {
        self.with_kind(kind)
    }

    /// Every table kind of a tenant, samples first.
    fn all_views(&self) -> Vec<ColdTier> {
        let mut out = vec![self.view(TableKind::Samples)];
        out.extend(Rollup::ALL.map(|r| self.view(TableKind::Rollup(r))));
        out.push(self.view(TableKind::Series));
        out
    }

    /// Erases what `req` covers from the tenant's samples, rollup and series
    /// tables, expires the snapshots that still reference removed files and
    /// deletes their objects. See the module doc.
    pub async fn erase(&self, tenant: &TenantId, req: &EraseRequest) -> Result<ColdEraseReport> {
        self.erase_with(tenant, req, &EraseOptions::default()).await
    }

    /// [`ColdTier::erase`] with explicit options.
    pub async fn erase_with(
        &self,
        tenant: &TenantId,
        req: &EraseRequest,
        opts: &EraseOptions,
    ) -> Result<ColdEraseReport> {
        req.validate(tenant)?;
        let t0 = std::time::Instant::now();
        let mut report = ColdEraseReport::default();
        self.view(TableKind::Samples).erase_samples(tenant, req, &mut report).await?;
        self.failpoint("erase_after_samples")?;
        let remaining = self.remaining_samples(tenant, req).await?;
        for r in Rollup::ALL {
            self.view(TableKind::Rollup(r)).erase_rollups(tenant, req, &remaining, &mut report).await?;
            self.failpoint(&format!("erase_after_rollup{}", r.name()))?;
        }
        self.view(TableKind::Series).erase_series(tenant, req, &mut report).await?;
        self.failpoint("erase_after_series")?;
        for view in self.all_views() {
            view.expire_erased(tenant, req, &mut report).await?;
            view.delete_erase_orphans(tenant, opts.orphan_grace, &mut report).await?;
        }
        tracing::info!(
            tenant = %tenant, start = req.start, end = req.end, rows = report.rows_removed,
            files = report.files_rewritten + report.files_removed, bytes_written = report.bytes_rewritten,
            rollup_windows = report.rollup_rows_recomputed, series = report.series_rows_removed,
            snapshots_expired = report.snapshots_expired, objects_deleted = report.objects_deleted,
            seconds = t0.elapsed().as_secs_f64(), "cold erase done"
        );
        Ok(report)
    }

    /// The samples of covered series left in the samples table from one
    /// widest rollup window before `start` to one after `end`.
    pub(crate) async fn remaining_samples(&self, tenant: &TenantId, req: &EraseRequest) -> Result<Remaining> {
        let widest = Rollup::ALL.iter().map(|r| r.width_ms()).max().unwrap_or(0);
        let range = TimeRange::new(req.start.saturating_sub(widest), req.end.saturating_add(widest));
        let samples = self.view(TableKind::Samples);
        let mut out = Remaining::new();
        for sel in &req.selectors {
            for s in samples.select(tenant, sel, range).await? {
                out.entry(s.labels).or_insert(s.samples);
            }
        }
        Ok(out)
    }

    /// Step 1 (this view is the samples table's).
    async fn erase_samples(&self, tenant: &TenantId, req: &EraseRequest, report: &mut ColdEraseReport) -> Result<()> {
        for attempt in 0.. {
            let Some(table) = self.load_table(tenant).await? else { return Ok(()) };
            let prune = Prune::new(self, &table, tenant, req, Some((req.start, req.end)))?;
            let mut remove = Vec::new();
            let mut add = Vec::new();
            let mut step = ColdEraseReport::default();
            for df in plan::live_data_files(&table, tenant).await? {
                if !prune.may_hold(&df) {
                    continue;
                }
                let path = df.file_path().to_owned();
                if self.count_covered(tenant, &path, req).await? == 0 {
                    continue;
                }
                let (written, removed) =
                    self.rewrite_without(&table, tenant, &df, req, &erase_prefix("samples")).await?;
                step.rows_removed += removed;
                remove.push(path);
                if written.files.is_empty() {
                    step.files_removed += 1;
                    continue;
                }
                step.files_rewritten += 1;
                step.bytes_rewritten += written.bytes;
                add.extend(written.files);
            }
            if remove.is_empty() {
                return Ok(());
            }
            self.failpoint("erase_samples_before_commit")?;
            match self.commit_erase(tenant, req, &remove, add, step.rows_removed).await {
                Ok(()) => {
                    add_report(report, &step);
                    return Ok(());
                }
                Err(Error::Conflict { detail, .. }) if attempt + 1 < ATTEMPTS => {
                    tracing::info!(tenant = %tenant, table = ?self.kind, attempt, %detail, "cold erase re-plans after a concurrent change");
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    /// Commits one erase snapshot of this view's table.
    async fn commit_erase(
        &self,
        tenant: &TenantId,
        req: &EraseRequest,
        remove: &[String],
        add: Vec<iceberg::spec::DataFile>,
        rows: u64,
    ) -> Result<()> {
        let props = HashMap::from([
            (SUMMARY_OPERATION.to_owned(), OPERATION_ERASE.to_owned()),
            (SUMMARY_ERASE_START.to_owned(), req.start.to_string()),
            (SUMMARY_ERASE_END.to_owned(), req.end.to_string()),
            (SUMMARY_ERASE_ROWS.to_owned(), rows.to_string()),
        ]);
        let op = if add.is_empty() { Operation::Delete } else { Operation::Overwrite };
        // Consolidated: the manifests carried forward may hold older DELETED
        // entries (a merge's) with a covered series' labels in their bounds.
        self.commit_rewrite(tenant, remove, add, op, props, true).await.map(|_| ())
    }

    /// Step 2 for this view's rollup table.
    async fn erase_rollups(
        &self,
        tenant: &TenantId,
        req: &EraseRequest,
        remaining: &Remaining,
        report: &mut ColdEraseReport,
    ) -> Result<()> {
        let TableKind::Rollup(rollup) = self.kind else { return Ok(()) };
        let width = rollup.width_ms();
        for attempt in 0.. {
            let Some(table) = self.load_table(tenant).await? else { return Ok(()) };
            let prune = Prune::new(self, &table, tenant, req, Some(req.window_ends(width)))?;
            let mut partitions: BTreeMap<(i32, i32), Vec<String>> = BTreeMap::new();
            for df in plan::live_data_files(&table, tenant).await? {
                if prune.may_hold(&df) {
                    let part = crate::maintenance::partition_of(&df).unwrap_or_default();
                    partitions.entry(part).or_default().push(df.file_path().to_owned());
                }
            }
            let (mut remove, mut add, mut windows, mut bytes) = (Vec::new(), Vec::new(), 0u64, 0u64);
            for paths in partitions.values() {
                let Some(redo) = self.redo_rollup_partition(tenant, req, width, paths, remaining).await? else {
                    continue;
                };
                windows += redo.windows;
                remove.extend(redo.remove);
                if !redo.series.is_empty() {
                    let written =
                        self.write_rollup_files(tenant, &redo.series, i64::MIN, &erase_prefix(rollup.name())).await?;
                    bytes += written.bytes;
                    add.extend(written.files);
                }
            }
            if remove.is_empty() {
                return Ok(());
            }
            self.failpoint("erase_rollup_before_commit")?;
            match self.commit_erase(tenant, req, &remove, add, windows).await {
                Ok(()) => {
                    report.rollup_files_rewritten += remove.len() as u64;
                    report.rollup_rows_recomputed += windows;
                    report.bytes_rewritten += bytes;
                    return Ok(());
                }
                Err(Error::Conflict { detail, .. }) if attempt + 1 < ATTEMPTS => {
                    tracing::info!(tenant = %tenant, table = ?self.kind, attempt, %detail, "cold erase re-plans after a concurrent change");
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    /// One partition's rollup files: `None` when no covered window changes;
    /// else the files holding covered windows and their rows to write back.
    async fn redo_rollup_partition(
        &self,
        tenant: &TenantId,
        req: &EraseRequest,
        width: i64,
        paths: &[String],
        remaining: &Remaining,
    ) -> Result<Option<RollupRedo>> {
        let (lo, hi) = req.window_ends(width);
        let covered = |s: &SeriesRollup| req.selects(&s.labels) && s.points.iter().any(|p| lo <= p.end && p.end <= hi);
        let mut touched = Vec::new();
        let mut rows: BTreeMap<(u64, Labels), SeriesRollup> = BTreeMap::new();
        for path in paths {
            let series = self.read_rollup_rows(tenant, std::slice::from_ref(path)).await?;
            if !series.iter().any(covered) {
                continue;
            }
            touched.push(path.clone());
            for s in series {
                match rows.entry((s.series_id.0, s.labels.clone())) {
                    std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().points.extend(s.points),
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(s);
                    }
                }
            }
        }
        let mut windows = 0u64;
        let mut out = Vec::with_capacity(rows.len());
        for (_, mut s) in rows {
            s.points.sort_by_key(|p| (p.end, p.last_ts));
            if req.selects(&s.labels) {
                let samples = remaining.get(&s.labels).map_or(&[][..], Vec::as_slice);
                windows += recompute_windows(&mut s.points, width, (lo, hi), samples);
            }
            if !s.points.is_empty() {
                out.push(s);
            }
        }
        Ok((windows > 0).then_some(RollupRedo { remove: touched, series: out, windows }))
    }

    /// Step 3 (this view is the series table's).
    async fn erase_series(&self, tenant: &TenantId, req: &EraseRequest, report: &mut ColdEraseReport) -> Result<()> {
        if self.load_table(tenant).await?.is_none() {
            return Ok(());
        }
        let present = self.series_still_present(tenant, req).await?;
        for attempt in 0.. {
            let Some(table) = self.load_table(tenant).await? else { return Ok(()) };
            let prune = Prune::new(self, &table, tenant, req, None)?;
            let (mut remove, mut add, mut rows, mut bytes) = (Vec::new(), Vec::new(), 0u64, 0u64);
            for df in plan::live_data_files(&table, tenant).await? {
                if !prune.may_hold(&df) {
                    continue;
                }
                let path = df.file_path().to_owned();
                let entries = self.read_series_files(tenant, std::slice::from_ref(&path)).await?;
                let gone = |e: &SeriesEntry| req.selects(&e.labels) && !present.contains(&e.labels);
                let dropped = entries.iter().filter(|e| gone(e)).count() as u64;
                if dropped == 0 {
                    continue;
                }
                rows += dropped;
                remove.push(path);
                let kept: Vec<SeriesEntry> = entries.into_iter().filter(|e| !gone(e)).collect();
                if !kept.is_empty() {
                    let written = self.write_series_files(tenant, &kept, &erase_prefix("series")).await?;
                    bytes += written.bytes;
                    add.extend(written.files);
                }
            }
            if remove.is_empty() {
                return Ok(());
            }
            match self.commit_erase(tenant, req, &remove, add, rows).await {
                Ok(()) => {
                    report.series_rows_removed += rows;
                    report.bytes_rewritten += bytes;
                    return Ok(());
                }
                Err(Error::Conflict { detail, .. }) if attempt + 1 < ATTEMPTS => {
                    tracing::info!(tenant = %tenant, table = ?self.kind, attempt, %detail, "cold erase re-plans after a concurrent change");
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    /// Label sets of covered series that still have a sample (any time) or
    /// a rollup row.
    pub(crate) async fn series_still_present(&self, tenant: &TenantId, req: &EraseRequest) -> Result<HashSet<Labels>> {
        let mut present = HashSet::new();
        for sel in &req.selectors {
            present.extend(self.view(TableKind::Samples).series(tenant, sel, TimeRange::ALL).await?);
            for r in Rollup::ALL {
                present.extend(self.view(TableKind::Rollup(r)).rollup_series_labels(tenant, sel).await?);
            }
        }
        Ok(present)
    }
}

/// What one rollup partition's erase writes.
struct RollupRedo {
    remove: Vec<String>,
    series: Vec<SeriesRollup>,
    windows: u64,
}

/// A data-file prefix of an erase rewrite of `table` (unreferenced files
/// with it are a crashed erase's and deleted at once by the next one).
fn erase_prefix(table: &str) -> String {
    format!("{}-{table}-{}", plan::ERASE_FILE_PREFIX, uuid::Uuid::now_v7().simple())
}

fn add_report(into: &mut ColdEraseReport, step: &ColdEraseReport) {
    into.files_rewritten += step.files_rewritten;
    into.files_removed += step.files_removed;
    into.rows_removed += step.rows_removed;
    into.bytes_rewritten += step.bytes_rewritten;
}

/// Recomputes, in place, the windows of `points` (one series' rows sorted
/// by `(end, last_ts)`) whose end is in `ends` from `samples` (the series'
/// remaining samples, sorted): each partial row covers `(previous partial's
/// last_ts, its last_ts]` of its window (the first from the window start),
/// and is dropped when nothing but stale markers is left there. Returns how
/// many windows changed.
pub(crate) fn recompute_windows(
    points: &mut Vec<RollupPoint>,
    width: i64,
    ends: (i64, i64),
    samples: &[Sample],
) -> u64 {
    let mut changed = 0u64;
    let mut out = Vec::with_capacity(points.len());
    for window in points.chunk_by(|a, b| a.end == b.end) {
        let end = window.first().map_or(0, |p| p.end);
        if end < ends.0 || end > ends.1 {
            out.extend_from_slice(window);
            continue;
        }
        let fresh = window_from(end, width, window, samples);
        if !same_points(window, &fresh) {
            changed += 1;
        }
        out.extend(fresh);
    }
    *points = out;
    changed
}

/// The partial rows `partials` of the window ending at `end`, recomputed.
pub(crate) fn window_from(end: i64, width: i64, partials: &[RollupPoint], samples: &[Sample]) -> Vec<RollupPoint> {
    let mut lo = end.saturating_sub(width);
    partials
        .iter()
        .filter_map(|p| {
            let hi = p.last_ts.min(end);
            let a = samples.partition_point(|s| s.ts <= lo);
            let b = samples.partition_point(|s| s.ts <= hi);
            lo = lo.max(hi);
            RollupPoint::of(end, samples.get(a..b.max(a)).unwrap_or_default())
        })
        .collect()
}

/// Bit-for-bit equality of rollup rows (NaNs included).
pub(crate) fn same_points(a: &[RollupPoint], b: &[RollupPoint]) -> bool {
    let key = |p: &RollupPoint| {
        (p.end, p.count, p.last_ts, p.min.to_bits(), p.max.to_bits(), p.sum.to_bits(), p.last.to_bits())
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| key(x) == key(y))
}

#[cfg(test)]
mod tests;
