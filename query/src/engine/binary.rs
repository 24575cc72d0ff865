//! Binary operators: arithmetic, comparisons (with and without `bool`), and
//! the set operators, between scalars and vectors, with `on` / `ignoring` /
//! `group_left` / `group_right` vector matching.
//!
//! Match signatures are computed once per series and interned to integers;
//! each step then matches through index arrays without allocating.

use super::eval::{Eval, Evaluator, StepSeries, merge_same_labels, prom_labels_string};
use super::hashing::FastMap;
use crate::error::{QueryError, Result};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};
use strata_schemas::{Labels, METRIC_NAME};

/// Evaluates a binary expression.
pub(crate) fn eval(ev: &Evaluator<'_>, b: &BinaryExpr) -> Result<Eval> {
    let op = b.op.id();
    let modifier = b.modifier.clone().unwrap_or_default();
    if modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some() {
        return Err(QueryError::Unsupported("fill modifiers in vector matching".into()));
    }
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    let bool_ = modifier.return_bool;
    match (lhs, rhs) {
        (Eval::Scalar(l), Eval::Scalar(r)) => {
            let v = l.iter().zip(&r).map(|(&l, &r)| scalar_op(op, l, r, true).0).collect();
            Ok(Eval::Scalar(v))
        }
        (Eval::Vector(v), Eval::Scalar(s)) => vector_scalar(ev, op, v, &s, false, bool_).map(Eval::Vector),
        (Eval::Scalar(s), Eval::Vector(v)) => vector_scalar(ev, op, v, &s, true, bool_).map(Eval::Vector),
        (Eval::Vector(l), Eval::Vector(r)) => {
            let out =
                if is_set_op(op) { set_op(ev, op, l, r, &modifier)? } else { vector_vector(ev, op, l, r, &modifier)? };
            Ok(Eval::Vector(out))
        }
        (l, r) => Err(QueryError::bad(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn is_set_op(op: TokenId) -> bool {
    matches!(op, token::T_LAND | token::T_LOR | token::T_LUNLESS)
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE)
}

/// Applies `op`; returns the value and whether a comparison holds. For a
/// comparison, `bool_` turns the result into 1/0, otherwise the value is `l`.
pub(crate) fn scalar_op(op: TokenId, l: f64, r: f64, bool_: bool) -> (f64, bool) {
    let cmp = |c: bool| if bool_ { (if c { 1.0 } else { 0.0 }, true) } else { (l, c) };
    match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_MOD => (l % r, true),
        token::T_POW => (l.powf(r), true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => cmp(l == r),
        token::T_NEQ => cmp(l != r),
        token::T_GTR => cmp(l > r),
        token::T_LSS => cmp(l < r),
        token::T_GTE => cmp(l >= r),
        token::T_LTE => cmp(l <= r),
        _ => (f64::NAN, false),
    }
}

fn vector_scalar(
    ev: &Evaluator<'_>,
    op: TokenId,
    mut v: Vec<StepSeries>,
    s: &[f64],
    swap: bool,
    bool_: bool,
) -> Result<Vec<StepSeries>> {
    let comparison = is_comparison(op);
    for series in &mut v {
        if !comparison || bool_ {
            ev.ctx.drop_name(series);
        }
        for (i, p) in series.points.iter_mut().enumerate() {
            let Some(x) = *p else { continue };
            let (l, r) = if swap { (s[i], x) } else { (x, s[i]) };
            let (val, keep) = scalar_op(op, l, r, bool_);
            *p = match (comparison, keep) {
                (true, false) => None,
                (true, true) if !bool_ => Some(x),
                _ => Some(val),
            };
        }
    }
    v.retain(|s| s.points.iter().any(Option::is_some));
    merge_same_labels(v)
}

/// Interns match signatures: `on(...)` keeps the listed labels, otherwise
/// every label except `__name__` and the `ignoring(...)` ones.
struct Signatures {
    ids: FastMap<String, usize>,
    /// The key being built (reused: a key is copied only when it is new).
    buf: String,
}

impl Signatures {
    fn new() -> Self {
        Self { ids: FastMap::default(), buf: String::new() }
    }

    fn id(&mut self, l: &Labels, matching: Option<&LabelModifier>) -> usize {
        self.buf.clear();
        for lab in l.iter().filter(|lab| included(&lab.name, matching)) {
            self.buf.push_str(&lab.name);
            self.buf.push('\u{ff}');
            self.buf.push_str(&lab.value);
            self.buf.push('\u{fe}');
        }
        if let Some(&id) = self.ids.get(self.buf.as_str()) {
            return id;
        }
        let n = self.ids.len();
        self.ids.insert(self.buf.clone(), n);
        n
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

fn included(name: &str, matching: Option<&LabelModifier>) -> bool {
    match matching {
        Some(LabelModifier::Include(on)) => on.labels.iter().any(|n| n == name),
        Some(LabelModifier::Exclude(ign)) => name != METRIC_NAME && !ign.labels.iter().any(|n| n == name),
        None => name != METRIC_NAME,
    }
}

fn match_labels(l: &Labels, matching: Option<&LabelModifier>) -> Labels {
    Labels::from_sorted(l.iter().filter(|x| included(&x.name, matching)).cloned().collect())
}

fn set_op(
    ev: &Evaluator<'_>,
    op: TokenId,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &BinModifier,
) -> Result<Vec<StepSeries>> {
    let matching = m.matching.as_ref();
    let mut sigs = Signatures::new();
    let ls: Vec<usize> = lhs.iter().map(|s| sigs.id(&s.labels, matching)).collect();
    let rs: Vec<usize> = rhs.iter().map(|s| sigs.id(&s.labels, matching)).collect();
    let mut lhs = lhs;
    let mut rhs = rhs;
    let mut seen = vec![false; sigs.len()];
    for i in 0..ev.n {
        seen.iter_mut().for_each(|x| *x = false);
        let (probe, probe_sigs) = if op == token::T_LOR { (&lhs, &ls) } else { (&rhs, &rs) };
        for (s, &sig) in probe.iter().zip(probe_sigs) {
            if s.points[i].is_some() {
                seen[sig] = true;
            }
        }
        match op {
            token::T_LAND => lhs.iter_mut().zip(&ls).for_each(|(s, &g)| s.points[i] = s.points[i].filter(|_| seen[g])),
            token::T_LUNLESS => {
                lhs.iter_mut().zip(&ls).for_each(|(s, &g)| s.points[i] = s.points[i].filter(|_| !seen[g]))
            }
            _ => rhs.iter_mut().zip(&rs).for_each(|(s, &g)| s.points[i] = s.points[i].filter(|_| !seen[g])),
        }
    }
    if op == token::T_LOR {
        lhs.extend(rhs);
    }
    lhs.retain(|s| s.points.iter().any(Option::is_some));
    merge_same_labels(lhs)
}

/// Labels of a vector/vector result (Prometheus's `resultMetric`): arithmetic
/// drops the name at once (even under delayed name removal); `bool` comparisons
/// drop it now or, delayed, at the end of the query.
fn result_labels(many: &Labels, one: &Labels, op: TokenId, m: &BinModifier, delayed: bool) -> Labels {
    let drop_name = !is_comparison(op) || (m.return_bool && !delayed);
    if let (VectorMatchCardinality::OneToOne, Some(LabelModifier::Include(on))) = (&m.card, &m.matching) {
        // The `on` labels alone (less the name when it is dropped), built once.
        let kept = many.iter().filter(|x| {
            (!drop_name || x.name.as_str() != METRIC_NAME) && on.labels.iter().any(|n| n == x.name.as_str())
        });
        return Labels::from_sorted(kept.cloned().collect());
    }
    let mut l = many.clone();
    if drop_name {
        l.remove(METRIC_NAME);
    }
    if matches!(m.card, VectorMatchCardinality::OneToOne) {
        match &m.matching {
            Some(LabelModifier::Include(on)) => {
                l = Labels::from_sorted(
                    l.iter().filter(|x| on.labels.iter().any(|n| n == x.name.as_str())).cloned().collect(),
                );
            }
            Some(LabelModifier::Exclude(ign)) => ign.labels.iter().for_each(|n| l.remove(n)),
            None => {}
        }
    }
    if let Some(include) = m.card.labels() {
        for name in &include.labels {
            l.set(name, one.get(name).unwrap_or(""));
        }
    }
    l
}

fn vector_vector(
    ev: &Evaluator<'_>,
    op: TokenId,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    m: &BinModifier,
) -> Result<Vec<StepSeries>> {
    let swapped = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let matching = m.matching.as_ref();
    let mut sigs = Signatures::new();
    let many_sig: Vec<usize> = many.iter().map(|s| sigs.id(&s.labels, matching)).collect();
    let one_sig: Vec<usize> = one.iter().map(|s| sigs.id(&s.labels, matching)).collect();
    let mut one_at: Vec<Option<usize>> = vec![None; sigs.len()];
    let mut matched = vec![false; sigs.len()];
    let mut pairs: FastMap<(usize, usize), usize> = FastMap::default();
    let mut out_index: FastMap<Labels, usize> = FastMap::default();
    let mut out: Vec<StepSeries> = Vec::new();
    // Per output series, the last step a (kept or filtered) pair claimed it: the
    // many-to-one uniqueness check of Prometheus (`matchedSigs`) counts pairs
    // before a filtering comparison drops them.
    let mut claimed: Vec<usize> = Vec::new();
    let comparison = is_comparison(op);
    let filter = comparison && !m.return_bool;
    for i in 0..ev.n {
        ev.ctx.check()?;
        // Prometheus's `VectorBinop` returns at once when either side is empty
        // at this step ("Short-circuit: nothing is going to match"), before any
        // cardinality check: duplicates on the one side are then no error.
        // An empty one side matches nothing below, so only the many side needs
        // looking at.
        if !many.iter().any(|s| s.points[i].is_some()) {
            continue;
        }
        one_at.iter_mut().for_each(|x| *x = None);
        matched.iter_mut().for_each(|x| *x = false);
        for (j, s) in one.iter().enumerate() {
            if s.points[i].is_none() {
                continue;
            }
            if let Some(prev) = one_at[one_sig[j]] {
                return Err(duplicate_error(&one[prev].labels, &s.labels, matching, swapped));
            }
            one_at[one_sig[j]] = Some(j);
        }
        for (k, s) in many.iter().enumerate() {
            let (Some(x), Some(j)) = (s.points[i], one_at[many_sig[k]]) else { continue };
            let y = one[j].points[i].unwrap_or(f64::NAN);
            let (l, r) = if swapped { (y, x) } else { (x, y) };
            if one_to_one {
                if matched[many_sig[k]] {
                    return Err(QueryError::exec(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
                matched[many_sig[k]] = true;
            }
            let (val, keep) = scalar_op(op, l, r, m.return_bool);
            // One-to-one: a pair the filter drops is simply skipped (the
            // one-to-one check above already counted it). Many-to-one: its
            // result label set still takes part in the uniqueness check.
            if filter && !keep && one_to_one {
                continue;
            }
            let o = *pairs.entry((k, j)).or_insert_with(|| {
                let labels = result_labels(&s.labels, &one[j].labels, op, m, ev.ctx.delayed_names);
                *out_index.entry(labels.clone()).or_insert_with(|| {
                    let mut series = StepSeries::new(labels, vec![None; ev.n]);
                    // Comparisons without `bool` keep the many side's pending drop.
                    series.drop_name = if m.return_bool { ev.ctx.delayed_names } else { comparison && s.drop_name };
                    out.push(series);
                    claimed.push(usize::MAX);
                    out.len() - 1
                })
            });
            if claimed[o] == i {
                let msg = if one_to_one {
                    "vector cannot contain metrics with the same labelset"
                } else {
                    "multiple matches for labels: grouping labels must ensure unique matches"
                };
                return Err(QueryError::exec(msg));
            }
            claimed[o] = i;
            if filter && !keep {
                continue;
            }
            out[o].points[i] = Some(val);
        }
    }
    if filter && !one_to_one {
        // Series only filtered pairs claimed.
        out.retain(|s| s.points.iter().any(Option::is_some));
    }
    Ok(out)
}

fn duplicate_error(a: &Labels, b: &Labels, matching: Option<&LabelModifier>, swapped: bool) -> QueryError {
    let side = if swapped { "left" } else { "right" };
    QueryError::exec(format!(
        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
        prom_labels_string(&match_labels(b, matching)),
        prom_labels_string(a),
        prom_labels_string(b),
    ))
}
