//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`, …)
//! with `by` / `without` grouping. Group keys are computed once per series;
//! the per-step loop only folds values into reusable accumulators (24
//! bytes each; an aggregation that folds series as they stream keeps a
//! row of them per group only once the group has a second member,
//! [`GroupRows`]).

use super::eval::{Eval, Evaluator, StepSeries};
use super::hashing::FastMap;
use super::stats::{Mean, format_go_f, kahan_inc, quantile, variance};
use crate::error::{QueryError, Result};
use promql_parser::label::Labels as PLabels;
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
use std::collections::HashMap;
use strata_schemas::{Labels, METRIC_NAME, Str};

/// Evaluates an aggregation.
pub(crate) fn eval(ev: &Evaluator<'_>, agg: &AggregateExpr) -> Result<Eval> {
    if let Some(out) = super::group_rollup::try_eval(ev, agg)? {
        return Ok(Eval::Vector(out));
    }
    if let Some(out) = fold_selector(ev, agg)? {
        return Ok(Eval::Vector(out));
    }
    if let Some(out) = fold_range_fn(ev, agg)? {
        return Ok(Eval::Vector(out));
    }
    let v = ev.eval_vector(&agg.expr)?;
    apply(ev, agg, v).map(Eval::Vector)
}

/// `sum`/`avg`/`count`/`min`/`max`/`group` straight over an instant
/// selector: each series is folded into its group's per-step accumulators
/// as storage hands it over, so no per-series grid is kept. The values are
/// folded in the same (storage) order as [`fold`] folds them, so the result
/// is the same bit for bit; the limits are charged as the selector charges
/// them. `None` for any other shape.
fn fold_selector(ev: &Evaluator<'_>, agg: &AggregateExpr) -> Result<Option<Vec<StepSeries>>> {
    let op = agg.op.id();
    if agg.param.is_some()
        || !matches!(op, token::T_SUM | token::T_AVG | token::T_COUNT | token::T_MIN | token::T_MAX | token::T_GROUP)
    {
        return Ok(None);
    }
    let mut expr = agg.expr.as_ref();
    while let Expr::Paren(p) = expr {
        expr = p.expr.as_ref();
    }
    let Expr::VectorSelector(vs) = expr else { return Ok(None) };
    // What `Evaluator::eval` does for the selector node.
    ev.ctx.check()?;
    ev.ctx.reserve(ev.n)?;
    let mut grouper = Grouper::new(agg.modifier.as_ref());
    let mut rows = GroupRows::new(op, ev.n);
    super::selector::stream_vector(ev, vs, false, |labels, points| {
        rows.add(grouper.id(&labels), points);
        Ok(())
    })?;
    Ok(Some(rows.finish(grouper.keys)))
}

/// What the aggregation keeps of each input series while a range function
/// streams into it.
enum Sink {
    /// `sum`/`avg`/`count`/`min`/`max`/`group`: per-(group, step) accumulators.
    Acc(GroupRows),
    /// `quantile`/`stddev`/`stdvar`: per (group, step), the values in input order.
    Values(Vec<Vec<f64>>),
    /// `topk`/`bottomk`: the series themselves (labels moved, name not dropped yet).
    Series(Vec<StepSeries>),
}

