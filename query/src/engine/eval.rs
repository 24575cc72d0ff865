//! The evaluator core: intermediate values, limits, and dispatch over the AST.

use super::{aggregate, binary, functions, selector};
use crate::error::{QueryError, Result};
use crate::federation::{FederatedQuery, RemoteError};
use promql_parser::parser::{AtModifier, Expr, Offset};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};
use strata_schemas::{Labels, METRIC_NAME, Matcher, ReadStore, SeriesData, TenantId, TimeRange};

/// Most series an inline run loads (a device's fields, a few devices).
pub(crate) const INLINE_MAX_SERIES: usize = 64;
/// Most samples an inline run loads.
pub(crate) const INLINE_MAX_SAMPLES: usize = 50_000;
/// Most steps of an inline range query (with [`INLINE_MAX_SERIES`] below
/// the range functions' parallel threshold, so an inline run stays on its thread).
pub(crate) const INLINE_MAX_STEPS: i64 = 1_000;

/// State shared by every node of one query: store, tenant, limits.
pub(crate) struct Ctx<'a> {
    pub(crate) store: &'a dyn ReadStore,
    pub(crate) tenant: &'a TenantId,
    pub(crate) lookback: i64,
    pub(crate) subquery_step: i64,
    /// Start and end of the whole query, for `@ start()` / `@ end()`.
    pub(crate) query_start: i64,
    pub(crate) query_end: i64,
    /// Step of the whole query (0 for instant queries), for `step()`.
    pub(crate) query_step: i64,
    pub(crate) deadline: Instant,
    pub(crate) cancel: Option<super::CancelToken>,
    pub(crate) max_samples: usize,
    /// Samples loaded plus points held (every step of every series a node
    /// keeps, whether or not it has a value there), charged as they accrue.
    pub(crate) samples: Cell<usize>,
    /// Maximum bytes of label text the query may create (0: no limit).
    pub(crate) max_bytes: usize,
    pub(crate) bytes: Cell<usize>,
    /// Nodes being evaluated, one inside the other (a guard behind the
    /// parse-time bound of [`super::prescan::MAX_EXPR_DEPTH`]).
    pub(crate) depth: Cell<usize>,
    /// Running on an async worker ([`super::Engine::try_query_instant_inline`]):
    /// past [`INLINE_MAX_SERIES`] series or [`INLINE_MAX_SAMPLES`] samples, or
    /// at a read that may block, evaluation stops with [`QueryError::NotInline`].
    pub(crate) inline: bool,
    /// Maximum number of series the selectors of one query may load (0: no limit).
    pub(crate) max_series: usize,
    pub(crate) series: Cell<usize>,
    /// Maximum time span one selector may read (ms, 0: no limit).
    pub(crate) max_range: i64,
    /// Prometheus's `promql-delayed-name-removal`: `__name__` is dropped at the end, not per operator.
    pub(crate) delayed_names: bool,
    /// Range-function selectors answered from rollups (`engine/rollup.rs`).
    pub(crate) rollup_selects: super::rollup::TierCells,
    pub(crate) warnings: RefCell<Vec<String>>,
    pub(crate) infos: RefCell<Vec<String>>,
    /// The query text, to attach Prometheus-style `(line:col)` positions to annotations.
    pub(crate) query: &'a str,
    /// The federated part of the query (see [`crate::federation`]): set when
    /// the tenant's data spans jurisdictions this node cannot read raw.
    pub(crate) fed: Option<&'a dyn FederatedQuery>,
    /// A jurisdiction that does not answer is a warning (true) or fails the query.
    pub(crate) partial_response: bool,
    /// Evaluating the operand of a push point locally: its selectors read
    /// this node's raw-reachable data as a partial, not as a raw read.
    pub(crate) in_push: Cell<bool>,
    /// Address of the aggregation at the root of the query (0: none), the
    /// one push point whose output may still carry a pending name drop.
    pub(crate) root_agg: usize,
    /// Selectors (text and read range) already checked against the
    /// aggregates-only jurisdictions.
    pub(crate) fenced: RefCell<Vec<(String, TimeRange)>>,
}

