//! Federation's plan inside the evaluator: which aggregations are push
//! points, their partial aggregations, and the exact combination of the
//! partials (see [`crate::federation`] for the contract and the rules).
//!
//! ```text
//!  AGG by (g) (e)    e series-local, AGG decomposable, aggregates-only jurisdictions exist
//!        │
//!        ├─ partials P1..Pk (PromQL text, each `check_pushable`)
//!        │     ├─ here: e evaluated once over the raw-reachable store, P1..Pk applied to it
//!        │     └─ each aggregates-only jurisdiction: FederatedQuery::partials(P1..Pk, grid)
//!        └─ combine: sum/count/count_values add, min/max fold, group is 1,
//!                    avg from (sum, count, avg), stddev/stdvar Chan-merge (count, avg, stdvar),
//!                    topk/bottomk rerun over the union of partial winners
//! ```

use super::eval::{Evaluator, StepSeries};
use super::range_fns::RangeFn;
use super::stats::kahan_inc;
use super::{aggregate, cleanup_vector, functions};
use crate::error::{QueryError, Result};
use crate::federation::{FederatedQuery, Grid, PUSHABLE_OPS, PartialSeries, RemoteError};
use promql_parser::parser::token::{self, TokenId, TokenType};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
use std::collections::HashMap;
use std::time::Instant;
use strata_schemas::{Labels, METRIC_NAME};

/// How a pushable aggregation is split into partials and recombined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// One partial, the aggregation itself; partial results of the same
    /// label set are folded with this operator (`sum` for sum, count and
    /// count_values; `min`; `max`; `group`).
    Fold(TokenId),
    /// `avg`: partials `[sum, count, avg]`.
    Avg,
    /// `stdvar` (`sqrt`: `stddev`): partials `[count, avg, stdvar]`, merged
    /// with Chan's parallel algorithm.
    Var {
        /// `stddev` rather than `stdvar`.
        sqrt: bool,
    },
    /// `topk`/`bottomk`: one partial, the aggregation itself; the same
    /// aggregation is run again over the union of the partial winners.
    Rerun,
}

/// The split of a decomposable operator (`None`: quantile, limitk, limit_ratio).
fn split_of(op: TokenId) -> Option<Split> {
    Some(match op {
        token::T_SUM | token::T_COUNT | token::T_COUNT_VALUES => Split::Fold(token::T_SUM),
        token::T_MIN => Split::Fold(token::T_MIN),
        token::T_MAX => Split::Fold(token::T_MAX),
        token::T_GROUP => Split::Fold(token::T_GROUP),
        token::T_AVG => Split::Avg,
        token::T_STDVAR => Split::Var { sqrt: false },
        token::T_STDDEV => Split::Var { sqrt: true },
        token::T_TOPK | token::T_BOTTOMK => Split::Rerun,
        _ => return None,
    })
}

/// `expr` (parentheses around it allowed) as a push point: a decomposable
/// aggregation of a series-local operand. `Err`: why not.
pub(crate) fn pushable_root(expr: &Expr) -> std::result::Result<&AggregateExpr, String> {
    match expr {
        Expr::Paren(p) => pushable_root(&p.expr),
        Expr::Aggregate(agg) => check_agg(agg).map(|_| agg),
        other => Err(format!("{} is not an aggregation", describe(other))),
    }
}

/// Whether `agg` is a push point (decomposable operator, literal parameter,
/// series-local operand), and how it splits.
pub(crate) fn check_agg(agg: &AggregateExpr) -> std::result::Result<Split, String> {
    let op = agg.op.id();
    let split = split_of(op)
        .ok_or_else(|| format!("{} cannot be split into partial aggregations (these can: {PUSHABLE_OPS})", agg.op))?;
    match (op, agg.param.as_deref()) {
        (token::T_TOPK | token::T_BOTTOMK, Some(p)) if scalar_literal(p) => {}
        (token::T_TOPK | token::T_BOTTOMK, _) => {
            return Err(format!("the parameter of {} must be a number literal", agg.op));
        }
        (token::T_COUNT_VALUES, Some(p)) if string_literal(p) => {}
        (token::T_COUNT_VALUES, _) => return Err("the parameter of count_values must be a string literal".into()),
        (_, None) => {}
        (_, Some(_)) => return Err(format!("{} takes no parameter", agg.op)),
    }
    series_local(&agg.expr)?;
    Ok(split)
}