/// An aggregation straight over a range function over a selector that
/// names its metric (`avg by (farm) (avg_over_time(m[10m]))`,
/// `topk(10, max_over_time(m[1h]))`): each series' step points are folded
/// into its group as the range function produces them (chunk by chunk from
/// storage), without the per-series output the function alone builds (its
/// labels rebuilt without the metric name, a merge by label set). Values
/// meet in the same order as in [`fold`] / [`top_k`], so results are the
/// same bit for bit; the limits are charged as the function charges them.
/// `None` for any other shape (and when grouping by `__name__`, which the
/// function would have dropped).
fn fold_range_fn(ev: &Evaluator<'_>, agg: &AggregateExpr) -> Result<Option<Vec<StepSeries>>> {
    let op = agg.op.id();
    let mut sink = match op {
        token::T_SUM | token::T_AVG | token::T_COUNT | token::T_MIN | token::T_MAX | token::T_GROUP
            if agg.param.is_none() =>
        {
            Sink::Acc(GroupRows::new(op, ev.n))
        }
        token::T_QUANTILE | token::T_STDDEV | token::T_STDVAR => Sink::Values(Vec::new()),
        token::T_TOPK | token::T_BOTTOMK => Sink::Series(Vec::new()),
        _ => return Ok(None),
    };
    if let Some(LabelModifier::Include(names)) = agg.modifier.as_ref()
        && names.labels.iter().any(|n| n == METRIC_NAME)
    {
        return Ok(None);
    }
    let mut expr = agg.expr.as_ref();
    while let Expr::Paren(p) = expr {
        expr = p.expr.as_ref();
    }
    let Expr::Call(call) = expr else { return Ok(None) };
    if super::range_fns::RangeFn::lookup(call.func.name).is_none() {
        return Ok(None);
    }
    // What `Evaluator::eval` does for the call node.
    ev.ctx.check()?;
    ev.ctx.reserve(ev.n)?;
    let n = ev.n;
    let mut grouper = Grouper::new(agg.modifier.as_ref());
    let mut each = |labels: Labels, points: Vec<Option<f64>>| -> Result<()> {
        match &mut sink {
            Sink::Acc(rows) => rows.add_owned(grouper.id(&labels), points),
            Sink::Values(values) => {
                let g = grouper.id(&labels);
                if g * n >= values.len() {
                    values.resize_with((g + 1) * n, Vec::new);
                }
                for (vs, p) in values[g * n..(g + 1) * n].iter_mut().zip(&points) {
                    if let Some(x) = *p {
                        vs.push(x);
                    }
                }
            }
            Sink::Series(v) => v.push(StepSeries::new(labels, points)),
        }
        Ok(())
    };
    let f = match super::functions::stream_range_fn(ev, call, &mut each)? {
        None => return Ok(None),
        Some(super::functions::RangeFnStream::Streamed(f)) => f,
    };
    let out = match sink {
        Sink::Acc(rows) => rows.finish(grouper.keys),
        Sink::Values(mut values) => {
            // The parameter is evaluated after the operand, as in `apply`.
            let q = match op {
                token::T_QUANTILE => Some(quantile_param(ev, agg)?),
                _ => None,
            };
            let mut out: Vec<StepSeries> =
                grouper.keys.into_iter().map(|labels| StepSeries::new(labels, vec![None; n])).collect();
            for i in 0..n {
                ev.ctx.check()?;
                for (g, o) in out.iter_mut().enumerate() {
                    let vs = &mut values[g * n + i];
                    if vs.is_empty() {
                        continue;
                    }
                    o.points[i] = Some(match op {
                        token::T_STDVAR => variance(vs.iter().copied()),
                        token::T_STDDEV => variance(vs.iter().copied()).sqrt(),
                        _ => quantile(q.as_ref().map_or(f64::NAN, |q| q[i]), vs),
                    });
                }
            }
            out
        }
        Sink::Series(v) => {
            let mut out = apply(ev, agg, v)?;
            if !f.keeps_name() {
                out.iter_mut().for_each(|s| ev.ctx.drop_name(s));
            }
            out
        }
    };
    Ok(Some(out))
}

/// `quantile`'s φ per step, with Prometheus's warning when out of [0, 1].
fn quantile_param(ev: &Evaluator<'_>, agg: &AggregateExpr) -> Result<Vec<f64>> {
    let p = agg.param.as_deref().ok_or_else(|| missing_param(agg))?;
    let q = ev.eval_scalar(p)?;
    if let Some(x) = q.iter().find(|q| q.is_nan() || **q < 0.0 || **q > 1.0) {
        ev.ctx.warn_at(
            format!("PromQL warning: quantile value should be between 0 and 1, got {}", format_go_f(*x)),
            &super::eval::anchor(p),
        );
    }
    Ok(q)
}

/// The value of a non-empty accumulator of `sum`/`avg`/`count`/`group`/`min`/`max`.
fn finish(op: TokenId, a: &Acc) -> f64 {
    match op {
        token::T_SUM => finish_sum(a),
        token::T_AVG => a.mean().value(),
        token::T_COUNT => f64::from(a.n),
        token::T_GROUP => 1.0,
        _ => a.v,
    }
}