impl Ctx<'_> {
    /// Fails when the query was canceled or ran out of time.
    /// What a worker thread needs to stop early: the deadline and the cancel flag.
    pub(crate) fn stop(&self) -> Stop {
        Stop { deadline: self.deadline, cancel: self.cancel.clone() }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.cancel.as_ref().is_some_and(|c| c.is_canceled()) {
            return Err(QueryError::Canceled("expression evaluation"));
        }
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    /// Fails an inline run before a read of `range` that may block (object
    /// store, network): see [`strata_schemas::ReadStore::reads_locally`].
    pub(crate) fn before_read(&self, range: TimeRange) -> Result<()> {
        if self.inline && !self.store.reads_locally(self.tenant, range) {
            return Err(QueryError::NotInline);
        }
        Ok(())
    }

    /// Before a raw read of `selector` (its storage matchers and read
    /// range) outside a push point: fails with the geo-fence error when a
    /// jurisdiction that lets only aggregates leave holds matching series.
    pub(crate) fn raw_read(&self, selector: &dyn Fn() -> String, matchers: &[Matcher], range: TimeRange) -> Result<()> {
        let Some(fq) = self.fed else { return Ok(()) };
        if self.in_push.get() || fq.aggregate_jurisdictions().is_empty() {
            return Ok(());
        }
        let text = selector();
        if self.fenced.borrow().iter().any(|(t, r)| *t == text && *r == range) {
            return Ok(());
        }
        for j in fq.aggregate_jurisdictions() {
            self.check()?;
            match fq.count_series(j, matchers, range, self.deadline) {
                Ok(0) => {}
                Ok(_) => {
                    return Err(QueryError::GeoFence(format!(
                        "geo-fence: tenant {:?} allows only aggregates to leave jurisdiction {j}, and {text} needs its \
                         raw series there; aggregate it ({}) or query from a region in {j}",
                        self.tenant.as_str(),
                        crate::federation::PUSHABLE_OPS,
                    )));
                }
                Err(RemoteError::Refused(m)) => return Err(QueryError::GeoFence(m)),
                Err(RemoteError::Unreachable(m)) => self.unreachable(j, &m)?,
            }
        }
        self.fenced.borrow_mut().push((text, range));
        Ok(())
    }

    /// Jurisdiction `j` did not answer: a warning, or the query fails when
    /// partial responses are off.
    pub(crate) fn unreachable(&self, j: &str, msg: &str) -> Result<()> {
        if self.partial_response {
            self.warn(format!("jurisdiction {j} unreachable: {msg}; its data is missing from this result"));
            Ok(())
        } else {
            Err(QueryError::Unavailable(format!("jurisdiction {j} unreachable and partial_response=false: {msg}")))
        }
    }

    /// Accounts `n` more samples held by the query.
    pub(crate) fn account(&self, n: usize) -> Result<()> {
        let total = self.samples.get().saturating_add(n);
        self.samples.set(total);
        if self.inline && total > INLINE_MAX_SAMPLES {
            return Err(QueryError::NotInline);
        }
        if total > self.max_samples {
            return Err(QueryError::TooManySamples("query execution"));
        }
        Ok(())
    }

    /// Fails unless `n` more points fit under the sample limit, without
    /// charging them: called before allocating something that is charged
    /// once it is known how much of it is kept (a grid of steps, a chunk).
    pub(crate) fn reserve(&self, n: usize) -> Result<()> {
        let total = self.samples.get().saturating_add(n);
        if self.inline && total > INLINE_MAX_SAMPLES {
            return Err(QueryError::NotInline);
        }
        if total > self.max_samples {
            return Err(QueryError::TooManySamples("query execution"));
        }
        Ok(())
    }

    /// Accounts `n` more bytes of label text created by the query (`max_query_bytes`).
    pub(crate) fn account_bytes(&self, n: usize) -> Result<()> {
        let total = self.bytes.get().saturating_add(n);
        self.bytes.set(total);
        if self.max_bytes > 0 && total > self.max_bytes {
            return Err(self.too_many_bytes());
        }
        Ok(())
    }

    /// Bytes of label text the query may still create (`usize::MAX`: no limit).
    pub(crate) fn bytes_left(&self) -> usize {
        if self.max_bytes == 0 { usize::MAX } else { self.max_bytes.saturating_sub(self.bytes.get()) }
    }

    pub(crate) fn too_many_bytes(&self) -> QueryError {
        QueryError::exec(format!(
            "the query exceeded the maximum number of bytes of label values it may create (limit max_query_bytes: \
             {} bytes)",
            self.max_bytes
        ))
    }

    /// Accounts `n` more series loaded by a selector.
    pub(crate) fn account_series(&self, n: usize) -> Result<()> {
        let total = self.series.get().saturating_add(n);
        self.series.set(total);
        if self.inline && total > INLINE_MAX_SERIES {
            return Err(QueryError::NotInline);
        }
        if self.max_series > 0 && total > self.max_series {
            return Err(QueryError::exec(format!(
                "the query exceeded the maximum number of series (limit: {} series): max_query_series / query.max_series",
                self.max_series
            )));
        }
        Ok(())
    }

    /// Fails when one selector would read more than the tenant's maximum range.
    pub(crate) fn check_span(&self, from: i64, to: i64) -> Result<()> {
        if self.max_range > 0 && to - from > self.max_range {
            return Err(QueryError::exec(format!(
                "the query time range exceeds the limit (query length: {}, limit: {})",
                fmt_duration(to - from),
                fmt_duration(self.max_range)
            )));
        }
        Ok(())
    }

    /// A warning annotation about the sub-expression whose text starts with `anchor`.
    pub(crate) fn warn_at(&self, msg: String, anchor: &str) {
        let msg = format!("{msg}{}", self.position(anchor));
        self.warn(msg);
    }

    /// An info annotation about the sub-expression whose text starts with `anchor`.
    pub(crate) fn info_at(&self, msg: String, anchor: &str) {
        let msg = format!("{msg}{}", self.position(anchor));
        let mut w = self.infos.borrow_mut();
        if !w.contains(&msg) {
            w.push(msg);
        }
    }

    /// ` (line:col)` of the first occurrence of `anchor` in the query (1:1 when not found).
    /// promql-parser keeps no positions, so this finds the sub-expression by its text.
    fn position(&self, anchor: &str) -> String {
        let at = if anchor.is_empty() { None } else { self.query.find(anchor) };
        let Some(byte) = at else { return " (1:1)".into() };
        let before = &self.query[..byte];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        format!(" ({line}:{col})")
    }

    pub(crate) fn warn(&self, msg: String) {
        let mut w = self.warnings.borrow_mut();
        if !w.contains(&msg) {
            w.push(msg);
        }
    }

    pub(crate) fn take_warnings(&self) -> Vec<String> {
        self.warnings.take()
    }

    pub(crate) fn take_infos(&self) -> Vec<String> {
        self.infos.take()
    }

    /// Drops the metric name of `s` now, or marks it for the end of the query (delayed name removal).
    pub(crate) fn drop_name(&self, s: &mut StepSeries) {
        if self.delayed_names {
            s.drop_name = true;
        } else {
            s.labels.remove(METRIC_NAME);
        }
    }
}

