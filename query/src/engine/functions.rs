//! Function calls: dispatch, instant-vector math, and the scalar/vector helpers.

use super::eval::{Eval, Evaluator, StepSeries, anchor, merge_same_labels, range_fn_output};
use super::range_fns::{self, RangeFn};
use super::{histogram, labels_fn, selector};
use crate::error::{QueryError, Result};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Call, Expr};
use strata_schemas::{Labels, METRIC_NAME};

/// Evaluates a function call.
pub(crate) fn eval_call(ev: &Evaluator<'_>, call: &Call) -> Result<Eval> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    if let Some(f) = RangeFn::lookup(name) {
        return eval_range_fn(ev, f, &args).map(Eval::Vector);
    }
    if let Some(f) = math_fn(name) {
        let v = ev.eval_vector(args[0])?;
        return map_values(ev, v, f).map(Eval::Vector);
    }
    Ok(match name {
        "time" => Eval::Scalar((0..ev.n).map(|i| ev.ts(i) as f64 / 1000.0).collect()),
        // Prometheus's experimental duration-expression helpers.
        "step" => Eval::Scalar(vec![ev.ctx.query_step as f64 / 1000.0; ev.n]),
        "range" => Eval::Scalar(vec![(ev.ctx.query_end - ev.ctx.query_start) as f64 / 1000.0; ev.n]),
        "start" => Eval::Scalar(vec![ev.ctx.query_start as f64 / 1000.0; ev.n]),
        "end" => Eval::Scalar(vec![ev.ctx.query_end as f64 / 1000.0; ev.n]),
        "min_of" | "max_of" => min_max_of(ev, name == "max_of", &args)?,
        "sort_by_label" | "sort_by_label_desc" => {
            warn_sort_in_range(ev, name);
            Eval::Vector(labels_fn::sort_by_label(ev, &args, name == "sort_by_label_desc")?)
        }
        "pi" => Eval::Scalar(vec![std::f64::consts::PI; ev.n]),
        "vector" => {
            let v = ev.eval_scalar(args[0])?;
            Eval::Vector(vec![StepSeries::new(Labels::default(), v.into_iter().map(Some).collect())])
        }
        "scalar" => Eval::Scalar(scalar_of(ev, ev.eval_vector(args[0])?)),
        "timestamp" => Eval::Vector(timestamp(ev, args[0])?),
        "round" => round(ev, &args)?,
        "clamp" | "clamp_min" | "clamp_max" => clamp(ev, name, &args)?,
        "absent" => Eval::Vector(absent(ev, args[0])?),
        "absent_over_time" => Eval::Vector(absent_over_time(ev, args[0])?),
        "label_replace" => Eval::Vector(labels_fn::label_replace(ev, &args)?),
        "label_join" => Eval::Vector(labels_fn::label_join(ev, &args)?),
        "sort" | "sort_desc" => {
            warn_sort_in_range(ev, name);
            Eval::Vector(sort(ev.eval_vector(args[0])?, name == "sort_desc"))
        }
        "histogram_quantile" => Eval::Vector(histogram::histogram_quantile(ev, &args)?),
        "histogram_quantiles" => Eval::Vector(histogram::histogram_quantiles(ev, &args)?),
        "histogram_fraction" => Eval::Vector(histogram::histogram_fraction(ev, &args)?),
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute" | "month" | "year" => {
            Eval::Vector(date_fn(ev, name, &args)?)
        }
        other => return Err(QueryError::Unsupported(format!("function {other}()"))),
    })
}

/// Sorting is lost in range evaluation: Prometheus warns about it.
fn warn_sort_in_range(ev: &Evaluator<'_>, name: &str) {
    if ev.start != ev.end {
        ev.ctx.warn_at(
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels".into(),
            &format!("{name}("),
        );
    }
}

fn min_max_of(ev: &Evaluator<'_>, max: bool, args: &[&Expr]) -> Result<Eval> {
    let mut acc = ev.eval_scalar(args[0])?;
    for a in &args[1..] {
        for (x, y) in acc.iter_mut().zip(ev.eval_scalar(a)?) {
            // Go's math.Min / math.Max propagate NaN.
            *x = if x.is_nan() || y.is_nan() {
                f64::NAN
            } else if max {
                x.max(y)
            } else {
                x.min(y)
            };
        }
    }
    Ok(Eval::Scalar(acc))
}

