//! Rollup windows of many series as columns: what
//! [`ReadStore::select_rollup_grid`](super::ReadStore::select_rollup_grid)
//! answers when a store can lay a long read out densely.
//!
//! ```text
//!  windows k = 0, 1, …: ends first_end + k·width          series s = 0, 1, … (sorted by labels)
//!  blocks: consecutive runs of windows in time order, each window-major:
//!
//!      block.count[(k − block's first window) · series + s]     0: no row for (s, k)
//!      block.sum / min / max / last / last_ts: the same cells, only the fields asked
//!
//!  store: rows of a file (one window, many series) land in one row of cells;
//!  engine: series s's windows are every block's column s (one cache line
//!          holds eight series' cells of a window: read in series order, each
//!          line is fetched once)
//! ```
//!
//! Built with [`RollupBlockBuilder`]: one cell per (series, window), the
//! partial rows of one window (one per hot bucket rolled, until the
//! small-file merge joins them) merged as [`RollupPoint::merge`] merges them
//! in time order, so a cell is what `select_rollup`'s merged point holds for
//! the fields asked. No [`RollupPoint`] of 64 bytes per row is kept: a year
//! of daily windows of 40,000 series is 14.6 M cells, 12 bytes each for
//! `avg_over_time` (`count` and `sum`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::{EXP_NAN, EXP_NONE_SET, RollupData, RollupPoint, pow2};
use crate::Labels;

/// The window aggregates a grid read fills. `count` is always filled: it
/// marks the windows that have a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollupFields {
    /// `min` per cell.
    pub min: bool,
    /// `max` per cell.
    pub max: bool,
    /// `sum` per cell, and per series the [`SumCheck`] of its rows (the
    /// store reads `exp`, `min` and `max` for it, and keeps them only
    /// when asked).
    pub sum: bool,
    /// `last` per cell.
    pub last: bool,
}

impl RollupFields {
    /// Whether cells keep `last_ts`: the order partial rows of one window
    /// merge in matters for `min` and `max` (the earlier of equal values,
    /// e.g. `+0` before `-0`, stays) and for `last`; for `count` it does
    /// not, and `sum` is used only when every order gives the same bits.
    fn ordered(self) -> bool {
        self.min || self.max || self.last
    }
}

/// Whether sums of a series' windows are exact, gathered window by window
/// (or row by row): [`RollupPoint::sums_exactly`] is this check over one
/// series' windows. Windows holding a NaN are left aside; a window without
/// `exp` makes the check fail; the rest give the smallest `exp` and the
/// bound `Σ count × max(|min|, |max|)` of every partial sum.
///
/// Gathered over a window's partial rows instead of their merge, the check
/// is still sound: the rows' bound is a bound of the same sums, and a
/// partial row without NaN of a window holding a NaN is checked where the
/// merged window would be left aside (stricter).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SumCheck {
    exp: i32,
    bound: f64,
    unknown: bool,
}

impl Default for SumCheck {
    fn default() -> Self {
        Self { exp: EXP_NONE_SET, bound: 0.0, unknown: false }
    }
}

impl SumCheck {
    /// Adds a window (or a partial row) of `count` values between `min`
    /// and `max` whose [`RollupPoint::exp`] is `exp`.
    #[inline]
    pub fn add(&mut self, exp: Option<i32>, count: u64, min: f64, max: f64) {
        match exp {
            Some(EXP_NAN) => {}
            None => self.unknown = true,
            Some(x) => {
                self.exp = self.exp.min(x);
                self.bound += count as f64 * min.abs().max(max.abs());
            }
        }
    }

    /// [`SumCheck::add`] of a point.
    pub fn add_point(&mut self, p: &RollupPoint) {
        self.add(p.exp, p.count, p.min, p.max);
    }

    /// Both checks' windows together.
    pub fn merge(&mut self, other: &SumCheck) {
        self.exp = self.exp.min(other.exp);
        self.bound += other.bound;
        self.unknown |= other.unknown;
    }