/// Prometheus's `model.Duration` rendering (`1h30m`, `5m`, `10s`, `1ms`).
pub(crate) fn fmt_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, len) in [
        ("y", 31_536_000_000),
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if rest >= len {
            out.push_str(&format!("{}{unit}", rest / len));
            rest %= len;
        }
    }
    out
}

/// The `Send` part of [`Ctx::check`], for worker threads.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    deadline: Instant,
    cancel: Option<super::CancelToken>,
}

impl Stop {
    /// True once the query should stop (canceled or past its deadline).
    pub(crate) fn stopped(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.is_canceled()) || Instant::now() > self.deadline
    }
}

/// An instant-vector series over the steps: one optional value per step.
#[derive(Debug, Clone)]
pub(crate) struct StepSeries {
    pub(crate) labels: Labels,
    pub(crate) points: Vec<Option<f64>>,
    /// The metric name is to be dropped at the end of the query (delayed name removal).
    pub(crate) drop_name: bool,
}

impl StepSeries {
    pub(crate) fn new(labels: Labels, points: Vec<Option<f64>>) -> Self {
        Self { labels, points, drop_name: false }
    }
}

/// A range vector: raw samples plus the window geometry, evaluated per step
/// as the left-open window `(t' - range, t']` with `t' = (at or t) - offset`.
#[derive(Debug)]
pub(crate) struct RangeData {
    pub(crate) series: Vec<SeriesData>,
    /// Per series: its metric name is to be dropped (subqueries under delayed name removal); may be empty.
    pub(crate) drop_name: Vec<bool>,
    pub(crate) range: i64,
    pub(crate) offset: i64,
    pub(crate) at: Option<i64>,
}

