//! `histogram_quantile` over classic (`le`-labelled) bucket series.

use super::eval::{Evaluator, StepSeries, merge_same_labels};
use crate::error::Result;
use promql_parser::parser::Expr;
use std::collections::HashMap;
use strata_schemas::{Labels, METRIC_NAME};

/// Relative tolerance under which a decrease between buckets is treated as float noise.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// `histogram_quantile(φ, buckets)`: groups bucket series by their labels
/// without `le` and `__name__`, then interpolates within the bucket holding rank φ·count.
pub(crate) fn histogram_quantile(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Vec<StepSeries>> {
    let q = ev.eval_scalar(args[0])?;
    let v = ev.eval_vector(args[1])?;
    let mut groups: HashMap<Labels, usize> = HashMap::new();
    let mut members: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    for (idx, s) in v.iter().enumerate() {
        let Some(le) = s.labels.get("le").and_then(parse_le) else {
            ev.ctx.warn(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                s.labels.get("le").unwrap_or(""),
                s.labels.metric_name()
            ));
            continue;
        };
        let mut key = s.labels.clone();
        key.remove("le");
        key.remove(METRIC_NAME);
        let g = *groups.entry(key.clone()).or_insert_with(|| {
            members.push((key, Vec::new()));
            members.len() - 1
        });
        members[g].1.push((le, idx));
    }
    let mut out = Vec::with_capacity(members.len());
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (labels, m) in members {
        let mut points = vec![None; ev.n];
        for (i, p) in points.iter_mut().enumerate() {
            buckets.clear();
            buckets.extend(m.iter().filter_map(|&(le, idx)| v[idx].points[i].map(|c| (le, c))));
            if !buckets.is_empty() {
                *p = Some(bucket_quantile(q[i], &mut buckets));
            }
        }
        out.push(StepSeries { labels, points });
    }
    merge_same_labels(out)
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        _ => s.parse().ok(),
    }
}

/// Prometheus's `BucketQuantile` for `(upper_bound, cumulative_count)` pairs.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    buckets.dedup_by(|cur, prev| {
        let same = cur.0 == prev.0;
        if same {
            prev.1 += cur.1;
        }
        same
    });
    ensure_monotonic(buckets);
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

fn ensure_monotonic(buckets: &mut [(f64, f64)]) {
    let mut prev = buckets.first().map_or(0.0, |b| b.1);
    for b in buckets.iter_mut().skip(1) {
        let cur = b.1;
        if cur == prev {
            continue;
        }
        if (cur - prev).abs() / cur.abs().max(prev.abs()) <= SMALL_DELTA_TOLERANCE || cur < prev {
            b.1 = prev;
        } else {
            prev = cur;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_within_bucket() {
        let mut b = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        // rank 20 lies in (0.1, 0.5]: 0.1 + 0.4 * (10 / 20)
        assert!((bucket_quantile(0.5, &mut b) - 0.3).abs() < 1e-12);
        let mut b = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        assert_eq!(bucket_quantile(0.99, &mut b), 0.5);
        let mut b = vec![(0.1, 10.0)];
        assert!(bucket_quantile(0.5, &mut b).is_nan());
    }
}
