//! Selectors: one storage read per selector for the whole query span, then
//! lookback (instant selectors) or windows (range selectors, subqueries).

use super::eval::{Evaluator, RangeData, StepSeries, duration_ms, offset_ms};
use crate::error::{QueryError, Result};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{MatrixSelector, SubqueryExpr, VectorSelector};
use strata_schemas::{METRIC_NAME, Matcher, ReadError, Sample, SeriesData, TimeRange};

/// Converts the parser's matchers (plus the metric name) to storage matchers.
pub(crate) fn to_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::Unsupported("`or` inside label matchers".into()));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.as_str()));
    }
    for m in &vs.matchers.matchers {
        let bad = |e: strata_schemas::matcher::InvalidMatcher| QueryError::bad(e.to_string());
        out.push(match &m.op {
            PMatchOp::Equal => Matcher::equal(m.name.as_str(), m.value.as_str()),
            PMatchOp::NotEqual => Matcher::not_equal(m.name.as_str(), m.value.as_str()),
            PMatchOp::Re(_) => Matcher::regex(m.name.as_str(), m.value.as_str()).map_err(bad)?,
            PMatchOp::NotRe(_) => Matcher::not_regex(m.name.as_str(), m.value.as_str()).map_err(bad)?,
        });
    }
    Ok(out)
}

/// First and last effective evaluation time of a selector over all steps.
fn eff_span(ev: &Evaluator<'_>, at: Option<i64>, offset: i64) -> (i64, i64) {
    match at {
        Some(t) => (t - offset, t - offset),
        None => (ev.start - offset, ev.end - offset),
    }
}

fn fetch(ev: &Evaluator<'_>, ms: &MatrixSelector, range: TimeRange) -> Result<Vec<SeriesData>> {
    let matchers = to_matchers(&ms.vs)?;
    ev.ctx.check_span(range.start - 1, range.end)?;
    ev.ctx.raw_read(&|| ms.to_string(), &matchers, range)?;
    ev.ctx.before_read(range)?;
    let data = ev.ctx.store.select(ev.ctx.tenant, &matchers, range)?;
    ev.ctx.account_series(data.len())?;
    ev.ctx.account(data.iter().map(|s| s.samples.len()).sum())?;
    ev.ctx.check()?;
    Ok(data)
}

/// An instant selector: per step, the latest sample in `(t - lookback, t]`,
/// unless it is a staleness marker. With `timestamps`, the value is the
/// sample's own timestamp in seconds (for `timestamp()`).
///
/// Streams from storage: each series' raw samples are turned into its step
/// points as it arrives and dropped, and the series and sample limits stop
/// the read as soon as they are exceeded. When every step evaluates at the
/// same time (an instant query, or an `@` modifier), only each series'
/// newest sample in the window can matter: storage is asked for that alone
/// ([`strata_schemas::ReadStore::select_newest`]), and a staleness marker
/// there still hides the series.
pub(crate) fn eval_vector(ev: &Evaluator<'_>, vs: &VectorSelector, timestamps: bool) -> Result<Vec<StepSeries>> {
    let mut out = Vec::new();
    stream_vector(ev, vs, timestamps, |labels, points| {
        out.push(StepSeries::new(labels, points.to_vec()));
        Ok(())
    })?;
    Ok(out)
}

/// [`eval_vector`] without collecting: `f` gets each kept series (one with
/// a value at some step) with its step points, in storage order, and the
/// points buffer is reused for the next series. Charges the limits exactly
/// as [`eval_vector`] does (a grid of `n` steps per kept series).
pub(crate) fn stream_vector(
    ev: &Evaluator<'_>,
    vs: &VectorSelector,
    timestamps: bool,
    mut f: impl FnMut(strata_schemas::Labels, &[Option<f64>]) -> Result<()>,
) -> Result<()> {
    let at = ev.at_ms(&vs.at);
    let offset = offset_ms(&vs.offset);
    let (first, last) = eff_span(ev, at, offset);
    let range = TimeRange::new(first - ev.ctx.lookback + 1, last);
    let matchers = to_matchers(vs)?;
    ev.ctx.check_span(range.start - 1, range.end)?;
    let mut kept_n = 0usize;
    let mut points: Vec<Option<f64>> = Vec::with_capacity(ev.n);
    let mut failed: Option<QueryError> = None;
    let mut each = |s: SeriesData| -> std::result::Result<(), ReadError> {
        let accounted = ev.ctx.account_series(1).and_then(|()| ev.ctx.account(s.samples.len()));
        if let Err(e) = accounted.and_then(|()| if kept_n.is_multiple_of(1024) { ev.ctx.check() } else { Ok(()) }) {
            failed = Some(e);
            return Err(ReadError::Stopped);
        }
        // A kept series holds a grid of every step, with or without a value:
        // checked before it is built, charged once kept.
        let built = ev.ctx.reserve(ev.n).map(|()| lookback_into(ev, &s.samples, at, offset, timestamps, &mut points));
        let kept = match built {
            Ok(()) if points.iter().any(Option::is_some) => {
                kept_n += 1;
                f(s.labels, &points).and_then(|()| ev.ctx.account(ev.n))
            }
            Ok(()) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            failed = Some(e);
            return Err(ReadError::Stopped);
        }
        Ok(())
    };
    ev.ctx.raw_read(&|| vs.to_string(), &matchers, range)?;
    ev.ctx.before_read(range)?;
    let read = if first == last {
        ev.ctx.store.select_newest(ev.ctx.tenant, &matchers, range, &mut each)
    } else {
        ev.ctx.store.select_each(ev.ctx.tenant, &matchers, range, &mut each)
    };
    if let Some(e) = failed {
        return Err(e);
    }
    read?;
    ev.ctx.check()?;
    Ok(())
}

