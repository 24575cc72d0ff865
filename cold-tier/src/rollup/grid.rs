//! Rollup reads as a grid of cells (`ColdTier::select_rollup_grid`).
//!
//! ```text
//!  series table ─► SeriesIndex (ids of the matchers' series) ─► slots in label order,
//!                  ids sorted (a file's rows come sorted by series id: a cursor walks them)
//!  ends cut into day-aligned parts (one per core) ─► each part scanned on its own task
//!  (`scan`: no per-row predicate in files whose bounds prove the matchers; large batches):
//!     series_id, ts, count (+ sum, exp, min, max | min | max | last, last_ts: what `fields` needs)
//!     row ─► its cell (window k of the part's block, series slot): count/sum only
//!            (avg, sum, count): AddBlock, from the columns' value slices; else
//!            RollupBlockBuilder::add
//!  blocks in part order + per-series SumChecks merged ─► RollupAnswer::Grid
//!  a row of a series the series table lacks, a grid of more than MAX_GRID_CELLS cells,
//!  ends not aligned ─► RollupAnswer::Series (`select_rollup`, as before)
//! ```
//!
//! No point of 64 bytes per row, no per-series vectors, no sort of the
//! answer: a year of one-row-per-day 1 d windows of 40,000 series is
//! 14.6 M cells of 12 bytes for `avg_over_time` (`count`, `sum`), each
//! file's rows written into one row of cells.

use std::sync::Arc;

use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, PrimitiveArray, RecordBatch};
use strata_schemas::{
    Matcher, RollupAnswer, RollupBlock, RollupBlockBuilder, RollupData, RollupFields, RollupGrid, RollupPoint,
    SumCheck, TenantId, TimeRange,
};

mod scan;

use super::{complete_from, read_parallelism, scan_parts};
use crate::error::{Error, Result};
use crate::read::column;
use crate::series::SeriesIndex;
use crate::tier::ColdTier;

/// The largest grid answered as one (windows × series); larger reads
/// answer per series. 2^27 cells are 1.5 GiB for `avg_over_time`.
const MAX_GRID_CELLS: usize = 1 << 27;

/// The series a grid read resolves, by id (sorted), with their slots in
/// label order (`None`: the id's series does not match every matcher).
#[derive(Debug)]
struct SortedIds {
    ids: Vec<i64>,
    slots: Vec<Option<u32>>,
}

impl SortedIds {
    /// The index's ids sorted, slots renumbered in label order; and the labels in that order.
    fn of(index: SeriesIndex) -> (Self, Vec<strata_schemas::Labels>) {
        let mut order: Vec<usize> = (0..index.labels.len()).collect();
        order.sort_by(|&a, &b| index.labels.get(a).cmp(&index.labels.get(b)));
        let mut new_slot = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            if let Some(slot) = new_slot.get_mut(old) {
                *slot = new as u32;
            }
        }
        let mut pairs: Vec<(i64, Option<u32>)> =
            index.ids.iter().map(|(&id, slot)| (id, slot.and_then(|s| new_slot.get(s as usize).copied()))).collect();
        pairs.sort_unstable_by_key(|p| p.0);
        let mut labels: Vec<Option<strata_schemas::Labels>> = index.labels.into_iter().map(Some).collect();
        let sorted = order.iter().filter_map(|&old| labels.get_mut(old).and_then(Option::take)).collect();
        (Self { ids: pairs.iter().map(|p| p.0).collect(), slots: pairs.iter().map(|p| p.1).collect() }, sorted)
    }

    /// The position of `id`, looked for from `cursor` on first (rows come
    /// sorted by id), then in the whole list; moves `cursor` there.
    #[inline]
    fn find(&self, id: i64, cursor: &mut usize) -> Option<usize> {
        for _ in 0..4 {
            match self.ids.get(*cursor) {
                Some(&x) if x == id => return Some(*cursor),
                Some(&x) if x < id => *cursor += 1,
                _ => break,
            }
        }
        let at = self.ids.partition_point(|&x| x < id);
        *cursor = at;
        (self.ids.get(at) == Some(&id)).then_some(at)
    }
}