    /// Whether every sum of the windows' values, in any order and
    /// grouping, is exact (see [`RollupPoint::sums_exactly`]).
    pub fn exact(&self) -> bool {
        !self.unknown && self.bound.is_finite() && self.bound < f64::MAX / 4.0 && self.bound < pow2(51 + self.exp)
    }
}

/// One run of consecutive windows of a [`RollupGrid`], window-major: cell
/// `k · series + s` is series `s`'s window `k` of the block. The columns of
/// fields not asked are empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RollupBlock {
    /// Windows in the block.
    pub windows: usize,
    /// Samples in the window; 0: the series has no row for it.
    pub count: Vec<u32>,
    /// [`RollupPoint::sum`] (when asked).
    pub sum: Vec<f64>,
    /// [`RollupPoint::min`] (when asked).
    pub min: Vec<f64>,
    /// [`RollupPoint::max`] (when asked).
    pub max: Vec<f64>,
    /// [`RollupPoint::last`] (when asked).
    pub last: Vec<f64>,
    /// [`RollupPoint::last_ts`] (when `min`, `max` or `last` is asked).
    pub last_ts: Vec<i64>,
}

/// Rollup windows of the matching series as columns (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct RollupGrid {
    /// As [`RollupData::covered_end`]: windows ending after it are not complete here.
    pub covered_end: i64,
    /// The end of window 0 (the request's first window end).
    pub first_end: i64,
    /// Window width (ms).
    pub width_ms: i64,
    /// The series, sorted by labels (each once); index = cell column.
    pub series: Vec<Labels>,
    /// Consecutive runs of windows, in time order.
    pub blocks: Vec<RollupBlock>,
    /// Per series, the [`SumCheck`] of its rows (when `sum` was asked; else empty).
    pub sums: Vec<SumCheck>,
}

/// What [`ReadStore::select_rollup_grid`](super::ReadStore::select_rollup_grid) answers.
#[derive(Debug, Clone, PartialEq)]
pub enum RollupAnswer {
    /// Per series, its windows (what `select_rollup` answers).
    Series(RollupData),
    /// Per (window, series), a cell.
    Grid(RollupGrid),
}

impl RollupGrid {
    /// Windows of every block.
    pub fn windows(&self) -> usize {
        self.blocks.iter().map(|b| b.windows).sum()
    }

    /// Checks the grid's shape against the fields asked: width positive,
    /// series strictly sorted, every block's asked columns of `windows ×
    /// series` cells, one [`SumCheck`] per series when `sum` was asked.
    pub fn check(&self, fields: RollupFields) -> Result<(), String> {
        if self.width_ms <= 0 {
            return Err(format!("rollup grid of width {} ms", self.width_ms));
        }
        if let Some(pair) = self.series.windows(2).find(|p| p[0] >= p[1]) {
            return Err(format!("rollup grid series not sorted: {} before {}", pair[0], pair[1]));
        }
        let n = self.series.len();
        for (i, b) in self.blocks.iter().enumerate() {
            let cells = b.windows.checked_mul(n).ok_or_else(|| format!("rollup grid block {i}: too many cells"))?;
            let ordered = fields.ordered();
            for (name, len, asked) in [
                ("count", b.count.len(), true),
                ("sum", b.sum.len(), fields.sum),
                ("min", b.min.len(), fields.min),
                ("max", b.max.len(), fields.max),
                ("last", b.last.len(), fields.last),
                ("last_ts", b.last_ts.len(), ordered),
            ] {
                if asked && len != cells {
                    return Err(format!("rollup grid block {i}: {len} {name} cells, {cells} expected"));
                }
            }
        }
        if fields.sum && self.sums.len() != n {
            return Err(format!("rollup grid: {} sum checks for {n} series", self.sums.len()));
        }
        Ok(())
    }

    /// Cells with a row whose window ends at or before `upto`.
    pub fn rows(&self, upto: i64) -> usize {
        let mut k0 = 0i64;
        let n = self.series.len();
        let mut rows = 0;
        for b in &self.blocks {
            let whole = (0..b.windows as i64).take_while(|k| self.end_of(k0 + k) <= upto).count();
            rows += b.count.iter().take(whole * n).filter(|c| **c > 0).count();
            k0 += b.windows as i64;
        }
        rows
    }

