//! Unit tests of answering range functions from rollup tiers (`super`): the
//! plans, and answers equal to raw samples bit for bit.

use super::*;
use crate::test_util::MemStore;
use crate::{Engine, QueryConfig, Value};
use proptest::prelude::*;
use std::sync::Arc;
use strata_schemas::labels::STALE_NAN_BITS;
use strata_schemas::{
    Matcher, ReadError, ReadStore, RollupAnswer, RollupBlockBuilder, RollupData, RollupFields, RollupGrid,
    RollupSeries, SeriesData, SumCheck, TenantId,
};

/// How [`Rolled`] answers `select_rollup_grid`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Per series (the trait's default: `select_rollup`).
    Series,
    /// As a grid built from the partial rows (one per 2 h bucket), added
    /// in reverse time order, in two blocks when `split`.
    Grid { split: bool },
}

/// Raw samples, plus rollups computed from them for the windows ending
/// up to `covered_end` (the rest is "above the watermark").
#[derive(Debug)]
struct Rolled {
    raw: Arc<MemStore>,
    covered_end: i64,
    mode: Mode,
    /// Grids answered.
    grids: std::sync::atomic::AtomicUsize,
}

impl Rolled {
    fn new(raw: Arc<MemStore>, covered_end: i64, mode: Mode) -> Self {
        Self { raw, covered_end, mode, grids: Default::default() }
    }

    /// The windows of `w` ending in `ends` up to the covered point, per
    /// series: `(covered_end, [(labels, partial rows)])`.
    #[expect(clippy::type_complexity, reason = "a test's plain tuple")]
    fn rows(
        &self,
        t: &TenantId,
        m: &[Matcher],
        w: i64,
        ends: TimeRange,
    ) -> std::result::Result<Option<(i64, Vec<(Labels, Vec<RollupPoint>)>)>, ReadError> {
        // No group rollups here (their requests name the reserved `__group__` label).
        if m.iter().any(|m| m.name == "__group__") {
            return Ok(None);
        }
        // Like the federated store: the last whole window below the covered point.
        let covered_end = self.covered_end.div_euclid(w).saturating_mul(w).min(ends.end);
        if covered_end < ends.start {
            return Ok(None);
        }
        let series = self
            .raw
            .select(t, m, TimeRange::new(ends.start - w + 1, covered_end))?
            .into_iter()
            .map(|s| (s.labels, partial_rows(&s.samples, w)))
            .filter(|s| !s.1.is_empty())
            .collect();
        Ok(Some((covered_end, series)))
    }
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
        let Some((covered_end, rows)) = self.rows(t, m, w, ends)? else { return Ok(None) };
        let series = rows.into_iter().map(|(labels, rows)| RollupSeries { labels, points: merged(rows) }).collect();
        Ok(Some(RollupData { covered_end, series }))
    }
    fn select_rollup_grid(
        &self,
        t: &TenantId,
        m: &[Matcher],
        w: i64,
        ends: TimeRange,
        fields: RollupFields,
    ) -> std::result::Result<Option<RollupAnswer>, ReadError> {
        let Mode::Grid { split } = self.mode else {
            return Ok(self.select_rollup(t, m, w, ends)?.map(RollupAnswer::Series));
        };
        let Some((covered_end, rows)) = self.rows(t, m, w, ends)? else { return Ok(None) };
        self.grids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Every window of `ends` (the store's grid reaches past the covered end).
        let windows = ((ends.end - ends.start) / w + 1) as usize;
        let cut = if split { windows / 2 } else { windows };
        let block = |from: usize, to: usize| {
            let mut b = RollupBlockBuilder::new(to - from, rows.len(), fields);
            for (s, (_, points)) in rows.iter().enumerate() {
                for p in points.iter().rev() {
                    let k = ((p.end - ends.start) / w) as usize;
                    if (from..to).contains(&k) {
                        b.add(k - from, s, p).unwrap();
                    }
                }
            }
            b.finish().unwrap()
        };
        let (mut blocks, mut sums) = (Vec::new(), Vec::new());
        for (from, to) in [(0, cut), (cut, windows)] {
            if from == to {
                continue;
            }
            let (b, part) = block(from, to);
            blocks.push(b);
            if sums.is_empty() {
                sums = part;
            } else {
                sums.iter_mut().zip(&part).for_each(|(a, b): (&mut SumCheck, &SumCheck)| a.merge(b));
            }
        }
        let series = rows.into_iter().map(|(labels, _)| labels).collect();
        Ok(Some(RollupAnswer::Grid(RollupGrid {
            covered_end,
            first_end: ends.start,
            width_ms: w,
            series,
            blocks,
            sums,
        })))
    }
}