impl RangeData {
    /// Whether series `i` carries a pending name drop.
    pub(crate) fn drops_name(&self, i: usize) -> bool {
        self.drop_name.get(i).copied().unwrap_or(false)
    }

    /// Calls `f(step, window, window_end)` for every step; the window slides
    /// forward with two indices, so the whole pass is linear.
    pub(crate) fn for_each_window(
        &self,
        ev: &Evaluator<'_>,
        samples: &[strata_schemas::Sample],
        f: impl FnMut(usize, &[strata_schemas::Sample], i64),
    ) {
        self.geometry(ev).for_each_window(samples, f);
    }

    /// The window geometry, free of the evaluator (shareable across threads).
    pub(crate) fn geometry(&self, ev: &Evaluator<'_>) -> Windows {
        Windows { start: ev.start, step: ev.step, n: ev.n, range: self.range, offset: self.offset, at: self.at }
    }
}

/// Where the windows of a range vector lie at each step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    pub(crate) start: i64,
    pub(crate) step: i64,
    pub(crate) n: usize,
    pub(crate) range: i64,
    pub(crate) offset: i64,
    pub(crate) at: Option<i64>,
}

impl Windows {
    /// Timestamp of step `i`.
    pub(crate) fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Calls `f(step, window, window_end)` for every step (see [`RangeData::for_each_window`]).
    pub(crate) fn for_each_window(
        &self,
        samples: &[strata_schemas::Sample],
        mut f: impl FnMut(usize, &[strata_schemas::Sample], i64),
    ) {
        let (mut lo, mut hi) = (0usize, 0usize);
        for i in 0..self.n {
            let end = self.at.unwrap_or(self.ts(i)) - self.offset;
            let start = end - self.range;
            if i == 0 {
                // The first window by binary search (an instant query's only
                // one, often near the end of the samples), then walked forward.
                hi = samples.partition_point(|s| s.ts <= end);
                lo = samples[..hi].partition_point(|s| s.ts <= start);
            }
            while hi < samples.len() && samples[hi].ts <= end {
                hi += 1;
            }
            while lo < hi && samples[lo].ts <= start {
                lo += 1;
            }
            f(i, &samples[lo..hi], end);
        }
    }
}

/// The value of an evaluated node.
#[derive(Debug)]
pub(crate) enum Eval {
    Scalar(Vec<f64>),
    String(String),
    Vector(Vec<StepSeries>),
    Matrix(RangeData),
}

impl Eval {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Eval::Scalar(_) => "scalar",
            Eval::String(_) => "string",
            Eval::Vector(_) => "instant vector",
            Eval::Matrix(_) => "range vector",
        }
    }
}