fn eval_range_fn(ev: &Evaluator<'_>, f: RangeFn, args: &[&Expr]) -> Result<Vec<StepSeries>> {
    let m = f.matrix_arg();
    let param = range_fn_param(ev, f, args)?;
    if let Some(out) = super::rollup::try_eval(ev, f, args[m])? {
        return range_fn_output(ev, !f.keeps_name(), out);
    }
    let counter_anchor = range_fn_notes(ev, f, args, param.as_deref());
    let mut out = Vec::new();
    if let Expr::MatrixSelector(ms) = unwrap_parens(args[m]) {
        // Straight from storage: stream, a chunk of series at a time.
        selector::stream_matrix(ev, ms, stream_chunk_series(ev), |rd| {
            out.extend(range_fns::eval_chunk(ev, f, rd, param.as_deref(), counter_anchor.as_deref())?);
            Ok(())
        })?;
    } else {
        let rd = match ev.eval(args[m])? {
            Eval::Matrix(rd) => rd,
            other => return Err(QueryError::bad(format!("expected range vector, got {}", other.type_name()))),
        };
        out = range_fns::eval_chunk(ev, f, rd, param.as_deref(), counter_anchor.as_deref())?;
    }
    range_fn_output(ev, !f.keeps_name(), out)
}

/// How [`stream_range_fn`] answered.
pub(crate) enum RangeFnStream {
    /// Every series went to the callback (from raw samples or a rollup tier).
    Streamed(RangeFn),
}

/// A range function straight over a selector that names its metric (e.g.
/// `avg_over_time(m{a="b"}[5m])`), for an aggregation to fold: `each` gets
/// every series with a value at some step, in storage order, with its own
/// labels (the metric name still there: the caller drops it where the
/// function does, see [`RangeFn::keeps_name`]) and its step points.
/// Dropping the one shared name cannot make two label sets equal, so no
/// merge is needed and the sequence is exactly what [`eval_call`] returns,
/// with the same limits charged and the same annotations. `None`, before
/// evaluating anything, for any other shape.
pub(crate) fn stream_range_fn(
    ev: &Evaluator<'_>,
    call: &Call,
    each: &mut dyn FnMut(Labels, Vec<Option<f64>>) -> Result<()>,
) -> Result<Option<RangeFnStream>> {
    let Some(f) = RangeFn::lookup(call.func.name) else { return Ok(None) };
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    let m = f.matrix_arg();
    let Some(Expr::MatrixSelector(ms)) = args.get(m).map(|a| unwrap_parens(a)) else { return Ok(None) };
    let names_metric = ms.vs.name.is_some()
        || ms.vs.matchers.matchers.iter().any(|x| x.name == METRIC_NAME && matches!(x.op, PMatchOp::Equal));
    if !names_metric || !ms.vs.matchers.or_matchers.is_empty() {
        return Ok(None);
    }
    let param = range_fn_param(ev, f, &args)?;
    if super::rollup::try_stream(ev, f, args[m], each)? {
        return Ok(Some(RangeFnStream::Streamed(f)));
    }
    let counter_anchor = range_fn_notes(ev, f, &args, param.as_deref());
    selector::stream_matrix(ev, ms, stream_chunk_series(ev), |rd| {
        range_fns::eval_chunk_each(ev, f, rd, param.as_deref(), counter_anchor.as_deref(), &mut |labels, points, _| {
            each(labels, points)
        })
    })?;
    Ok(Some(RangeFnStream::Streamed(f)))
}

/// The scalar parameter of a range function per step (φ, t, the two Holt
/// factors interleaved), checked.
fn range_fn_param(ev: &Evaluator<'_>, f: RangeFn, args: &[&Expr]) -> Result<Option<Vec<f64>>> {
    Ok(match f {
        RangeFn::Quantile => Some(ev.eval_scalar(args[0])?),
        RangeFn::PredictLinear => Some(ev.eval_scalar(args[1])?),
        RangeFn::Holt => {
            let sf = ev.eval_scalar(args[1])?;
            let tf = ev.eval_scalar(args[2])?;
            for (&s, &t) in sf.iter().zip(&tf) {
                if s <= 0.0 || s >= 1.0 {
                    return Err(QueryError::exec(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {s:.6}"
                    )));
                }
                if t <= 0.0 || t >= 1.0 {
                    return Err(QueryError::exec(format!("invalid trend factor. Expected: 0 < tf < 1, got: {t:.6}")));
                }
            }
            // Both factors travel in one vector: sf at even, tf at odd indices.
            Some(sf.iter().zip(&tf).flat_map(|(s, t)| [*s, *t]).collect())
        }
        _ => None,
    })
}