/// The columns of a rollup batch a grid read takes (the others are not projected).
struct GridColumns<'a> {
    ids: &'a PrimitiveArray<Int64Type>,
    ts: &'a PrimitiveArray<TimestampMicrosecondType>,
    count: &'a PrimitiveArray<Int64Type>,
    sum: Option<&'a PrimitiveArray<Float64Type>>,
    min: Option<&'a PrimitiveArray<Float64Type>>,
    max: Option<&'a PrimitiveArray<Float64Type>>,
    last: Option<&'a PrimitiveArray<Float64Type>>,
    last_ts: Option<&'a PrimitiveArray<TimestampMicrosecondType>>,
    exp: Option<&'a PrimitiveArray<Int32Type>>,
}

impl<'a> GridColumns<'a> {
    fn of(batch: &'a RecordBatch, tenant: &TenantId, fields: RollupFields) -> Result<Self> {
        let opt = |name: &str, asked: bool| -> Result<Option<&'a PrimitiveArray<Float64Type>>> {
            if asked { column(batch, name, tenant).map(Some) } else { Ok(None) }
        };
        Ok(Self {
            ids: column(batch, "series_id", tenant)?,
            ts: column(batch, "ts", tenant)?,
            count: column(batch, "count", tenant)?,
            sum: opt("sum", fields.sum)?,
            min: opt("min", fields.min || fields.sum)?,
            max: opt("max", fields.max || fields.sum)?,
            last: opt("last", fields.last)?,
            last_ts: if fields.min || fields.max || fields.last {
                Some(column(batch, "last_ts", tenant)?)
            } else {
                None
            },
            exp: match batch.column_by_name("exp") {
                Some(_) if fields.sum => Some(column(batch, "exp", tenant)?),
                _ => None,
            },
        })
    }

    /// Row `i` as a point: the columns read, NaN for the others.
    #[inline]
    fn point(&self, i: usize, end: i64) -> RollupPoint {
        let f = |c: Option<&PrimitiveArray<Float64Type>>| c.map_or(f64::NAN, |c| c.value(i));
        RollupPoint {
            end,
            min: f(self.min),
            max: f(self.max),
            sum: f(self.sum),
            count: u64::try_from(self.count.value(i)).unwrap_or(0),
            last: f(self.last),
            last_ts: self.last_ts.map_or(end, |c| c.value(i).div_euclid(1000)),
            exp: self.exp.and_then(|e| e.is_valid(i).then(|| e.value(i))),
        }
    }
}

/// A float column's values (when read).
fn float_values(c: Option<&PrimitiveArray<Float64Type>>) -> Option<&[f64]> {
    c.map(|c| -> &[f64] { c.values() })
}

/// A part's block and its series' sum checks.
type PartGrid = (RollupBlock, Vec<SumCheck>);

/// One part's rows into its block of cells.
struct GridAbsorber<'a> {
    tenant: &'a TenantId,
    ids: &'a SortedIds,
    fields: RollupFields,
    /// The end of the block's first window, the width, the block's windows.
    first_end: i64,
    width: i64,
    windows: usize,
    block: Cells,
    cursor: usize,
    unresolved: bool,
}

/// A part's cells as they are built.
enum Cells {
    /// `count` and `sum` only: partial rows add up ([`AddBlock`]).
    Add(AddBlock),
    /// `min`, `max` or `last`: partial rows merge in time order.
    Ordered(RollupBlockBuilder),
}

impl Cells {
    fn new(windows: usize, series: usize, fields: RollupFields) -> Self {
        if fields.min || fields.max || fields.last {
            Cells::Ordered(RollupBlockBuilder::new(windows, series, fields))
        } else {
            Cells::Add(AddBlock::new(windows, series, fields.sum))
        }
    }

    fn finish(self) -> std::result::Result<PartGrid, String> {
        match self {
            Cells::Add(b) => Ok(b.finish()),
            Cells::Ordered(b) => b.finish(),
        }
    }
}

/// [`RollupBlockBuilder`] for `count` (and `sum`) cells, fed straight from
/// column values: a window's partial rows add their counts and sums, as
/// the builder adds them when no field needs time order, and each row goes
/// into its series' [`SumCheck`] (when `sum` is asked) — without a point
/// per row.
struct AddBlock {
    windows: usize,
    series: usize,
    count: Vec<u32>,
    /// Empty when `sum` is not asked.
    sum: Vec<f64>,
    sums: Vec<SumCheck>,
}

impl AddBlock {
    fn new(windows: usize, series: usize, sum: bool) -> Self {
        let cells = windows.saturating_mul(series);
        Self {
            windows,
            series,
            count: vec![0; cells],
            sum: if sum { vec![0.0; cells] } else { Vec::new() },
            sums: if sum { vec![SumCheck::default(); series] } else { Vec::new() },
        }
    }