/// A number literal, or arithmetic of number literals (a constant scalar).
fn scalar_literal(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => scalar_literal(&p.expr),
        Expr::Unary(u) => scalar_literal(&u.expr),
        Expr::Binary(b) => !b.op.is_set_operator() && scalar_literal(&b.lhs) && scalar_literal(&b.rhs),
        _ => false,
    }
}

fn string_literal(e: &Expr) -> bool {
    match e {
        Expr::StringLiteral(_) => true,
        Expr::Paren(p) => string_literal(&p.expr),
        _ => false,
    }
}

fn describe(e: &Expr) -> String {
    let text = e.to_string();
    if text.chars().count() > 80 { format!("{}…", text.chars().take(80).collect::<String>()) } else { text }
}

/// Element-wise functions of an instant vector (one output series per
/// input series, its value from that series' value alone), with their
/// extra arguments (`true`: number literals, `false`: string literals).
fn elementwise(name: &str) -> Option<bool> {
    if functions::is_math_fn(name) {
        return Some(true);
    }
    match name {
        "round" | "clamp" | "clamp_min" | "clamp_max" | "timestamp" | "day_of_month" | "day_of_week"
        | "day_of_year" | "days_in_month" | "hour" | "minute" | "month" | "year" => Some(true),
        "label_replace" | "label_join" => Some(false),
        _ => None,
    }
}

/// Whether `e` is an instant vector whose every output series depends on
/// one input series only (so it can be evaluated wherever that series is).
fn series_local(e: &Expr) -> std::result::Result<(), String> {
    match e {
        Expr::VectorSelector(vs) if vs.matchers.or_matchers.is_empty() => Ok(()),
        Expr::VectorSelector(_) => Err("`or` inside label matchers is not supported".into()),
        Expr::Paren(p) => series_local(&p.expr),
        Expr::Unary(u) => series_local(&u.expr),
        Expr::Call(c) => {
            let name = c.func.name;
            let args = &c.args.args;
            if let Some(f) = RangeFn::lookup(name) {
                let m = f.matrix_arg();
                for (i, a) in args.iter().enumerate() {
                    if i == m {
                        let mut inner = a.as_ref();
                        while let Expr::Paren(p) = inner {
                            inner = &p.expr;
                        }
                        match inner {
                            Expr::MatrixSelector(ms) if ms.vs.matchers.or_matchers.is_empty() => {}
                            Expr::Subquery(_) => return Err(format!("{name}() over a subquery is not series-local")),
                            _ => return Err(format!("the range argument of {name}() must be a range selector")),
                        }
                    } else if !scalar_literal(a) {
                        return Err(format!("the parameters of {name}() must be number literals"));
                    }
                }
                return Ok(());
            }
            let Some(numeric) = elementwise(name) else {
                return Err(format!("{name}() is not an element-wise function"));
            };
            let Some((first, rest)) = args.split_first() else {
                return Err(format!("{name}() without an argument is not series-local"));
            };
            series_local(first)?;
            let lit = if numeric { scalar_literal } else { string_literal };
            if rest.iter().all(|a| lit(a)) {
                Ok(())
            } else {
                let kind = if numeric { "number" } else { "string" };
                Err(format!("the parameters of {name}() must be {kind} literals"))
            }
        }
        Expr::Binary(b) => {
            if b.op.is_set_operator() {
                return Err(format!("the set operator {} is not series-local", b.op));
            }
            if scalar_literal(&b.rhs) {
                series_local(&b.lhs)
            } else if scalar_literal(&b.lhs) {
                series_local(&b.rhs)
            } else {
                Err(format!(
                    "{} {} {} combines two vectors (only arithmetic or comparison with a number literal is \
                     series-local)",
                    describe(&b.lhs),
                    b.op,
                    describe(&b.rhs)
                ))
            }
        }
        Expr::Aggregate(a) => Err(format!("nested aggregation {} is not series-local", a.op)),
        Expr::Subquery(_) => Err("a subquery is not series-local".into()),
        Expr::MatrixSelector(_) => Err("a range selector outside a range function is not an instant vector".into()),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Err(format!("{} is not an instant vector", describe(e))),
        Expr::Extension(_) => Err("extension expressions are not series-local".into()),
    }
}