/// Evaluates expressions at the steps `start, start + step, ..., end`.
pub(crate) struct Evaluator<'a> {
    pub(crate) ctx: &'a Ctx<'a>,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) step: i64,
    pub(crate) n: usize,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(ctx: &'a Ctx<'a>, start: i64, end: i64, step: i64) -> Self {
        let n = ((end - start) / step + 1).max(0) as usize;
        Self { ctx, start, end, step, n }
    }

    /// Timestamp of step `i`.
    pub(crate) fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// Evaluates `expr`. Every value it returns has been charged to the
    /// sample limit: a grid of `n` steps per series (scalars: one series),
    /// and nothing is allocated for a grid that does not fit (subquery
    /// steps included, see [`Ctx::reserve`]).
    pub(crate) fn eval(&self, expr: &Expr) -> Result<Eval> {
        self.ctx.check()?;
        let depth = self.ctx.depth.get() + 1;
        if depth > super::prescan::MAX_EXPR_DEPTH + 8 {
            return Err(QueryError::bad("the expression is nested too deeply"));
        }
        self.ctx.depth.set(depth);
        let out = self.eval_node(expr);
        self.ctx.depth.set(depth - 1);
        let out = out?;
        if !charges_itself(expr) {
            match &out {
                Eval::Vector(v) => self.ctx.account(v.len().saturating_mul(self.n))?,
                Eval::Scalar(v) => self.ctx.account(v.len())?,
                Eval::String(_) | Eval::Matrix(_) => {}
            }
        }
        Ok(out)
    }

    fn eval_node(&self, expr: &Expr) -> Result<Eval> {
        if !matches!(expr, Expr::Paren(_) | Expr::StringLiteral(_) | Expr::MatrixSelector(_) | Expr::Subquery(_)) {
            // Any other node holds at least one grid of `n` steps: a
            // subquery of 10 years at 1 s must fail here, not allocate.
            self.ctx.reserve(self.n)?;
        }
        Ok(match expr {
            Expr::NumberLiteral(n) => Eval::Scalar(vec![n.val; self.n]),
            Expr::StringLiteral(s) => Eval::String(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr)?,
            Expr::Unary(u) => self.eval_unary(&u.expr)?,
            Expr::VectorSelector(vs) => Eval::Vector(selector::eval_vector(self, vs, false)?),
            Expr::MatrixSelector(ms) => Eval::Matrix(selector::eval_matrix(self, ms)?),
            Expr::Subquery(sq) => Eval::Matrix(selector::eval_subquery(self, sq)?),
            Expr::Call(call) => functions::eval_call(self, call)?,
            Expr::Aggregate(agg) => match super::federate::try_push(self, agg)? {
                Some(v) => Eval::Vector(v),
                None => aggregate::eval(self, agg)?,
            },
            Expr::Binary(b) => binary::eval(self, b)?,
            Expr::Extension(_) => return Err(QueryError::Unsupported("extension expressions".into())),
        })
    }

    fn eval_unary(&self, inner: &Expr) -> Result<Eval> {
        Ok(match self.eval(inner)? {
            Eval::Scalar(mut v) => {
                v.iter_mut().for_each(|x| *x = -*x);
                Eval::Scalar(v)
            }
            Eval::Vector(mut series) => {
                for s in &mut series {
                    self.ctx.drop_name(s);
                    s.points.iter_mut().flatten().for_each(|x| *x = -*x);
                }
                Eval::Vector(merge_same_labels(series)?)
            }
            other => {
                return Err(QueryError::bad(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    other.type_name()
                )));
            }
        })
    }

    /// Evaluates an expression that must yield a scalar (one value per step).
    pub(crate) fn eval_scalar(&self, expr: &Expr) -> Result<Vec<f64>> {
        match self.eval(expr)? {
            Eval::Scalar(v) => Ok(v),
            other => Err(QueryError::bad(format!("expected scalar, got {}", other.type_name()))),
        }
    }

    /// Evaluates an expression that must yield an instant vector.
    pub(crate) fn eval_vector(&self, expr: &Expr) -> Result<Vec<StepSeries>> {
        match self.eval(expr)? {
            Eval::Vector(v) => Ok(v),
            other => Err(QueryError::bad(format!("expected instant vector, got {}", other.type_name()))),
        }
    }

    /// Evaluates an expression that must yield a string.
    pub(crate) fn eval_string(&self, expr: &Expr) -> Result<String> {
        match self.eval(expr)? {
            Eval::String(s) => Ok(s),
            other => Err(QueryError::bad(format!("expected string, got {}", other.type_name()))),
        }
    }

    /// Resolves an `@` modifier to milliseconds.
    pub(crate) fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|at| match at {
            AtModifier::Start => self.ctx.query_start,
            AtModifier::End => self.ctx.query_end,
            AtModifier::At(t) => system_time_ms(*t),
        })
    }
}

