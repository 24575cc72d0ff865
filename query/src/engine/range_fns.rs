//! Functions over range vectors: the rate family and `*_over_time`.
//!
//! Each function sees one left-open window `(end - range, end]` of one series
//! at a time, as a borrowed slice of the fetched samples (no copying).

use super::eval::{Evaluator, RangeData, StepSeries, Windows};
use super::stats::{Mean, kahan_sum, linear_regression, quantile, variance};
use crate::error::Result;
use strata_schemas::{Sample, SeriesData};

/// A function taking a range vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Last,
    First,
    Present,
    Quantile,
    Stddev,
    Stdvar,
    Mad,
    Changes,
    Resets,
    Deriv,
    PredictLinear,
    TsOfFirst,
    TsOfLast,
    TsOfMin,
    TsOfMax,
    /// `double_exponential_smoothing` (Holt linear), experimental in Prometheus.
    Holt,
}

impl RangeFn {
    pub(crate) fn lookup(name: &str) -> Option<Self> {
        use RangeFn::*;
        Some(match name {
            "rate" => Rate,
            "increase" => Increase,
            "delta" => Delta,
            "irate" => Irate,
            "idelta" => Idelta,
            "avg_over_time" => Avg,
            "min_over_time" => Min,
            "max_over_time" => Max,
            "sum_over_time" => Sum,
            "count_over_time" => Count,
            "last_over_time" => Last,
            "first_over_time" => First,
            "present_over_time" => Present,
            "quantile_over_time" => Quantile,
            "stddev_over_time" => Stddev,
            "stdvar_over_time" => Stdvar,
            "mad_over_time" => Mad,
            "changes" => Changes,
            "resets" => Resets,
            "deriv" => Deriv,
            "predict_linear" => PredictLinear,
            "ts_of_first_over_time" => TsOfFirst,
            "ts_of_last_over_time" => TsOfLast,
            "ts_of_min_over_time" => TsOfMin,
            "ts_of_max_over_time" => TsOfMax,
            "double_exponential_smoothing" => Holt,
            _ => return None,
        })
    }

    /// Whether the matrix argument comes first (`quantile_over_time` takes φ first).
    pub(crate) fn matrix_arg(self) -> usize {
        usize::from(self == RangeFn::Quantile)
    }

    pub(crate) fn keeps_name(self) -> bool {
        matches!(self, RangeFn::Last | RangeFn::First)
    }
}

/// The geometry of one window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    end: i64,
    range_secs: f64,
    /// The step's evaluation time (for `predict_linear`).
    t: i64,
}

/// Applies `f` to every window of every series of one chunk of a range
/// vector (`param` is the scalar argument per step: φ for quantile, t for
/// predict_linear). The caller checks or merges series whose labels became
/// equal (name dropping) once all chunks are in
/// ([`super::eval::range_fn_output`]).
pub(crate) fn eval_chunk(
    ev: &Evaluator<'_>,
    f: RangeFn,
    rd: RangeData,
    param: Option<&[f64]>,
    counter_anchor: Option<&str>,
) -> Result<Vec<StepSeries>> {
    let mut out = Vec::with_capacity(rd.series.len());
    eval_chunk_each(ev, f, rd, param, counter_anchor, &mut |labels, points, drop_name| {
        let mut series = StepSeries::new(labels, points);
        series.drop_name = drop_name;
        if !f.keeps_name() {
            ev.ctx.drop_name(&mut series);
        }
        out.push(series);
        Ok(())
    })?;
    Ok(out)
}

