//! Cold-table maintenance: retention, small-file merge, snapshot expiry,
//! orphan-file removal, and tenant purge.
//!
//! ```text
//!  maintain_once(now), per tenant with a cold table, each step retried next pass on error:
//!    1 retention  cold_retention > 0: files whose ts_day ends ≤ now − retention
//!                 ▼ failpoint retention_before_commit
//!                 `delete` snapshot (strata.operation = retention)
//!                 ▼ failpoint retention_after_commit
//!    2 merge      per (day, bucket) partition with ≥ merge_min_files files < merge_small_file_bytes:
//!                 ▼ failpoint merge_before_write
//!                 read them, write their rows re-sorted into new files (target size)
//!                 ▼ failpoint merge_after_write     (new files are orphans if we stop here)
//!                 `replace` snapshot: old out, new in, atomically
//!                 ▼ failpoint merge_after_commit
//!                 a merge whose read or commit fails because an erase replaced its files
//!                 first is lost, not an error (strata_compactor_merges_lost_total); next pass plans again
//!    2b manifests more than max_manifests: folded into one (`replace`, same files)
//!    3 expiry     snapshots superseded > snapshot_retention ago, except those whose
//!                 strata.source bucket is not yet below the hot watermark (exactly-once)
//!    4 orphans    unreferenced files older than orphan_grace
//!
//!  maintain_within(now, budget): the same pass; no merge starts after `budget` (unfinished = true)
//!  continue_merges(now, budget): step 2 only, for every table (the background loop's
//!                  continuation of an unfinished pass; 1, 3, 4 wait for the next full pass)
//!
//!  purge_tenant(t): hot.purge_tenant(t), then cold.purge(t) of the rollup, series and samples
//!                  tables (drop table, delete its files)
//! ```
//!
//! A crash anywhere leaves every sample exactly once: the only visible step
//! of retention and merge is one compare-and-swap of the table's metadata
//! location; before it nothing changed (new files are invisible orphans),
//! after it the next pass finds nothing left to do.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use strata_cold_tier::{
    ColdTier, LiveFile, RewriteOutcome, Rollup, SUMMARY_OPERATION, TableKind, file_prefix, whole_days_before,
};
use strata_schemas::TenantId;

use crate::error::{Error, Result};
use crate::roll::Compactor;

/// Crash points of maintenance a test can arm with
/// `Compactor::arm_failpoint` (cargo feature `failpoints`).
pub const MAINTENANCE_FAILPOINTS: [&str; 5] = [
    "retention_before_commit",
    "retention_after_commit",
    "merge_before_write",
    "merge_after_write",
    "merge_after_commit",
];

/// Crash point of [`Compactor::purge_tenant`]: hot data gone, cold not yet.
pub const PURGE_FAILPOINT: &str = "purge_after_hot";

/// What one [`Compactor::maintain_once`] pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintainOutcome {
    /// Tenants with a cold table looked at.
    pub tenants: usize,
    /// Data files removed by cold retention.
    pub retention_files: u64,
    /// Samples removed by cold retention.
    pub retention_samples: u64,
    /// Rollup rows (5 m, 1 h and 1 d windows) removed by cold retention.
    pub retention_rollup_rows: u64,
    /// Rollup-table partitions merged (not counted in `merges`).
    pub rollup_merges: u64,
    /// Partitions merged.
    pub merges: u64,
    /// Merges (any table) given up because another writer, an erase,
    /// replaced the files they planned on; the next pass plans again.
    pub merges_lost: u64,
    /// Small files replaced by merges.
    pub merge_files_in: u64,
    /// Files written by merges.
    pub merge_files_out: u64,
    /// Snapshots expired.
    pub snapshots_expired: u64,
    /// Unreferenced files deleted.
    pub orphan_files: u64,
    /// Bytes of unreferenced files deleted.
    pub orphan_bytes: u64,
    /// Tenants where a step failed (logged, retried next pass).
    pub failed_tenants: usize,
    /// Partitions were left to merge: the pass's time budget
    /// ([`Compactor::maintain_within`]) or `max_merges_per_pass` ran out.
    pub unfinished: bool,
    /// Tables whose retention was applied (tenants with a cold retention;
    /// each lists the table's live files). Zero in a merge continuation.
    pub retention_tables: u64,
    /// Tables whose manifests were checked for folding, snapshots expired
    /// and location listed for orphans. Zero in a merge continuation.
    pub swept_tables: u64,
}

