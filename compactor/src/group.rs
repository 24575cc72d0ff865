//! Group rollups in the compactor: the tenants' declarations
//! ([`strata_schemas::GroupRollup`], from the registry), their rows written
//! with each roll, and what the federated read may answer from them.
//!
//! ```text
//!  roll_once: refresh the declarations (GroupRollupSource)
//!    a declaration new to this process: per width, its group table behind the
//!      samples table's roll state for some partition (buckets rolled while it was
//!      not declared: a hole) → purge the table (the next roll starts it afresh,
//!      strata.rollup-since-ms = that bucket) ; then publish it (GroupRollups)
//!    a declaration gone: unpublished at once (reads stop using its tables)
//!  roll_bucket_claimed, per declaration and width, after the per-series rollups,
//!    before the samples (so before the watermark moves):
//!      claim = partitions whose group-table roll state is behind the bucket
//!      group_points(of(claim) windows) → write → commit_claim(source = the bucket's)
//!  advance_tenant: group tables advanced with the other tables
//!  maintenance: retention, merge, expiry, orphans on the declared group tables; purge drops them
//! ```
//!
//! A window below the watermark is final (late samples below it are
//! refused), and every bucket below it committed its group rows before the
//! watermark moved, so a published declaration's table holds every window
//! from `strata.rollup-since-ms` up to the watermark exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use strata_cold_tier::{
    ClaimOutcome, ColdTier, CommitSource, RollClaim, Rollup, SeriesRollup, SeriesSamples, WrittenFiles,
};
use strata_cold_tier::{file_prefix, group_points, rollup_points};
use strata_hot_store::SealedBucket;
use strata_schemas::{GroupRollup, TenantId};

use crate::error::{Error, Result};
use crate::roll::Compactor;

/// The published declarations per tenant (shared with the federated read:
/// a group table is read only while its declaration is published).
pub type GroupRollups = Arc<parking_lot::RwLock<BTreeMap<TenantId, Vec<GroupRollup>>>>;

/// Reads every tenant's group rollup declarations (e.g. from the tenant
/// registry); `None` when it cannot right now (the previous ones stay).
pub type GroupRollupSource = Arc<
    dyn Fn()
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<BTreeMap<TenantId, Vec<GroupRollup>>>> + Send>>
        + Send
        + Sync,
>;

impl Compactor {
    /// Makes every roll pass start by reading the declarations from `source`.
    pub fn set_group_rollup_source(&self, source: GroupRollupSource) {
        *self.group_source.lock() = Some(source);
    }

    /// The published declarations (for [`crate::FederatedReadStore::with_group_rollups`]).
    pub fn group_rollups(&self) -> GroupRollups {
        Arc::clone(&self.group_rollups)
    }

    /// The declarations in force for `tenant`.
    pub(crate) fn declared(&self, tenant: &TenantId) -> Vec<GroupRollup> {
        self.group_rollups.read().get(tenant).cloned().unwrap_or_default()
    }

    /// The group tables of `tenant`'s declarations (every width).
    pub(crate) fn group_views(&self, tenant: &TenantId) -> Vec<(String, ColdTier)> {
        let mut out = Vec::new();
        for d in self.declared(tenant) {
            for r in Rollup::ALL {
                out.push((format!("group{}:{:016x}", r.name(), d.id()), self.cold.group_view(r, d.id())));
            }
        }
        out
    }