/// The partial aggregations of a push point, all over the same operand.
pub(crate) fn partials(agg: &AggregateExpr, split: Split) -> Vec<AggregateExpr> {
    let with = |op: TokenId, param: bool| AggregateExpr {
        op: TokenType::new(op),
        expr: agg.expr.clone(),
        param: if param { agg.param.clone() } else { None },
        modifier: agg.modifier.clone(),
    };
    match split {
        Split::Fold(_) | Split::Rerun => vec![with(agg.op.id(), true)],
        Split::Avg => vec![with(token::T_SUM, false), with(token::T_COUNT, false), with(token::T_AVG, false)],
        Split::Var { .. } => vec![with(token::T_COUNT, false), with(token::T_AVG, false), with(token::T_STDVAR, false)],
    }
}

/// Evaluates the partial aggregations `aggs` on `ev`, each distinct operand
/// once; names are cleaned as in a query's result (delayed name removal).
pub(crate) fn eval_partials(ev: &Evaluator<'_>, aggs: &[AggregateExpr]) -> Result<Vec<Vec<StepSeries>>> {
    let mut out: Vec<Option<Vec<StepSeries>>> = vec![None; aggs.len()];
    for i in 0..aggs.len() {
        if out[i].is_some() {
            continue;
        }
        let mut v = ev.eval_vector(&aggs[i].expr)?;
        let same: Vec<usize> = (i..aggs.len()).filter(|&j| out[j].is_none() && aggs[j].expr == aggs[i].expr).collect();
        for (n, &j) in same.iter().enumerate() {
            let operand = if n + 1 == same.len() { std::mem::take(&mut v) } else { v.clone() };
            let r = aggregate::apply(ev, &aggs[j], operand)?;
            ev.ctx.account(r.len().saturating_mul(ev.n))?;
            out[j] = Some(cleanup_vector(r)?);
        }
    }
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

/// Evaluates `agg` as a push point when the query is federated with
/// aggregates-only jurisdictions and `agg` is one; `None`: evaluate it as
/// usual (its selectors are then raw reads, checked by [`super::eval::Ctx::raw_read`]).
pub(crate) fn try_push(ev: &Evaluator<'_>, agg: &AggregateExpr) -> Result<Option<Vec<StepSeries>>> {
    let ctx = ev.ctx;
    let Some(fq) = ctx.fed else { return Ok(None) };
    let remote = fq.aggregate_jurisdictions();
    if remote.is_empty() || ctx.in_push.get() {
        return Ok(None);
    }
    let Ok(split) = check_agg(agg) else { return Ok(None) };
    // Under delayed name removal a group or a selected series may still
    // carry a `__name__` marked for removal, and partials travel with names
    // already removed: `by (__name__)` is never pushed, and topk/bottomk
    // only at the root of the query (where nothing looks at names after it).
    let is_root = std::ptr::from_ref(agg) as usize == ctx.root_agg;
    if ctx.delayed_names && (by_name(agg) || (split == Split::Rerun && !is_root)) {
        return Ok(None);
    }
    let aggs = partials(agg, split);
    let texts: Vec<String> = aggs.iter().map(ToString::to_string).collect();
    let grid =
        Grid { start: ev.start, end: ev.end, step: ev.step, query_start: ctx.query_start, query_end: ctx.query_end };
    let deadline = ctx.deadline;
    // The other jurisdictions evaluate their partials while this thread
    // evaluates the local ones (its raw reads of other regions included):
    // the push point costs the slower of the two, and a region that does
    // not answer costs one `[federation] timeout`, not two.
    ctx.in_push.set(true);
    let (local, answers) = std::thread::scope(|scope| {
        let texts = &texts;
        let remote_answers = scope.spawn(move || ask_all(fq, remote, texts, grid, deadline));
        let local = eval_partials(ev, &aggs);
        (local, remote_answers.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    ctx.in_push.set(false);
    let mut sources = vec![local?];
    for (j, answer) in answers {
        match answer {
            Ok(parts) => sources.push(to_steps(ev, j, parts, texts.len())?),
            Err(RemoteError::Refused(m)) => return Err(QueryError::GeoFence(m)),
            Err(RemoteError::Unreachable(m)) => ctx.unreachable(j, &m)?,
        }
    }
    ctx.check()?;
    combine(ev, agg, split, sources).map(Some)
}

fn by_name(agg: &AggregateExpr) -> bool {
    matches!(&agg.modifier, Some(LabelModifier::Include(l)) if l.labels.iter().any(|n| n == METRIC_NAME))
}

type Answer = std::result::Result<Vec<Vec<PartialSeries>>, RemoteError>;

/// Asks every jurisdiction for the partials, in parallel when there are several.
fn ask_all<'j>(
    fq: &dyn FederatedQuery,
    jurisdictions: &'j [String],
    texts: &[String],
    grid: Grid,
    deadline: Instant,
) -> Vec<(&'j str, Answer)> {
    if let [j] = jurisdictions {
        return vec![(j.as_str(), fq.partials(j, texts, grid, deadline))];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = jurisdictions
            .iter()
            .map(|j| (j.as_str(), scope.spawn(move || fq.partials(j, texts, grid, deadline))))
            .collect();
        handles
            .into_iter()
            .map(|(j, h)| {
                let answer =
                    h.join().unwrap_or_else(|_| Err(RemoteError::Unreachable("the request to it panicked".to_owned())));
                (j, answer)
            })
            .collect()
    })
}

/// A jurisdiction's partials as step series on `ev`'s grid.
fn to_steps(ev: &Evaluator<'_>, j: &str, parts: Vec<Vec<PartialSeries>>, n: usize) -> Result<Vec<Vec<StepSeries>>> {
    if parts.len() != n {
        return Err(QueryError::Internal(format!(
            "jurisdiction {j} answered {} partial results for {n} partial aggregations",
            parts.len()
        )));
    }
    let series: usize = parts.iter().map(Vec::len).sum();
    ev.ctx.account(series.saturating_mul(ev.n))?;
    parts
        .into_iter()
        .map(|p| {
            p.into_iter()
                .map(|s| {
                    if s.points.len() != ev.n {
                        return Err(QueryError::Internal(format!(
                            "jurisdiction {j} answered a partial of {} steps for a grid of {}",
                            s.points.len(),
                            ev.n
                        )));
                    }
                    Ok(StepSeries::new(s.labels, s.points))
                })
                .collect()
        })
        .collect()
}

/// Combines the partial results of every source (`sources[source][partial]`).
pub(crate) fn combine(
    ev: &Evaluator<'_>,
    agg: &AggregateExpr,
    split: Split,
    sources: Vec<Vec<Vec<StepSeries>>>,
) -> Result<Vec<StepSeries>> {
    match split {
        Split::Fold(op) => {
            let all: Vec<StepSeries> =
                sources.into_iter().flat_map(|s| s.into_iter().next().unwrap_or_default()).collect();
            aggregate::fold_by_labels(ev, op, &all)
        }
        Split::Rerun => {
            let mut union =
                first_per_labels(sources.into_iter().flat_map(|s| s.into_iter().next().unwrap_or_default()).collect());
            // Ties between equal values go to the first series in label
            // order, as over a store's label-ordered selection.
            union.sort_by(|a, b| a.labels.cmp(&b.labels));
            aggregate::apply(ev, agg, union)
        }
        Split::Avg => Ok(merge_triples(ev, sources, avg_of)),
        Split::Var { sqrt } => Ok(merge_triples(ev, sources, |m| {
            let var = chan_variance(m);
            if sqrt { var.sqrt() } else { var }
        })),
    }
}

/// Series of the same label set from several sources (the same series
/// stored in two jurisdictions, e.g. a device that moved): one series, the
/// first source's value where both have one.
fn first_per_labels(v: Vec<StepSeries>) -> Vec<StepSeries> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(v.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(v.len());
    for s in v {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                for (dst, src) in out[i].points.iter_mut().zip(s.points) {
                    if dst.is_none() {
                        *dst = src;
                    }
                }
            }
        }
    }
    out
}