/// Nodes that charge the sample limit as they build their value (selectors
/// per series, range functions per chunk), and parentheses, which pass
/// their operand's value on.
fn charges_itself(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) | Expr::Subquery(_) => true,
        Expr::Call(c) => super::range_fns::RangeFn::lookup(c.func.name).is_some(),
        _ => false,
    }
}

pub(crate) fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub(crate) fn duration_ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

/// Merges series that ended up with the same labels (e.g. after dropping the
/// metric name). Two of them with a value at the same step is Prometheus's
/// "vector cannot contain metrics with the same labelset" error.
pub(crate) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let target = &mut out[i];
                target.drop_name |= s.drop_name;
                for (dst, src) in target.points.iter_mut().zip(s.points) {
                    match (dst.is_some(), src) {
                        (true, Some(_)) => {
                            return Err(QueryError::exec("vector cannot contain metrics with the same labelset"));
                        }
                        (false, Some(v)) => *dst = Some(v),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The series a function over a range vector returns (`rate`, `*_over_time`,
/// …), as Prometheus's `evaluator.eval` builds them for a `*parser.Call`
/// with a matrix argument: one per input series with a value at some step.
/// Without delayed name removal, two of them whose labels became equal when
/// the function dropped the metric name are the error "vector cannot contain
/// metrics with the same labelset" (`mat.ContainsSameLabelset()` over the
/// whole output), even when they never have a value at the same step; the
/// per-step merge of [`merge_same_labels`] is what `rangeEval` does behind
/// every other function, and what the delayed removal's final clean-up does.
pub(crate) fn range_fn_output(
    ev: &Evaluator<'_>,
    drops_name: bool,
    series: Vec<StepSeries>,
) -> Result<Vec<StepSeries>> {
    if !drops_name || ev.ctx.delayed_names {
        return merge_same_labels(series);
    }
    let mut seen: std::collections::HashSet<Labels> = std::collections::HashSet::with_capacity(series.len());
    let mut out = Vec::with_capacity(series.len());
    for s in series.into_iter().filter(|s| s.points.iter().any(Option::is_some)) {
        if !seen.insert(s.labels.clone()) {
            return Err(QueryError::exec("vector cannot contain metrics with the same labelset"));
        }
        out.push(s);
    }
    Ok(out)
}

/// Text that starts `e` in the query, to locate annotations (promql-parser keeps no positions).
pub(crate) fn anchor(e: &Expr) -> String {
    match e {
        Expr::Paren(p) => format!("({}", anchor(&p.expr)),
        Expr::VectorSelector(vs) => vs.name.clone().unwrap_or_else(|| "{".into()),
        Expr::MatrixSelector(ms) => ms.vs.name.clone().unwrap_or_else(|| "{".into()),
        Expr::Call(c) => format!("{}(", c.func.name),
        Expr::Aggregate(a) => a.op.to_string(),
        other => other.to_string(),
    }
}

/// Prometheus's `labels.String()`: `{__name__="x", a="b"}`.
pub(crate) fn prom_labels_string(l: &Labels) -> String {
    let parts: Vec<String> = l.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
    format!("{{{}}}", parts.join(", "))
}