/// Runs the aggregation `agg` over its already evaluated operand `v` (its
/// parameter is evaluated here). Federation runs partial aggregations and
/// the final `topk`/`bottomk` through this same code.
pub(crate) fn apply(ev: &Evaluator<'_>, agg: &AggregateExpr, v: Vec<StepSeries>) -> Result<Vec<StepSeries>> {
    let op = agg.op.id();
    let param = agg.param.as_deref();
    if op == token::T_COUNT_VALUES {
        // Grouped after relabelling, by its own rule.
        let label = ev.eval_string(param.ok_or_else(|| missing_param(agg))?)?;
        return count_values(ev, &v, agg.modifier.as_ref(), &label);
    }
    let (keys, member_group) = group(&v, agg.modifier.as_ref());
    let out = match op {
        token::T_TOPK | token::T_BOTTOMK => {
            let k = ev.eval_scalar(param.ok_or_else(|| missing_param(agg))?)?;
            top_k(ev, v, &member_group, keys.len(), &k, op == token::T_TOPK)?
        }
        token::T_LIMITK => {
            let k = ev.eval_scalar(param.ok_or_else(|| missing_param(agg))?)?;
            limit_k(ev, v, &member_group, keys.len(), &k)?
        }
        token::T_LIMIT_RATIO => {
            let p = param.ok_or_else(|| missing_param(agg))?;
            let r = ev.eval_scalar(p)?;
            limit_ratio(ev, v, &r, &p.to_string())?
        }
        _ => {
            let q = match op {
                token::T_QUANTILE => Some(quantile_param(ev, agg)?),
                _ => None,
            };
            fold(ev, op, &v, keys, &member_group, q.as_deref())?
        }
    };
    Ok(out)
}

/// Folds `v` with `op` (`sum`, `min`, `max`, `group`) per identical label
/// set: how federation combines partial results of the same group.
pub(crate) fn fold_by_labels(ev: &Evaluator<'_>, op: TokenId, v: &[StepSeries]) -> Result<Vec<StepSeries>> {
    let mut index: HashMap<&Labels, usize> = HashMap::new();
    let mut keys = Vec::new();
    let member_group: Vec<usize> = v
        .iter()
        .map(|s| {
            *index.entry(&s.labels).or_insert_with(|| {
                keys.push(s.labels.clone());
                keys.len() - 1
            })
        })
        .collect();
    fold(ev, op, v, keys, &member_group, None)
}

fn missing_param(agg: &AggregateExpr) -> QueryError {
    QueryError::bad(format!("parameter required for {}", agg.op))
}

/// Group label sets (deduplicated) and, per input series, its group index.
fn group(v: &[StepSeries], modifier: Option<&LabelModifier>) -> (Vec<Labels>, Vec<usize>) {
    let mut grouper = Grouper::new(modifier);
    let members = v.iter().map(|s| grouper.id(&s.labels)).collect();
    (grouper.keys, members)
}

/// Assigns group ids (0, 1, … in order of first appearance) to label sets.
///
/// A series' group is found by a hash of the labels it keeps, computed
/// without building them: only the first series of each group allocates its
/// label set (a fleet query has many series and few groups). Two shapes
/// skip even the hash: no grouping (every series is group 0), and `by` one
/// label, where a value string already seen (the same shared string: a
/// store hands out each distinct label value as one string) finds its
/// group by its address.
struct Grouper<'m> {
    modifier: Option<&'m LabelModifier>,
    index: FastMap<u64, Vec<usize>>,
    keys: Vec<Labels>,
    /// `by (name)` with one name: that name.
    by_one: Option<&'m str>,
    /// For `by_one`: group by the address of a value string, each string
    /// held in `pinned` so no other string can take its address meanwhile.
    by_addr: FastMap<usize, usize>,
    pinned: Vec<Str>,
}

impl<'m> Grouper<'m> {
    fn new(modifier: Option<&'m LabelModifier>) -> Self {
        let by_one = match modifier {
            Some(LabelModifier::Include(names)) if names.labels.len() == 1 => names.labels.first().map(String::as_str),
            _ => None,
        };
        Self {
            modifier,
            index: FastMap::default(),
            keys: Vec::new(),
            by_one,
            by_addr: FastMap::default(),
            pinned: Vec::new(),
        }
    }

    fn keep(&self, name: &str) -> bool {
        let has = |names: &PLabels, n: &str| names.labels.iter().any(|x| x == n);
        match self.modifier {
            None => false,
            Some(LabelModifier::Include(names)) => has(names, name),
            Some(LabelModifier::Exclude(names)) => name != METRIC_NAME && !has(names, name),
        }
    }