/// What a maintenance pass runs: everything, or only the merges a budgeted
/// pass left ([`Compactor::continue_merges`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassKind {
    Full,
    MergesOnly,
}

/// What is left of a maintenance pass's merges: a count
/// (`max_merges_per_pass`) and an optional time after which none starts.
struct Merges<'a> {
    left: &'a mut usize,
    deadline: Option<Instant>,
    /// A merge started in this pass (the first one always may).
    ran: bool,
}

/// What [`Compactor::purge_tenant`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Hot segment files deleted.
    pub hot_segments: usize,
    /// Hot bytes deleted.
    pub hot_bytes: u64,
    /// Cold objects (data, manifests, metadata) deleted.
    pub cold_files: u64,
    /// Cold bytes deleted.
    pub cold_bytes: u64,
}

/// Reads every tenant's cold retention (e.g. from the tenant registry);
/// `None` when it cannot right now (the previous values stay).
pub type RetentionSource = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<BTreeMap<TenantId, Duration>>> + Send>>
        + Send
        + Sync,
>;

impl Compactor {
    /// Makes every [`Compactor::maintain_once`] start by reading the
    /// retentions from `source` (so a changed `cold_retention` applies at the
    /// next pass).
    pub fn set_retention_source(&self, source: RetentionSource) {
        *self.retention_source.lock() = Some(source);
    }

    /// Replaces the per-tenant cold retentions (from the tenant registry's
    /// `cold_retention` limits; zero or absent = keep forever).
    pub fn set_cold_retentions(&self, retentions: BTreeMap<TenantId, Duration>) {
        *self.retentions.lock() = retentions;
    }

    /// The cold retention in force for `tenant` (zero = forever).
    pub fn cold_retention(&self, tenant: &TenantId) -> Duration {
        self.retentions.lock().get(tenant).copied().unwrap_or(Duration::ZERO)
    }

    /// One maintenance pass over every tenant table (see the module doc).
    /// `now_ms` is the data clock cold retention is measured against;
    /// snapshot and orphan ages use the wall clock they were recorded in. A failing tenant is logged and counted, others go on.
    /// Returns an error only for an injected failure.
    pub async fn maintain_once(&self, now_ms: i64) -> Result<MaintainOutcome> {
        self.maintain_within(now_ms, None).await
    }

    /// [`Compactor::maintain_once`] that starts no further merge once
    /// `budget` has passed (the merge running then finishes; at least one
    /// runs); [`MaintainOutcome::unfinished`] says merges are left. The
    /// background loop ([`Compactor::run`]) gives each pass one roll
    /// interval, so rolls are not held back behind a merge backlog.
    pub async fn maintain_within(&self, now_ms: i64, budget: Option<std::time::Duration>) -> Result<MaintainOutcome> {
        self.maintenance_pass(now_ms, budget, PassKind::Full).await
    }

    /// Continues a pass [`Compactor::maintain_within`] left unfinished: only
    /// the small-file merges (same budget rule), no retention, manifest
    /// folding, snapshot expiry or orphan listing — those run at the full
    /// pass's own interval (on S3 each is a listing per table; repeated every
    /// roll interval while a merge backlog lasted). [`MaintainOutcome::unfinished`]
    /// says merges are still left.
    pub async fn continue_merges(&self, now_ms: i64, budget: Option<std::time::Duration>) -> Result<MaintainOutcome> {
        self.maintenance_pass(now_ms, budget, PassKind::MergesOnly).await
    }