/// Per label set and step, the `[a, b, c]` partial values of every source
/// that has all three, reduced by `f` (sources' values in source order).
fn merge_triples(
    ev: &Evaluator<'_>,
    sources: Vec<Vec<Vec<StepSeries>>>,
    f: impl Fn(&[[f64; 3]]) -> f64,
) -> Vec<StepSeries> {
    // Per group: its labels and, per source, the three partial series.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<[Option<StepSeries>; 3]>)> = Vec::new();
    for (si, src) in sources.into_iter().enumerate() {
        for (pi, part) in src.into_iter().enumerate().take(3) {
            for s in part {
                let g = *index.entry(s.labels.clone()).or_insert_with(|| {
                    groups.push((s.labels.clone(), Vec::new()));
                    groups.len() - 1
                });
                let members = &mut groups[g].1;
                while members.len() <= si {
                    members.push([None, None, None]);
                }
                members[si][pi] = Some(s);
            }
        }
    }
    let mut buf: Vec<[f64; 3]> = Vec::new();
    groups
        .into_iter()
        .map(|(labels, members)| {
            let points = (0..ev.n)
                .map(|i| {
                    buf.clear();
                    for m in &members {
                        let at = |k: usize| m[k].as_ref().and_then(|s| s.points[i]);
                        if let (Some(a), Some(b), Some(c)) = (at(0), at(1), at(2)) {
                            buf.push([a, b, c]);
                        }
                    }
                    (!buf.is_empty()).then(|| f(&buf))
                })
                .collect();
            StepSeries::new(labels, points)
        })
        .collect()
}