/// The quantile-range warning, and where the "might not be a counter" info
/// of rate/increase over a selector points (its anchor).
fn range_fn_notes(ev: &Evaluator<'_>, f: RangeFn, args: &[&Expr], param: Option<&[f64]>) -> Option<String> {
    if f == RangeFn::Quantile
        && let Some(q) = param.and_then(|p| p.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0))
    {
        ev.ctx.warn_at(format!("PromQL warning: quantile value should be between 0 and 1, got {q}"), &anchor(args[0]));
    }
    // Prometheus's "might not be a counter" info applies to rate/increase over a selector.
    match unwrap_parens(args[f.matrix_arg()]) {
        e @ Expr::MatrixSelector(_) if matches!(f, RangeFn::Rate | RangeFn::Increase) => Some(anchor(e)),
        _ => None,
    }
}

/// Series per chunk when a range function streams its selector: enough for
/// the parallel split over series to pay, small enough that raw samples of
/// a million-series query are never all in memory.
const STREAM_CHUNK_SERIES: usize = 16_384;

/// Series per chunk when even a full chunk of [`STREAM_CHUNK_SERIES`] would
/// stay below the parallel split (few steps: an instant query's range
/// function): small, so a chunk's raw samples stay in cache and their
/// memory is reused by the next chunk instead of faulted in afresh.
const SMALL_CHUNK_SERIES: usize = 256;

/// The chunk size for a range function streamed at `ev`'s steps.
fn stream_chunk_series(ev: &Evaluator<'_>) -> usize {
    if ev.n.saturating_mul(STREAM_CHUNK_SERIES) < range_fns::PARALLEL_MIN_WINDOWS {
        SMALL_CHUNK_SERIES
    } else {
        STREAM_CHUNK_SERIES
    }
}

/// Whether `name` is one of the element-wise math functions (`abs`, `exp`, `sin`, ...).
pub(crate) fn is_math_fn(name: &str) -> bool {
    math_fn(name).is_some()
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        _ => return None,
    })
}

/// Applies `f` to every value and drops the metric name.
pub(crate) fn map_values(
    ev: &Evaluator<'_>,
    mut v: Vec<StepSeries>,
    f: impl Fn(f64) -> f64,
) -> Result<Vec<StepSeries>> {
    for s in &mut v {
        ev.ctx.drop_name(s);
        s.points.iter_mut().flatten().for_each(|x| *x = f(*x));
    }
    merge_same_labels(v)
}

/// `scalar(v)`: the single element's value, or NaN.
fn scalar_of(ev: &Evaluator<'_>, v: Vec<StepSeries>) -> Vec<f64> {
    (0..ev.n)
        .map(|i| {
            let mut it = v.iter().filter_map(|s| s.points[i]);
            match (it.next(), it.next()) {
                (Some(x), None) => x,
                _ => f64::NAN,
            }
        })
        .collect()
}

fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn timestamp(ev: &Evaluator<'_>, arg: &Expr) -> Result<Vec<StepSeries>> {
    if let Expr::VectorSelector(vs) = unwrap_parens(arg) {
        let v = selector::eval_vector(ev, vs, true)?;
        return map_values(ev, v, |x| x);
    }
    let mut v = ev.eval_vector(arg)?;
    for s in &mut v {
        for (i, p) in s.points.iter_mut().enumerate() {
            if p.is_some() {
                *p = Some(ev.ts(i) as f64 / 1000.0);
            }
        }
    }
    map_values(ev, v, |x| x)
}