    /// A row of series `s` for window `k`: `count` samples summing to
    /// `sum`, between `min` and `max`, of exponent `exp` (the last four
    /// read only when `sum` is asked).
    #[inline]
    fn add(
        &mut self,
        k: usize,
        s: usize,
        count: i64,
        (sum, min, max, exp): (f64, f64, f64, Option<i32>),
    ) -> std::result::Result<(), String> {
        if k >= self.windows || s >= self.series {
            return Err(format!(
                "rollup row of series {s}, window {k}: outside the block's {} × {}",
                self.windows, self.series
            ));
        }
        let c = u32::try_from(count).ok().filter(|c| *c > 0).ok_or_else(|| format!("rollup row with count {count}"))?;
        let i = k * self.series + s;
        if let Some(check) = self.sums.get_mut(s) {
            check.add(exp, c.into(), min, max);
        }
        let Some(cell) = self.count.get_mut(i) else { return Ok(()) };
        if *cell == 0 {
            *cell = c;
            if let Some(x) = self.sum.get_mut(i) {
                *x = sum;
            }
        } else {
            *cell = cell.checked_add(c).ok_or_else(|| format!("rollup window of more than {} samples", u32::MAX))?;
            if let Some(x) = self.sum.get_mut(i) {
                *x += sum;
            }
        }
        Ok(())
    }

    fn finish(self) -> PartGrid {
        let block = RollupBlock { windows: self.windows, count: self.count, sum: self.sum, ..RollupBlock::default() };
        (block, self.sums)
    }
}

impl<'a> GridAbsorber<'a> {
    fn absorb(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.unresolved {
            return Ok(()); // the per-series read answers instead
        }
        let cols = GridColumns::of(batch, self.tenant, self.fields)?;
        if let Cells::Add(_) = self.block {
            return self.absorb_adding(&cols, batch.num_rows());
        }
        let corrupt = |detail: String| Error::Corrupted { tenant: self.tenant.clone(), detail };
        let (mut last_id, mut slot) = (None, None);
        for i in 0..batch.num_rows() {
            let id = cols.ids.value(i);
            if last_id != Some(id) {
                let Some(at) = self.ids.find(id, &mut self.cursor) else {
                    self.unresolved = true;
                    return Ok(());
                };
                (last_id, slot) = (Some(id), self.ids.slots.get(at).copied().flatten());
            }
            let Some(s) = slot else { continue };
            let end = cols.ts.value(i).div_euclid(1000);
            let off = end - self.first_end;
            if off < 0 || off.rem_euclid(self.width) != 0 {
                if off.rem_euclid(self.width) != 0 {
                    return Err(corrupt(format!("rollup row ending at {end} ms, not a multiple of {} ms", self.width)));
                }
                continue; // before the part (the scan's range keeps them out)
            }
            let k = (off / self.width) as usize;
            if k >= self.windows {
                continue;
            }
            if let Cells::Ordered(block) = &mut self.block {
                block.add(k, s as usize, &cols.point(i, end)).map_err(corrupt)?;
            }
        }
        Ok(())
    }

    /// [`GridAbsorber::absorb`] into an [`AddBlock`]: the same rows into the
    /// same cells, read from the columns' value slices.
    fn absorb_adding(&mut self, cols: &GridColumns<'_>, rows: usize) -> Result<()> {
        let corrupt = |detail: String| Error::Corrupted { tenant: self.tenant.clone(), detail };
        let Cells::Add(block) = &mut self.block else { return Ok(()) };
        let (ids, ts, count): (&[i64], &[i64], &[i64]) = (cols.ids.values(), cols.ts.values(), cols.count.values());
        let (sum, min, max) = (float_values(cols.sum), float_values(cols.min), float_values(cols.max));
        let exp =
            cols.exp.map(|e| -> (&[i32], bool, &PrimitiveArray<Int32Type>) { (e.values(), e.null_count() > 0, e) });
        let (mut last_id, mut slot) = (None, None);
        for i in 0..rows {
            let Some(&id) = ids.get(i) else { break };
            if last_id != Some(id) {
                let Some(at) = self.ids.find(id, &mut self.cursor) else {
                    self.unresolved = true;
                    return Ok(());
                };
                (last_id, slot) = (Some(id), self.ids.slots.get(at).copied().flatten());
            }
            let Some(s) = slot else { continue };
            let end = ts.get(i).copied().unwrap_or_default().div_euclid(1000);
            let off = end - self.first_end;
            if off < 0 || off.rem_euclid(self.width) != 0 {
                if off.rem_euclid(self.width) != 0 {
                    return Err(corrupt(format!("rollup row ending at {end} ms, not a multiple of {} ms", self.width)));
                }
                continue; // before the part (the scan's range keeps them out)
            }
            let k = (off / self.width) as usize;
            if k >= self.windows {
                continue;
            }
            let f = |v: Option<&[f64]>| v.and_then(|v| v.get(i)).copied().unwrap_or(f64::NAN);
            let exp = match exp {
                Some((v, false, _)) => v.get(i).copied(),
                Some((_, true, e)) => e.is_valid(i).then(|| e.value(i)),
                None => None,
            };
            let c = count.get(i).copied().unwrap_or_default();
            block.add(k, s as usize, c, (f(sum), f(min), f(max), exp)).map_err(corrupt)?;
        }
        Ok(())
    }
}

