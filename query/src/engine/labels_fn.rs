//! `label_replace` and `label_join`: label rewriting, once per series.

use super::eval::{Evaluator, StepSeries, merge_same_labels};
use crate::error::{QueryError, Result};
use promql_parser::parser::Expr;
use std::cmp::Ordering;
use strata_schemas::METRIC_NAME;

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `label_replace(v, dst, replacement, src, regex)`.
pub(crate) fn label_replace(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Vec<StepSeries>> {
    let mut v = ev.eval_vector(args[0])?;
    let dst = ev.eval_string(args[1])?;
    let repl = ev.eval_string(args[2])?;
    let src = ev.eval_string(args[3])?;
    let re_src = ev.eval_string(args[4])?;
    let re = strata_schemas::matcher::anchored_regex(&re_src)
        .map_err(|e| QueryError::bad(format!("invalid regular expression in label_replace(): {re_src}: {e}")))?;
    if !valid_label_name(&dst) {
        return Err(QueryError::bad(format!("invalid destination label name in label_replace(): {dst}")));
    }
    // Each `$` reference expands to at most the whole source value.
    let refs = repl.matches('$').count();
    for s in &mut v {
        let value = s.labels.get(&src).unwrap_or("").to_owned();
        if let Some(caps) = re.captures(&value) {
            // A 40 KB replacement of `$1$1…` over many series must stop at
            // `max_query_bytes` before the strings are built, not after.
            let bound = dst.len().saturating_add(repl.len()).saturating_add(refs.saturating_mul(value.len()));
            if bound > ev.ctx.bytes_left() {
                return Err(ev.ctx.too_many_bytes());
            }
            let mut out = String::new();
            caps.expand(&repl, &mut out);
            ev.ctx.account_bytes(dst.len() + out.len())?;
            s.labels.set(&dst, &out);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
    }
    merge_same_labels(v)
}

/// `label_join(v, dst, separator, src...)`.
pub(crate) fn label_join(ev: &Evaluator<'_>, args: &[&Expr]) -> Result<Vec<StepSeries>> {
    let mut v = ev.eval_vector(args[0])?;
    let dst = ev.eval_string(args[1])?;
    let sep = ev.eval_string(args[2])?;
    let srcs = args[3..].iter().map(|a| ev.eval_string(a)).collect::<Result<Vec<_>>>()?;
    if !valid_label_name(&dst) {
        return Err(QueryError::bad(format!("invalid destination label name in label_join(): {dst}")));
    }
    for s in &mut v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let len = joined.iter().map(|p| p.len()).sum::<usize>() + sep.len() * joined.len().saturating_sub(1);
        ev.ctx.account_bytes(dst.len().saturating_add(len))?;
        let joined = joined.join(&sep);
        s.labels.set(&dst, &joined);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    merge_same_labels(v)
}

/// `sort_by_label(v, label...)`: natural order of the given labels, then the full label set.
pub(crate) fn sort_by_label(ev: &Evaluator<'_>, args: &[&Expr], desc: bool) -> Result<Vec<StepSeries>> {
    let mut v = ev.eval_vector(args[0])?;
    let names = args[1..].iter().map(|a| ev.eval_string(a)).collect::<Result<Vec<_>>>()?;
    v.sort_by(|a, b| {
        let by_labels = names
            .iter()
            .map(|n| natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or("")))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.labels.cmp(&b.labels));
        if desc { by_labels.reverse() } else { by_labels }
    });
    Ok(v)
}

/// Natural string order: runs of digits compare numerically.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a, b);
    loop {
        match (x.is_empty(), y.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (cx, rx) = chunk(x);
        let (cy, ry) = chunk(y);
        let both_digits = cx.starts_with(|c: char| c.is_ascii_digit()) && cy.starts_with(|c: char| c.is_ascii_digit());
        let ord = if both_digits {
            let (tx, ty) = (cx.trim_start_matches('0'), cy.trim_start_matches('0'));
            tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty)).then_with(|| cx.len().cmp(&cy.len()))
        } else {
            cx.cmp(cy)
        };
        if ord.is_ne() {
            return ord;
        }
        (x, y) = (rx, ry);
    }
}

fn chunk(s: &str) -> (&str, &str) {
    let digit = s.starts_with(|c: char| c.is_ascii_digit());
    let end = s.find(|c: char| c.is_ascii_digit() != digit).unwrap_or(s.len());
    s.split_at(end)
}
