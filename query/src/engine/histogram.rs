//! `histogram_quantile` over classic (`le`-labelled) bucket series.

use super::eval::{Evaluator, StepSeries, anchor, merge_same_labels};
use super::stats::format_go_f;
use crate::error::Result;
use promql_parser::parser::Expr;
use std::collections::HashMap;
use strata_schemas::Labels;

/// Relative tolerance under which a decrease between buckets is treated as float noise.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// What to compute from one group's buckets at one step.
enum BucketFn<'q> {
    /// `histogram_quantile(φ, v)`: one output per group.
    Quantile(&'q [f64]),
    /// `histogram_quantiles(v, label, φ...)`: one output per group and φ, labelled `label="φ"`.
    Quantiles(String, Vec<f64>),
    /// `histogram_fraction(lower, upper, v)`.
    Fraction(&'q [f64], &'q [f64]),
}

/// `histogram_quantile(φ, buckets)`: groups bucket series by their labels
/// without `le`, then interpolates within the bucket holding rank φ·count.
pub(crate) fn histogram_quantile(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Vec<StepSeries>> {
    let q = ev.eval_scalar(args[0])?;
    warn_quantiles(ev, &q, args[0]);
    classic(ev, args[1], BucketFn::Quantile(&q))
}

/// `histogram_quantiles(buckets, "label", φ1, φ2, ...)` (experimental in Prometheus).
pub(crate) fn histogram_quantiles(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Vec<StepSeries>> {
    let label = ev.eval_string(args[1])?;
    let mut qs = Vec::with_capacity(args.len() - 2);
    for a in &args[2..] {
        let q = ev.eval_scalar(a)?;
        warn_quantiles(ev, &q, a);
        qs.push(q.first().copied().unwrap_or(f64::NAN));
    }
    classic(ev, args[0], BucketFn::Quantiles(label, qs))
}

/// `histogram_fraction(lower, upper, buckets)`.
pub(crate) fn histogram_fraction(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Vec<StepSeries>> {
    let lower = ev.eval_scalar(args[0])?;
    let upper = ev.eval_scalar(args[1])?;
    classic(ev, args[2], BucketFn::Fraction(&lower, &upper))
}

fn warn_quantiles(ev: &Evaluator<'_>, q: &[f64], arg: &Expr) {
    if let Some(q) = q.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0) {
        ev.ctx.warn_at(
            format!("PromQL warning: quantile value should be between 0 and 1, got {}", format_go_f(*q)),
            &anchor(arg),
        );
    }
}

/// Go's `strconv.FormatFloat(q, 'f', -1, 64)` with a `.0` for integers, as Prometheus labels quantiles.
fn quantile_label(q: f64) -> String {
    let s = format_go_f(q);
    if s.chars().all(|c| c.is_ascii_digit() || c == '-') { format!("{s}.0") } else { s }
}

fn classic(ev: &Evaluator<'_>, arg: &Expr, f: BucketFn<'_>) -> Result<Vec<StepSeries>> {
    let v = ev.eval_vector(arg)?;
    let at = anchor(arg);
    let mut groups: HashMap<Labels, usize> = HashMap::new();
    let mut members: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (idx, s) in v.iter().enumerate() {
        let Some(le) = s.labels.get("le").and_then(parse_le) else {
            ev.ctx.warn_at(
                format!(
                    "PromQL warning: bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                    s.labels.get("le").unwrap_or(""),
                    s.labels.metric_name()
                ),
                &at,
            );
            continue;
        };
        let mut key = s.labels.clone();
        key.remove("le");
        let g = *groups.entry(key.clone()).or_insert_with(|| {
            members.push((key, Vec::new()));
            members.len() - 1
        });
        members[g].1.push((le, idx));
    }
    let mut out = Vec::with_capacity(members.len());
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let outputs: Vec<Option<f64>> = match &f {
        BucketFn::Quantiles(_, qs) => qs.iter().map(|q| Some(*q)).collect(),
        _ => vec![None],
    };
    for (labels, m) in members {
        for q_fixed in &outputs {
            let mut points = vec![None; ev.n];
            for (i, p) in points.iter_mut().enumerate() {
                buckets.clear();
                buckets.extend(m.iter().filter_map(|&(le, idx)| v[idx].points[i].map(|c| (le, c))));
                if buckets.is_empty() {
                    continue;
                }
                let (value, forced) = match &f {
                    BucketFn::Quantile(q) => bucket_quantile(q[i], &mut buckets),
                    BucketFn::Quantiles(..) => bucket_quantile(q_fixed.unwrap_or(f64::NAN), &mut buckets),
                    BucketFn::Fraction(lo, hi) => (bucket_fraction(lo[i], hi[i], &mut buckets), false),
                };
                if forced {
                    ev.ctx.info_at(
                        format!(
                            "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                            labels.metric_name()
                        ),
                        &at,
                    );
                }
                *p = Some(value);
            }
            let mut series = StepSeries::new(labels.clone(), points);
            if let (BucketFn::Quantiles(label, _), Some(q)) = (&f, q_fixed) {
                series.labels.set(label, &quantile_label(*q));
            }
            ev.ctx.drop_name(&mut series);
            out.push(series);
        }
    }
    merge_same_labels(out)
}

/// Prometheus's `BucketFraction`: the estimated share of observations in `[lower, upper]`.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    coalesce(buckets);
    ensure_monotonic(buckets);
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, &(upper_bound, c)) in buckets.iter().enumerate() {
        let lower_bound = if i > 0 {
            buckets[i - 1].0
        } else if upper_bound > 0.0 {
            // The first bucket of a positive histogram starts at zero.
            0.0
        } else {
            f64::NEG_INFINITY
        };
        // No interpolation within a bucket of infinite width: a value inside it
        // counts as being at the bucket's finite edge.
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                c
            } else if upper_bound == f64::INFINITY {
                rank
            } else {
                rank + (c - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = c;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

fn coalesce(buckets: &mut Vec<(f64, f64)>) {
    buckets.dedup_by(|cur, prev| {
        let same = cur.0 == prev.0;
        if same {
            prev.1 += cur.1;
        }
        same
    });
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        _ => s.parse().ok(),
    }
}

/// Prometheus's `BucketQuantile` for `(upper_bound, cumulative_count)` pairs;
/// also reports whether the counts had to be forced monotonic.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    coalesce(buckets);
    let forced = ensure_monotonic(buckets);
    (bucket_quantile_sorted(q, buckets), forced)
}

fn bucket_quantile_sorted(q: f64, buckets: &[(f64, f64)]) -> f64 {
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|x| x.1 < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Evens out float noise and forces the counts monotonic; true when a real decrease was fixed.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) -> bool {
    let mut forced = false;
    let mut prev = buckets.first().map_or(0.0, |b| b.1);
    for b in buckets.iter_mut().skip(1) {
        let cur = b.1;
        if cur == prev {
            continue;
        }
        if (cur - prev).abs() / cur.abs().max(prev.abs()) <= SMALL_DELTA_TOLERANCE {
            b.1 = prev;
        } else if cur < prev {
            b.1 = prev;
            forced = true;
        } else {
            prev = cur;
        }
    }
    forced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_within_bucket() {
        let mut b = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        // rank 20 lies in (0.1, 0.5]: 0.1 + 0.4 * (10 / 20)
        assert!((bucket_quantile(0.5, &mut b).0 - 0.3).abs() < 1e-12);
        let mut b = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        assert_eq!(bucket_quantile(0.99, &mut b).0, 0.5);
        let mut b = vec![(0.1, 10.0)];
        assert!(bucket_quantile(0.5, &mut b).0.is_nan());
    }
}
