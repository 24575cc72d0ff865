//! Rollup reads as a grid of cells (`ColdTier::select_rollup_grid`).
//!
//! ```text
//!  series table ─► SeriesIndex (ids of the matchers' series) ─► slots in label order,
//!                  ids sorted (a file's rows come sorted by series id: a cursor walks them)
//!  the live files (manifests, read once) ─► files whose bounds prove the matchers, and for
//!     count/sum cells the sum checks' bounds per day (`exp`, `min`, `max` column bounds of
//!     each day's files, none with a NaN or ±Inf window: `scan::sum_bounds`)
//!  ends cut into day-aligned parts (one per core) ─► each part scanned on its own task
//!  (`scan`: no per-row predicate in files whose bounds prove the matchers; large batches):
//!     series_id, ts, count (+ sum, and exp, min, max unless the day bounds check the sums
//!       | min | max | last, last_ts: what `fields` needs)
//!     row ─► its cell (window k of the part's block, series slot; k worked out once per
//!            run of equal ends): count/sum only (avg, sum, count): AddBlock, from the
//!            columns' value slices; else RollupBlockBuilder::add
//!  blocks in part order + per-series SumChecks merged ─► RollupAnswer::Grid
//!  a row of a series the series table lacks, a grid of more than MAX_GRID_CELLS cells,
//!  ends not aligned ─► RollupAnswer::Series (`select_rollup`, as before)
//! ```
//!
//! No point of 64 bytes per row, no per-series vectors, no sort of the
//! answer: a year of one-row-per-day 1 d windows of 40,000 series is
//! 14.6 M cells of 12 bytes for `avg_over_time` (`count`, `sum`), each
//! file's rows written into one row of cells.
//!
//! A sum check from a day's bounds is never looser than the rows' own
//! (each row's `exp` is at least the day's lowest, its `|min|`, `|max|` at
//! most the day's largest), so a series it calls exact is exact; it may
//! call inexact a series near the limit that the rows would have passed
//! (its sums are then read from raw samples, as for any inexact series).

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, PrimitiveArray, RecordBatch};
use strata_schemas::{
    Matcher, RollupAnswer, RollupBlock, RollupBlockBuilder, RollupData, RollupFields, RollupGrid, RollupPoint,
    SumCheck, TenantId, TimeRange,
};

mod scan;

use scan::DayBounds;

use super::{complete_from, read_parallelism, scan_parts};
use crate::error::{Error, Result};
use crate::read::{MS_PER_DAY, column};
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

    /// The slot of `id`'s series (`Some(None)`: it does not match every
    /// matcher), from `last` (the previous row's id and slot) when the id
    /// is the same, else [`SortedIds::find`]; `None`: no series has it.
    #[inline]
    fn slot(&self, id: i64, cursor: &mut usize, last: &mut Option<(i64, Option<u32>)>) -> Option<Option<u32>> {
        match *last {
            Some((x, slot)) if x == id => Some(slot),
            _ => {
                let slot = self.slots.get(self.find(id, cursor)?).copied().flatten();
                *last = Some((id, slot));
                Some(slot)
            }
        }
    }
}

/// A part's windows: the end of its first, the width, how many.
#[derive(Debug, Clone, Copy)]
struct PartWindows {
    first_end: i64,
    width: i64,
    windows: usize,
}