/// [`eval_chunk`] without building the output: `each` gets every series
/// with a value at some step, in order, with its labels as read (the metric
/// name not dropped yet), its points and whether it carries a pending name
/// drop. Charges the limits as [`eval_chunk`] does.
pub(crate) fn eval_chunk_each(
    ev: &Evaluator<'_>,
    f: RangeFn,
    rd: RangeData,
    param: Option<&[f64]>,
    counter_anchor: Option<&str>,
    each: &mut dyn FnMut(strata_schemas::Labels, Vec<Option<f64>>, bool) -> Result<()>,
) -> Result<()> {
    let geo = rd.geometry(ev);
    // Every series gets a grid of every step: checked before they are
    // built, the kept ones charged below.
    ev.ctx.reserve(rd.series.len().saturating_mul(geo.n))?;
    let all_points = compute_all(ev, geo, f, &rd.series, param)?;
    let mut kept = 0usize;
    let drops: Vec<bool> = (0..rd.series.len()).map(|i| rd.drops_name(i)).collect();
    for ((s, points), drop_name) in rd.series.into_iter().zip(all_points).zip(drops) {
        if points.iter().any(Option::is_some) {
            // The name is looked up only when the info applies (rate/increase).
            if let Some(at) = counter_anchor
                && let Some(name) = s.labels.get(strata_schemas::METRIC_NAME)
                && !["_total", "_sum", "_count", "_bucket"].iter().any(|suffix| name.ends_with(suffix))
            {
                ev.ctx.info_at(
                    format!(
                        "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
                    ),
                    at,
                );
            }
            kept += 1;
            each(s.labels, points, drop_name)?;
        }
    }
    ev.ctx.account(kept.saturating_mul(geo.n))?;
    Ok(())
}

/// Windows (series × steps) above which the series are split across threads.
pub(crate) const PARALLEL_MIN_WINDOWS: usize = 100_000;