/// `avg` from per-source `[sum, count, avg]`: the total sum over the total
/// count, like Prometheus's `avg` while the sum is finite; when it is not
/// (an overflow, or infinities and NaN in the data), the count-weighted
/// mean of the sources' averages, which is what Prometheus's incremental
/// mean computes then (±Inf and NaN propagate the same way).
pub(crate) fn avg_of(m: &[[f64; 3]]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    let mut count = 0.0;
    for [s, n, _] in m {
        (sum, c) = kahan_inc(*s, sum, c);
        count += n;
    }
    if sum.is_finite() {
        return (sum + c) / count;
    }
    let (mut mean, mut c) = (0.0, 0.0);
    for [_, n, a] in m {
        (mean, c) = kahan_inc(a * (n / count), mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

/// Population variance from per-source `[count, mean, variance]` with Chan
/// et al.'s parallel merge of (count, mean, M2), M2 = variance · count.
///
/// Overflow follows one pass of Welford over all the values, which ends in
/// NaN once a step's delta to the running mean is infinite (the mean turns
/// infinite, then Inf − Inf; NaN stays) and in +Inf when only M2 overflows:
/// a source whose mean is not finite (it had a ±Inf or NaN among its
/// values; the mean of finite values stays finite) or two means further
/// apart than the largest f64 make the merge NaN.
pub(crate) fn chan_variance(m: &[[f64; 3]]) -> f64 {
    let (mut n, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
    for &[nb, mean_b, var_b] in m {
        if nb <= 0.0 {
            continue;
        }
        if !mean_b.is_finite() {
            return f64::NAN;
        }
        if n == 0.0 {
            (n, mean, m2) = (nb, mean_b, var_b * nb);
            continue;
        }
        let total = n + nb;
        let delta = mean_b - mean;
        if !delta.is_finite() {
            return f64::NAN;
        }
        mean += delta * (nb / total);
        m2 += var_b * nb + delta * delta * (n * nb / total);
        n = total;
    }
    m2 / n
}
