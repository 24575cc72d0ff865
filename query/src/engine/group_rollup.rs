//! Aggregations answered from group rollups (a tenant's declared
//! `(metric, by labels)`, stored by the compactor as one rollup series per
//! group with the reserved `__group__` label; cold-tier `FORMAT.md`, "Group
//! rollup tables").
//!
//! ```text
//!  agg by (L) (f(metric[r]))   no offset, no @, the selector names only its metric,
//!                              L without __name__, not `without`, no parameter
//!    (agg, f) ∈ (max, max_over_time) (min, min_over_time) (sum, sum_over_time) (sum, count_over_time)
//!    w = the coarsest rollup width the range, first end and step align with (rollup::plans)
//!    select_rollup([__name__ = metric, __group__ = id(metric, L)], w, ends = [first − r + w, last])
//!      None, or not covering the last step ─► the next width, then the usual evaluation
//!    per group and step: f over its windows ending in (t − r, t]
//!      a value that is NaN or ±0, or (sum) windows whose sums are not provably exact ─► usual evaluation
//!    labels = the group series' labels without __name__ and __group__ (= the aggregation's group)
//! ```
//!
//! Why these are the raw answer bit for bit: a group window holds, over
//! every sample of the group's series in the window, Prometheus's min/max
//! fold (a NaN gives way to any number, a number only to a smaller/larger
//! one: the same for any order of samples and series, except the sign of a
//! zero and the payload of an all-NaN result — those steps are refused), the
//! count (integers, exact) and the sum with the exponent bound
//! `RollupPoint::sums_exactly` checks: when it holds, every partial sum in
//! any order — per series over time, then across series with the
//! aggregation's Kahan sum — is exact, so raw and group sums are the same
//! number. Not answered: `avg` (a mean of per-series means is not a group
//! sum over a group count), `count by` (series per group is not stored),
//! `min by (max_over_time)` and other mixes (a group max is not a max of
//! per-series mins), any other matcher (the group holds every series of the
//! metric).

use std::sync::atomic::{AtomicU64, Ordering};

use promql_parser::parser::token;
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
use strata_schemas::{GROUP_LABEL, Labels, METRIC_NAME, Matcher, RollupPoint, TimeRange, group_rollup_id};

use super::eval::{Evaluator, StepSeries, duration_ms};
use super::range_fns::RangeFn;
use crate::error::Result;

/// Since start, all tenants: aggregations answered from group rollups.
static GROUP_SELECTS: AtomicU64 = AtomicU64::new(0);

/// Aggregations answered from group rollups since start.
pub(crate) fn group_selects() -> u64 {
    GROUP_SELECTS.load(Ordering::Relaxed)
}

/// The shape a group rollup can answer: metric, sorted distinct `by`
/// labels, range function, range.
struct Shape<'a> {
    metric: &'a str,
    by: Vec<&'a str>,
    f: RangeFn,
    range: i64,
}

fn shape(agg: &AggregateExpr) -> Option<Shape<'_>> {
    if agg.param.is_some() {
        return None;
    }
    let mut by: Vec<&str> = match agg.modifier.as_ref() {
        None => Vec::new(),
        Some(LabelModifier::Include(l)) => l.labels.iter().map(String::as_str).collect(),
        Some(LabelModifier::Exclude(_)) => return None,
    };
    if by.iter().any(|l| l.starts_with("__")) {
        return None;
    }
    by.sort_unstable();
    by.dedup();
    let mut expr = agg.expr.as_ref();
    while let Expr::Paren(p) = expr {
        expr = p.expr.as_ref();
    }
    let Expr::Call(call) = expr else { return None };
    let f = match (agg.op.id(), call.func.name) {
        (token::T_MAX, "max_over_time") => RangeFn::Max,
        (token::T_MIN, "min_over_time") => RangeFn::Min,
        (token::T_SUM, "sum_over_time") => RangeFn::Sum,
        (token::T_SUM, "count_over_time") => RangeFn::Count,
        _ => return None,
    };
    let [arg] = call.args.args.as_slice() else { return None };
    let Expr::MatrixSelector(ms) = arg.as_ref() else { return None };
    let vs = &ms.vs;
    if vs.at.is_some() || vs.offset.is_some() || !vs.matchers.or_matchers.is_empty() {
        return None;
    }
    let metric = match &vs.name {
        Some(n) => n.as_str(),
        None => vs.matchers.matchers.iter().find(|m| m.name == METRIC_NAME)?.value.as_str(),
    };
    // Only the metric's own name matcher: the group holds every series of the metric.
    let only_name =
        vs.matchers.matchers.iter().all(|m| {
            m.name == METRIC_NAME && m.value == metric && matches!(m.op, promql_parser::label::MatchOp::Equal)
        });
    if !only_name {
        return None;
    }
    Some(Shape { metric, by, f, range: duration_ms(&ms.range) })
}

