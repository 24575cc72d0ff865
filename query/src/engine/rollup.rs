//! Range functions answered from rollups (`ReadStore::select_rollup`).
//!
//! ```text
//!  f(v[r]) with f ∈ {avg, min, max, sum, count, last}_over_time, v a plain selector, r ≥ 1h
//!    (shorter ranges do not pay), and w the coarsest of 1d, 1h, 5m with
//!    r % w = 0, every window end t' = (@ or t) − offset a multiple of w
//!    (first end aligned and step % w = 0)            (then (t' − r, t'] is exactly r / w windows)
//!  covered = first_end − r; for each aligned w, coarsest first (a finer one divides it;
//!  after 1 h windows answered, no 5 m ones: they would save less than an hour of raw reads):
//!    select_rollup_grid(matchers, w, ends = [covered + w, last_end], fields f needs)
//!       None ─► the next tier (e.g. no 1 d table yet, or not complete that far back)
//!       Some(Series { covered_end, series }) | Some(Grid { covered_end, cells })
//!                 ─► windows in (covered, covered_end] from this tier; covered = covered_end
//!  no tier answered ─► raw samples, exactly as before
//!  windows > covered aggregated here from raw samples (e.g. above the cold watermark)
//!  per step: fold the windows ending in (t' − r, t'] in time order
//! ```
//!
//! The first tier's answer may be a grid ([`RollupGrid`]: one cell per
//! window and series, only the fields `f` needs, each series' sum check):
//! it is kept as it is (a year of daily windows of 40,000 series: 14.6 M
//! cells of 12 bytes instead of 14.6 M points of 64 bytes in 40,000
//! vectors). When it holds every window, the step values are computed
//! straight from its cells, [`BLOCK_SERIES`] series at a time in the grid's
//! window-major order (`each_grid_series`: no point built; the blocks on
//! two threads, handed to the aggregation in series order); otherwise each
//! series' windows are copied out of it into one reused buffer, and later
//! tiers' and raw windows, kept per series, appended after the grid's.
//!
//! An aggregation straight over such a function (`avg by (farm)
//! (avg_over_time(m[1d]))`) gets the series one at a time ([`try_stream`],
//! in the order [`try_eval`] returns them) and folds each into its group,
//! so no grid of every series' steps is built.
//!
//! A finer window inside a coarser one lies in `(t' − r, t']` exactly when
//! the coarser one does (both bounds are multiples of the coarser width), so
//! the fold mixes tiers freely. The coarsest tier that answered is counted,
//! per query ([`TierCells`]) and since start ([`TierCounters`]:
//! `strata_query_rollup_tier_selects_total{tier}`).
//!
//! Exact for min, max, count and last (the window folds use Prometheus's
//! rules, see `RollupPoint::merge`). `sum_over_time` adds window sums with
//! a Kahan sum and `avg_over_time` divides that by the count: in general
//! not the raw answer bit for bit (Prometheus adds the samples one by one
//! with `kahanSumInc` and returns `sum + c`; its `avg_over_time` returns
//! `sum/count + c/count`, or an incremental mean after an overflow, and a
//! window's rounded sum, or partial rows merged, lose that state). So
//! sum and avg are answered from rollups only when
//! `RollupPoint::sums_exactly` proves every window of every series loaded
//! (rollups and raw windows alike) sums without rounding: then every
//! partial sum in either order is exact, the compensation stays 0, no
//! overflow, and both give the exact sum (avg: sum / count, the same
//! division); or a window holds a NaN value, and both are NaN. Otherwise the selector is answered from raw samples (the
//! rollup read is wasted; e.g. decimal fractions such as 23.47, which no
//! binary sum holds exactly).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::eval::{Evaluator, StepSeries, duration_ms, offset_ms};
use super::range_fns::RangeFn;
use super::selector::to_matchers;
use super::stats::kahan_sum;
use crate::error::Result;
use promql_parser::parser::Expr;
use strata_schemas::{
    Labels, ReadError, RollupAnswer, RollupFields, RollupGrid, RollupPoint, Sample, SumCheck, TimeRange,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Rollup tiers (window width, name in `/metrics`), finest first.
pub(crate) const TIERS: [(i64, &str); 3] = [(5 * MINUTE, "5m"), (HOUR, "1h"), (DAY, "1d")];

/// Ranges shorter than this read raw samples (a few windows do not pay
/// for a second read).
const MIN_RANGE: i64 = HOUR;

/// The rollup widths whose windows answer `f` over windows of `range`
/// ending at `first_end + k * step` exactly, coarsest first (`step` 0: one
/// window). Each divides the coarser ones.
pub(crate) fn plans(f: RangeFn, range: i64, first_end: i64, step: i64) -> Vec<i64> {
    use RangeFn::*;
    if !matches!(f, Avg | Min | Max | Sum | Count | Last) || range < MIN_RANGE {
        return Vec::new();
    }
    TIERS
        .into_iter()
        .rev()
        .map(|(w, _)| w)
        .filter(|&w| range % w == 0 && first_end.rem_euclid(w) == 0 && step % w == 0)
        .collect()
}

/// The coarsest of [`plans`].
#[cfg(test)]
fn plan(f: RangeFn, range: i64, first_end: i64, step: i64) -> Option<i64> {
    plans(f, range, first_end, step).first().copied()
}

/// Per query: range-function selectors each tier of [`TIERS`] answered.
#[derive(Debug, Default)]
pub(crate) struct TierCells([Cell<u64>; TIERS.len()]);

impl TierCells {
    fn hit(&self, width: i64) {
        if let Some(i) = TIERS.iter().position(|(w, _)| *w == width) {
            self.0[i].set(self.0[i].get() + 1);
        }
    }
}

/// Since start, all tenants: range-function selectors each tier answered.
#[derive(Debug, Default)]
pub(crate) struct TierCounters([AtomicU64; TIERS.len()]);

impl TierCounters {
    /// Adds one query's counts.
    pub(crate) fn add(&self, cells: &TierCells) {
        for (a, c) in self.0.iter().zip(&cells.0) {
            a.fetch_add(c.get(), Ordering::Relaxed);
        }
    }

    /// Every tier together.
    pub(crate) fn total(&self) -> u64 {
        self.0.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }

    /// `(tier name, selectors)` per tier, finest first.
    pub(crate) fn by_tier(&self) -> Vec<(&'static str, u64)> {
        TIERS.iter().zip(&self.0).map(|((_, name), a)| (*name, a.load(Ordering::Relaxed))).collect()
    }
}

/// Evaluates `f(arg)` from rollups when the plan allows and the store has
/// them; `None`: evaluate from raw samples.
pub(crate) fn try_eval(ev: &Evaluator<'_>, f: RangeFn, arg: &Expr) -> Result<Option<Vec<StepSeries>>> {
    let Some(loaded) = load(ev, f, arg)? else { return Ok(None) };
    let mut out = Vec::with_capacity(loaded.series());
    loaded.each_series(ev, f, &mut |labels, values| {
        let mut s = StepSeries::new(labels, values);
        if f != RangeFn::Last {
            ev.ctx.drop_name(&mut s);
        }
        out.push(s);
        Ok(())
    })?;
    ev.ctx.account(out.len().saturating_mul(ev.n))?;
    // The caller checks or merges label sets that dropping the name made equal, as for raw samples.
    Ok(Some(out))
}

/// [`try_eval`] for an aggregation that folds series as they come
/// (`functions::stream_range_fn`): `each` gets every series with a value
/// at some step, in the order [`try_eval`] returns them, with its own
/// labels (the metric name still there: the caller drops it where `f`
/// does) and its step values, and no per-series grid of the whole answer
/// is kept. The caller has made sure no two series' labels can become
/// equal once the name is dropped (the selector names one metric), so
/// [`try_eval`]'s merge would change nothing. `false`: nothing evaluated,
/// read raw samples.
pub(crate) fn try_stream(
    ev: &Evaluator<'_>,
    f: RangeFn,
    arg: &Expr,
    each: &mut dyn FnMut(Labels, Vec<Option<f64>>) -> Result<()>,
) -> Result<bool> {
    let Some(loaded) = load(ev, f, arg)? else { return Ok(false) };
    let mut kept = 0usize;
    loaded.each_series(ev, f, &mut |labels, values| {
        kept += 1;
        each(labels, values)
    })?;
    ev.ctx.account(kept.saturating_mul(ev.n))?;
    Ok(true)
}

/// One selector's windows from the tiers (and raw samples above them),
/// checked and charged, ready for the per-step folds: the coarsest tier's
/// as a grid when the store answered so, every other window per label set
/// (later in time than the grid's).
struct Loaded {
    /// The first tier's grid and the last window end taken from it.
    grid: Option<(RollupGrid, i64)>,
    tail: BTreeMap<Labels, Later>,
    fields: RollupFields,
    at: Option<i64>,
    offset: i64,
    range: i64,
}

impl Loaded {
    /// Series with at least one window (before the step folds).
    fn series(&self) -> usize {
        match &self.grid {
            None => self.tail.len(),
            Some((g, _)) => g.series.len() + self.tail.keys().filter(|l| g.series.binary_search(l).is_err()).count(),
        }
    }

    /// Hands each series with a value at some step to `each`, in label
    /// order, its windows freed as it goes (a grid series' windows are
    /// copied out into one reused buffer).
    fn each_series(
        self,
        ev: &Evaluator<'_>,
        f: RangeFn,
        each: &mut dyn FnMut(Labels, Vec<Option<f64>>) -> Result<()>,
    ) -> Result<()> {
        let Loaded { grid, tail, fields, at, offset, range } = self;
        if tail.is_empty() {
            let Some((g, upto)) = grid else { return Ok(()) };
            return each_grid_series(ev, f, g, upto, fields, (at, offset, range), each);
        }
        let mut emit = |labels: Labels, points: &[RollupPoint]| -> Result<()> {
            let values = step_values(ev, f, points, at, offset, range);
            if values.iter().any(Option::is_some) { each(labels, values) } else { Ok(()) }
        };
        let mut tail = tail.into_iter().map(|(l, later)| (l, later.points)).peekable();
        if let Some((mut g, upto)) = grid {
            let mut buf: Vec<RollupPoint> = Vec::with_capacity(g.windows());
            for s in 0..g.series.len() {
                let Some(labels) = g.series.get_mut(s).map(std::mem::take) else { break };
                while let Some((l, points)) = tail.next_if(|(l, _)| *l < labels) {
                    emit(l, &points)?;
                }
                buf.clear();
                g.push_windows(s, upto, fields, &mut buf);
                if let Some((_, later)) = tail.next_if(|(l, _)| *l == labels) {
                    buf.extend(later);
                }
                emit(labels, &buf)?;
            }
        }
        for (labels, points) in tail {
            emit(labels, &points)?;
        }
        Ok(())
    }
}

/// The window fields `f` folds (`count` always comes).
fn fields_for(f: RangeFn) -> RollupFields {
    let none = RollupFields::default();
    match f {
        RangeFn::Min => RollupFields { min: true, ..none },
        RangeFn::Max => RollupFields { max: true, ..none },
        RangeFn::Sum | RangeFn::Avg => RollupFields { sum: true, ..none },
        RangeFn::Last => RollupFields { last: true, ..none },
        _ => none,
    }
}

/// Loads `f(arg)`'s windows from the rollup tiers when the plan allows,
/// the store has them and they answer exactly; `None`: evaluate from raw
/// samples.
fn load(ev: &Evaluator<'_>, f: RangeFn, arg: &Expr) -> Result<Option<Loaded>> {
    let Expr::MatrixSelector(ms) = arg else { return Ok(None) };
    if ev.n == 0 {
        return Ok(None);
    }
    let at = ev.at_ms(&ms.vs.at);
    let offset = offset_ms(&ms.vs.offset);
    let range = duration_ms(&ms.range);
    let (first_end, last_end, step) = match at {
        Some(t) => (t - offset, t - offset, 0),
        None => (ev.start - offset, ev.ts(ev.n - 1) - offset, if ev.n > 1 { ev.step } else { 0 }),
    };
    let widths = plans(f, range, first_end, step);
    if widths.is_empty() {
        return Ok(None);
    }
    let matchers = to_matchers(&ms.vs)?;
    ev.ctx.check_span(first_end - range, last_end)?;
    ev.ctx.raw_read(&|| ms.to_string(), &matchers, TimeRange::new(first_end - range + 1, last_end))?;
    ev.ctx.before_read(TimeRange::new(first_end - range, last_end))?;
    // Tiers coarsest first: each answers the windows after what the coarser
    // ones covered (`covered`, a multiple of every finer width) up to its
    // own covered end; the rest comes from raw samples.
    let fields = fields_for(f);
    let mut covered = first_end - range;
    let mut answered: Option<i64> = None;
    let mut loaded = 0usize;
    let mut grid: Option<(RollupGrid, i64)> = None;
    let mut tail: BTreeMap<Labels, Later> = BTreeMap::new();
    for &w in &widths {
        if answered.is_some_and(|a| a <= HOUR) {
            // A tier lags the watermark by less than its width: after 1 h
            // windows, 5 m ones would save less than an hour of raw samples.
            break;
        }
        let ends = TimeRange::new(covered + w, last_end);
        if ends.start > ends.end {
            break;
        }
        let Some(answer) = ev.ctx.store.select_rollup_grid(ev.ctx.tenant, &matchers, w, ends, fields)? else {
            continue;
        };
        let upto = match answer {
            RollupAnswer::Series(data) => {
                let upto = data.covered_end.max(covered);
                for s in data.series {
                    let mut points = s.points;
                    points.retain(|p| p.end <= upto);
                    loaded += points.len();
                    add_points(&mut tail, s.labels, points, None);
                }
                upto
            }
            RollupAnswer::Grid(g) => {
                g.check(fields).map_err(|detail| ReadError::Corrupted { location: "rollup grid".into(), detail })?;
                let upto = g.covered_end.max(covered);
                if grid.is_none() && tail.is_empty() {
                    loaded += g.rows(upto);
                    grid = Some((g, upto));
                } else {
                    // After another tier's windows (rare): its windows per series.
                    for (s, labels) in g.series.iter().enumerate() {
                        let mut points = Vec::new();
                        g.push_windows(s, upto, fields, &mut points);
                        loaded += points.len();
                        add_points(&mut tail, labels.clone(), points, Some(g.sums.get(s).copied().unwrap_or_default()));
                    }
                }
                upto
            }
        };
        answered.get_or_insert(w);
        covered = upto;
    }
    let Some(w) = answered else { return Ok(None) };
    if covered < last_end {
        // Windows the rollups do not hold yet (e.g. above the cold watermark): aggregate raw samples.
        let raw = ev.ctx.store.select(ev.ctx.tenant, &matchers, TimeRange::new(covered + 1, last_end))?;
        for s in raw {
            loaded += s.samples.len();
            // Windows of `w` (partial ones after a finer tier's end lie in the same `w` window).
            add_points(&mut tail, s.labels, windows_of(&s.samples, w), None);
        }
    }
    let loaded_windows = Loaded { grid, tail, fields, at, offset, range };
    if !exact_for(f, &loaded_windows) {
        return Ok(None);
    }
    let series = loaded_windows.series();
    ev.ctx.account_series(series)?;
    ev.ctx.account(loaded)?;
    ev.ctx.check()?;
    ev.ctx.rollup_selects.hit(w);
    // A grid of every step per series: checked before, the kept ones charged after.
    ev.ctx.reserve(series.saturating_mul(ev.n))?;
    Ok(Some(loaded_windows))
}

/// Whether `f` folded over any run of each series' windows equals `f` over
/// the raw samples bit for bit: always for min, max, count and last; for
/// sum and avg when [`RollupPoint::sums_exactly`] holds for all of a
/// series' windows (a superset of every step's): for a grid series, its
/// rows' [`SumCheck`] with its later windows' added.
fn exact_for(f: RangeFn, loaded: &Loaded) -> bool {
    if !matches!(f, RangeFn::Sum | RangeFn::Avg) {
        return true;
    }
    let Some((g, _)) = &loaded.grid else {
        return loaded.tail.values().all(|l| l.check.exact());
    };
    let in_grid = if loaded.tail.is_empty() {
        g.sums.iter().all(SumCheck::exact)
    } else {
        g.sums.iter().zip(&g.series).all(|(c, labels)| {
            let mut check = *c;
            if let Some(later) = loaded.tail.get(labels) {
                check.merge(&later.check);
            }
            check.exact()
        })
    };
    in_grid && loaded.tail.iter().filter(|(l, _)| g.series.binary_search(l).is_err()).all(|(_, l)| l.check.exact())
}

/// A series' windows other than a grid's, and their [`SumCheck`].
#[derive(Debug, Default)]
struct Later {
    points: Vec<RollupPoint>,
    check: SumCheck,
}

/// Appends a series' later windows (moved, not copied, when it has none
/// yet), checked point by point, or with `check` (windows out of a grid,
/// which carry no `exp`).
fn add_points(tail: &mut BTreeMap<Labels, Later>, labels: Labels, points: Vec<RollupPoint>, check: Option<SumCheck>) {
    if points.is_empty() {
        return;
    }
    let later = tail.entry(labels).or_default();
    match check {
        Some(c) => later.check.merge(&c),
        None => points.iter().for_each(|p| later.check.add_point(p)),
    }
    if later.points.is_empty() {
        later.points = points;
    } else {
        later.points.extend(points);
    }
}

/// Windows of `width` of sorted samples (stale markers excluded).
fn windows_of(samples: &[Sample], width: i64) -> Vec<RollupPoint> {
    let end_of = |ts: i64| -(-ts).div_euclid(width) * width;
    samples.chunk_by(|a, b| end_of(a.ts) == end_of(b.ts)).filter_map(|c| RollupPoint::of(end_of(c[0].ts), c)).collect()
}

/// Per step, `f` over the windows ending in `(t' − range, t']`.
fn step_values(
    ev: &Evaluator<'_>,
    f: RangeFn,
    points: &[RollupPoint],
    at: Option<i64>,
    offset: i64,
    range: i64,
) -> Vec<Option<f64>> {
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut out = Vec::with_capacity(ev.n);
    for i in 0..ev.n {
        let end = at.unwrap_or(ev.ts(i)) - offset;
        let start = end - range;
        while hi < points.len() && points[hi].end <= end {
            hi += 1;
        }
        while lo < hi && points[lo].end <= start {
            lo += 1;
        }
        out.push(fold(f, &points[lo..hi]));
    }
    out
}

/// `f` over consecutive windows (sorted by end), computing only what `f`
/// needs; the same results as folding them with [`RollupPoint::merge`].
fn fold(f: RangeFn, w: &[RollupPoint]) -> Option<f64> {
    fold_cells(f, w.iter().map(WindowCell::of))
}

/// What [`fold_cells`] reads of a window.
#[derive(Debug, Clone, Copy)]
struct WindowCell {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    last: f64,
}

impl WindowCell {
    fn of(p: &RollupPoint) -> Self {
        Self { count: p.count, sum: p.sum, min: p.min, max: p.max, last: p.last }
    }
}

/// [`fold`] of windows given as cells (a point's or a grid cell's fields):
/// both read paths share this code, so they answer the same bits.
#[inline]
fn fold_cells<I: Iterator<Item = WindowCell> + Clone>(f: RangeFn, w: I) -> Option<f64> {
    let mut rest = w.clone();
    let first = rest.next()?;
    let count = || w.clone().map(|p| p.count).sum::<u64>() as f64;
    Some(match f {
        RangeFn::Min => rest.fold(first.min, |acc, p| if p.min < acc || acc.is_nan() { p.min } else { acc }),
        RangeFn::Max => rest.fold(first.max, |acc, p| if p.max > acc || acc.is_nan() { p.max } else { acc }),
        RangeFn::Count => count(),
        // The latest window holds the latest sample.
        RangeFn::Last => rest.last().unwrap_or(first).last,
        RangeFn::Sum => kahan_sum(w.map(|p| p.sum)),
        // Prometheus's `sum/count + c/count` with `c` = +0 (exact sums only,
        // see `exact_for`): the `+ 0.0` turns an underflowed −0 into +0 as there.
        RangeFn::Avg => kahan_sum(w.clone().map(|p| p.sum)) / count() + 0.0,
        _ => return None,
    })
}

/// Series per block of [`each_grid_series`]: a block's cells of one window
/// are one run of the grid's window-major columns, and its series' rows of
/// step values (16 bytes a step) stay in cache while they are written.
const BLOCK_SERIES: usize = 256;

/// [`Loaded::each_series`] for a grid and no other windows: the series'
/// step values computed straight from the grid's cells, a block of
/// [`BLOCK_SERIES`] series at a time (window-major, as the grid is laid
/// out), each step folding its windows' cells with [`fold_cells`] in time
/// order as [`step_values`] folds points; no point is built. With two
/// cores and enough windows (the range functions' parallel threshold) the
/// blocks are computed on [`STEP_THREADS`] threads while this one hands
/// them to `each` in series order.
fn each_grid_series(
    ev: &Evaluator<'_>,
    f: RangeFn,
    g: RollupGrid,
    upto: i64,
    fields: RollupFields,
    (at, offset, range): (Option<i64>, i64, i64),
    each: &mut dyn FnMut(Labels, Vec<Option<f64>>) -> Result<()>,
) -> Result<()> {
    let windows = g.windows();
    let RollupGrid { series, blocks, first_end, width_ms: w, .. } = g;
    let n = series.len();
    // Global window k: its block and the offset of its row of cells.
    let mut rows: Vec<(&strata_schemas::RollupBlock, usize)> = Vec::with_capacity(windows);
    for b in &blocks {
        rows.extend((0..b.windows).map(|k| (b, k * n)));
    }
    // Windows ending at or before `t`.
    let index = |t: i64| t.saturating_sub(first_end).div_euclid(w).saturating_add(1).clamp(0, rows.len() as i64);
    // Windows ending at or before `upto` (`push_windows`'s bound).
    let kept = index(upto) as usize;
    // Per step, the windows ending in (t' − range, t']: [lo, hi).
    let spans: Vec<(usize, usize)> = (0..ev.n)
        .map(|i| {
            let end = at.unwrap_or(ev.ts(i)) - offset;
            let (lo, hi) = (index(end - range) as usize, (index(end) as usize).min(kept));
            (lo, hi.max(lo))
        })
        .collect();
    let at_f = |v: &[f64], i: usize, asked: bool| if asked { v.get(i).copied().unwrap_or(f64::NAN) } else { f64::NAN };
    // Cell `i` of block `b` (`None`: no row for that window).
    let cell_at = |b: &strata_schemas::RollupBlock, i: usize| -> Option<WindowCell> {
        let count = b.count.get(i).copied().filter(|c| *c > 0)?;
        Some(WindowCell {
            count: u64::from(count),
            sum: at_f(&b.sum, i, fields.sum),
            min: at_f(&b.min, i, fields.min),
            max: at_f(&b.max, i, fields.max),
            last: at_f(&b.last, i, fields.last),
        })
    };
    let cell = |k: usize, s: usize| -> Option<WindowCell> {
        let &(b, off) = rows.get(k)?;
        cell_at(b, off + s)
    };
    let steps = ev.n;
    // Block [s0, s0 + BLOCK_SERIES)'s rows of step values.
    let block_values = |s0: usize| -> Vec<Vec<Option<f64>>> {
        let s1 = (s0 + BLOCK_SERIES).min(n);
        let mut values: Vec<Vec<Option<f64>>> = (s0..s1).map(|_| Vec::with_capacity(steps)).collect();
        for &(lo, hi) in &spans {
            // A step of one window (range = width, as `f_over_time(x[1d])` at a 1 d step): its
            // row of cells looked up once, each series' cell folded alone (the same cells in
            // the same order as the general case, so the same bits).
            if let Some(&(b, off)) = rows.get(lo).filter(|_| hi == lo + 1) {
                for (s, row) in (s0..s1).zip(values.iter_mut()) {
                    row.push(fold_cells(f, cell_at(b, off + s).into_iter()));
                }
                continue;
            }
            for (s, row) in (s0..s1).zip(values.iter_mut()) {
                row.push(fold_cells(f, (lo..hi).filter_map(|k| cell(k, s))));
            }
        }
        values
    };
    let mut labels = series.into_iter();
    let mut deliver = |values: Vec<Vec<Option<f64>>>| -> Result<()> {
        for row in values {
            let Some(l) = labels.next() else { break };
            if row.iter().any(Option::is_some) {
                each(l, row)?;
            }
        }
        Ok(())
    };
    let pipelined = n > BLOCK_SERIES
        && n.saturating_mul(steps) >= super::range_fns::PARALLEL_MIN_WINDOWS
        && std::thread::available_parallelism().is_ok_and(|t| t.get() >= 2);
    if !pipelined {
        for s0 in (0..n).step_by(BLOCK_SERIES) {
            ev.ctx.check()?;
            deliver(block_values(s0))?;
        }
        return Ok(());
    }
    blocks_on_threads(ev, n, &block_values, &mut deliver)
}

/// The blocks of step values of `n` series computed by `block_values` on
/// [`STEP_THREADS`] threads (block b on thread b % STEP_THREADS, each in
/// series order) while this thread hands them to `deliver` (the
/// aggregation) in series order: the same values in the same order as one
/// thread, so the same bits. At most [`PIPELINED_BLOCKS`] blocks per
/// thread wait to be handed over.
fn blocks_on_threads(
    ev: &Evaluator<'_>,
    n: usize,
    block_values: &(impl Fn(usize) -> Vec<Vec<Option<f64>>> + Sync),
    deliver: &mut impl FnMut(Vec<Vec<Option<f64>>>) -> Result<()>,
) -> Result<()> {
    let failed = || crate::error::QueryError::Internal("a rollup grid's step-value thread failed".into());
    std::thread::scope(|scope| {
        let (mut queues, mut workers) = (Vec::new(), Vec::new());
        for first in 0..STEP_THREADS {
            let (tx, rx) = std::sync::mpsc::sync_channel(PIPELINED_BLOCKS);
            queues.push(rx);
            workers.push(scope.spawn(move || {
                for s0 in (first * BLOCK_SERIES..n).step_by(STEP_THREADS * BLOCK_SERIES) {
                    if tx.send(block_values(s0)).is_err() {
                        break; // the handing thread stopped (an error, the timeout)
                    }
                }
            }));
        }
        let handed = (0..n.div_ceil(BLOCK_SERIES)).try_for_each(|b| {
            ev.ctx.check()?;
            let values = queues.get(b % STEP_THREADS).and_then(|q| q.recv().ok()).ok_or_else(failed)?;
            deliver(values)
        });
        drop(queues);
        let joined: Vec<bool> = workers.into_iter().map(|w| w.join().is_ok()).collect();
        handed?;
        if joined.iter().all(|ok| *ok) { Ok(()) } else { Err(failed()) }
    })
}

/// Threads computing [`each_grid_series`]'s blocks of step values.
const STEP_THREADS: usize = 2;

/// Blocks of [`BLOCK_SERIES`] series' step values each of
/// [`each_grid_series`]'s threads computes ahead of the aggregation (1.5
/// MB a block at 365 steps).
const PIPELINED_BLOCKS: usize = 4;

#[cfg(test)]
mod tests;
