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

    /// The total (`strata_query_rollup_selects_total`) and the per-tier
    /// counters in Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        use strata_schemas::metrics_text::{MetricKind, MetricsText};
        let mut text = MetricsText::new(out);
        text.counter(
            "strata_query_rollup_selects_total",
            "Range-function selectors answered from rollups.",
            self.total(),
        );
        let name = "strata_query_rollup_tier_selects_total";
        text.family(
            name,
            MetricKind::Counter,
            "Range-function selectors answered from rollups, per tier (window width).",
        );
        for (tier, n) in self.by_tier() {
            text.sample(name, &[("tier", tier)], n);
        }
    }
}

/// Evaluates `f(arg)` from rollups when the plan allows and the store has
/// them; `None`: evaluate from raw samples.
pub(crate) fn try_eval(ev: &Evaluator<'_>, f: RangeFn, arg: &Expr) -> Result<Option<Vec<StepSeries>>> {
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
    let mut out = Vec::with_capacity(by_labels.len());
    for (labels, points) in by_labels {
        let values = step_values(ev, f, &points, at, offset, range);
        if values.iter().any(Option::is_some) {
            let mut s = StepSeries::new(labels, values);
            if f != RangeFn::Last {
                ev.ctx.drop_name(&mut s);
            }
            out.push(s);
        }
    }
    ev.ctx.account(out.len().saturating_mul(ev.n))?;
    merge_same_labels(out).map(Some)
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
mod tests {
    use super::*;
    use crate::test_util::MemStore;
    use crate::{Engine, QueryConfig, Value};
    use proptest::prelude::*;
    use std::sync::Arc;
    use strata_schemas::labels::STALE_NAN_BITS;
    use strata_schemas::{Matcher, ReadError, ReadStore, RollupData, RollupSeries, SeriesData, TenantId};

    /// Raw samples, plus rollups computed from them for the windows ending
    /// up to `covered_end` (the rest is "above the watermark").
    #[derive(Debug)]
    struct Rolled {
        raw: Arc<MemStore>,
        covered_end: i64,
    }

    impl ReadStore for Rolled {
        fn select(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> std::result::Result<Vec<SeriesData>, ReadError> {
            self.raw.select(t, m, r)
        }
        fn series(&self, t: &TenantId, m: &[Matcher], r: TimeRange) -> std::result::Result<Vec<Labels>, ReadError> {
            self.raw.series(t, m, r)
        }
        fn select_rollup(
            &self,
            t: &TenantId,
            m: &[Matcher],
            w: i64,
            ends: TimeRange,
        ) -> std::result::Result<Option<RollupData>, ReadError> {
            // Like the federated store: the last whole window below the covered point.
            let covered_end = self.covered_end.div_euclid(w).saturating_mul(w).min(ends.end);
            if covered_end < ends.start {
                return Ok(None);
            }
            let series = self
                .raw
                .select(t, m, TimeRange::new(ends.start - w + 1, covered_end))?
                .into_iter()
                .map(|s| RollupSeries { labels: s.labels, points: partial_windows(&s.samples, w) })
                .filter(|s| !s.points.is_empty())
                .collect();
            Ok(Some(RollupData { covered_end, series }))
        }
    }

    /// Windows of `w` as the cold tier stores them: one partial row per
    /// 2 h hot bucket, merged in time order (`RollupPoint::merge`).
    fn partial_windows(samples: &[Sample], w: i64) -> Vec<RollupPoint> {
        let key = |ts: i64| (-(-ts).div_euclid(w) * w, ts.div_euclid(2 * HOUR));
        let mut out: Vec<RollupPoint> = Vec::new();
        for c in samples.chunk_by(|a, b| key(a.ts) == key(b.ts)) {
            let Some(p) = RollupPoint::of(key(c[0].ts).0, c) else { continue };
            match out.last_mut() {
                Some(l) if l.end == p.end => l.merge(&p),
                _ => out.push(p),
            }
        }
        out
    }

    /// A day of decimal fractions every 5 minutes: merging the day's twelve
    /// 2 h partial sums rounds differently from adding the samples one by
    /// one (checked here), so sum and avg read raw samples; the same day of
    /// quarter values sums exactly and is answered from the 1 d tier. Both
    /// bit for bit like raw.
    #[test]
    fn sums_of_decimal_fractions_are_read_raw_and_quarter_values_from_rollups() {
        let t = TenantId::new("t").unwrap();
        for decimal in [true, false] {
            let samples: Vec<Sample> = (0..288i64)
                .map(|i| {
                    let v = if decimal {
                        (i % 16) as f64 * 0.1 + 0.013 * (i % 3) as f64
                    } else {
                        (i % 16) as f64 / 4.0 + (i % 3) as f64
                    };
                    Sample::new(i * 5 * MINUTE + 1, v)
                })
                .collect();
            let raw = Arc::new(MemStore::new());
            raw.add(&t, Labels::from_pairs([("__name__", "x")]), &samples);
            let on = Engine::new(Arc::new(Rolled { raw: Arc::clone(&raw), covered_end: DAY }), QueryConfig::default());
            let off = Engine::new(raw, QueryConfig::default());
            for q in ["sum_over_time(x[1d])", "avg_over_time(x[1d])", "max_over_time(x[1d])"] {
                let got = on.query_range(&t, q, DAY, DAY, DAY).unwrap();
                let want = off.query_range(&t, q, DAY, DAY, DAY).unwrap();
                assert_eq!(bits(&got.value), bits(&want.value), "{q}");
            }
            let used = on.stats().rollup_selects_by_tier().into_iter().find(|t| t.0 == "1d").map(|t| t.1);
            // max always; sum and avg only when exact.
            assert_eq!(used, Some(if decimal { 1 } else { 3 }), "decimal: {decimal}");
            let day = partial_windows(&samples, DAY);
            assert_eq!(day.len(), 1);
            assert_eq!(RollupPoint::sums_exactly(&day), !decimal);
            let naive = kahan_sum(day.iter().map(|p| p.sum));
            assert_eq!(naive.to_bits() != kahan_sum(samples.iter().map(|s| s.value)).to_bits(), decimal);
        }
    }

    fn bits(v: &Value) -> Vec<(Labels, Vec<(i64, u64)>)> {
        let canon = |x: f64| if x.is_nan() { f64::NAN.to_bits() } else { x.to_bits() };
        match v {
            Value::Matrix(m) => m
                .iter()
                .map(|s| (s.labels.clone(), s.samples.iter().map(|p| (p.ts, canon(p.value))).collect()))
                .collect(),
            Value::Vector(v) => v.iter().map(|s| (s.labels.clone(), vec![(s.t, canon(s.v))])).collect(),
            other => panic!("{other:?}"),
        }
    }

    /// A generated value: -400 a stale marker, -399 NaN, else `v / 4`
    /// (sums exact) or a decimal fraction `v × 0.37 + 0.013` (sums round).
    fn value(v: i32, decimal: bool) -> f64 {
        match v {
            -400 => f64::from_bits(STALE_NAN_BITS),
            -399 => f64::NAN,
            v if decimal => v as f64 * 0.37 + 0.013,
            v => v as f64 / 4.0,
        }
    }

    /// The tiers used: the planned one (`tier`) for min, max, count and
    /// last, and for sum and avg of quarter values (sums provably exact, or
    /// NaN both ways); with decimal fractions, for sum and avg the planned
    /// one or none (raw samples when the sums are not provably exact — a
    /// selection of a few of them may still sum exactly).
    fn check_tier(
        func: &str,
        exact: bool,
        used: Vec<(&str, u64)>,
        tier: Option<&str>,
        q: &str,
    ) -> std::result::Result<(), TestCaseError> {
        let want: Vec<(&str, u64)> = tier.map(|n| vec![(n, 1)]).unwrap_or_default();
        if exact || !matches!(func, "sum_over_time" | "avg_over_time") {
            prop_assert_eq!(used, want, "{}", q);
        } else {
            prop_assert!(used.is_empty() || used == want, "{}: {:?}", q, used);
        }
        Ok(())
    }

    const FUNCS: [&str; 6] =
        ["avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time"];

    #[test]
    fn plans_the_coarsest_aligned_tier_of_long_ranges_of_the_six_functions() {
        let m = 5 * MINUTE;
        assert_eq!(plan(RangeFn::Avg, HOUR, 0, m), Some(m));
        assert_eq!(plan(RangeFn::Avg, HOUR, 0, HOUR), Some(HOUR));
        assert_eq!(plan(RangeFn::Avg, DAY, HOUR, HOUR), Some(HOUR), "end not at midnight: 1 h windows");
        assert_eq!(plan(RangeFn::Avg, DAY, m, HOUR), Some(m), "end not on the hour: 5 m windows");
        assert_eq!(plan(RangeFn::Last, DAY, 0, 0), Some(DAY));
        assert_eq!(plan(RangeFn::Avg, DAY, 3 * DAY, DAY), Some(DAY));
        assert_eq!(plan(RangeFn::Sum, 7 * DAY, -DAY, 2 * DAY), Some(DAY));
        assert_eq!(plan(RangeFn::Avg, 25 * HOUR, DAY, DAY), Some(HOUR), "range not whole days");
        assert_eq!(plan(RangeFn::Avg, DAY, DAY, 6 * HOUR), Some(HOUR), "step not whole days");
        assert_eq!(plan(RangeFn::Avg, HOUR - m, 0, m), None, "too short to pay");
        assert_eq!(plan(RangeFn::Avg, HOUR + 1, 0, m), None);
        assert_eq!(plan(RangeFn::Avg, HOUR, 1, m), None);
        assert_eq!(plan(RangeFn::Avg, HOUR, 0, 7 * MINUTE), None);
        assert_eq!(plan(RangeFn::Avg, HOUR, -m, m), Some(m));
        assert_eq!(plan(RangeFn::First, HOUR, 0, m), None);
        assert_eq!(plan(RangeFn::Quantile, HOUR, 0, m), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// For random data (quarter values, whose sums are exact, or
        /// decimal fractions, whose sums round differently in another
        /// order; NaNs; stale markers; samples on window edges) and random
        /// queries, the engine with rollups answers bit for bit like
        /// without, and uses them exactly when the plan allows and the
        /// store has them (sum and avg: only when the sums are exact).
        #[test]
        fn rollups_answer_like_raw_samples(
            samples in prop::collection::vec((0usize..2, 0i64..8 * 12, 0i64..3, -400i32..400), 1..200),
            decimal in any::<bool>(),
            covered in 0i64..8 * 12,
            f in 0usize..6,
            range_i in 0usize..4,
            step_i in 0usize..4,
            start_i in 0usize..4,
            offset_i in 0usize..3,
        ) {
            let t = TenantId::new("t").unwrap();
            let raw = Arc::new(MemStore::new());
            let exact = !decimal;
            for (s, slot, edge, v) in samples {
                let ts = slot * 5 * MINUTE + [0, 1, 5 * MINUTE - 1][edge as usize];
                let v = value(v, decimal);
                raw.add(&t, Labels::from_pairs([("__name__", "x"), ("s", ["a", "b"][s])]), &[Sample::new(ts, v)]);
            }
            let on = Engine::new(Arc::new(Rolled { raw: Arc::clone(&raw), covered_end: covered * 5 * MINUTE }), QueryConfig::default());
            let off = Engine::new(raw, QueryConfig::default());
            let range = ["1h", "2h", "65m", "30m"][range_i];
            let step = [5 * MINUTE, HOUR, 7 * MINUTE, 10 * MINUTE][step_i];
            let start = [HOUR, 2 * HOUR, HOUR + 1, 90 * MINUTE][start_i];
            let offset = ["", " offset 5m", " offset 1m"][offset_i];
            let q = format!("{}(x[{range}]{offset})", FUNCS[f]);
            let end = 8 * HOUR;
            let got = on.query_range(&t, &q, start, end, step).unwrap();
            let want = off.query_range(&t, &q, start, end, step).unwrap();
            prop_assert_eq!(bits(&got.value), bits(&want.value), "{}", q);
            let aligned = range_i < 3 && step_i != 2 && start_i != 2 && offset_i != 2;
            let first_end = start - [0, 5 * MINUTE, MINUTE][offset_i];
            let range_ms = [HOUR, 2 * HOUR, 65 * MINUTE][range_i.min(2)];
            // The coarsest aligned tier holding the first window answers (1 h
            // for hour-aligned ranges, steps and ends, else 5 m).
            let tier = [(HOUR, "1h"), (5 * MINUTE, "5m")]
                .into_iter()
                .filter(|(w, _)| range_ms % w == 0 && step % w == 0 && first_end % w == 0)
                .find(|(w, _)| (covered * 5 * MINUTE).div_euclid(*w) * w >= first_end - range_ms + w)
                .filter(|_| aligned);
            let used: Vec<(&str, u64)> = on.stats().rollup_selects_by_tier().into_iter().filter(|t| t.1 > 0).collect();
            check_tier(FUNCS[f], exact, used, tier.map(|(_, n)| n), &q)?;
        }

        /// The same at the scale of days: samples over five days (on hour
        /// and day edges), ranges of whole days or not, steps of days or
        /// hours; whole-day plans use the 1 d tier, bit for bit like raw.
        #[test]
        fn day_rollups_answer_like_raw_samples(
            samples in prop::collection::vec((0usize..2, 0i64..5 * 24, 0i64..3, -400i32..400), 1..200),
            decimal in any::<bool>(),
            covered in 0i64..5 * 24,
            f in 0usize..6,
            range_i in 0usize..4,
            step_i in 0usize..3,
            start_i in 0usize..3,
            offset_i in 0usize..3,
        ) {
            let t = TenantId::new("t").unwrap();
            let raw = Arc::new(MemStore::new());
            let exact = !decimal;
            for (s, slot, edge, v) in samples {
                let ts = slot * HOUR + [0, 1, HOUR - 1][edge as usize];
                let v = value(v, decimal);
                raw.add(&t, Labels::from_pairs([("__name__", "x"), ("s", ["a", "b"][s])]), &[Sample::new(ts, v)]);
            }
            let on = Engine::new(Arc::new(Rolled { raw: Arc::clone(&raw), covered_end: covered * HOUR }), QueryConfig::default());
            let off = Engine::new(raw, QueryConfig::default());
            let (range, range_ms) = [("1d", DAY), ("2d", 2 * DAY), ("25h", 25 * HOUR), ("3d", 3 * DAY)][range_i];
            let step = [DAY, 2 * DAY, 6 * HOUR][step_i];
            let start = [DAY, 2 * DAY, 36 * HOUR][start_i];
            let (offset, offset_ms) = [("", 0), (" offset 1d", DAY), (" offset 1h", HOUR)][offset_i];
            let q = format!("{}(x[{range}]{offset})", FUNCS[f]);
            let end = 5 * DAY;
            let got = on.query_range(&t, &q, start, end, step).unwrap();
            let want = off.query_range(&t, &q, start, end, step).unwrap();
            prop_assert_eq!(bits(&got.value), bits(&want.value), "{}", q);
            let first_end = start - offset_ms;
            let tier = [(DAY, "1d"), (HOUR, "1h")]
                .into_iter()
                .filter(|(w, _)| range_ms % w == 0 && step % w == 0 && first_end % w == 0)
                .find(|(w, _)| (covered * HOUR).div_euclid(*w) * w >= first_end - range_ms + w);
            let used: Vec<(&str, u64)> = on.stats().rollup_selects_by_tier().into_iter().filter(|t| t.1 > 0).collect();
            check_tier(FUNCS[f], exact, used, tier.map(|(_, n)| n), &q)?;
        }
    }
}