/// Windows of `w` as the cold tier stores them before the small-file
/// merge: one partial row per 2 h hot bucket.
fn partial_rows(samples: &[Sample], w: i64) -> Vec<RollupPoint> {
    let key = |ts: i64| (-(-ts).div_euclid(w) * w, ts.div_euclid(2 * HOUR));
    samples.chunk_by(|a, b| key(a.ts) == key(b.ts)).filter_map(|c| RollupPoint::of(key(c[0].ts).0, c)).collect()
}

/// Partial rows merged in time order (`RollupPoint::merge`), as the cold tier reads them.
fn merged(rows: Vec<RollupPoint>) -> Vec<RollupPoint> {
    let mut out: Vec<RollupPoint> = Vec::new();
    for p in rows {
        match out.last_mut() {
            Some(l) if l.end == p.end => l.merge(&p),
            _ => out.push(p),
        }
    }
    out
}

/// [`partial_rows`] merged.
fn partial_windows(samples: &[Sample], w: i64) -> Vec<RollupPoint> {
    merged(partial_rows(samples, w))
}

/// A day of decimal fractions every 5 minutes: merging the day's twelve
/// 2 h partial sums rounds differently from adding the samples one by
/// one (checked here), so sum and avg read raw samples; the same day of
/// quarter values sums exactly and is answered from the 1 d tier. Both
/// bit for bit like raw.
#[test]
fn sums_of_decimal_fractions_are_read_raw_and_quarter_values_from_rollups() {
    let t = TenantId::new("t").unwrap();
    for (decimal, mode) in [true, false].into_iter().flat_map(|d| MODES.map(|m| (d, m))) {
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
        let rolled = Arc::new(Rolled::new(Arc::clone(&raw), DAY, mode));
        let on = Engine::new(Arc::clone(&rolled) as Arc<dyn ReadStore>, QueryConfig::default());
        let off = Engine::new(raw, QueryConfig::default());
        for q in ["sum_over_time(x[1d])", "avg_over_time(x[1d])", "max_over_time(x[1d])"] {
            let got = on.query_range(&t, q, DAY, DAY, DAY).unwrap();
            let want = off.query_range(&t, q, DAY, DAY, DAY).unwrap();
            assert_eq!(bits(&got.value), bits(&want.value), "{q}");
        }
        let used = on.stats().rollup_selects_by_tier().into_iter().find(|t| t.0 == "1d").map(|t| t.1);
        // max always; sum and avg only when exact.
        assert_eq!(used, Some(if decimal { 1 } else { 3 }), "decimal: {decimal}, {mode:?}");
        let grids = rolled.grids.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(grids, if mode == Mode::Series { 0 } else { 3 }, "{mode:?}");
        let day = partial_windows(&samples, DAY);
        assert_eq!(day.len(), 1);
        assert_eq!(RollupPoint::sums_exactly(&day), !decimal);
        let naive = kahan_sum(day.iter().map(|p| p.sum));
        assert_eq!(naive.to_bits() != kahan_sum(samples.iter().map(|s| s.value)).to_bits(), decimal);
    }
}

const MODES: [Mode; 3] = [Mode::Series, Mode::Grid { split: false }, Mode::Grid { split: true }];