    fn id(&mut self, labels: &Labels) -> usize {
        if self.modifier.is_none() {
            if self.keys.is_empty() {
                self.keys.push(Labels::default());
            }
            return 0;
        }
        if let Some(name) = self.by_one
            && let Some(l) = labels.iter().find(|l| l.name.as_str() == name)
        {
            let addr = l.value.as_str().as_ptr() as usize;
            if let Some(&g) = self.by_addr.get(&addr) {
                return g;
            }
            let g = self.id_by_hash(labels);
            self.by_addr.insert(addr, g);
            self.pinned.push(l.value.clone());
            return g;
        }
        self.id_by_hash(labels)
    }

    fn id_by_hash(&mut self, labels: &Labels) -> usize {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for l in labels.iter().filter(|l| self.keep(&l.name)) {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        let digest = h.digest();
        if let Some(slot) = self.index.get(&digest) {
            let kept = || labels.iter().filter(|l| self.keep(&l.name));
            if let Some(&g) = slot.iter().find(|&&g| self.keys.get(g).is_some_and(|k| k.iter().eq(kept()))) {
                return g;
            }
        }
        self.keys.push(group_labels(labels, self.modifier));
        let g = self.keys.len() - 1;
        self.index.entry(digest).or_default().push(g);
        g
    }
}

pub(crate) fn group_labels(l: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    let has = |names: &PLabels, n: &str| names.labels.iter().any(|x| x == n);
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(names)) => {
            Labels::from_sorted(l.iter().filter(|x| has(names, &x.name)).cloned().collect())
        }
        Some(LabelModifier::Exclude(names)) => {
            Labels::from_sorted(l.iter().filter(|x| x.name != METRIC_NAME && !has(names, &x.name)).cloned().collect())
        }
    }
}

/// One (group, step)'s accumulator of `sum`/`avg`/`count`/`min`/`max`/
/// `group` (24 bytes): `n` values added; `v` the compensated sum (`sum`),
/// the [`Mean`]'s sum, or its mean once incremental (`avg`), the value so
/// far (`min`, `max`); `c` the compensation (`sum`, `avg`). A group holds
/// fewer than 2^32 series (the series limits are far below).
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    v: f64,
    c: f64,
    n: u32,
    incremental: bool,
}

impl Acc {
    /// The `avg` state as a [`Mean`].
    fn mean(&self) -> Mean {
        Mean::from_parts(f64::from(self.n), self.v, self.c, self.incremental)
    }
}

fn fold(
    ev: &Evaluator<'_>,
    op: TokenId,
    v: &[StepSeries],
    keys: Vec<Labels>,
    member_group: &[usize],
    q: Option<&[f64]>,
) -> Result<Vec<StepSeries>> {
    let mut out: Vec<StepSeries> = keys.into_iter().map(|labels| StepSeries::new(labels, vec![None; ev.n])).collect();
    // A group keyed by a to-be-dropped `__name__` drops it when any member does.
    for (s, &g) in v.iter().zip(member_group) {
        out[g].drop_name |= s.drop_name && out[g].labels.get(METRIC_NAME).is_some();
    }
    let mut accs = vec![Acc::default(); out.len()];
    let needs_values = matches!(op, token::T_QUANTILE | token::T_STDDEV | token::T_STDVAR);
    let mut values: Vec<Vec<f64>> = if needs_values { vec![Vec::new(); out.len()] } else { Vec::new() };
    for i in 0..ev.n {
        ev.ctx.check()?;
        accs.iter_mut().for_each(|a| *a = Acc::default());
        values.iter_mut().for_each(Vec::clear);
        for (s, &g) in v.iter().zip(member_group) {
            if let Some(x) = s.points[i] {
                accumulate(op, &mut accs[g], x);
                if needs_values {
                    values[g].push(x);
                }
            }
        }
        for (g, a) in accs.iter().enumerate() {
            if a.n == 0 {
                continue;
            }
            out[g].points[i] = Some(match op {
                token::T_SUM => finish_sum(a),
                token::T_AVG => a.mean().value(),
                token::T_COUNT => f64::from(a.n),
                token::T_GROUP => 1.0,
                token::T_MIN | token::T_MAX => a.v,
                token::T_STDVAR => variance(values[g].iter().copied()),
                token::T_STDDEV => variance(values[g].iter().copied()).sqrt(),
                token::T_QUANTILE => quantile(q.map_or(f64::NAN, |q| q[i]), &mut values[g]),
                _ => return Err(QueryError::Unsupported(format!("aggregation operator {}", token_name(op)))),
            });
        }
    }
    Ok(out)
}