fn round(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Eval> {
    let mut v = ev.eval_vector(args[0])?;
    let to_nearest = match args.get(1) {
        Some(e) => ev.eval_scalar(e)?,
        None => vec![1.0; ev.n],
    };
    for s in &mut v {
        ev.ctx.drop_name(s);
        for (i, p) in s.points.iter_mut().enumerate() {
            if let Some(x) = p {
                let inv = 1.0 / to_nearest[i];
                *x = (*x * inv + 0.5).floor() / inv;
            }
        }
    }
    Ok(Eval::Vector(merge_same_labels(v)?))
}

fn clamp(ev: &Evaluator<'_>, name: &str, args: &[&Expr]) -> Result<Eval> {
    let mut v = ev.eval_vector(args[0])?;
    let (lo, hi) = match name {
        "clamp" => (ev.eval_scalar(args[1])?, ev.eval_scalar(args[2])?),
        "clamp_min" => (ev.eval_scalar(args[1])?, vec![f64::INFINITY; ev.n]),
        _ => (vec![f64::NEG_INFINITY; ev.n], ev.eval_scalar(args[1])?),
    };
    for s in &mut v {
        ev.ctx.drop_name(s);
        for (i, p) in s.points.iter_mut().enumerate() {
            if hi[i] < lo[i] {
                *p = None;
            } else if let Some(x) = p {
                // Go's math.Max/Min propagate NaN.
                *x = if x.is_nan() { *x } else { lo[i].max(hi[i].min(*x)) };
                if lo[i].is_nan() || hi[i].is_nan() {
                    *x = f64::NAN;
                }
            }
        }
    }
    v.retain(|s| s.points.iter().any(Option::is_some));
    Ok(Eval::Vector(merge_same_labels(v)?))
}

/// Labels of `absent(selector)`, as Prometheus's `createLabelsForAbsentFunction`
/// (promql/functions.go) builds them: the matchers in their written order,
/// where the first equality matcher of a label sets it and every other matcher
/// of that label (an earlier or later `!=`, `=~`, `!~`, or a second `=`)
/// removes it. So `{zone!="z2",zone="z2"}` gives `zone="z2"` and
/// `{zone="z2",zone!="z2"}` gives no `zone`.
fn absent_labels(arg: &Expr) -> Labels {
    let vs = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut labels = Labels::default();
    // Labels an equality matcher has set (Prometheus's `has` map).
    let mut set_once: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == PMatchOp::Equal && !set_once.contains(&m.name.as_str()) {
            labels.set(&m.name, &m.value);
            set_once.push(&m.name);
        } else {
            labels.remove(&m.name);
        }
    }
    labels
}

fn absent(ev: &Evaluator<'_>, arg: &Expr) -> Result<Vec<StepSeries>> {
    let v = ev.eval_vector(arg)?;
    let points: Vec<Option<f64>> =
        (0..ev.n).map(|i| (!v.iter().any(|s| s.points[i].is_some())).then_some(1.0)).collect();
    Ok(one_series(absent_labels(arg), points))
}

fn absent_over_time(ev: &Evaluator<'_>, arg: &Expr) -> Result<Vec<StepSeries>> {
    let rd = match ev.eval(arg)? {
        Eval::Matrix(rd) => rd,
        other => return Err(QueryError::bad(format!("expected range vector, got {}", other.type_name()))),
    };
    let mut present = vec![false; ev.n];
    for s in &rd.series {
        rd.for_each_window(ev, &s.samples, |i, w, _| present[i] |= !w.is_empty());
    }
    let points = present.into_iter().map(|p| (!p).then_some(1.0)).collect();
    Ok(one_series(absent_labels(arg), points))
}

fn one_series(labels: Labels, points: Vec<Option<f64>>) -> Vec<StepSeries> {
    if points.iter().all(Option::is_none) {
        return Vec::new();
    }
    vec![StepSeries::new(labels, points)]
}

/// `sort` / `sort_desc` order the elements of an instant query by value, NaN last.
fn sort(mut v: Vec<StepSeries>, desc: bool) -> Vec<StepSeries> {
    v.sort_by(|a, b| {
        let (x, y) = (a.points[0].unwrap_or(f64::NAN), b.points[0].unwrap_or(f64::NAN));
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
            _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        }
    });
    v
}

fn date_fn(ev: &Evaluator<'_>, name: &str, args: &[&Expr]) -> Result<Vec<StepSeries>> {
    let v = match args.first() {
        Some(e) => ev.eval_vector(e)?,
        None => {
            let points = (0..ev.n).map(|i| Some(ev.ts(i) as f64 / 1000.0)).collect();
            vec![StepSeries::new(Labels::default(), points)]
        }
    };
    let f = match name {
        "day_of_month" => |c: Civil| c.day as f64,
        "day_of_week" => |c: Civil| c.weekday as f64,
        "day_of_year" => |c: Civil| c.yday as f64,
        "days_in_month" => |c: Civil| c.days_in_month as f64,
        "hour" => |c: Civil| c.hour as f64,
        "minute" => |c: Civil| c.minute as f64,
        "month" => |c: Civil| c.month as f64,
        _ => |c: Civil| c.year as f64,
    };
    map_values(ev, v, |x| if x.is_finite() { f(Civil::from_secs(x.floor() as i64)) } else { f64::NAN })
}

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) yday: u32,
    pub(crate) weekday: u32,
    pub(crate) days_in_month: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
}

impl Civil {
    /// Howard Hinnant's civil-from-days.
    pub(crate) fn from_secs(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let dim = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let yday = dim[..(month - 1) as usize].iter().sum::<u32>() + day;
        Self {
            year,
            month,
            day,
            yday,
            weekday: (days + 4).rem_euclid(7) as u32,
            days_in_month: dim[(month - 1) as usize],
            hour: (sod / 3600) as u32,
            minute: (sod % 3600 / 60) as u32,
        }
    }
}