/// Evaluates `agg` from a group rollup when its shape matches a declared
/// one and the answer is provably the raw one; `None`: evaluate as usual.
pub(crate) fn try_eval(ev: &Evaluator<'_>, agg: &AggregateExpr) -> Result<Option<Vec<StepSeries>>> {
    if ev.n == 0 || ev.ctx.fed.is_some() {
        return Ok(None);
    }
    let Some(s) = shape(agg) else { return Ok(None) };
    let (first_end, last_end) = (ev.start, ev.ts(ev.n - 1));
    let step = if ev.n > 1 { ev.step } else { 0 };
    let widths = super::rollup::plans(s.f, s.range, first_end, step);
    if widths.is_empty() {
        return Ok(None);
    }
    let id = group_rollup_id(s.metric, &s.by);
    let matchers = [Matcher::equal(METRIC_NAME, s.metric), Matcher::equal(GROUP_LABEL, format!("{id:016x}"))];
    ev.ctx.check_span(first_end - s.range, last_end)?;
    ev.ctx.before_read(TimeRange::new(first_end - s.range, last_end))?;
    for w in widths {
        let ends = TimeRange::new(first_end - s.range + w, last_end);
        let Some(data) = ev.ctx.store.select_rollup(ev.ctx.tenant, &matchers, w, ends)? else { continue };
        if data.covered_end < last_end {
            continue;
        }
        let loaded: usize = data.series.iter().map(|g| g.points.len()).sum();
        ev.ctx.account_series(data.series.len())?;
        ev.ctx.account(loaded)?;
        ev.ctx.check()?;
        let mut out = Vec::with_capacity(data.series.len());
        for g in &data.series {
            if s.f == RangeFn::Sum && !RollupPoint::sums_exactly(&g.points) {
                return Ok(None);
            }
            let values = step_values(ev, s.f, &g.points, s.range);
            // The sign of a zero and a NaN's payload depend on the fold order: raw answers those.
            if values.iter().flatten().any(|v| v.is_nan() || *v == 0.0) {
                return Ok(None);
            }
            if values.iter().any(Option::is_some) {
                out.push(StepSeries::new(group_of(&g.labels), values));
            }
        }
        ev.ctx.reserve(out.len().saturating_mul(ev.n))?;
        GROUP_SELECTS.fetch_add(1, Ordering::Relaxed);
        return Ok(Some(out));
    }
    Ok(None)
}

/// The aggregation's group labels of a group series.
fn group_of(labels: &Labels) -> Labels {
    Labels::new(
        labels.iter().filter(|l| l.name.as_str() != METRIC_NAME && l.name.as_str() != GROUP_LABEL).cloned().collect(),
    )
}

/// Per step `t`, `f` over the windows (sorted by end) ending in `(t − range, t]`.
fn step_values(ev: &Evaluator<'_>, f: RangeFn, points: &[RollupPoint], range: i64) -> Vec<Option<f64>> {
    let (mut lo, mut hi) = (0usize, 0usize);
    (0..ev.n)
        .map(|i| {
            let end = ev.ts(i);
            while hi < points.len() && points[hi].end <= end {
                hi += 1;
            }
            while lo < hi && points[lo].end <= end - range {
                lo += 1;
            }
            let (first, rest) = points[lo..hi].split_first()?;
            Some(match f {
                RangeFn::Max => rest.iter().fold(first.max, |a, p| if p.max > a || a.is_nan() { p.max } else { a }),
                RangeFn::Min => rest.iter().fold(first.min, |a, p| if p.min < a || a.is_nan() { p.min } else { a }),
                RangeFn::Count => (first.count + rest.iter().map(|p| p.count).sum::<u64>()) as f64,
                // Exact (checked): any order of addition gives the same number.
                _ => rest.iter().fold(first.sum, |a, p| a + p.sum),
            })
        })
        .collect()
}