impl PartWindows {
    /// The window of the part a row ending at `end` (ms) belongs to;
    /// `None` before the part (the scan's range keeps those out) or after
    /// its last window; an error when `end` is off the windows' grid.
    #[inline]
    fn of(self, end: i64) -> std::result::Result<Option<usize>, String> {
        let off = end - self.first_end;
        if off.rem_euclid(self.width) != 0 {
            return Err(format!("rollup row ending at {end} ms, not a multiple of {} ms", self.width));
        }
        Ok(if off < 0 { None } else { usize::try_from(off / self.width).ok().filter(|&k| k < self.windows) })
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
    /// The columns of `batch` a read of `fields` takes; `exp`, `min` and
    /// `max` for the sum checks only when `checks_by_row`.
    fn of(batch: &'a RecordBatch, tenant: &TenantId, fields: RollupFields, checks_by_row: bool) -> Result<Self> {
        let opt = |name: &str, asked: bool| -> Result<Option<&'a PrimitiveArray<Float64Type>>> {
            if asked { column(batch, name, tenant).map(Some) } else { Ok(None) }
        };
        let by_row = fields.sum && checks_by_row;
        Ok(Self {
            ids: column(batch, "series_id", tenant)?,
            ts: column(batch, "ts", tenant)?,
            count: column(batch, "count", tenant)?,
            sum: opt("sum", fields.sum)?,
            min: opt("min", fields.min || by_row)?,
            max: opt("max", fields.max || by_row)?,
            last: opt("last", fields.last)?,
            last_ts: if fields.min || fields.max || fields.last {
                Some(column(batch, "last_ts", tenant)?)
            } else {
                None
            },
            exp: match batch.column_by_name("exp") {
                Some(_) if by_row => Some(column(batch, "exp", tenant)?),
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

/// What the parts of one grid read share.
#[derive(Debug)]
struct GridPlan {
    /// The columns read.
    columns: Vec<String>,
    /// The data files read without a predicate (`scan.rs`).
    proven: HashSet<String>,
    ids: SortedIds,
    /// Series in the grid.
    series: usize,
    fields: RollupFields,
    /// `Some`: the sum checks come from these bounds of the files' columns,
    /// and `exp`, `min`, `max` are not read ([`ColdTier::sum_bounds`]).
    bounds: Option<Arc<DayBounds>>,
}

/// One part's rows into its block of cells.
struct GridAbsorber<'a> {
    tenant: &'a TenantId,
    ids: &'a SortedIds,
    fields: RollupFields,
    /// The sum checks' bounds per day, when `exp`, `min`, `max` are not read.
    bounds: Option<&'a DayBounds>,
    /// The windows of the part's block.
    windows: PartWindows,
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
        let cols = GridColumns::of(batch, self.tenant, self.fields, self.bounds.is_none())?;
        if let Cells::Add(_) = self.block {
            return self.absorb_adding(&cols);
        }
        let corrupt = |detail: String| Error::Corrupted { tenant: self.tenant.clone(), detail };
        let mut last = None;
        for i in 0..batch.num_rows() {
            let Some(slot) = self.ids.slot(cols.ids.value(i), &mut self.cursor, &mut last) else {
                self.unresolved = true;
                return Ok(());
            };
            let Some(s) = slot else { continue };
            let end = cols.ts.value(i).div_euclid(1000);
            let Some(k) = self.windows.of(end).map_err(corrupt)? else { continue };
            if let Cells::Ordered(block) = &mut self.block {
                block.add(k, s as usize, &cols.point(i, end)).map_err(corrupt)?;
            }
        }
        Ok(())
    }

    /// [`GridAbsorber::absorb`] into an [`AddBlock`]: the same rows into the
    /// same cells, read from the columns' value slices, each run of rows
    /// ending at the same time (a 1 d file's rows all do) placed in its
    /// window once.
    fn absorb_adding(&mut self, cols: &GridColumns<'_>) -> Result<()> {
        let corrupt = |detail: String| Error::Corrupted { tenant: self.tenant.clone(), detail };
        let windows = self.windows;
        let Cells::Add(block) = &mut self.block else { return Ok(()) };
        let (ids, ts, count): (&[i64], &[i64], &[i64]) = (cols.ids.values(), cols.ts.values(), cols.count.values());
        let (mut last, mut last_ts, mut k) = (None, None, None);
        let mut window = |t: i64| -> Result<Option<usize>> {
            if last_ts != Some(t) {
                last_ts = Some(t);
                k = windows.of(t.div_euclid(1000)).map_err(corrupt)?;
            }
            Ok(k)
        };
        let rows_of = ids.iter().zip(ts).zip(count);
        if let (Some(sum), Some(bounds)) = (cols.sum, self.bounds) {
            // The sum checks from the day's bounds (`exp`, `min`, `max` not read): a row of
            // a day without them makes its series' check fail (`exp` unknown).
            // Window and day bound are worked out once per run of rows of one
            // end (a 1 d file's rows all share theirs), not per row: two
            // integer divisions a row were a tenth of the fleet year's scan.
            let (mut at, mut k, mut bound) = (None, None, None);
            for (((&id, &t), &c), &row_sum) in rows_of.zip(sum.values().iter()) {
                let Some(slot) = self.ids.slot(id, &mut self.cursor, &mut last) else {
                    self.unresolved = true;
                    return Ok(());
                };
                let Some(s) = slot else { continue };
                if at != Some(t) {
                    at = Some(t);
                    k = window(t)?;
                    bound = bounds.get(&t.div_euclid(1000).div_euclid(MS_PER_DAY)).copied();
                }
                let Some(k) = k else { continue };
                let (exp, m) = bound.map_or((None, f64::NAN), |(e, m)| (Some(e), m));
                block.add(k, s as usize, c, (row_sum, m, m, exp)).map_err(corrupt)?;
            }
            return Ok(());
        }
        match (cols.sum, cols.min, cols.max, cols.exp) {
            // `sum` asked, `exp` without nulls: the common case, one pass over the slices.
            (Some(sum), Some(min), Some(max), Some(exp)) if exp.null_count() == 0 => {
                let values =
                    sum.values().iter().zip(min.values().iter()).zip(max.values().iter()).zip(exp.values().iter());
                for (((&id, &t), &c), (((&row_sum, &row_min), &row_max), &row_exp)) in rows_of.zip(values) {
                    let Some(slot) = self.ids.slot(id, &mut self.cursor, &mut last) else {
                        self.unresolved = true;
                        return Ok(());
                    };
                    let Some(s) = slot else { continue };
                    let Some(k) = window(t)? else { continue };
                    block.add(k, s as usize, c, (row_sum, row_min, row_max, Some(row_exp))).map_err(corrupt)?;
                }
            }
            _ => {
                let (sum, min, max) = (float_values(cols.sum), float_values(cols.min), float_values(cols.max));
                for (i, ((&id, &t), &c)) in rows_of.enumerate() {
                    let Some(slot) = self.ids.slot(id, &mut self.cursor, &mut last) else {
                        self.unresolved = true;
                        return Ok(());
                    };
                    let Some(s) = slot else { continue };
                    let Some(k) = window(t)? else { continue };
                    let f = |v: Option<&[f64]>| v.and_then(|v| v.get(i)).copied().unwrap_or(f64::NAN);
                    let exp = cols.exp.and_then(|e| e.is_valid(i).then(|| e.value(i)));
                    block.add(k, s as usize, c, (f(sum), f(min), f(max), exp)).map_err(corrupt)?;
                }
            }
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
        let files = self.live_entries(&table, tenant).await?;
        // `count`/`sum` cells (avg, sum): the sum checks from the files' bounds where they allow.
        let ordered = fields.min || fields.max || fields.last;
        let bounds =
            (fields.sum && !ordered && has_exp).then(|| Self::sum_bounds(&table, &files, ends)).flatten().map(Arc::new);
        let by_rows = fields.sum && bounds.is_none();
        let mut columns = vec!["series_id", "ts", "count"];
        for (name, asked) in [
            ("sum", fields.sum),
            ("exp", by_rows && has_exp),
            ("min", fields.min || by_rows),
            ("max", fields.max || by_rows),
            ("last", fields.last),
            ("last_ts", ordered),
        ] {
            if asked {
                columns.push(name);
            }
        }
        let plan = GridPlan {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            proven: self.proven_among(&table, tenant, matchers, &files),
            ids,
            series: series.len(),
            fields,
            bounds,
        };
        let parts = scan_parts(ends, read_parallelism());
        let Some((blocks, sums)) = self.scan_grid(&table, tenant, matchers, ends, &parts, Arc::new(plan)).await? else {
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
    /// sum checks merged; `None` when a row's series is not in the plan's ids.
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
        plan: Arc<GridPlan>,
    ) -> Result<Option<(Vec<RollupBlock>, Vec<SumCheck>)>> {
        let width = self.rollup_of_view(tenant)?.width_ms();
        // Part `p`'s windows: the ends of `ends`' grid that lie in it.
        let window_span = |part: &TimeRange| {
            let first = (part.start - ends.start + width - 1).div_euclid(width);
            let last = (part.end - ends.start).div_euclid(width);
            (first, usize::try_from(last - first + 1).unwrap_or(0))
        };
        let scan = |part: TimeRange| {
            let (me, table, tenant) = (self.clone(), table.clone(), tenant.clone());
            let (matchers, plan) = (matchers.to_vec(), Arc::clone(&plan));
            let (first, windows) = window_span(&part);
            async move {
                let columns: Vec<&str> = plan.columns.iter().map(String::as_str).collect();
                let mut absorber = GridAbsorber {
                    tenant: &tenant,
                    ids: &plan.ids,
                    fields: plan.fields,
                    bounds: plan.bounds.as_deref(),
                    windows: PartWindows { first_end: ends.start + first * width, width, windows },
                    block: Cells::new(windows, plan.series, plan.fields),
                    cursor: 0,
                    unresolved: false,
                };
                let proven = plan.proven.clone();
                me.scan_grid_batches(&table, &tenant, &matchers, part, &columns, proven, |batch| {
                    absorber.absorb(batch)
                })
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
                    Err(Error::scan(tenant, table, source))
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
mod tests;
