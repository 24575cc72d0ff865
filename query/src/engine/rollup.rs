//! Range functions answered from rollups (`ReadStore::select_rollup`).
//!
//! ```text
//!  f(v[r]) with f ∈ {avg, min, max, sum, count, last}_over_time, v a plain selector, r ≥ 1h
//!    (shorter ranges do not pay), and w the coarsest of 1d, 1h, 5m with
//!    r % w = 0, every window end t' = (@ or t) − offset a multiple of w
//!    (first end aligned and step % w = 0)            (then (t' − r, t'] is exactly r / w windows)
//!  covered = first_end − r; for each aligned w, coarsest first (a finer one divides it;
//!  after 1 h windows answered, no 5 m ones: they would save less than an hour of raw reads):
//!    select_rollup(matchers, w, ends = [covered + w, last_end])
//!       None ─► the next tier (e.g. no 1 d table yet, or not complete that far back)
//!       Some { covered_end, series } ─► windows in (covered, covered_end] from this tier;
//!                                       covered = covered_end
//!  no tier answered ─► raw samples, exactly as before
//!  windows > covered aggregated here from raw samples (e.g. above the cold watermark)
//!  per step: fold the windows ending in (t' − r, t'] in time order
//! ```
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

use super::eval::{Evaluator, StepSeries, duration_ms, merge_same_labels, offset_ms};
use super::range_fns::RangeFn;
use super::selector::to_matchers;
use super::stats::kahan_sum;
use crate::error::Result;
use promql_parser::parser::Expr;
use strata_schemas::{Labels, RollupPoint, Sample, TimeRange};

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
    let mut out = Vec::with_capacity(loaded.by_labels.len());
    loaded.each_series(ev, f, &mut |labels, values| {
        let mut s = StepSeries::new(labels, values);
        if f != RangeFn::Last {
            ev.ctx.drop_name(&mut s);
        }
        out.push(s);
        Ok(())
    })?;
    ev.ctx.account(out.len().saturating_mul(ev.n))?;
    merge_same_labels(out).map(Some)
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
/// per label set, checked and charged, ready for the per-step folds.
struct Loaded {
    by_labels: BTreeMap<Labels, Vec<RollupPoint>>,
    at: Option<i64>,
    offset: i64,
    range: i64,
}

impl Loaded {
    /// Hands each series with a value at some step to `each`, in label
    /// order, its windows freed as it goes.
    fn each_series(
        self,
        ev: &Evaluator<'_>,
        f: RangeFn,
        each: &mut dyn FnMut(Labels, Vec<Option<f64>>) -> Result<()>,
    ) -> Result<()> {
        let Loaded { by_labels, at, offset, range } = self;
        for (labels, points) in by_labels {
            let values = step_values(ev, f, &points, at, offset, range);
            if values.iter().any(Option::is_some) {
                each(labels, values)?;
            }
        }
        Ok(())
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
    let mut covered = first_end - range;
    let mut answered: Option<i64> = None;
    let mut loaded = 0usize;
    let mut by_labels: BTreeMap<Labels, Vec<RollupPoint>> = BTreeMap::new();
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
        let Some(data) = ev.ctx.store.select_rollup(ev.ctx.tenant, &matchers, w, ends)? else { continue };
        let upto = data.covered_end.max(covered);
        for s in data.series {
            let mut points = s.points;
            points.retain(|p| p.end <= upto);
            loaded += points.len();
            add_points(&mut by_labels, s.labels, points);
        }
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
            add_points(&mut by_labels, s.labels, windows_of(&s.samples, w));
        }
    }
    if !exact_for(f, &by_labels) {
        return Ok(None);
    }
    ev.ctx.account_series(by_labels.len())?;
    ev.ctx.account(loaded)?;
    ev.ctx.check()?;
    ev.ctx.rollup_selects.hit(w);
    // A grid of every step per series: checked before, the kept ones charged after.
    ev.ctx.reserve(by_labels.len().saturating_mul(ev.n))?;
    Ok(Some(Loaded { by_labels, at, offset, range }))
}

/// Whether `f` folded over any run of each series' windows equals `f` over
/// the raw samples bit for bit: always for min, max, count and last; for
/// sum and avg when [`RollupPoint::sums_exactly`] holds for all of a
/// series' windows (a superset of every step's).
fn exact_for(f: RangeFn, by_labels: &BTreeMap<Labels, Vec<RollupPoint>>) -> bool {
    !matches!(f, RangeFn::Sum | RangeFn::Avg) || by_labels.values().all(|p| RollupPoint::sums_exactly(p))
}

/// Appends a series' later windows (moved, not copied, when it has none yet).
fn add_points(by_labels: &mut BTreeMap<Labels, Vec<RollupPoint>>, labels: Labels, points: Vec<RollupPoint>) {
    if points.is_empty() {
        return;
    }
    match by_labels.entry(labels) {
        std::collections::btree_map::Entry::Vacant(v) => {
            v.insert(points);
        }
        std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().extend(points),
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
    let first = w.first()?;
    let count = || w.iter().map(|p| p.count).sum::<u64>() as f64;
    Some(match f {
        RangeFn::Min => w[1..].iter().fold(first.min, |acc, p| if p.min < acc || acc.is_nan() { p.min } else { acc }),
        RangeFn::Max => w[1..].iter().fold(first.max, |acc, p| if p.max > acc || acc.is_nan() { p.max } else { acc }),
        RangeFn::Count => count(),
        // The latest window holds the latest sample.
        RangeFn::Last => w[w.len() - 1].last,
        RangeFn::Sum => kahan_sum(w.iter().map(|p| p.sum)),
        // Prometheus's `sum/count + c/count` with `c` = +0 (exact sums only,
        // see `exact_for`): the `+ 0.0` turns an underflowed −0 into +0 as there.
        RangeFn::Avg => kahan_sum(w.iter().map(|p| p.sum)) / count() + 0.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