fn token_name(op: TokenId) -> String {
    token::TokenType::new(op).to_string()
}

#[inline]
fn accumulate(op: TokenId, a: &mut Acc, x: f64) {
    match op {
        token::T_SUM => (a.v, a.c) = kahan_inc(x, a.v, a.c),
        token::T_AVG => {
            let mut m = a.mean();
            m.add(x);
            (_, a.v, a.c, a.incremental) = m.parts();
        }
        token::T_MIN if a.n == 0 || x < a.v || a.v.is_nan() => a.v = x,
        token::T_MAX if a.n == 0 || x > a.v || a.v.is_nan() => a.v = x,
        _ => {}
    }
    a.n = a.n.saturating_add(1);
}

fn finish_sum(a: &Acc) -> f64 {
    if a.v.is_infinite() { a.v } else { a.v + a.c }
}

/// Per group (in [`Grouper`] order), its `n` step accumulators, for the
/// aggregations that fold series as they come ([`fold_selector`],
/// [`fold_range_fn`]). A group's first member's step values are kept as
/// they came and become its output row: a group of one series (e.g. `avg
/// by (farm)` with one series per farm) needs no accumulators at all. A
/// second member turns the row into [`Acc`]s (24 bytes a step; the first
/// member's values folded first, so every (group, step) sees its values in
/// input order, as [`fold`] does).
struct GroupRows {
    op: TokenId,
    n: usize,
    rows: Vec<Row>,
}

/// A group's row of [`GroupRows`].
enum Row {
    /// No member yet.
    Empty,
    /// One member: its values (`n` of them).
    One(Vec<Option<f64>>),
    /// Several: the accumulators.
    Many(Vec<Acc>),
}

impl GroupRows {
    fn new(op: TokenId, n: usize) -> Self {
        Self { op, n, rows: Vec::new() }
    }

    /// The row of group `g` (made, with any before it, when new).
    fn row(&mut self, g: usize) -> &mut Row {
        if g >= self.rows.len() {
            self.rows.resize_with(g + 1, || Row::Empty);
        }
        &mut self.rows[g]
    }

    /// Folds a member's step values into group `g`.
    fn add(&mut self, g: usize, points: &[Option<f64>]) {
        let (op, n) = (self.op, self.n);
        match self.row(g) {
            row @ Row::Empty => *row = Row::One(Self::padded(points.to_vec(), n)),
            row => Self::fold_in(op, n, row, points),
        }
    }

    /// [`GroupRows::add`] of values the caller gives away (a first member's become the row).
    fn add_owned(&mut self, g: usize, points: Vec<Option<f64>>) {
        let (op, n) = (self.op, self.n);
        match self.row(g) {
            row @ Row::Empty => *row = Row::One(Self::padded(points, n)),
            row => Self::fold_in(op, n, row, &points),
        }
    }

    /// `points` cut or padded (no value) to `n` steps.
    fn padded(mut points: Vec<Option<f64>>, n: usize) -> Vec<Option<f64>> {
        points.resize(n, None);
        points
    }

    /// A second or later member into a non-empty row.
    fn fold_in(op: TokenId, n: usize, row: &mut Row, points: &[Option<f64>]) {
        if let Row::One(first) = row {
            let mut accs = vec![Acc::default(); n];
            for (a, x) in accs.iter_mut().zip(first.iter()) {
                if let Some(x) = *x {
                    accumulate(op, a, x);
                }
            }
            *row = Row::Many(accs);
        }
        if let Row::Many(accs) = row {
            for (a, p) in accs.iter_mut().zip(points) {
                if let Some(x) = *p {
                    accumulate(op, a, x);
                }
            }
        }
    }

    /// Each group's series: `keys[g]` with its row's values.
    fn finish(self, keys: Vec<Labels>) -> Vec<StepSeries> {
        let (op, n) = (self.op, self.n);
        let mut rows = self.rows.into_iter();
        keys.into_iter()
            .map(|labels| {
                let points = match rows.next().unwrap_or(Row::Empty) {
                    Row::Empty => vec![None; n],
                    Row::One(mut values) => {
                        for p in &mut values {
                            if let Some(x) = *p {
                                let mut a = Acc::default();
                                accumulate(op, &mut a, x);
                                *p = Some(finish(op, &a));
                            }
                        }
                        values
                    }
                    Row::Many(accs) => accs.iter().map(|a| (a.n > 0).then(|| finish(op, a))).collect(),
                };
                StepSeries::new(labels, points)
            })
            .collect()
    }
}

