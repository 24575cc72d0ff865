//! The PromQL engine: parses an expression and evaluates it against a [`ReadStore`].
//!
//! ```text
//!  query string ──parse──► AST ──Evaluator::eval──► Eval (per-step columns) ──► Value
//!                                      │
//!                                      └─ each selector: ONE ReadStore::select over
//!                                         [start - range - offset - lookback, end],
//!                                         then a sliding window per step
//! ```
//!
//! Evaluation is column-oriented like Prometheus's range evaluation: every
//! node produces, for each output series, one optional value per step; an
//! instant query is a range query with a single step. Labels are computed
//! once per series, values per step, so the per-step loops do not allocate.

mod aggregate;
mod binary;
mod eval;
pub(crate) mod federate;
mod functions;
mod group_rollup;
mod hashing;
mod histogram;
mod labels_fn;
mod metrics;
mod parse_cache;
pub mod prescan;
mod range_fns;
mod rollup;
mod selector;
mod stats;
/// Time helpers shared with the HTTP layer.
pub(crate) mod eval_support {
    pub(crate) use super::eval::{duration_ms, offset_ms, system_time_ms};
    pub(crate) use super::range_fns::RangeFn;
}
#[cfg(test)]
mod tests;

use crate::config::QueryConfig;
use crate::error::{QueryError, Result};
use crate::federation::{FederatedQuery, Federation, Grid, PartialSeries};
use crate::value::{InstantSample, QueryResult, RangeSeries, Value};
use eval::{Ctx, Eval, Evaluator};
use promql_parser::parser::{self, Expr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use strata_schemas::{ReadStore, Sample, TenantId, TenantResolver};

/// A flag that cancels running queries that share it (e.g. when the HTTP client goes away).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not canceled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every query holding this token at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_canceled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-query options.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Lowers the configured timeout for this query.
    pub timeout: Option<Duration>,
    /// Cancels the query when triggered.
    pub cancel: Option<CancelToken>,
    /// Thanos's `partial_response` (default true): a jurisdiction or region
    /// that does not answer is a warning naming it; false makes it fail the
    /// query ([`QueryError::Unavailable`], or a storage read's `unavailable`).
    pub partial_response: bool,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self { timeout: None, cancel: None, partial_response: true }
    }
}

/// The PromQL engine. Cheap to share behind an `Arc`; evaluation is synchronous
/// (call it from a blocking thread).
#[derive(Debug)]
pub struct Engine {
    store: Arc<dyn ReadStore>,
    config: QueryConfig,
    policies: Option<Arc<dyn TenantResolver>>,
    federation: Option<Arc<dyn Federation>>,
    stats: TenantQueryStats,
    /// Parsed trees of recent query texts ([`parse_cache`]).
    parsed: parse_cache::ParseCache,
}

/// Queries run and samples processed, per tenant.
#[derive(Debug, Default)]
pub struct TenantQueryStats {
    by_tenant: parking_lot::Mutex<std::collections::BTreeMap<TenantId, (u64, u64)>>,
    rollup_selects: rollup::TierCounters,
}

impl TenantQueryStats {
    fn record(&self, tenant: &TenantId, samples: usize) {
        let mut m = self.by_tenant.lock();
        let e = m.entry(tenant.clone()).or_default();
        e.0 += 1;
        e.1 += samples as u64;
    }

    /// Aggregations answered from a declared group rollup since start, in
    /// this process (every engine: `strata_query_group_rollup_selects_total`).
    pub fn group_rollup_selects(&self) -> u64 {
        group_rollup::group_selects()
    }

    /// Range-function selectors answered from rollups (all tenants).
    pub fn rollup_selects(&self) -> u64 {
        self.rollup_selects.total()
    }

    /// Range-function selectors answered from rollups per tier (`5m`,
    /// `1h`, `1d`), finest first (all tenants).
    pub fn rollup_selects_by_tier(&self) -> Vec<(&'static str, u64)> {
        self.rollup_selects.by_tier()
    }

    /// `(queries run, samples processed)` of `tenant`: samples loaded from
    /// storage plus points produced, the quantity `max_samples` limits.
    pub fn of(&self, tenant: &TenantId) -> (u64, u64) {
        self.by_tenant.lock().get(tenant).copied().unwrap_or_default()
    }
}

