//! What a query reads, and where a range query may be cut.
//!
//! A range query's value at each step is computed from that step alone
//! (Prometheus's range evaluation is a loop of instant evaluations), so the
//! steps of `[start, end]` can be evaluated in parts and concatenated, as
//! long as every part keeps the whole query's step grid. Three things break
//! that: `@ start()` and `@ end()` (their time is the query's own range);
//! a function over a range vector that drops the metric name of series
//! that may carry several names (`rate({job="x"}[5m])`: Prometheus fails
//! when two of its output series have the same labels anywhere in the
//! range, so a part can answer where the whole query fails, see
//! `range_fn_output` in the engine); and nodes this analysis does not know
//! (`Extension`). Such queries are *unsplittable* and bypass the cache.
//!
//! For a splittable query, [`reads`] gives the span of sample timestamps the
//! steps `[first, last]` can read (lookback, range selectors, `offset`,
//! fixed `@` times and subqueries included, plus one lookback of margin),
//! and [`metric_names`] the exact metric names it reads, when every selector
//! names one. Both are conservative: a write outside the span (or of other
//! metrics) cannot change the part's answer.

use crate::engine::eval_support::{RangeFn, duration_ms, offset_ms, system_time_ms};
use promql_parser::label::MatchOp;
use promql_parser::parser::{AtModifier, Expr, VectorSelector};
use std::collections::BTreeSet;

/// Milliseconds of a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// The span of sample timestamps a query (part) may read, inclusive;
/// `lo > hi` reads nothing (e.g. `vector(1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First timestamp read.
    pub lo: i64,
    /// Last timestamp read.
    pub hi: i64,
}

impl Span {
    /// Reads nothing.
    pub const EMPTY: Span = Span { lo: i64::MAX, hi: i64::MIN };
    /// Every timestamp.
    pub const ALL: Span = Span { lo: i64::MIN, hi: i64::MAX };

    fn union(self, o: Span) -> Span {
        Span { lo: self.lo.min(o.lo), hi: self.hi.max(o.hi) }
    }

    /// True when `[lo, hi]` (inclusive) meets this span.
    pub fn overlaps(&self, lo: i64, hi: i64) -> bool {
        self.lo <= self.hi && lo <= self.hi && hi >= self.lo
    }
}

/// Why a query cannot be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsplittable(pub &'static str);

/// The timestamps steps `[first, last]` of `expr` may read. `lookback` is
/// the engine's lookback delta, `subquery_step` its default subquery step.
pub fn reads(expr: &Expr, first: i64, last: i64, lookback: i64, subquery_step: i64) -> Result<Span, Unsplittable> {
    let sel = |vs: &VectorSelector, back: i64, first: i64, last: i64| -> Result<Span, Unsplittable> {
        let (f, l) = times(&vs.at, first, last)?;
        let off = offset_ms(&vs.offset);
        // One more lookback of margin: nothing the engine reads for a step
        // lies further back than range + lookback.
        Ok(Span { lo: f.saturating_sub(off).saturating_sub(back).saturating_sub(lookback), hi: l.saturating_sub(off) })
    };
    Ok(match expr {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Span::EMPTY,
        Expr::VectorSelector(vs) => sel(vs, lookback, first, last)?,
        Expr::MatrixSelector(ms) => sel(&ms.vs, duration_ms(&ms.range), first, last)?,
        Expr::Subquery(sq) => {
            let (f, l) = times(&sq.at, first, last)?;
            let off = offset_ms(&sq.offset);
            let step = sq.step.as_ref().map_or(subquery_step, duration_ms).max(1);
            let range = duration_ms(&sq.range);
            let (f, l) = (f.saturating_sub(off), l.saturating_sub(off));
            reads(&sq.expr, f.saturating_sub(range).saturating_sub(step), l, lookback, subquery_step)?
        }
        Expr::Aggregate(a) => {
            let s = reads(&a.expr, first, last, lookback, subquery_step)?;
            match &a.param {
                Some(p) => s.union(reads(p, first, last, lookback, subquery_step)?),
                None => s,
            }
        }
        Expr::Unary(u) => reads(&u.expr, first, last, lookback, subquery_step)?,
        Expr::Paren(p) => reads(&p.expr, first, last, lookback, subquery_step)?,
        Expr::Binary(b) => reads(&b.lhs, first, last, lookback, subquery_step)?.union(reads(
            &b.rhs,
            first,
            last,
            lookback,
            subquery_step,
        )?),
        Expr::Call(c) => {
            if let Some(f) = RangeFn::lookup(c.func.name)
                && !f.keeps_name()
                && c.args.args.get(f.matrix_arg()).is_some_and(|a| range_may_carry_names(a))
            {
                return Err(Unsplittable("a range function dropping the names of series that may carry several"));
            }
            let mut s = Span::EMPTY;
            for a in &c.args.args {
                s = s.union(reads(a, first, last, lookback, subquery_step)?);
            }
            s
        }
        Expr::Extension(_) => return Err(Unsplittable("an extension node")),
    })
}