/// `topk` / `bottomk`: per step and group, the k largest / smallest
/// elements (NaN ranks last), with their original labels.
fn top_k(
    ev: &Evaluator<'_>,
    mut v: Vec<StepSeries>,
    member_group: &[usize],
    n_groups: usize,
    k: &[f64],
    top: bool,
) -> Result<Vec<StepSeries>> {
    // Per input series, its output points once it is selected at some step:
    // only selected series get a grid (and their labels, moved from `v`).
    let mut chosen: Vec<Option<Vec<Option<f64>>>> = Vec::new();
    chosen.resize_with(v.len(), || None);
    let mut per_group: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n_groups];
    for (i, &k) in k.iter().enumerate().take(ev.n) {
        ev.ctx.check()?;
        if k.is_nan() {
            return Err(QueryError::exec("Parameter value is NaN"));
        }
        if k < 1.0 {
            continue;
        }
        per_group.iter_mut().for_each(Vec::clear);
        for (idx, (s, &g)) in v.iter().zip(member_group).enumerate() {
            if let Some(x) = s.points[i] {
                per_group[g].push((x, idx));
            }
        }
        for members in &mut per_group {
            let take = (k.min(members.len() as f64)) as usize;
            if take == 0 {
                continue;
            }
            // The first `take` of a stable sort by rank: ties rank in input order.
            let by_rank = |a: &(f64, usize), b: &(f64, usize)| rank_cmp(a.0, b.0, top).then(a.1.cmp(&b.1));
            if take < members.len() {
                members.select_nth_unstable_by(take - 1, by_rank);
            }
            for &(x, idx) in &members[..take] {
                chosen[idx].get_or_insert_with(|| vec![None; ev.n])[i] = Some(x);
            }
        }
    }
    let mut out: Vec<(usize, StepSeries)> = chosen
        .into_iter()
        .enumerate()
        .filter_map(|(idx, points)| {
            let points = points?;
            let s = &mut v[idx];
            Some((idx, StepSeries { labels: std::mem::take(&mut s.labels), points, drop_name: s.drop_name }))
        })
        .collect();
    if ev.n == 1 {
        // Instant queries return each group's elements in rank order, like Prometheus.
        out.sort_by(|a, b| {
            member_group[a.0]
                .cmp(&member_group[b.0])
                .then_with(|| rank_cmp(a.1.points[0].unwrap_or(f64::NAN), b.1.points[0].unwrap_or(f64::NAN), top))
        });
    }
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// `limitk(k, v)`: per step and group, the first k elements in input order.
fn limit_k(
    ev: &Evaluator<'_>,
    mut v: Vec<StepSeries>,
    member_group: &[usize],
    n_groups: usize,
    k: &[f64],
) -> Result<Vec<StepSeries>> {
    let mut taken = vec![0usize; n_groups];
    for (i, &k) in k.iter().enumerate().take(ev.n) {
        ev.ctx.check()?;
        if k.is_nan() {
            return Err(QueryError::exec("Parameter value is NaN"));
        }
        let k = if k >= i64::MAX as f64 {
            usize::MAX
        } else if k < 1.0 {
            0
        } else {
            k as usize
        };
        taken.iter_mut().for_each(|t| *t = 0);
        for (s, &g) in v.iter_mut().zip(member_group) {
            if s.points[i].is_some() {
                if taken[g] < k {
                    taken[g] += 1;
                } else {
                    s.points[i] = None;
                }
            }
        }
    }
    v.retain(|s| s.points.iter().any(Option::is_some));
    Ok(v)
}