impl Engine {
    /// Builds an engine reading from `store`.
    pub fn new(store: Arc<dyn ReadStore>, config: QueryConfig) -> Self {
        Self {
            store,
            config,
            policies: None,
            federation: None,
            stats: TenantQueryStats::default(),
            parsed: parse_cache::ParseCache::default(),
        }
    }

    /// Federates queries across jurisdictions (see [`crate::federation`]):
    /// each query asks `federation` for its federated part, reads raw series
    /// through it, pushes aggregations down to aggregates-only jurisdictions
    /// and enforces the tenant's geo-fence.
    pub fn with_federation(mut self, federation: Arc<dyn Federation>) -> Self {
        self.federation = Some(federation);
        self
    }

    /// The federation set by [`Engine::with_federation`].
    pub fn federation(&self) -> Option<&Arc<dyn Federation>> {
        self.federation.as_ref()
    }

    /// Also applies each tenant's registry limits (`max_query_series`,
    /// `max_query_samples`, `max_query_bytes`, `max_query_range`), whichever of them and the
    /// configured limits is stricter.
    pub fn with_policies(mut self, policies: Arc<dyn TenantResolver>) -> Self {
        self.policies = Some(policies);
        self
    }

    /// The engine's configuration.
    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// Parses `query` under this engine's `max_query_length` (see [`parse`]),
    /// or clones the tree of an earlier parse of the same text ([`parse_cache`]).
    pub fn parse(&self, query: &str) -> Result<Expr> {
        self.parsed.get_or_parse(query, |q| parse(q, self.config.max_query_length))
    }

    /// The store the engine reads from.
    pub fn store(&self) -> &Arc<dyn ReadStore> {
        &self.store
    }

    /// Evaluates `query` at `t_ms` (an instant query).
    pub fn query_instant(&self, tenant: &TenantId, query: &str, t_ms: i64) -> Result<QueryResult> {
        self.query_instant_with(tenant, query, t_ms, &QueryOptions::default())
    }

    /// Evaluates `query` at every step of `[start_ms, end_ms]` (a range query).
    pub fn query_range(
        &self,
        tenant: &TenantId,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        self.query_range_with(tenant, query, start_ms, end_ms, step_ms, &QueryOptions::default())
    }

