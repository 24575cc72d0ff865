//! The proof of an erase: every retained snapshot's data files of every
//! table read back for covered rows, the current rollup windows of covered
//! series checked against the remaining samples, and the tables' object
//! store directories listed for objects nothing references.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use strata_schemas::{Labels, TenantId};

use super::plan::{Prune, live_data_files, snapshot_files};
use super::{ColdVerifyReport, EraseRequest, Remaining, recompute_windows};
use crate::error::Result;
use crate::rollup::SeriesRollup;
use crate::table::TableKind;
use crate::tier::ColdTier;

/// What one table's check needs besides the request.
struct Context<'a> {
    req: &'a EraseRequest,
    remaining: &'a Remaining,
    present: &'a HashSet<Labels>,
}

impl ColdTier {
    /// Scans every retained snapshot of the tenant's samples, rollup and
    /// series tables for what `req` covers, and lists their directories for
    /// unreferenced objects. All counts are zero once [`ColdTier::erase`]
    /// has completed (and nothing covered was written since).
    pub async fn verify_erased(&self, tenant: &TenantId, req: &EraseRequest) -> Result<ColdVerifyReport> {
        req.validate(tenant)?;
        let remaining = self.remaining_samples(tenant, req).await?;
        let present = self.series_still_present(tenant, req).await?;
        let cx = Context { req, remaining: &remaining, present: &present };
        let mut out = ColdVerifyReport::default();
        for view in self.all_views() {
            view.verify_table(tenant, &cx, &mut out).await?;
            out.unreferenced_objects += view.unreferenced_objects(tenant).await?;
        }
        Ok(out)
    }

    async fn verify_table(&self, tenant: &TenantId, cx: &Context<'_>, out: &mut ColdVerifyReport) -> Result<()> {
        let Some(table) = self.load_table(tenant).await? else { return Ok(()) };
        let req = cx.req;
        let ts = match self.kind {
            TableKind::Samples => Some((req.start, req.end)),
            TableKind::Rollup(r) => Some(req.window_ends(r.width_ms())),
            TableKind::Series => None,
        };
        let prune = Prune::new(self, &table, tenant, req, ts)?;
        let live: HashSet<String> =
            live_data_files(&table, tenant).await?.iter().map(|f| f.file_path().to_owned()).collect();
        let mut cache = HashMap::new();
        let mut paths: BTreeSet<String> = BTreeSet::new();
        for snap in table.metadata().snapshots() {
            out.snapshots_scanned += 1;
            for f in snapshot_files(&table, tenant, snap, &mut cache).await? {
                if prune.may_hold(&f) {
                    paths.insert(f.file_path().to_owned());
                }
            }
        }
        let mut current: BTreeMap<(u64, Labels), SeriesRollup> = BTreeMap::new();
        for path in &paths {
            out.files_scanned += 1;
            let one = std::slice::from_ref(path);
            match self.kind {
                TableKind::Samples => out.rows_found += self.count_covered(tenant, path, req).await?,
                TableKind::Rollup(r) => {
                    let (lo, hi) = req.window_ends(r.width_ms());
                    for s in self.read_rollup_rows(tenant, one).await? {
                        if !req.selects(&s.labels) {
                            continue;
                        }
                        let inside = |e: i64| e - r.width_ms() + 1 >= req.start && e <= req.end;
                        out.rollup_rows_found += s
                            .points
                            .iter()
                            .filter(|p| lo <= p.end && p.end <= hi && (inside(p.end) || req.in_range(p.last_ts)))
                            .count() as u64;
                        if live.contains(path) {
                            let key = (s.series_id.0, s.labels.clone());
                            current
                                .entry(key)
                                .or_insert_with(|| SeriesRollup { points: Vec::new(), ..s.clone() })
                                .points
                                .extend(s.points);
                        }
                    }
                }
                TableKind::Series => {
                    let entries = self.read_series_files(tenant, one).await?;
                    out.series_rows_found +=
                        entries.iter().filter(|e| req.selects(&e.labels) && !cx.present.contains(&e.labels)).count()
                            as u64;
                }
            }
        }
        if let TableKind::Rollup(r) = self.kind {
            let ends = req.window_ends(r.width_ms());
            for s in current.into_values() {
                let mut points = s.points;
                points.sort_by_key(|p| (p.end, p.last_ts));
                let samples = cx.remaining.get(&s.labels).map_or(&[][..], Vec::as_slice);
                out.rollup_rows_found += recompute_windows(&mut points, r.width_ms(), ends, samples);
            }
        }
        Ok(())
    }
}