/// True when the series of range vector `e` (a selector or a subquery) may
/// have different metric names and otherwise equal labels.
fn range_may_carry_names(e: &Expr) -> bool {
    match e {
        Expr::Paren(p) => range_may_carry_names(&p.expr),
        Expr::MatrixSelector(ms) => name_of(&ms.vs).is_none(),
        Expr::Subquery(sq) => may_carry_names(&sq.expr),
        _ => true,
    }
}

/// Instant functions that drop the metric name (Prometheus 3), or return no
/// series labels at all.
const NAME_DROPPING_FNS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "ceil",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "exp",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_sum",
    "hour",
    "ln",
    "log10",
    "log2",
    "minute",
    "month",
    "rad",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "time",
    "vector",
    "year",
];

/// True when the series of instant vector `e` may have different metric
/// names and otherwise equal labels (conservative: true when unsure).
fn may_carry_names(e: &Expr) -> bool {
    match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Unary(_) => false,
        Expr::VectorSelector(vs) => name_of(vs).is_none(),
        Expr::MatrixSelector(_) | Expr::Subquery(_) | Expr::Extension(_) => true,
        Expr::Paren(p) => may_carry_names(&p.expr),
        Expr::Aggregate(a) => {
            let by_name = matches!(&a.modifier, Some(promql_parser::parser::LabelModifier::Include(l))
                if l.labels.iter().any(|n| n == strata_schemas::METRIC_NAME));
            let keeps_input = ["topk", "bottomk", "limitk", "limit_ratio"].contains(&a.op.to_string().as_str());
            by_name || keeps_input && may_carry_names(&a.expr)
        }
        Expr::Call(c) => match RangeFn::lookup(c.func.name) {
            Some(f) if !f.keeps_name() => false,
            Some(_) => c.args.args.iter().any(|a| range_may_carry_names(a)),
            None if NAME_DROPPING_FNS.contains(&c.func.name) => false,
            None => c.args.args.iter().any(|a| may_carry_names(a)),
        },
        Expr::Binary(b) => {
            let arithmetic = !b.op.is_comparison_operator() && !b.op.is_set_operator();
            let bool_cmp = b.modifier.as_ref().is_some_and(|m| m.return_bool);
            // `or` unites both sides' series, whatever their names.
            b.op.to_string() == "or"
                || !(arithmetic || bool_cmp) && (may_carry_names(&b.lhs) || may_carry_names(&b.rhs))
        }
    }
}

/// The evaluation times of a selector or subquery over steps `[first, last]`.
fn times(at: &Option<AtModifier>, first: i64, last: i64) -> Result<(i64, i64), Unsplittable> {
    match at {
        None => Ok((first, last)),
        Some(AtModifier::At(t)) => {
            let t = system_time_ms(*t);
            Ok((t, t))
        }
        Some(AtModifier::Start) => Err(Unsplittable("@ start() depends on the query's own range")),
        Some(AtModifier::End) => Err(Unsplittable("@ end() depends on the query's own range")),
    }
}

/// The metric names `expr` reads, when every selector has an exact
/// `__name__` (and no function reads series the query does not name);
/// `None`: any metric.
pub fn metric_names(expr: &Expr) -> Option<BTreeSet<String>> {
    fn walk(e: &Expr, out: &mut BTreeSet<String>) -> bool {
        match e {
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
            Expr::VectorSelector(vs) => add(name_of(vs), out),
            Expr::MatrixSelector(ms) => add(name_of(&ms.vs), out),
            Expr::Subquery(sq) => walk(&sq.expr, out),
            Expr::Aggregate(a) => walk(&a.expr, out) && a.param.as_deref().is_none_or(|p| walk(p, out)),
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Binary(b) => walk(&b.lhs, out) && walk(&b.rhs, out),
            // `info()` reads `target_info` series the query does not name.
            Expr::Call(c) => c.func.name != "info" && c.args.args.iter().all(|a| walk(a, out)),
            Expr::Extension(_) => false,
        }
    }
    fn add(name: Option<String>, out: &mut BTreeSet<String>) -> bool {
        name.map(|n| out.insert(n)).is_some()
    }
    let mut out = BTreeSet::new();
    walk(expr, &mut out).then_some(out)
}

fn name_of(vs: &VectorSelector) -> Option<String> {
    if !vs.matchers.or_matchers.is_empty() {
        return None;
    }
    if let Some(n) = &vs.name {
        return Some(n.clone());
    }
    vs.matchers
        .matchers
        .iter()
        .find(|m| m.name == strata_schemas::METRIC_NAME && m.op == MatchOp::Equal)
        .map(|m| m.value.clone())
}

/// The parts of the step grid `start + i·step` (`i ≥ 0`, up to `end`) that
/// fall in each UTC day: `(day, first step, last step)`, in order. Their
/// concatenation is exactly the whole grid.
pub fn day_parts(start: i64, end: i64, step: i64) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    if step <= 0 || end < start {
        return out;
    }
    let mut t = start;
    while t <= end {
        let day = t.div_euclid(DAY_MS);
        let day_end = (day + 1).saturating_mul(DAY_MS) - 1;
        let last = last_step_at_or_before(start, step, day_end.min(end));
        out.push((day, t, last));
        match last.checked_add(step) {
            Some(n) => t = n,
            None => break,
        }
    }
    out
}