    /// [`Engine::query_instant`] with a timeout and cancellation.
    pub fn query_instant_with(
        &self,
        tenant: &TenantId,
        query: &str,
        t_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult> {
        let expr = self.parse(query)?;
        self.run_instant(tenant, query, &expr, t_ms, opts, false)
    }

    /// [`Engine::query_range`] with a timeout and cancellation.
    pub fn query_range_with(
        &self,
        tenant: &TenantId,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult> {
        self.check_range(start_ms, end_ms, step_ms)?;
        let expr = range_expr(self.parse(query)?)?;
        self.run_range(tenant, query, &expr, (start_ms, end_ms, step_ms), opts, false)
    }

    /// [`Engine::query_instant_with`] for a small query, on the calling
    /// thread: `None` when the query is not small after all (more than 64
    /// series or 50,000 samples, or a read that may block — see
    /// [`strata_schemas::ReadStore::reads_locally`]); the caller then runs
    /// [`Engine::query_instant_with`] on a blocking thread. Nothing of an
    /// abandoned run is counted.
    ///
    /// What it is for: a query of one device's series takes a few
    /// microseconds to evaluate, and handing it to a blocking thread and
    /// back costs two cross-CPU wake-ups, more than the query (on the
    /// 2-core peer-bench host, 0.06 ms pinned to one CPU vs 0.09 ms not).
    pub fn try_query_instant_inline(
        &self,
        tenant: &TenantId,
        query: &str,
        t_ms: i64,
        opts: &QueryOptions,
    ) -> Option<Result<QueryResult>> {
        let expr = match self.parse(query) {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        if let Err(r) = self.inline_federation(tenant, query, opts) {
            return r;
        }
        if !selectors_look_narrow(&expr) {
            return None;
        }
        not_inline_to_none(self.run_instant(tenant, query, &expr, t_ms, opts, true))
    }

    /// [`Engine::try_query_instant_inline`] for a range query of at most
    /// 1,000 steps (anything invalid is left to [`Engine::query_range_with`]).
    pub fn try_query_range_inline(
        &self,
        tenant: &TenantId,
        query: &str,
        (start_ms, end_ms, step_ms): (i64, i64, i64),
        opts: &QueryOptions,
    ) -> Option<Result<QueryResult>> {
        if step_ms <= 0 || end_ms < start_ms || (end_ms - start_ms) / step_ms >= eval::INLINE_MAX_STEPS {
            return None;
        }
        let expr = range_expr(self.parse(query).ok()?).ok()?;
        if let Err(r) = self.inline_federation(tenant, query, opts) {
            return r;
        }
        if !selectors_look_narrow(&expr) {
            return None;
        }
        not_inline_to_none(self.run_range(tenant, query, &expr, (start_ms, end_ms, step_ms), opts, true))
    }

    fn run_instant(
        &self,
        tenant: &TenantId,
        query: &str,
        expr: &Expr,
        t_ms: i64,
        opts: &QueryOptions,
        inline: bool,
    ) -> Result<QueryResult> {
        let fq = if inline { None } else { self.begin(tenant, query, opts)? };
        let mut ctx = self.ctx(tenant, query, (t_ms, t_ms, 0), opts, inline);
        attach(&mut ctx, fq.as_deref(), expr);
        let result = (|| {
            let ev = Evaluator::new(&ctx, t_ms, t_ms, 1);
            let out = cleanup_names(eval_collecting_store_warnings(&ctx, &ev, expr)?)?;
            let value = instant_value(out, t_ms, is_ordered(expr));
            finish(&ctx, value)
        })()
        .map_err(QueryError::federated);
        self.record(tenant, &ctx, &result);
        result
    }

    fn run_range(
        &self,
        tenant: &TenantId,
        query: &str,
        expr: &Expr,
        (start_ms, end_ms, step_ms): (i64, i64, i64),
        opts: &QueryOptions,
        inline: bool,
    ) -> Result<QueryResult> {
        let fq = if inline { None } else { self.begin(tenant, query, opts)? };
        let mut ctx = self.ctx(tenant, query, (start_ms, end_ms, step_ms), opts, inline);
        attach(&mut ctx, fq.as_deref(), expr);
        let result = (|| {
            let ev = Evaluator::new(&ctx, start_ms, end_ms, step_ms);
            let out = cleanup_names(eval_collecting_store_warnings(&ctx, &ev, expr)?)?;
            let value = range_value(&ev, out)?;
            finish(&ctx, value)
        })()
        .map_err(QueryError::federated);
        self.record(tenant, &ctx, &result);
        result
    }

    /// The federated part of a query of `tenant` (`None`: nothing to federate).
    fn begin(&self, tenant: &TenantId, query: &str, opts: &QueryOptions) -> Result<Option<Box<dyn FederatedQuery>>> {
        match &self.federation {
            None => Ok(None),
            Some(f) => f.begin(tenant, query, opts.partial_response).map_err(QueryError::GeoFence),
        }
    }

    /// Before an inline run: `Err(answer)` when it must not run inline
    /// (`Err(None)`: the query is federated, run it on a blocking thread;
    /// `Err(Some(error))`: the geo-fence refuses it).
    fn inline_federation(
        &self,
        tenant: &TenantId,
        query: &str,
        opts: &QueryOptions,
    ) -> std::result::Result<(), Option<Result<QueryResult>>> {
        match self.begin(tenant, query, opts) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(None),
            Err(e) => Err(Some(Err(e))),
        }
    }

    /// The data region's side of a push-down (see [`crate::federation`]):
    /// evaluates each of `exprs` (partial aggregations, each checked with
    /// [`crate::federation::check_pushable`]: `bad_data` otherwise) over this
    /// engine's own store on `grid`, without federation, under the tenant's
    /// sample and series limits. One list of series per expression, in
    /// order; names are removed as in a query's result, and series without
    /// any value are left out.
    pub fn evaluate_partials(
        &self,
        tenant: &TenantId,
        exprs: &[String],
        grid: Grid,
        opts: &QueryOptions,
    ) -> Result<Vec<Vec<PartialSeries>>> {
        self.check_range(grid.start, grid.end, grid.step)?;
        let mut aggs = Vec::with_capacity(exprs.len());
        for e in exprs {
            let parsed = self.parse(e)?;
            let agg = federate::pushable_root(&parsed)
                .map_err(|why| QueryError::bad(format!("not a pushable partial aggregation: {e}: {why}")))?;
            aggs.push(agg.clone());
        }
        let text = exprs.join("\n");
        let step = if grid.start == grid.end { 0 } else { grid.step };
        let ctx = self.ctx(tenant, &text, (grid.query_start, grid.query_end, step), opts, false);
        let result = (|| {
            let ev = Evaluator::new(&ctx, grid.start, grid.end, grid.step);
            let parts = federate::eval_partials(&ev, &aggs)?;
            Ok(parts
                .into_iter()
                .map(|series| {
                    series
                        .into_iter()
                        .filter(|s| s.points.iter().any(Option::is_some))
                        .map(|s| PartialSeries { labels: s.labels, points: s.points })
                        .collect()
                })
                .collect())
        })();
        self.record(tenant, &ctx, &result);
        result
    }

    /// Counts a finished query (an abandoned inline run is not one).
    fn record<T>(&self, tenant: &TenantId, ctx: &Ctx<'_>, result: &Result<T>) {
        if matches!(result, Err(QueryError::NotInline)) {
            return;
        }
        self.stats.record(tenant, ctx.samples.get());
        self.stats.rollup_selects.add(&ctx.rollup_selects);
    }

    /// Per-tenant query counters.
    pub fn stats(&self) -> &TenantQueryStats {
        &self.stats
    }

    fn check_range(&self, start: i64, end: i64, step: i64) -> Result<()> {
        if end < start {
            return Err(QueryError::bad("end timestamp must not be before start time"));
        }
        if step <= 0 {
            return Err(QueryError::bad(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if (end - start) / step > self.config.max_points_per_series as i64 {
            return Err(QueryError::bad(format!(
                "exceeded maximum resolution of {} points per timeseries. Try decreasing the query resolution (?step=XX) (limit query.max_points_per_series)",
                thousands(self.config.max_points_per_series)
            )));
        }
        Ok(())
    }

    fn ctx<'a>(
        &'a self,
        tenant: &'a TenantId,
        query: &'a str,
        (start, end, step): (i64, i64, i64),
        opts: &QueryOptions,
        inline: bool,
    ) -> Ctx<'a> {
        let timeout = opts.timeout.map_or(self.config.timeout, |t| t.min(self.config.timeout));
        let mut limits = self.config.limits_for(tenant.as_str());
        if let Some(p) = &self.policies {
            limits.tighten(&p.limits(tenant));
        }
        Ctx {
            store: self.store.as_ref(),
            tenant,
            lookback: self.config.lookback_delta.as_millis() as i64,
            subquery_step: self.config.default_subquery_step.as_millis() as i64,
            query_start: start,
            query_end: end,
            query_step: step,
            deadline: Instant::now() + timeout,
            cancel: opts.cancel.clone(),
            max_samples: limits.max_samples,
            samples: Default::default(),
            max_bytes: limits.max_bytes,
            bytes: Default::default(),
            depth: Default::default(),
            inline,
            max_series: limits.max_series,
            series: Default::default(),
            max_range: limits.max_range.as_millis() as i64,
            delayed_names: self.config.delayed_name_removal,
            rollup_selects: Default::default(),
            warnings: Default::default(),
            infos: Default::default(),
            query,
            fed: None,
            partial_response: opts.partial_response,
            in_push: Default::default(),
            root_agg: 0,
            fenced: Default::default(),
        }
    }
}

/// Parses a PromQL expression of at most `max_len` bytes (0: any length)
/// and [`prescan::MAX_EXPR_DEPTH`] levels, mapping parser errors to
/// `bad_data`. The length and depth are checked on the text before the
/// parser runs (see [`prescan`]): every recursive walk of the tree (the
/// parser's, evaluation, pretty-printing, `Drop`) is bounded by them.
pub fn parse(query: &str, max_len: usize) -> Result<Expr> {
    prescan::check(query, max_len).map_err(|e| QueryError::bad(format!("invalid parameter \"query\": {e}")))?;
    parser::parse(query).map_err(|e| QueryError::bad(format!("invalid parameter \"query\": {e}")))
}

/// The expression of a range query must be an instant vector or a scalar.
fn range_expr(expr: Expr) -> Result<Expr> {
    match expr.value_type() {
        parser::value::ValueType::Vector | parser::value::ValueType::Scalar => Ok(expr),
        t => {
            let name = if t == parser::value::ValueType::Matrix { "range vector" } else { "string" };
            Err(QueryError::bad(format!(
                "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
            )))
        }
    }
}

/// An inline run's answer: `None` when it gave up ([`QueryError::NotInline`]).
/// True when every selector of `expr` names a label value (a matcher on a
/// label other than `__name__` that the empty value does not satisfy, e.g.
/// `device="d1"` or `d=~"1|2"`), the shape of a query over a few series.
/// Only such queries are tried inline: an inline run gives up past 64
/// series, but only after the store has listed, labelled and sorted every
/// matching series, and for a fleet query (`max by (region) (temp)`) that
/// abandoned work was 20–30 % of the query's CPU. The answer never depends
/// on it; a query it lets through and that turns out large is still
/// abandoned and rerun as before.
fn selectors_look_narrow(expr: &Expr) -> bool {
    use promql_parser::parser::VectorSelector;
    let narrow = |vs: &VectorSelector| {
        selector::to_matchers(vs)
            .is_ok_and(|ms| ms.iter().any(|m| m.name != strata_schemas::METRIC_NAME && !m.matches_empty()))
    };
    match expr {
        Expr::VectorSelector(vs) => narrow(vs),
        Expr::MatrixSelector(ms) => narrow(&ms.vs),
        Expr::Aggregate(a) => selectors_look_narrow(&a.expr) && a.param.as_deref().is_none_or(selectors_look_narrow),
        Expr::Unary(u) => selectors_look_narrow(&u.expr),
        Expr::Binary(b) => selectors_look_narrow(&b.lhs) && selectors_look_narrow(&b.rhs),
        Expr::Paren(p) => selectors_look_narrow(&p.expr),
        Expr::Subquery(sq) => selectors_look_narrow(&sq.expr),
        Expr::Call(c) => c.args.args.iter().all(|a| selectors_look_narrow(a)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::Extension(_) => false,
    }
}

fn not_inline_to_none(r: Result<QueryResult>) -> Option<Result<QueryResult>> {
    (!matches!(r, Err(QueryError::NotInline))).then_some(r)
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Delayed name removal's final step (Prometheus's `cleanupMetricLabels`):
/// drops the names still marked, then rejects (or, over disjoint steps, merges)
/// series that now share a label set.
fn cleanup_names(out: Eval) -> Result<Eval> {
    Ok(match out {
        Eval::Vector(mut v) if v.iter().any(|s| s.drop_name) => {
            for s in &mut v {
                if s.drop_name {
                    s.labels.remove(strata_schemas::METRIC_NAME);
                    s.drop_name = false;
                }
            }
            Eval::Vector(eval::merge_same_labels(v)?)
        }
        Eval::Matrix(mut rd) if rd.drop_name.iter().any(|d| *d) => {
            for (s, d) in rd.series.iter_mut().zip(&rd.drop_name) {
                if *d {
                    s.labels.remove(strata_schemas::METRIC_NAME);
                }
            }
            rd.drop_name.clear();
            Eval::Matrix(rd)
        }
        other => other,
    })
}

/// [`cleanup_names`] of an instant vector.
pub(crate) fn cleanup_vector(v: Vec<eval::StepSeries>) -> Result<Vec<eval::StepSeries>> {
    match cleanup_names(Eval::Vector(v))? {
        Eval::Vector(v) => Ok(v),
        other => Err(QueryError::Internal(format!("name cleanup turned a vector into a {}", other.type_name()))),
    }
}

/// Makes `ctx` evaluate the federated query `fq`: raw reads through its
/// store, push points, and an info per excluded jurisdiction.
fn attach<'a>(ctx: &mut Ctx<'a>, fq: Option<&'a dyn FederatedQuery>, expr: &Expr) {
    let Some(fq) = fq else { return };
    ctx.store = fq.store();
    ctx.fed = Some(fq);
    let mut root = expr;
    while let Expr::Paren(p) = root {
        root = &p.expr;
    }
    if let Expr::Aggregate(agg) = root {
        ctx.root_agg = std::ptr::from_ref(agg) as usize;
    }
    for j in fq.excluded_jurisdictions() {
        ctx.infos
            .borrow_mut()
            .push(format!("jurisdiction {j}: the tenant's policy keeps its data there; it is not part of this result"));
    }
}

/// Evaluates `expr`, adding the warnings the store raised while it was read
/// (a cluster peer that did not answer: see `strata_schemas::read_warnings`)
/// to the query's own; with `partial_response=false` such a store fails
/// the read instead.
fn eval_collecting_store_warnings(ctx: &Ctx<'_>, ev: &Evaluator<'_>, expr: &Expr) -> Result<Eval> {
    let (out, raised) = strata_schemas::read_warnings::collect_with(ctx.partial_response, || ev.eval(expr));
    for w in raised {
        ctx.warn(w);
    }
    out
}

/// The result with its annotations (a federated query's warnings included);
/// an empty answer of a query that left out excluded jurisdictions is the
/// geo-fence error.
fn finish(ctx: &Ctx<'_>, value: Value) -> Result<QueryResult> {
    let mut warnings = ctx.take_warnings();
    if let Some(fq) = ctx.fed {
        for w in fq.warnings() {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        let excluded = fq.excluded_jurisdictions();
        let empty = match &value {
            Value::Vector(v) => v.is_empty(),
            Value::Matrix(m) => m.is_empty(),
            Value::Scalar { .. } | Value::String { .. } => false,
        };
        if empty && !excluded.is_empty() {
            let list = excluded.join(", ");
            return Err(QueryError::GeoFence(format!(
                "geo-fence: tenant {:?} has no data for this query outside jurisdiction {list}: it can only be \
                 answered from data of jurisdiction {list}, which the tenant's policy keeps there",
                ctx.tenant.as_str()
            )));
        }
    }
    Ok(QueryResult { value, warnings, infos: ctx.take_infos() })
}

/// True when the top-level expression defines the result order (sort functions).
fn is_ordered(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(p) => is_ordered(&p.expr),
        Expr::Call(c) => matches!(c.func.name, "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"),
        Expr::Aggregate(a) => matches!(a.op.id(), parser::token::T_TOPK | parser::token::T_BOTTOMK),
        _ => false,
    }
}

fn instant_value(out: Eval, t: i64, ordered: bool) -> Value {
    match out {
        Eval::Scalar(v) => Value::Scalar { t, v: v[0] },
        Eval::String(s) => Value::String { t, v: s },
        Eval::Vector(series) => {
            let mut v: Vec<InstantSample> = series
                .into_iter()
                .filter_map(|s| s.points[0].map(|v| InstantSample { labels: s.labels, t, v }))
                .collect();
            if !ordered {
                v.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
            Value::Vector(v)
        }
        Eval::Matrix(rd) => {
            let mut m: Vec<RangeSeries> = rd
                .series
                .into_iter()
                .filter_map(|s| {
                    let end = rd.at.unwrap_or(t) - rd.offset;
                    let start = end - rd.range;
                    let samples: Vec<Sample> = s.samples.into_iter().filter(|p| p.ts > start && p.ts <= end).collect();
                    (!samples.is_empty()).then_some(RangeSeries { labels: s.labels, samples })
                })
                .collect();
            m.sort_by(|a, b| a.labels.cmp(&b.labels));
            Value::Matrix(m)
        }
    }
}

// `range_value` collects samples in place of step values: same size and alignment.
const _: () =
    assert!(size_of::<Option<f64>>() == size_of::<Sample>() && align_of::<Option<f64>>() == align_of::<Sample>());

fn range_value(ev: &Evaluator<'_>, out: Eval) -> Result<Value> {
    let mut m: Vec<RangeSeries> = match out {
        Eval::Scalar(v) => {
            let samples = v.iter().enumerate().map(|(i, v)| Sample::new(ev.ts(i), *v)).collect();
            vec![RangeSeries { labels: Default::default(), samples }]
        }
        // Each series' samples are collected in place, into its own buffer of
        // step values (`Option<f64>` and `Sample` have one size and alignment):
        // a fleet year (40,000 series × 365 steps) allocated and faulted in
        // 234 MB afresh here, on the query's one thread.
        Eval::Vector(series) => series
            .into_iter()
            .filter_map(|s| {
                let samples: Vec<Sample> =
                    s.points.into_iter().enumerate().filter_map(|(i, p)| p.map(|v| Sample::new(ev.ts(i), v))).collect();
                (!samples.is_empty()).then_some(RangeSeries { labels: s.labels, samples })
            })
            .collect(),
        Eval::String(_) | Eval::Matrix(_) => {
            return Err(QueryError::bad("invalid expression type for range query, must be Scalar or instant Vector"));
        }
    };
    m.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Value::Matrix(m))
}

/// Storage matchers of a parsed series selector (for `match[]` parameters).
pub fn selector_matchers(vs: &parser::VectorSelector) -> Result<Vec<strata_schemas::Matcher>> {
    selector::to_matchers(vs)
}