    /// The end of window `k`.
    pub fn end_of(&self, k: i64) -> i64 {
        self.first_end.saturating_add(k.saturating_mul(self.width_ms))
    }

    /// Series `s`'s windows ending at or before `upto`, in time order,
    /// appended to `out` as points: `count`, `end` and the fields of
    /// `fields` filled, the others NaN, `last_ts` when kept (else the
    /// end), `exp` `None` (the grid keeps [`RollupGrid::sums`] instead).
    /// Needs a grid [`RollupGrid::check`] accepted for `fields`.
    pub fn push_windows(&self, s: usize, upto: i64, fields: RollupFields, out: &mut Vec<RollupPoint>) {
        let n = self.series.len();
        let mut k0 = 0i64;
        let at =
            |v: &[f64], i: usize, asked: bool| if asked { v.get(i).copied().unwrap_or(f64::NAN) } else { f64::NAN };
        for b in &self.blocks {
            for k in 0..b.windows {
                let end = self.end_of(k0 + k as i64);
                if end > upto {
                    return;
                }
                let i = k * n + s;
                let count = b.count.get(i).copied().unwrap_or(0);
                if count == 0 {
                    continue;
                }
                out.push(RollupPoint {
                    end,
                    min: at(&b.min, i, fields.min),
                    max: at(&b.max, i, fields.max),
                    sum: at(&b.sum, i, fields.sum),
                    count: u64::from(count),
                    last: at(&b.last, i, fields.last),
                    last_ts: if fields.ordered() { b.last_ts.get(i).copied().unwrap_or(end) } else { end },
                    exp: None,
                });
            }
            k0 += b.windows as i64;
        }
    }

    /// A grid of `data`'s windows ending in `[first_end, last_end]` (both
    /// multiples of `width_ms`; windows elsewhere or not aligned are left
    /// out), one block; `None` when it would hold more than `max_cells`.
    pub fn from_series(
        data: &RollupData,
        first_end: i64,
        last_end: i64,
        width_ms: i64,
        fields: RollupFields,
        max_cells: usize,
    ) -> Result<Option<RollupGrid>, String> {
        if width_ms <= 0 || last_end < first_end {
            return Err(format!("rollup grid of windows ({first_end}, {last_end}] by {width_ms} ms"));
        }
        let windows = usize::try_from((last_end - first_end) / width_ms + 1).map_err(|e| e.to_string())?;
        let n = data.series.len();
        if windows.checked_mul(n).is_none_or(|c| c > max_cells) {
            return Ok(None);
        }
        let mut block = RollupBlockBuilder::new(windows, n, fields);
        for (s, series) in data.series.iter().enumerate() {
            for p in &series.points {
                if p.end < first_end || p.end > last_end || (p.end - first_end) % width_ms != 0 {
                    continue;
                }
                block.add(((p.end - first_end) / width_ms) as usize, s, p)?;
            }
        }
        let (block, sums) = block.finish()?;
        Ok(Some(RollupGrid {
            covered_end: data.covered_end,
            first_end,
            width_ms,
            series: data.series.iter().map(|s| s.labels.clone()).collect(),
            blocks: vec![block],
            sums,
        }))
    }
}

/// Builds one [`RollupBlock`] from stored rows in any order, merging the
/// partial rows of a cell as [`RollupPoint::merge`] does in time order
/// (`last_ts`), and each series' [`SumCheck`] row by row (when `sum` is
/// asked).
#[derive(Debug)]
pub struct RollupBlockBuilder {
    block: RollupBlock,
    series: usize,
    fields: RollupFields,
    sums: Vec<SumCheck>,
    /// Cells holding more than one row where the order matters: every row,
    /// merged in time order by [`RollupBlockBuilder::finish`].
    partials: HashMap<usize, Vec<RollupPoint>>,
}