/// The points of every series, in parallel over series when there is enough work.
fn compute_all(
    ev: &Evaluator<'_>,
    geo: Windows,
    f: RangeFn,
    series: &[SeriesData],
    param: Option<&[f64]>,
) -> Result<Vec<Vec<Option<f64>>>> {
    // Asked once: `available_parallelism` reads cgroup files on every call
    // (tens of microseconds, a fifth of a one-device query).
    static THREADS: std::sync::LazyLock<usize> =
        std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(8));
    let threads = *THREADS;
    if threads < 2 || series.len() < 2 * threads || series.len() * geo.n < PARALLEL_MIN_WINDOWS {
        let mut scratch = Vec::new();
        let mut out = Vec::with_capacity(series.len());
        for (i, s) in series.iter().enumerate() {
            // The clock is read every 64 series, not per series (a fleet
            // instant query does a few hundred nanoseconds of work per series).
            if i % 64 == 0 {
                ev.ctx.check()?;
            }
            out.push(series_points(geo, f, s, param, &mut scratch));
        }
        return Ok(out);
    }
    let stop = ev.ctx.stop();
    let chunk = series.len().div_ceil(threads);
    let parts: Vec<Vec<Vec<Option<f64>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = series
            .chunks(chunk)
            .map(|part| {
                let stop = stop.clone();
                scope.spawn(move || {
                    let mut scratch = Vec::new();
                    let mut out = Vec::with_capacity(part.len());
                    for (i, s) in part.iter().enumerate() {
                        if i % 64 == 0 && stop.stopped() {
                            break;
                        }
                        out.push(series_points(geo, f, s, param, &mut scratch));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    ev.ctx.check()?;
    let out: Vec<Vec<Option<f64>>> = parts.into_iter().flatten().collect();
    if out.len() != series.len() {
        return Err(crate::error::QueryError::Internal("a worker thread of a range function failed".into()));
    }
    Ok(out)
}

/// One series' value per step.
fn series_points(
    geo: Windows,
    f: RangeFn,
    s: &SeriesData,
    param: Option<&[f64]>,
    scratch: &mut Vec<f64>,
) -> Vec<Option<f64>> {
    let mut points = vec![None; geo.n];
    geo.for_each_window(&s.samples, |i, w, end| {
        if w.is_empty() {
            return;
        }
        let win = Window { start: end - geo.range, end, range_secs: geo.range as f64 / 1000.0, t: geo.ts(i) };
        let (p, p2) = match (param, f) {
            (Some(p), RangeFn::Holt) => (p[2 * i], p[2 * i + 1]),
            (Some(p), _) => (p[i], 0.0),
            (None, _) => (0.0, 0.0),
        };
        points[i] = apply(f, w, win, (p, p2), scratch);
    });
    points
}

fn apply(f: RangeFn, w: &[Sample], win: Window, (p, p2): (f64, f64), scratch: &mut Vec<f64>) -> Option<f64> {
    use RangeFn::*;
    let values = || w.iter().map(|s| s.value);
    Some(match f {
        Rate => extrapolated_rate(w, win, true, true)?,
        Increase => extrapolated_rate(w, win, true, false)?,
        Delta => extrapolated_rate(w, win, false, false)?,
        Irate => instant_value(w, true)?,
        Idelta => instant_value(w, false)?,
        Avg => {
            let mut m = Mean::default();
            values().for_each(|v| m.add(v));
            m.value()
        }
        Min => values().fold(w[0].value, |acc, v| if v < acc || acc.is_nan() { v } else { acc }),
        Max => values().fold(w[0].value, |acc, v| if v > acc || acc.is_nan() { v } else { acc }),
        Sum => kahan_sum(values()),
        Count => w.len() as f64,
        Last => w[w.len() - 1].value,
        First => w[0].value,
        Present => 1.0,
        Quantile => {
            scratch.clear();
            scratch.extend(values());
            quantile(p, scratch)
        }
        Stddev => variance(values()).sqrt(),
        Stdvar => variance(values()),
        Mad if w.iter().any(|s| s.value.is_nan()) => f64::NAN,
        Mad => {
            scratch.clear();
            scratch.extend(values());
            let median = quantile(0.5, scratch);
            scratch.iter_mut().for_each(|v| *v = (*v - median).abs());
            quantile(0.5, scratch)
        }
        Changes => count_pairs(w, |prev, cur| !(cur == prev || (cur.is_nan() && prev.is_nan()))),
        Resets => count_pairs(w, |prev, cur| cur < prev),
        Deriv => {
            if w.len() < 2 {
                return None;
            }
            linear_regression(w, w[0].ts).0
        }
        PredictLinear => {
            if w.len() < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(w, win.t);
            intercept + slope * p
        }
        Holt => holt(w, p, p2)?,
        TsOfFirst => w[0].ts as f64 / 1000.0,
        TsOfLast => w[w.len() - 1].ts as f64 / 1000.0,
        TsOfMin => ts_of_extreme(w, |cur, best| cur <= best)?,
        TsOfMax => ts_of_extreme(w, |cur, best| cur >= best)?,
    })
}

/// Prometheus's `funcDoubleExponentialSmoothing`: smoothing factor `sf`, trend factor `tf`.
fn holt(w: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, w[0].value);
    let mut b = w[1].value - w[0].value;
    for (i, s) in w.iter().enumerate().skip(1) {
        let x = sf * s.value;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

/// Timestamp (s) of the last sample that wins `better` (NaN always loses), Prometheus's `compareOverTime`.
fn ts_of_extreme(w: &[Sample], better: impl Fn(f64, f64) -> bool) -> Option<f64> {
    let (mut best, mut ts) = (w[0].value, w[0].ts);
    for s in w {
        if better(s.value, best) || best.is_nan() {
            (best, ts) = (s.value, s.ts);
        }
    }
    Some(ts as f64 / 1000.0)
}

fn count_pairs(w: &[Sample], pred: impl Fn(f64, f64) -> bool) -> f64 {
    w.windows(2).filter(|p| pred(p[0].value, p[1].value)).count() as f64
}

/// Prometheus's `extrapolatedRate` for floats.
fn extrapolated_rate(w: &[Sample], win: Window, is_counter: bool, is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.value - first.value;
    if is_counter {
        for p in w.windows(2) {
            if p[1].value < p[0].value {
                result += p[0].value;
            }
        }
    }
    let mut to_start = (first.ts - win.start) as f64 / 1000.0;
    let mut to_end = (win.end - last.ts) as f64 / 1000.0;
    let sampled = (last.ts - first.ts) as f64 / 1000.0;
    let avg_between = sampled / (w.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if to_start >= threshold {
        to_start = avg_between / 2.0;
    }
    if is_counter && result > 0.0 && first.value >= 0.0 {
        let to_zero = sampled * (first.value / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= win.range_secs;
    }
    Some(result * factor)
}

/// Prometheus's `instantValue` (irate / idelta) for floats.
fn instant_value(w: &[Sample], is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let interval = last.ts - prev.ts;
    if interval == 0 {
        return None;
    }
    let mut v = last.value;
    if !is_rate || last.value.partial_cmp(&prev.value) != Some(std::cmp::Ordering::Less) {
        v = last.value - prev.value;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}