impl ColdTier {
    /// [`ColdTier::select_rollup`] as a [`RollupAnswer`]: a grid of the
    /// windows ending in `ends` for `fields` when the series table
    /// resolves every row's series and the grid is not too large, else
    /// per series (see the module doc).
    pub async fn select_rollup_grid(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        ends: TimeRange,
        fields: RollupFields,
    ) -> Result<Option<RollupAnswer>> {
        let rollup = self.rollup_of_view(tenant)?;
        let width = rollup.width_ms();
        let Some(table) = self.load_table(tenant).await? else { return Ok(None) };
        match complete_from(&table, rollup) {
            Some(from) if from <= ends.start => {}
            _ => return Ok(None),
        }
        if ends.start > ends.end || ends.start.rem_euclid(width) != 0 || table.metadata().current_snapshot().is_none() {
            return self.rollup_per_series(tenant, matchers, ends).await;
        }
        let Some(index) = self.series_view().series_index(tenant, matchers).await? else {
            return self.rollup_per_series(tenant, matchers, ends).await;
        };
        let windows = usize::try_from((ends.end - ends.start) / width + 1).unwrap_or(usize::MAX);
        if windows.checked_mul(index.labels.len()).is_none_or(|c| c > MAX_GRID_CELLS) {
            return self.rollup_per_series(tenant, matchers, ends).await;
        }
        let (ids, series) = SortedIds::of(index);
        let has_exp = table.metadata().current_schema().field_by_name("exp").is_some();
        let mut columns = vec!["series_id", "ts", "count"];
        for (name, asked) in [
            ("sum", fields.sum),
            ("exp", fields.sum && has_exp),
            ("min", fields.min || fields.sum),
            ("max", fields.max || fields.sum),
            ("last", fields.last),
            ("last_ts", fields.min || fields.max || fields.last),
        ] {
            if asked {
                columns.push(name);
            }
        }
        let parts = scan_parts(ends, read_parallelism());
        let Some((blocks, sums)) = self
            .scan_grid(&table, tenant, matchers, ends, &parts, &columns, Arc::new(ids), series.len(), fields)
            .await?
        else {
            tracing::debug!(tenant = %tenant, table = ?self.kind, "rollup rows of series the series table lacks; reading their labels");
            return self.rollup_per_series(tenant, matchers, ends).await;
        };
        Ok(Some(RollupAnswer::Grid(RollupGrid {
            covered_end: ends.end,
            first_end: ends.start,
            width_ms: width,
            series,
            blocks,
            sums,
        })))
    }

    /// [`ColdTier::select_rollup`] as [`RollupAnswer::Series`].
    async fn rollup_per_series(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        ends: TimeRange,
    ) -> Result<Option<RollupAnswer>> {
        let series = self.select_rollup(tenant, matchers, ends).await?;
        Ok(series.map(|series| RollupAnswer::Series(RollupData { covered_end: ends.end, series })))
    }