/// `limit_ratio(r, v)`: a deterministic sample of the series by the hash of
/// their labels (Prometheus's `HashRatioSampler`): offset `hash / 2^64` is kept
/// when `offset < r`, or for negative `r` when `offset >= 1 + r`.
fn limit_ratio(ev: &Evaluator<'_>, mut v: Vec<StepSeries>, r: &[f64], param_text: &str) -> Result<Vec<StepSeries>> {
    let offsets: Vec<f64> = v.iter().map(|s| labels_hash(&s.labels) as f64 / u64::MAX as f64).collect();
    for (i, &param) in r.iter().enumerate().take(ev.n) {
        if param.is_nan() {
            return Err(QueryError::exec("Ratio value is NaN"));
        }
        let ratio = param.clamp(-1.0, 1.0);
        if ratio != param {
            ev.ctx.warn_at(
                format!(
                    "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
                    format_go_f(param),
                    format_go_f(ratio)
                ),
                param_text,
            );
        }
        for (s, &off) in v.iter_mut().zip(&offsets) {
            let keep = ratio != 0.0 && (off < ratio || (ratio < 0.0 && off >= 1.0 + ratio));
            if !keep {
                s.points[i] = None;
            }
        }
    }
    v.retain(|s| s.points.iter().any(Option::is_some));
    Ok(v)
}

/// Prometheus's `labels.Hash`: xxHash64 of `name 0xff value 0xff ...` in label order.
pub(crate) fn labels_hash(l: &Labels) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for lab in l.iter() {
        h.update(lab.name.as_bytes());
        h.update(&[0xff]);
        h.update(lab.value.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

fn rank_cmp(a: f64, b: f64, top: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ if top => b.partial_cmp(&a).unwrap_or(Equal),
        _ => a.partial_cmp(&b).unwrap_or(Equal),
    }
}

/// `count_values("label", v)`: per group, how many elements have each value.
///
/// As Prometheus's `aggregationCountValues` (promql/engine.go) does, each
/// element is first relabelled with `label="<its value>"` and only then
/// grouped, so the value label is one of the grouping labels (added to a
/// `by` list; kept by `without` unless listed there) and replaces any label
/// of that name the input had: `count_values without () ("val", m)` over
/// `m{val="17"} 1` and `m{val="20"} 1` is one series `{val="1"} 2`.
fn count_values(
    ev: &Evaluator<'_>,
    v: &[StepSeries],
    modifier: Option<&LabelModifier>,
    label: &str,
) -> Result<Vec<StepSeries>> {
    let valid = label.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(QueryError::exec(format!("invalid label name {label:?}")));
    }
    // Group by everything the relabelled series keeps except the value label,
    // then (when it is a grouping label) by the value too. The input's own
    // `label` never matters: the relabelling overwrote it.
    let listed = |names: &PLabels| names.labels.iter().any(|n| n == label);
    let (base, by_value): (LabelModifier, bool) = match modifier {
        None => (LabelModifier::Include(PLabels::new(vec![])), true),
        Some(LabelModifier::Include(names)) => {
            let kept = names.labels.iter().filter(|n| *n != label).map(String::as_str).collect();
            (LabelModifier::Include(PLabels::new(kept)), true)
        }
        Some(LabelModifier::Exclude(names)) if listed(names) => (LabelModifier::Exclude(names.clone()), false),
        Some(LabelModifier::Exclude(names)) => (LabelModifier::Exclude(names.clone().append(label.to_string())), true),
    };
    let (keys, member_group) = group(v, Some(&base));
    let mut index: HashMap<(usize, u64), usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::new();
    for i in 0..ev.n {
        for (s, &g) in v.iter().zip(&member_group) {
            let Some(x) = s.points[i] else { continue };
            // Keyed like the label value (`-0` and `0` are two values, as in Prometheus), every NaN alike.
            let value_key = if !by_value {
                0
            } else if x.is_nan() {
                f64::NAN.to_bits()
            } else {
                x.to_bits()
            };
            let key = (g, value_key);
            let o = match index.get(&key) {
                Some(&o) => o,
                None => {
                    // Up to one new series per input point: each new grid is
                    // checked before it is built (and charged with the output).
                    ev.ctx.reserve((out.len() + 1).saturating_mul(ev.n))?;
                    let mut labels = keys[g].clone();
                    if by_value {
                        let value = format_go_f(x);
                        ev.ctx.account_bytes(label.len() + value.len())?;
                        labels.set(label, &value);
                    }
                    out.push(StepSeries::new(labels, vec![None; ev.n]));
                    index.insert(key, out.len() - 1);
                    out.len() - 1
                }
            };
            let p = &mut out[o].points[i];
            *p = Some(p.unwrap_or(0.0) + 1.0);
        }
    }
    Ok(out)
}