/// The last grid step `start + i·step` at or before `t` (`t >= start`).
pub fn last_step_at_or_before(start: i64, step: i64, t: i64) -> i64 {
    start + (t - start).div_euclid(step) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Expr {
        promql_parser::parser::parse(q).unwrap()
    }

    #[test]
    fn day_parts_concatenate_to_the_grid() {
        for (start, end, step) in [
            (0, 3 * DAY_MS, 60_000),
            (DAY_MS - 7_000, 2 * DAY_MS + 5, 13_000),
            (-DAY_MS - 1, DAY_MS, 7 * 3_600_000),
            (5, 5, 1_000),
            (1_000, 999_999_999, 86_400_001),
        ] {
            let parts = day_parts(start, end, step);
            let mut grid = Vec::new();
            for (day, f, l) in &parts {
                assert!(f <= l);
                assert_eq!(f.div_euclid(DAY_MS), *day);
                assert_eq!(l.div_euclid(DAY_MS), *day);
                let mut t = *f;
                while t <= *l {
                    grid.push(t);
                    t += step;
                }
            }
            let whole: Vec<i64> = (0..).map(|i| start + i * step).take_while(|t| *t <= end).collect();
            assert_eq!(grid, whole, "{start} {end} {step}");
        }
        assert!(day_parts(10, 5, 1).is_empty());
    }

    #[test]
    fn reads_cover_lookback_ranges_offsets_and_subqueries() {
        let lb = 300_000;
        let s = reads(&parse("up"), 1_000_000, 2_000_000, lb, 60_000).unwrap();
        assert_eq!(s, Span { lo: 1_000_000 - 2 * lb, hi: 2_000_000 });
        let s = reads(&parse("rate(x[1h] offset -10m)"), 10_000_000, 20_000_000, lb, 60_000).unwrap();
        assert_eq!(s.hi, 20_000_000 + 600_000, "a negative offset reads ahead");
        assert_eq!(s.lo, 10_000_000 + 600_000 - 3_600_000 - lb);
        let s = reads(&parse("x @ 100"), 10_000_000, 20_000_000, lb, 60_000).unwrap();
        assert_eq!(s, Span { lo: 100_000 - 2 * lb, hi: 100_000 });
        let s = reads(&parse("max_over_time(rate(x[5m])[1h:1m])"), 10_000_000, 20_000_000, lb, 60_000).unwrap();
        assert_eq!(s.lo, 10_000_000 - 3_600_000 - 60_000 - 300_000 - lb);
        assert_eq!(s.hi, 20_000_000);
        assert_eq!(reads(&parse("vector(1)"), 0, 10, lb, 1).unwrap(), Span::EMPTY);
        assert!(!Span::EMPTY.overlaps(i64::MIN, i64::MAX));
        assert!(reads(&parse("x @ start()"), 0, 10, lb, 1).is_err());
        assert!(reads(&parse("sum(rate(x[5m] @ end()))"), 0, 10, lb, 1).is_err());
        assert!(reads(&parse("max_over_time(x[1h:] @ start())"), 0, 10, lb, 1).is_err());
    }

    #[test]
    fn range_functions_dropping_several_names_are_unsplittable() {
        let split = |q: &str| reads(&parse(q), 0, 1, 300_000, 60_000).is_ok();
        for q in [
            r#"rate({job="x"}[5m])"#,
            r#"sum(max_over_time({__name__=~"a|b"}[5m]))"#,
            "max_over_time((a or b)[10m:1m])",
            "quantile_over_time(0.5, ({x=\"1\"} > b)[10m:1m])",
            "avg_over_time(last_over_time({x=\"1\"}[5m])[10m:1m])",
            "rate(topk(2, {x=\"1\"})[10m:1m])",
        ] {
            assert!(!split(q), "{q} must not be split");
        }
        for q in [
            "rate(a[5m])",
            r#"max_over_time({__name__="a", x="1"}[5m])"#,
            r#"last_over_time({job="x"}[5m])"#,
            "max_over_time(rate(a[5m])[1h:1m])",
            "max_over_time((a + b)[10m:1m])",
            "max_over_time((a > bool b)[10m:1m])",
            "quantile_over_time(0.5, (a > b)[10m:1m])",
            "max_over_time(sum by (x) ({job=\"y\"})[10m:1m])",
            "max_over_time(abs({job=\"y\"})[10m:1m])",
        ] {
            assert!(split(q), "{q} may be split");
        }
    }

    #[test]
    fn metric_names_only_when_every_selector_names_one() {
        let n = metric_names(&parse("sum(rate(a[5m])) / on() group_left count({__name__=\"b\", x=\"1\"})")).unwrap();
        assert_eq!(n.into_iter().collect::<Vec<_>>(), vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(metric_names(&parse("vector(1)")), Some(BTreeSet::new()));
        assert_eq!(metric_names(&parse("{job=\"x\"}")), None);
        assert_eq!(metric_names(&parse("{__name__=~\"a|b\"}")), None);
        assert_eq!(metric_names(&parse("a + {x=\"1\"}")), None);
    }
}