    /// Each part of `ends` scanned into its block on its own runtime task
    /// (one part: on this one); the blocks in part order and the series'
    /// sum checks merged; `None` when a row's series is not in `ids`.
    #[expect(clippy::too_many_arguments, reason = "the scan's parts, each used once")]
    #[expect(
        clippy::disallowed_methods,
        reason = "one task per part of a single read, all awaited here before it returns (none outlives the call)"
    )]
    async fn scan_grid(
        &self,
        table: &iceberg::table::Table,
        tenant: &TenantId,
        matchers: &[Matcher],
        ends: TimeRange,
        parts: &[TimeRange],
        columns: &[&str],
        ids: Arc<SortedIds>,
        series: usize,
        fields: RollupFields,
    ) -> Result<Option<(Vec<RollupBlock>, Vec<SumCheck>)>> {
        let width = self.rollup_of_view(tenant)?.width_ms();
        // Part `p`'s windows: the ends of `ends`' grid that lie in it.
        let window_span = |part: &TimeRange| {
            let first = (part.start - ends.start + width - 1).div_euclid(width);
            let last = (part.end - ends.start).div_euclid(width);
            (first, usize::try_from(last - first + 1).unwrap_or(0))
        };
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        let scan = |part: TimeRange| {
            let (me, table, tenant) = (self.clone(), table.clone(), tenant.clone());
            let (matchers, columns, ids) = (matchers.to_vec(), columns.clone(), Arc::clone(&ids));
            let (first, windows) = window_span(&part);
            async move {
                let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                let mut absorber = GridAbsorber {
                    tenant: &tenant,
                    ids: &ids,
                    fields,
                    first_end: ends.start + first * width,
                    width,
                    windows,
                    block: Cells::new(windows, series, fields),
                    cursor: 0,
                    unresolved: false,
                };
                me.scan_grid_batches(&table, &tenant, &matchers, part, &columns, |batch| absorber.absorb(batch))
                    .await?;
                if absorber.unresolved {
                    return Ok(None);
                }
                let corrupt = |detail: String| Error::Corrupted { tenant: tenant.clone(), detail };
                absorber.block.finish().map(Some).map_err(corrupt)
            }
        };
        let results: Vec<Result<Option<PartGrid>>> = if parts.len() <= 1 {
            vec![scan(ends).await]
        } else {
            let tasks: Vec<_> = parts.iter().map(|&part| tokio::task::spawn(scan(part))).collect();
            let mut out = Vec::with_capacity(tasks.len());
            // Every task is awaited (none is left running) before an error returns.
            for task in tasks {
                out.push(task.await.unwrap_or_else(|e| {
                    let source = iceberg::Error::new(iceberg::ErrorKind::Unexpected, format!("rollup read task: {e}"));
                    Err(Error::Scan { tenant: tenant.clone(), source: Box::new(source) })
                }));
            }
            out
        };
        let mut blocks = Vec::with_capacity(results.len());
        let mut sums: Vec<SumCheck> = Vec::new();
        let mut unresolved = false;
        for r in results {
            match r? {
                None => unresolved = true,
                Some((block, part_sums)) => {
                    blocks.push(block);
                    if sums.is_empty() {
                        sums = part_sums;
                    } else {
                        sums.iter_mut().zip(&part_sums).for_each(|(a, b)| a.merge(b));
                    }
                }
            }
        }
        Ok((!unresolved).then_some((blocks, sums)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::IdMap;
    use strata_schemas::Labels;

    /// Day 0's file holds two metrics, days 1 and 2 only `m`: the grid read
    /// of `m` reads day 1's file without the per-row metric test (its bounds
    /// prove it), day 0's with it (the other metric's rows left out, not
    /// made unresolved), and answers the windows `select_rollup` answers.
    #[test]
    fn a_grid_read_filters_only_files_whose_bounds_do_not_prove_the_metric() {
        use crate::config::ColdTierConfig;
        use crate::series::SeriesEntry;
        use crate::table::Rollup;
        use crate::tier::CommitSource;
        use crate::{SeriesRollup, rollup_points};
        use strata_schemas::Sample;
        const DAY: i64 = 86_400_000;
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config = ColdTierConfig { enabled: true, ..ColdTierConfig::default() };
        let cold = rt.block_on(ColdTier::open(&config, dir.path())).unwrap();
        let t = TenantId::new("t").unwrap();
        let view = cold.rollup_view(Rollup::OneDay);
        let day0 = 1_700_006_400_000 - 1_700_006_400_000 % DAY;
        let series = |metric: &str, device: &str, day: i64, v: f64| {
            let labels = Labels::from_pairs([("__name__", metric), ("device", device)]);
            let samples = [Sample::new(day0 + day * DAY + 60_000, v), Sample::new(day0 + day * DAY + 120_000, v + 0.5)];
            SeriesRollup {
                series_id: strata_schemas::series_id(&t, &labels),
                device_hash: strata_schemas::device_hash_of(&t, device),
                points: rollup_points(&samples, DAY),
                labels,
            }
        };
        let days = [
            vec![series("m", "a", 0, 1.0), series("other", "a", 0, 2.0), series("m", "b", 0, 3.0)],
            vec![series("m", "a", 1, 4.0), series("m", "b", 1, 5.0)],
            vec![series("m", "b", 2, 6.0)],
        ];
        rt.block_on(async {
            for (d, rows) in days.iter().enumerate() {
                let entries: Vec<SeriesEntry> = rows
                    .iter()
                    .map(|r| SeriesEntry {
                        labels: r.labels.clone(),
                        series_id: r.series_id,
                        device_hash: r.device_hash,
                    })
                    .collect();
                let sv = cold.series_view();
                let ws = sv.write_series_files(&t, &entries, &format!("series-{d}")).await.unwrap();
                sv.commit_series_files(&t, ws, &format!("hot:{t}:s{d}")).await.unwrap();
                let written = view.write_rollup_files(&t, rows, i64::MIN, &format!("day-{d}")).await.unwrap();
                let source = CommitSource { source: format!("hot:{t}:{d}"), segments: String::new() };
                view.commit_files(&t, written, &source).await.unwrap();
            }
        });
        let m = [Matcher::equal("__name__", "m")];
        let table = rt.block_on(view.load_table(&t)).unwrap().unwrap();
        let proven = rt.block_on(view.proven_files(&table, &t, &m)).unwrap();
        assert_eq!(proven.len(), 2, "days 1 and 2: {proven:?}");
        assert!(proven.iter().all(|p| !p.contains("day-0")), "{proven:?}");
        let other = [Matcher::equal("__name__", "other")];
        assert!(rt.block_on(view.proven_files(&table, &t, &other)).unwrap().is_empty());
        assert!(
            rt.block_on(view.proven_files(&table, &t, &[])).unwrap().is_empty(),
            "nothing pushed, nothing to prove"
        );
        // Window ends are midnights: day 1's window lies in the partition of
        // day 2, inside the range (read without a predicate), day 2's not.
        let ends = TimeRange::new(day0 + DAY, day0 + 3 * DAY);
        let fields = RollupFields { sum: true, ..RollupFields::default() };
        let Some(RollupAnswer::Grid(grid)) = rt.block_on(view.select_rollup_grid(&t, &m, ends, fields)).unwrap() else {
            panic!("not a grid")
        };
        let want = rt.block_on(view.select_rollup(&t, &m, ends)).unwrap().unwrap();
        assert_eq!(grid.series, want.iter().map(|s| s.labels.clone()).collect::<Vec<_>>());
        for (s, series) in want.iter().enumerate() {
            let mut got = Vec::new();
            grid.push_windows(s, ends.end, fields, &mut got);
            let cells = |p: &[RollupPoint]| p.iter().map(|p| (p.end, p.count, p.sum)).collect::<Vec<_>>();
            assert_eq!(cells(&got), cells(&series.points), "{}", series.labels);
        }
        assert_eq!(grid.windows(), 3);
        assert_eq!(grid.rows(ends.end), 5, "m's rows, not the other metric's");
        assert!(grid.sums.iter().all(SumCheck::exact));
    }

    #[test]
    fn sorted_ids_put_slots_in_label_order_and_find_ids_from_a_cursor() {
        let l = |s: &str| Labels::from_pairs([("__name__", "m"), ("s", s)]);
        let mut ids: IdMap<Option<u32>> = IdMap::default();
        // Slots as the index made them: "c" 0, "a" 1, "b" 2; id 7 does not match.
        for (id, slot) in [(30, Some(0)), (10, Some(1)), (20, Some(2)), (7, None)] {
            ids.insert(id, slot);
        }
        let index = SeriesIndex { ids, labels: vec![l("c"), l("a"), l("b")] };
        let (sorted, labels) = SortedIds::of(index);
        assert_eq!(labels, vec![l("a"), l("b"), l("c")]);
        assert_eq!(sorted.ids, vec![7, 10, 20, 30]);
        assert_eq!(sorted.slots, vec![None, Some(0), Some(1), Some(2)]);
        let mut cursor = 0;
        assert_eq!(sorted.find(10, &mut cursor), Some(1));
        assert_eq!(sorted.find(30, &mut cursor), Some(3));
        assert_eq!(sorted.find(7, &mut cursor), Some(0), "back to an earlier id");
        assert_eq!(sorted.find(8, &mut cursor), None);
        assert_eq!(sorted.find(31, &mut cursor), None);
        assert_eq!(sorted.find(20, &mut cursor), Some(2));
    }
}