impl RollupBlockBuilder {
    /// An empty block of `windows` windows of `series` series, zeroed
    /// (fresh pages: nothing is written until a row comes).
    pub fn new(windows: usize, series: usize, fields: RollupFields) -> Self {
        let cells = windows.saturating_mul(series);
        let col = |asked: bool| if asked { vec![0.0f64; cells] } else { Vec::new() };
        let block = RollupBlock {
            windows,
            count: vec![0u32; cells],
            sum: col(fields.sum),
            min: col(fields.min),
            max: col(fields.max),
            last: col(fields.last),
            last_ts: if fields.ordered() { vec![0i64; cells] } else { Vec::new() },
        };
        let sums = if fields.sum { vec![SumCheck::default(); series] } else { Vec::new() };
        Self { block, series, fields, sums, partials: HashMap::new() }
    }

    /// Adds a stored row of series `s` for window `k` of the block. `p`
    /// needs `count` (1 to `u32::MAX`), the asked fields, `last_ts` when
    /// `min`, `max` or `last` is asked, and `exp`, `min` and `max` when
    /// `sum` is (for the [`SumCheck`]).
    #[inline]
    pub fn add(&mut self, k: usize, s: usize, p: &RollupPoint) -> Result<(), String> {
        if k >= self.block.windows || s >= self.series {
            return Err(format!(
                "rollup row of series {s}, window {k}: outside the block's {} × {}",
                self.block.windows, self.series
            ));
        }
        let count = u32::try_from(p.count)
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("rollup row with count {}", p.count))?;
        let i = k * self.series + s;
        if let Some(check) = self.sums.get_mut(s) {
            check.add(p.exp, p.count, p.min, p.max);
        }
        let b = &mut self.block;
        let Some(cell) = b.count.get_mut(i) else { return Ok(()) };
        if *cell == 0 {
            *cell = count;
            let put = |v: &mut Vec<f64>, x: f64| {
                if let Some(c) = v.get_mut(i) {
                    *c = x;
                }
            };
            put(&mut b.sum, p.sum);
            put(&mut b.min, p.min);
            put(&mut b.max, p.max);
            put(&mut b.last, p.last);
            if let Some(c) = b.last_ts.get_mut(i) {
                *c = p.last_ts;
            }
            return Ok(());
        }
        // A second row of the window (partial rows of several hot buckets).
        if !self.fields.ordered() {
            *cell =
                cell.checked_add(count).ok_or_else(|| format!("rollup window of more than {} samples", u32::MAX))?;
            if let Some(c) = b.sum.get_mut(i) {
                *c += p.sum;
            }
            return Ok(());
        }
        let rows = match self.partials.entry(i) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(vec![Self::cell_point(b, i)]),
        };
        rows.push(*p);
        Ok(())
    }

    /// The cell's row as a point (the fields it keeps).
    fn cell_point(b: &RollupBlock, i: usize) -> RollupPoint {
        let at = |v: &[f64]| v.get(i).copied().unwrap_or(f64::NAN);
        RollupPoint {
            end: 0,
            min: at(&b.min),
            max: at(&b.max),
            sum: at(&b.sum),
            count: u64::from(b.count.get(i).copied().unwrap_or(0)),
            last: at(&b.last),
            last_ts: b.last_ts.get(i).copied().unwrap_or(0),
            exp: None,
        }
    }

    /// The block (partial rows merged in time order) and, when `sum` was
    /// asked, each series' [`SumCheck`].
    pub fn finish(mut self) -> Result<(RollupBlock, Vec<SumCheck>), String> {
        for (i, mut rows) in std::mem::take(&mut self.partials) {
            rows.sort_unstable_by_key(|p| p.last_ts);
            let mut rows = rows.into_iter();
            let Some(mut m) = rows.next() else { continue };
            for p in rows {
                m.merge(&p);
            }
            let b = &mut self.block;
            let count = u32::try_from(m.count).map_err(|_| format!("rollup window of {} samples", m.count))?;
            if let Some(c) = b.count.get_mut(i) {
                *c = count;
            }
            for (v, x) in [(&mut b.sum, m.sum), (&mut b.min, m.min), (&mut b.max, m.max), (&mut b.last, m.last)] {
                if let Some(c) = v.get_mut(i) {
                    *c = x;
                }
            }
            if let Some(c) = b.last_ts.get_mut(i) {
                *c = m.last_ts;
            }
        }
        Ok((self.block, self.sums))
    }
}

#[cfg(test)]
mod tests;