    /// Replaces the declarations: new ones are checked for a hole (their
    /// tables purged if they lag the samples table) before they are
    /// published; removed ones are unpublished first. Invalid ones are
    /// skipped with a warning (the admin API refuses them).
    pub async fn set_group_rollups(&self, mut decls: BTreeMap<TenantId, Vec<GroupRollup>>) -> Result<()> {
        for (tenant, list) in &mut decls {
            list.retain(|d| match d.validate() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(tenant = %tenant, error = %e, "ignoring an invalid group rollup declaration");
                    false
                }
            });
            list.sort_by_key(GroupRollup::id);
            list.dedup_by_key(|d| d.id());
        }
        decls.retain(|_, l| !l.is_empty());
        let old = self.group_rollups.read().clone();
        if old == decls {
            return Ok(());
        }
        let ids = |m: &BTreeMap<TenantId, Vec<GroupRollup>>, t: &TenantId| -> BTreeSet<u64> {
            m.get(t).map(|l| l.iter().map(GroupRollup::id).collect()).unwrap_or_default()
        };
        // Unpublish what is gone (and keep only what stays) before any check.
        {
            let mut kept = BTreeMap::new();
            for (t, list) in &old {
                let now = ids(&decls, t);
                let stay: Vec<GroupRollup> = list.iter().filter(|d| now.contains(&d.id())).cloned().collect();
                if !stay.is_empty() {
                    kept.insert(t.clone(), stay);
                }
            }
            *self.group_rollups.write() = kept;
        }
        for (tenant, list) in &decls {
            let before = ids(&old, tenant);
            for d in list.iter().filter(|d| !before.contains(&d.id())) {
                self.purge_group_holes(tenant, d).await?;
                tracing::info!(tenant = %tenant, metric = %d.metric, by = ?d.by, id = format!("{:016x}", d.id()), "group rollup declared");
            }
        }
        *self.group_rollups.write() = decls;
        Ok(())
    }

    /// Purges the group tables of `tenant`'s published declarations (an
    /// erasure removed samples their rows were computed from): they start
    /// afresh at the next roll, so only windows after it are answered from
    /// them. Call under [`Compactor::exclusive`], after the cold erase.
    pub async fn purge_group_rollups(&self, tenant: &TenantId) -> Result<u64> {
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        let mut files = 0;
        for (_, view) in self.group_views(tenant) {
            files += view.purge(tenant).await.map_err(cold_err)?.files;
        }
        Ok(files)
    }

    /// Reads the declarations from the source, if one is set.
    pub(crate) async fn refresh_group_rollups(&self) -> Result<()> {
        let source = self.group_source.lock().clone();
        if let Some(source) = source
            && let Some(decls) = source().await
        {
            self.set_group_rollups(decls).await?;
        }
        Ok(())
    }

    /// Purges the group tables of `decl` that lag the tenant's samples table
    /// for some partition (rolled buckets they lack: their rows would not
    /// be complete from `strata.rollup-since-ms` on).
    async fn purge_group_holes(&self, tenant: &TenantId, decl: &GroupRollup) -> Result<()> {
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        let samples = self.cold.roll_state(tenant).await.map_err(cold_err)?;
        for r in Rollup::ALL {
            let view = self.cold.group_view(r, decl.id());
            if view.load_table(tenant).await.map_err(cold_err)?.is_none() {
                continue;
            }
            let state = view.roll_state(tenant).await.map_err(cold_err)?;
            let behind = samples.iter().any(|(p, &end)| state.get(p).is_none_or(|&g| g < end));
            if behind {
                let gone = view.purge(tenant).await.map_err(cold_err)?;
                tracing::warn!(
                    tenant = %tenant, metric = %decl.metric, width = r.name(), files = gone.files,
                    "group rollup table lacked rolled buckets (declared again after a removal): purged, it restarts at the next roll"
                );
            }
        }
        Ok(())
    }

    /// Writes and commits the group rows of every declaration of the
    /// bucket's tenant, per width, for the partitions each group table lacks.
    pub(crate) async fn commit_group_rollups(
        &self,
        bucket: &SealedBucket,
        rollable: &BTreeSet<u32>,
        of: &(dyn Fn(&BTreeSet<u32>) -> Vec<SeriesSamples> + Sync),
        source_of: &(dyn Fn(&BTreeSet<u32>) -> CommitSource + Sync),
    ) -> Result<()> {
        let tenant = &bucket.tenant;
        let cold_err = |source| Error::Cold { tenant: tenant.clone(), source: Box::new(source) };
        for decl in self.declared(tenant) {
            for r in Rollup::ALL {
                let view = self.cold.group_view(r, decl.id());
                let state = view.roll_state(tenant).await.map_err(cold_err)?;
                let claim: BTreeSet<u32> =
                    rollable.iter().copied().filter(|p| state.get(p).is_none_or(|&e| e < bucket.end)).collect();
                if claim.is_empty() {
                    continue;
                }
                let per_series: Vec<SeriesRollup> = of(&claim)
                    .into_iter()
                    .filter(|s| s.labels.metric_name() == decl.metric)
                    .map(|s| SeriesRollup {
                        points: rollup_points(&s.samples, r.width_ms()),
                        labels: s.labels,
                        series_id: s.series_id,
                        device_hash: s.device_hash,
                    })
                    .collect();
                let rows = group_points(&decl, tenant, &per_series);
                if rows.is_empty() && view.load_table(tenant).await.map_err(cold_err)?.is_none() {
                    // Created by the first bucket with rows, with that bucket as its start.
                    continue;
                }
                let written = if rows.is_empty() {
                    WrittenFiles::default()
                } else {
                    let since = self.rollup_since(bucket).await?;
                    let prefix =
                        file_prefix(&format!("group{}:{:016x}:{}:{}", r.name(), decl.id(), tenant, bucket.start));
                    view.write_rollup_files(tenant, &rows, since, &prefix).await.map_err(cold_err)?
                };
                let n = written.rows;
                let claim = RollClaim { partitions: claim, start: bucket.start, end: bucket.end };
                match view
                    .commit_claim(tenant, written, &source_of(&claim.partitions), &claim)
                    .await
                    .map_err(cold_err)?
                {
                    ClaimOutcome::Committed { .. } => {
                        self.metrics.group_rollup_rows_written.fetch_add(n, Ordering::Relaxed);
                    }
                    ClaimOutcome::AlreadyCommitted => {}
                    ClaimOutcome::Lost { partitions } => {
                        return Err(Error::RollLost { tenant: tenant.clone(), partitions, end: bucket.end });
                    }
                }
            }
        }
        Ok(())
    }
}