/// The step points of one series into `points` (cleared first).
fn lookback_into(
    ev: &Evaluator<'_>,
    samples: &[Sample],
    at: Option<i64>,
    offset: i64,
    ts: bool,
    points: &mut Vec<Option<f64>>,
) {
    points.clear();
    let mut next = 0usize; // index of the first sample after the current time
    for i in 0..ev.n {
        let t = at.unwrap_or(ev.ts(i)) - offset;
        while next < samples.len() && samples[next].ts <= t {
            next += 1;
        }
        let p = match next.checked_sub(1).map(|j| samples[j]) {
            Some(s) if s.ts > t - ev.ctx.lookback && !s.is_stale_marker() => {
                Some(if ts { s.ts as f64 / 1000.0 } else { s.value })
            }
            _ => None,
        };
        points.push(p);
    }
}

/// A range selector `v[r]`: the samples of the whole span, stale markers removed.
pub(crate) fn eval_matrix(ev: &Evaluator<'_>, ms: &MatrixSelector) -> Result<RangeData> {
    let at = ev.at_ms(&ms.vs.at);
    let offset = offset_ms(&ms.vs.offset);
    let range = duration_ms(&ms.range);
    let (first, last) = eff_span(ev, at, offset);
    let mut data = fetch(ev, ms, TimeRange::new(first - range + 1, last))?;
    for s in &mut data {
        s.samples.retain(|p| !p.is_stale_marker());
    }
    data.retain(|s| !s.samples.is_empty());
    Ok(RangeData { series: data, drop_name: Vec::new(), range, offset, at })
}

/// A range selector `v[r]` streamed from storage in chunks of about
/// `chunk_series` series: `f` gets each chunk (stale markers removed, empty
/// series dropped) and the raw samples are freed before the next is read.
/// The series and sample limits stop the read as soon as they are exceeded.
pub(crate) fn stream_matrix(
    ev: &Evaluator<'_>,
    ms: &MatrixSelector,
    chunk_series: usize,
    mut f: impl FnMut(RangeData) -> Result<()>,
) -> Result<()> {
    let at = ev.at_ms(&ms.vs.at);
    let offset = offset_ms(&ms.vs.offset);
    let range = duration_ms(&ms.range);
    let (first, last) = eff_span(ev, at, offset);
    let span = TimeRange::new(first - range + 1, last);
    let matchers = to_matchers(&ms.vs)?;
    ev.ctx.check_span(span.start - 1, span.end)?;
    let chunk = |series| RangeData { series, drop_name: Vec::new(), range, offset, at };
    let mut pending: Vec<SeriesData> = Vec::new();
    let mut failed: Option<QueryError> = None;
    let mut each = |mut s: SeriesData| -> std::result::Result<(), ReadError> {
        let accounted = ev.ctx.account_series(1).and_then(|()| ev.ctx.account(s.samples.len()));
        if let Err(e) = accounted {
            failed = Some(e);
            return Err(ReadError::Stopped);
        }
        s.samples.retain(|p| !p.is_stale_marker());
        if !s.samples.is_empty() {
            pending.push(s);
        }
        if pending.len() >= chunk_series
            && let Err(e) = ev.ctx.check().and_then(|()| f(chunk(std::mem::take(&mut pending))))
        {
            failed = Some(e);
            return Err(ReadError::Stopped);
        }
        Ok(())
    };
    ev.ctx.raw_read(&|| ms.to_string(), &matchers, span)?;
    ev.ctx.before_read(span)?;
    let read = ev.ctx.store.select_each(ev.ctx.tenant, &matchers, span, &mut each);
    if let Some(e) = failed {
        return Err(e);
    }
    read?;
    if !pending.is_empty() {
        f(chunk(pending))?;
    }
    Ok(())
}

/// A subquery `expr[r:s]`: the inner expression evaluated at absolute
/// multiples of `s` covering every outer window, then windowed like a range selector.
pub(crate) fn eval_subquery(ev: &Evaluator<'_>, sq: &SubqueryExpr) -> Result<RangeData> {
    let at = ev.at_ms(&sq.at);
    let offset = offset_ms(&sq.offset);
    let range = duration_ms(&sq.range);
    let step = sq.step.as_ref().map_or(ev.ctx.subquery_step, duration_ms);
    if step <= 0 {
        return Err(QueryError::bad("zero or negative subquery step"));
    }
    let (first, last) = eff_span(ev, at, offset);
    let lower = first - range;
    let mut start = step * (lower / step);
    if start <= lower {
        start += step;
    }
    if start > last {
        return Ok(RangeData { series: Vec::new(), drop_name: Vec::new(), range, offset, at });
    }
    let inner = Evaluator::new(ev.ctx, start, last, step);
    let series = inner.eval_vector(&sq.expr)?;
    let drop_name = series.iter().map(|s| s.drop_name).collect();
    let series = series
        .into_iter()
        .map(|s| {
            let samples =
                s.points.iter().enumerate().filter_map(|(i, p)| p.map(|v| Sample::new(inner.ts(i), v))).collect();
            SeriesData { labels: s.labels, samples }
        })
        .collect();
    Ok(RangeData { series, drop_name, range, offset, at })
}