    async fn maintenance_pass(
        &self,
        now_ms: i64,
        budget: Option<std::time::Duration>,
        kind: PassKind,
    ) -> Result<MaintainOutcome> {
        let _pass = self.pass.lock().await;
        let started = Instant::now();
        let deadline = budget.map(|b| started + b);
        let source = self.retention_source.lock().clone().filter(|_| kind == PassKind::Full);
        if let Some(source) = source
            && let Some(retentions) = source().await
        {
            self.set_cold_retentions(retentions);
        }
        let tenants = self.cold.tenants().await.map_err(|source| Error::ListTables { source: Box::new(source) })?;
        let mut out = MaintainOutcome { tenants: tenants.len(), ..MaintainOutcome::default() };
        let mut merges_left = self.config.max_merges_per_pass;
        let mut merges = Merges { left: &mut merges_left, deadline, ran: false };
        for (i, tenant) in tenants.iter().enumerate() {
            match self.maintain_tenant(tenant, now_ms, kind, &mut out, &mut merges).await {
                Ok(()) => {}
                #[cfg(feature = "failpoints")]
                Err(e @ Error::Injected { .. }) => return Err(e),
                Err(e) => {
                    out.failed_tenants += 1;
                    self.metrics.maintenance_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(tenant = %tenant, error = %e, "cold maintenance failed; will retry next pass");
                }
            }
            let did_work = out.merges + out.retention_files + out.snapshots_expired + out.orphan_files > 0;
            if (i + 1) % 16 == 0 || (i + 1 == tenants.len() && did_work) {
                tracing::info!(
                    done = i + 1,
                    total = tenants.len(),
                    merges = out.merges,
                    merges_lost = out.merges_lost,
                    merge_files_in = out.merge_files_in,
                    retention_files = out.retention_files,
                    snapshots_expired = out.snapshots_expired,
                    orphan_files = out.orphan_files,
                    tenants_per_sec = (i + 1) as f64 / started.elapsed().as_secs_f64().max(1e-6),
                    "cold maintenance progress"
                );
            }
        }
        self.metrics.maintenance_passes.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    async fn maintain_tenant(
        &self,
        tenant: &TenantId,
        now_ms: i64,
        kind: PassKind,
        out: &mut MaintainOutcome,
        merges: &mut Merges<'_>,
    ) -> Result<()> {
        if kind == PassKind::MergesOnly {
            self.merge_small_files(&self.cold, tenant, out, merges).await?;
            for r in Rollup::ALL {
                self.merge_small_files(&self.cold.rollup_view(r), tenant, out, merges).await?;
            }
            for (_, view) in self.group_views(tenant) {
                self.merge_small_files(&view, tenant, out, merges).await?;
            }
            return self.merge_small_files(&self.cold.series_view(), tenant, out, merges).await;
        }
        self.apply_retention(&self.cold, tenant, now_ms, out).await?;
        self.merge_small_files(&self.cold, tenant, out, merges).await?;
        self.maintain_table(&self.cold, tenant, out).await?;
        if let Ok(total) = self.cold.stored_bytes(tenant).await {
            self.metrics.set_cold_bytes(tenant, Some(total));
        }
        // The rollup tables: the same retention, small-file merge (partial
        // windows of one series and end become one row), manifest folding,
        // expiry and orphan removal; counted apart from the samples table.
        // The declared group rollup tables (`group.rs`) likewise.
        let groups = self.group_views(tenant).into_iter().map(|(_, v)| v);
        for view in Rollup::ALL.map(|r| self.cold.rollup_view(r)).into_iter().chain(groups) {
            self.apply_retention(&view, tenant, now_ms, out).await?;
            self.merge_small_files(&view, tenant, out, merges).await?;
            self.maintain_table(&view, tenant, out).await?;
        }
        // The series table: no retention (a series first recorded long ago
        // may still have recent rollups), but the same merge of the small
        // files each roll with new series adds, folding, expiry, orphans.
        let view = self.cold.series_view();
        self.merge_small_files(&view, tenant, out, merges).await?;
        self.maintain_table(&view, tenant, out).await?;
        Ok(())
    }

    /// Manifest folding, snapshot expiry and orphan removal of one table.
    async fn maintain_table(&self, cold: &ColdTier, tenant: &TenantId, out: &mut MaintainOutcome) -> Result<()> {
        out.swept_tables += 1;
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        if let Some(done) = cold.compact_manifests(tenant, self.config.max_manifests).await.map_err(cold_err)? {
            tracing::info!(tenant = %tenant, snapshot = done.snapshot_id, "folded the cold table's manifests into one");
        }

        // Exactly-once needs the snapshot of every committed bucket the
        // watermark has not passed yet (`hot:<tenant>:<start>` with start ≥ W).
        let watermark = self.hot.cold_watermark(tenant);
        let prefix = format!("hot:{tenant}:");
        let protect = move |s: &strata_cold_tier::Snapshot| {
            let Some(src) = s.summary().additional_properties.get(strata_cold_tier::table::SUMMARY_SOURCE) else {
                return false;
            };
            match (src.strip_prefix(&prefix).and_then(|b| b.parse::<i64>().ok()), watermark) {
                (Some(start), Some(w)) => start >= w,
                (Some(_), None) => true,
                (None, _) => false,
            }
        };
        // Snapshot timestamps and file modification times are wall-clock
        // times; `now_ms` is the data clock retention is measured on (the
        // same in production, apart in tests).
        let wall_ms = strata_schemas::time::now_millis();
        let expired =
            cold.expire_snapshots(tenant, wall_ms, self.config.snapshot_retention, &protect).await.map_err(cold_err)?;
        out.snapshots_expired += expired.expired as u64;
        self.metrics.snapshots_expired.fetch_add(expired.expired as u64, Ordering::Relaxed);
        let gone = cold.remove_orphan_files(tenant, wall_ms, self.config.orphan_grace).await.map_err(cold_err)?;
        out.orphan_files += gone.files;
        out.orphan_bytes += gone.bytes;
        self.metrics.orphan_files_deleted.fetch_add(gone.files, Ordering::Relaxed);
        self.metrics.orphan_bytes_deleted.fetch_add(gone.bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Removes whole day partitions that ended at or before
    /// `now − cold_retention` with one `delete` snapshot.
    async fn apply_retention(
        &self,
        cold: &ColdTier,
        tenant: &TenantId,
        now_ms: i64,
        out: &mut MaintainOutcome,
    ) -> Result<()> {
        let retention = self.cold_retention(tenant);
        if retention.is_zero() {
            return Ok(());
        }
        out.retention_tables += 1;
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        let cutoff_ms = now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let before_day = whole_days_before(cutoff_ms);
        let live = cold.live_files(tenant).await.map_err(cold_err)?;
        let doomed: Vec<&LiveFile> = live.iter().filter(|f| f.day < before_day).collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let paths: Vec<String> = doomed.iter().map(|f| f.path.clone()).collect();
        let days = {
            let mut d: Vec<i32> = doomed.iter().map(|f| f.day).collect();
            d.dedup();
            d.len()
        };
        self.failpoint("retention_before_commit")?;
        let props = HashMap::from([
            (SUMMARY_OPERATION.to_owned(), "retention".to_owned()),
            ("strata.retention-before-day".to_owned(), before_day.to_string()),
        ]);
        let t0 = Instant::now();
        let done = cold.delete_files(tenant, &paths, props).await.map_err(cold_err)?;
        self.failpoint("retention_after_commit")?;
        if cold.kind() != TableKind::Samples {
            out.retention_rollup_rows += done.removed_rows;
            tracing::info!(tenant = %tenant, table = ?cold.kind(), days, files = done.removed_files, rows = done.removed_rows, "cold retention removed whole days of rollups");
            return Ok(());
        }
        out.retention_files += done.removed_files as u64;
        out.retention_samples += done.removed_rows;
        self.metrics.retention_files_removed.fetch_add(done.removed_files as u64, Ordering::Relaxed);
        self.metrics.retention_samples_removed.fetch_add(done.removed_rows, Ordering::Relaxed);
        tracing::info!(
            tenant = %tenant, days, files = done.removed_files, samples = done.removed_rows,
            retention_secs = retention.as_secs(), seconds = t0.elapsed().as_secs_f64(),
            "cold retention removed whole days"
        );
        Ok(())
    }

    /// Merges the small files of each partition that has enough of them,
    /// while the pass has merges (count and time) left.
    async fn merge_small_files(
        &self,
        cold: &ColdTier,
        tenant: &TenantId,
        out: &mut MaintainOutcome,
        merges: &mut Merges<'_>,
    ) -> Result<()> {
        let min_files = self.config.merge_min_files;
        if min_files == 0 {
            return Ok(());
        }
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        let live = cold.live_files(tenant).await.map_err(cold_err)?;
        let mut partitions: BTreeMap<(i32, i32), Vec<&LiveFile>> = BTreeMap::new();
        for f in live.iter().filter(|f| f.bytes < self.config.merge_small_file_bytes) {
            partitions.entry((f.day, f.bucket)).or_default().push(f);
        }
        let planned = partitions.values().filter(|f| f.len() >= min_files.max(2)).count().min(*merges.left);
        let task = crate::progress::merge_task(tenant, planned);
        for ((day, bucket), mut files) in partitions {
            if files.len() < min_files.max(2) {
                continue;
            }
            let late = merges.ran && merges.deadline.is_some_and(|d| Instant::now() >= d);
            if *merges.left == 0 || late {
                *merges.left = 0;
                out.unfinished = true;
                break;
            }
            // Smallest first, bounded in count and bytes (the rows are held in memory).
            files.sort_by_key(|f| f.bytes);
            let mut total = 0u64;
            let take = files
                .iter()
                .take(self.config.merge_max_files)
                .take_while(|f| {
                    total += f.bytes;
                    total <= self.config.merge_max_bytes
                })
                .count();
            files.truncate(take.max(2));
            *merges.left -= 1;
            merges.ran = true;
            let t0 = Instant::now();
            let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
            let bytes_in: u64 = files.iter().map(|f| f.bytes).sum();
            let (done, files_out, bytes_out, rows) = match self
                .merge_partition(cold, tenant, (day, bucket), &paths, files.iter().map(|f| f.rows).sum())
                .await
            {
                Ok(merged) => merged,
                #[cfg(feature = "failpoints")]
                Err(e @ Error::Injected { .. }) => return Err(e),
                Err(e) => {
                    // An erase commits a rewrite of the files it covers and
                    // deletes them at once: a merge planned on them before
                    // finds them gone (reading) or replaced (committing).
                    // Nothing was committed; the next pass plans again. Any
                    // other failure (or none to be seen) is the merge's error.
                    if !matches!(replaced_under(cold, tenant, &paths).await, Ok(true)) {
                        return Err(e);
                    }
                    out.merges_lost += 1;
                    self.metrics.merges_lost.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        tenant = %tenant, table = ?cold.kind(), day, bucket, error = %e,
                        "merge given up: another writer (an erase) replaced its files first; the next pass plans again"
                    );
                    continue;
                }
            };
            if let Some(t) = &task {
                t.add(1);
            }
            self.failpoint("merge_after_commit")?;
            if cold.kind() != TableKind::Samples {
                out.rollup_merges += 1;
                tracing::info!(tenant = %tenant, table = ?cold.kind(), day, bucket, files_in = done.removed_files, files_out, rows, "merged small rollup files");
                continue;
            }
            out.merges += 1;
            out.merge_files_in += done.removed_files as u64;
            out.merge_files_out += files_out as u64;
            self.metrics.merges.fetch_add(1, Ordering::Relaxed);
            self.metrics.merge_files_in.fetch_add(done.removed_files as u64, Ordering::Relaxed);
            self.metrics.merge_files_out.fetch_add(files_out as u64, Ordering::Relaxed);
            self.metrics.merge_samples.fetch_add(rows, Ordering::Relaxed);
            let secs = t0.elapsed().as_secs_f64().max(1e-6);
            tracing::info!(
                tenant = %tenant, day, bucket, files_in = done.removed_files, files_out, bytes_in, bytes_out,
                samples = rows, samples_per_sec = rows as f64 / secs, "merged small cold files"
            );
        }
        if let Some(t) = task {
            t.finish();
        }
        Ok(())
    }

    /// Reads a partition's `paths`, writes them as one sorted file set and
    /// commits the swap (failpoints `merge_before_write`, `merge_after_write`).
    /// Returns the commit, files and bytes written, and rows.
    async fn merge_partition(
        &self,
        cold: &ColdTier,
        tenant: &TenantId,
        (day, bucket): (i32, i32),
        paths: &[String],
        rows_in: u64,
    ) -> Result<(RewriteOutcome, usize, u64, u64)> {
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        self.failpoint("merge_before_write")?;
        let prefix = file_prefix(&format!("merge:{tenant}:{day}-{bucket}"));
        let written = match cold.kind() {
            TableKind::Rollup(_) => {
                // Partial windows of one (series, end) become one row.
                let series = cold.read_rollup_files(tenant, paths).await.map_err(cold_err)?;
                cold.write_rollup_files(tenant, &series, i64::MIN, &prefix).await.map_err(cold_err)?
            }
            TableKind::Series => {
                // A series recorded twice becomes one row.
                let series = cold.read_series_files(tenant, paths).await.map_err(cold_err)?;
                cold.write_series_files(tenant, &series, &prefix).await.map_err(cold_err)?
            }
            TableKind::Samples => {
                let series = cold.read_files(tenant, paths).await.map_err(cold_err)?;
                cold.write_files(tenant, &series, &prefix).await.map_err(cold_err)?
            }
        };
        if written.rows != rows_in && cold.kind() == TableKind::Samples {
            // Duplicate timestamps across files collapse on read; the data
            // a reader sees is unchanged, but say so.
            tracing::warn!(tenant = %tenant, day, bucket, rows_in, rows_out = written.rows, "merge collapsed duplicate samples");
        }
        self.failpoint("merge_after_write")?;
        let (files_out, bytes_out, rows) = (written.files.len(), written.bytes, written.rows);
        let props = HashMap::from([(SUMMARY_OPERATION.to_owned(), "merge".to_owned())]);
        let done = cold.replace_files(tenant, paths, written, props).await.map_err(cold_err)?;
        Ok((done, files_out, bytes_out, rows))
    }

    /// Deletes everything stored for `tenant`: its hot data (segments,
    /// buffered samples, series, cold watermark) and its cold table with
    /// every file. Call after the tenant was deleted from the registry (its
    /// writes are refused). Idempotent: re-run after a failure.
    pub async fn purge_tenant(&self, tenant: &TenantId) -> Result<PurgeOutcome> {
        let _pass = self.pass.lock().await;
        let (hot, t) = (std::sync::Arc::clone(&self.hot), tenant.clone());
        let hot_out = tokio::task::spawn_blocking(move || hot.purge_tenant(&t))
            .await
            .map_err(|e| Error::Task { detail: e.to_string() })?
            .map_err(|source| Error::PurgeHot { tenant: tenant.clone(), source: Box::new(source) })?;
        self.failpoint(PURGE_FAILPOINT)?;
        let mut cold_out = strata_cold_tier::FilesDeleted::default();
        self.known_series.lock().remove(tenant);
        let views: Vec<strata_cold_tier::ColdTier> = Rollup::ALL
            .map(|r| self.cold.rollup_view(r))
            .into_iter()
            .chain(self.group_views(tenant).into_iter().map(|(_, v)| v))
            .chain([self.cold.series_view()])
            .collect();
        for view in &views {
            let gone = view
                .purge(tenant)
                .await
                .map_err(|source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) })?;
            cold_out.files += gone.files;
            cold_out.bytes += gone.bytes;
        }
        let gone = self
            .cold
            .purge(tenant)
            .await
            .map_err(|source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) })?;
        cold_out.files += gone.files;
        cold_out.bytes += gone.bytes;
        self.metrics.tenants_purged.fetch_add(1, Ordering::Relaxed);
        self.metrics.set_cold_bytes(tenant, None);
        let out = PurgeOutcome {
            hot_segments: hot_out.segments,
            hot_bytes: hot_out.bytes,
            cold_files: cold_out.files,
            cold_bytes: cold_out.bytes,
        };
        tracing::warn!(tenant = %tenant, ?out, "purged tenant data (hot and cold)");
        Ok(out)
    }
}

/// True when some of `paths` are no longer live files of `cold`'s table:
/// another writer replaced them since they were listed.
async fn replaced_under(cold: &ColdTier, tenant: &TenantId, paths: &[String]) -> strata_cold_tier::Result<bool> {
    let live: std::collections::HashSet<String> = cold.live_files(tenant).await?.into_iter().map(|f| f.path).collect();
    Ok(paths.iter().any(|p| !live.contains(p)))
}