fn bits(v: &Value) -> Vec<(Labels, Vec<(i64, u64)>)> {
    let canon = |x: f64| if x.is_nan() { f64::NAN.to_bits() } else { x.to_bits() };
    match v {
        Value::Matrix(m) => {
            m.iter().map(|s| (s.labels.clone(), s.samples.iter().map(|p| (p.ts, canon(p.value))).collect())).collect()
        }
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

/// Aggregations over the range function (`{}`): the engine folds the
/// rollup answer into its groups series by series as it comes
/// (`try_stream`).
const AGGS: [&str; 5] =
    ["avg by (s) ({})", "sum({})", "count without (s) ({})", "topk(1, {})", "max by (__name__) ({})"];

/// `AGGS[agg_i]` over `q` answers bit for bit alike with and without rollups.
fn check_aggregated(
    on: &Engine,
    off: &Engine,
    t: &TenantId,
    q: &str,
    agg_i: usize,
    (start, end, step): (i64, i64, i64),
) -> std::result::Result<(), TestCaseError> {
    let q = AGGS[agg_i].replace("{}", q);
    let got = on.query_range(t, &q, start, end, step).unwrap();
    let want = off.query_range(t, &q, start, end, step).unwrap();
    prop_assert_eq!(bits(&got.value), bits(&want.value), "{}", q);
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
        agg_i in 0usize..AGGS.len(),
        mode_i in 0usize..MODES.len(),
    ) {
        let t = TenantId::new("t").unwrap();
        let raw = Arc::new(MemStore::new());
        let exact = !decimal;
        for (s, slot, edge, v) in samples {
            let ts = slot * 5 * MINUTE + [0, 1, 5 * MINUTE - 1][edge as usize];
            let v = value(v, decimal);
            raw.add(&t, Labels::from_pairs([("__name__", "x"), ("s", ["a", "b"][s])]), &[Sample::new(ts, v)]);
        }
        let rolled = Arc::new(Rolled::new(Arc::clone(&raw), covered * 5 * MINUTE, MODES[mode_i]));
        let on = Engine::new(Arc::clone(&rolled) as Arc<dyn ReadStore>, QueryConfig::default());
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
        let grids = rolled.grids.load(std::sync::atomic::Ordering::Relaxed);
        prop_assert_eq!(grids > 0, tier.is_some() && MODES[mode_i] != Mode::Series, "{}: grids answered", q);
        check_aggregated(&on, &off, &t, &q, agg_i, (start, end, step))?;
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
        agg_i in 0usize..AGGS.len(),
        mode_i in 0usize..MODES.len(),
    ) {
        let t = TenantId::new("t").unwrap();
        let raw = Arc::new(MemStore::new());
        let exact = !decimal;
        for (s, slot, edge, v) in samples {
            let ts = slot * HOUR + [0, 1, HOUR - 1][edge as usize];
            let v = value(v, decimal);
            raw.add(&t, Labels::from_pairs([("__name__", "x"), ("s", ["a", "b"][s])]), &[Sample::new(ts, v)]);
        }
        let rolled = Arc::new(Rolled::new(Arc::clone(&raw), covered * HOUR, MODES[mode_i]));
        let on = Engine::new(Arc::clone(&rolled) as Arc<dyn ReadStore>, QueryConfig::default());
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
        let grids = rolled.grids.load(std::sync::atomic::Ordering::Relaxed);
        prop_assert_eq!(grids > 0, tier.is_some() && MODES[mode_i] != Mode::Series, "{}: grids answered", q);
        check_aggregated(&on, &off, &t, &q, agg_i, (start, end, step))?;
    }
}

/// Enough windows (300 series × 400 daily steps, past the range functions'
/// parallel threshold) for `each_grid_series` to compute the step values
/// on a second thread: the answers, per series and aggregated (groups of
/// many series, folded in series order), are bit for bit the raw ones.
#[test]
fn a_grid_of_many_windows_answers_like_raw_samples_on_two_threads() {
    let t = TenantId::new("t").unwrap();
    let raw = Arc::new(MemStore::new());
    let days = 400i64;
    for i in 0..300i64 {
        let samples: Vec<Sample> =
            (0..days).map(|d| Sample::new(d * DAY + MINUTE + i, ((i * 7 + d * 3) % 40) as f64 / 4.0)).collect();
        let labels =
            Labels::from_pairs([("__name__", "x".to_owned()), ("g", format!("{}", i % 7)), ("s", format!("{i:03}"))]);
        raw.add(&t, labels, &samples);
    }
    let rolled = Arc::new(Rolled::new(Arc::clone(&raw), days * DAY, Mode::Grid { split: true }));
    let on = Engine::new(Arc::clone(&rolled) as Arc<dyn ReadStore>, QueryConfig::default());
    let off = Engine::new(raw, QueryConfig::default());
    let queries = [
        "avg_over_time(x[1d])",
        "avg by (g) (avg_over_time(x[1d]))",
        "sum(sum_over_time(x[1d]))",
        "max by (g) (max_over_time(x[1d]))",
    ];
    for q in queries {
        let got = on.query_range(&t, q, DAY, days * DAY, DAY).unwrap();
        let want = off.query_range(&t, q, DAY, days * DAY, DAY).unwrap();
        assert_eq!(bits(&got.value), bits(&want.value), "{q}");
    }
    assert_eq!(rolled.grids.load(std::sync::atomic::Ordering::Relaxed), queries.len(), "each answered from a grid");
}
