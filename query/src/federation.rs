//! Federation across regions and jurisdictions, with the tenant's geo-fence
//! enforced in the plan.
//!
//! A tenant's fleet may be stored in several regions, grouped into
//! jurisdictions (`us`, `eu`, `br`). Seen from the node that runs a query,
//! each jurisdiction holding the tenant's data is one of:
//!
//! * **raw-reachable**: the node's own jurisdiction, and jurisdictions whose
//!   export policy for the tenant is `raw`. Their raw series are read through
//!   [`FederatedQuery::store`] (the server merges the local store with those
//!   regions' inter-region select, one sample per (series, timestamp)).
//! * **aggregates**: only aggregation results may leave. Every aggregation
//!   that [`check_pushable`] accepts (a decomposable operator over a
//!   series-local operand: selectors, range functions of selectors,
//!   element-wise functions, arithmetic and comparison with constants) is a
//!   *push point*: it is decomposed into partial aggregations, the partials
//!   are evaluated in a region of each such jurisdiction
//!   ([`FederatedQuery::partials`], answered there by
//!   [`crate::Engine::evaluate_partials`]) and locally over the
//!   raw-reachable data (the operand evaluated once), and combined exactly:
//!
//!   | operator | partials | combination per label set and step |
//!   |---|---|---|
//!   | `sum`, `count`, `count_values` | itself | add (compensated) |
//!   | `min`, `max` | itself | fold (NaN only when every partial is NaN) |
//!   | `group` | itself | 1 |
//!   | `avg` | `sum`, `count`, `avg` | total sum / total count; when that sum is not finite, the count-weighted mean of the averages (Prometheus's incremental mean: overflow, ±Inf, NaN) |
//!   | `stddev`, `stdvar` | `count`, `avg`, `stdvar` | Chan's parallel merge of (count, mean, M2 = stdvar · count) |
//!   | `topk`, `bottomk` | itself (same k and grouping; series keep their labels) | the same aggregation over the union, in label order |
//!
//!   Aggregations above a push point (`quantile(0.9, sum by (farm) (x))`)
//!   run locally over the combined result; a push point inside a subquery
//!   is evaluated on the subquery's steps. Anything else that reads raw
//!   series (a bare selector, `quantile(0.9, x)`, `limitk`, a selector
//!   outside any aggregation) asks each aggregates-only jurisdiction how
//!   many series match ([`FederatedQuery::count_series`], a count may
//!   cross) and fails with the geo-fence error
//!   ([`crate::QueryError::GeoFence`], `execution`, HTTP 422) naming the
//!   tenant, the jurisdiction and the selector when there are any.
//! * **none**: not reachable from here. The answer is computed from the data
//!   the node may see, and its `infos` name each jurisdiction left out; an
//!   answer that is empty (no series) is the geo-fence error instead.
//!
//! A jurisdiction that cannot be reached ([`RemoteError::Unreachable`], for
//! a partial or a count) adds a Prometheus `warning` naming it, or fails
//! the query ([`crate::QueryError::Unavailable`], `unavailable`, HTTP 503)
//! when the request set `partial_response=false`
//! ([`crate::QueryOptions::partial_response`]). A refusal by the data region
//! ([`RemoteError::Refused`]) and an `Err` of [`Federation::begin`] are the
//! geo-fence error with the server's message. The federated part's own
//! warnings ([`FederatedQuery::warnings`]: unreachable raw regions) are
//! appended to the result's. A federated query never runs inline on the
//! connection's thread ([`Federation::begin`] is called there to find out,
//! so it must not block).
//!
//! The metadata endpoints (`series`, `labels`, `label/<name>/values`) read
//! [`FederatedQuery::store`] and say in `infos` which jurisdictions'
//! metadata is not shown.
//!
//! Exactness. Partials travel with names already removed (as a query's
//! result would have them). Under delayed name removal
//! (`QueryConfig::delayed_name_removal`) a group or a selected series may
//! still carry a `__name__` marked for removal, so `by (__name__)` is never
//! pushed and `topk`/`bottomk` only at the root of the query (otherwise the
//! aggregation reads raw series and is geo-fenced like any raw read). Sums
//! differ from a single evaluation in the last bits (summation order). A
//! `stddev`/`stdvar` whose computation overflows f64 (values near ±1.8e308)
//! is non-finite both ways, but not always the same non-finite value: one
//! pass over all the values ends in NaN, +Inf or -Inf depending on their
//! order, the merge of partials in NaN (a partial mean not finite, or two
//! means further apart than the largest f64) or +Inf. A
//! series stored in two jurisdictions (a device that moved) contributes to
//! both jurisdictions' partials where both have a value at a step, where a
//! merged raw read would have taken one sample. Annotations raised while a
//! data region evaluates its partials (e.g. "might not be a counter") stay
//! there.
//!
//! This module owns the contract, [`check_pushable`] and (in
//! `engine/federate.rs`) the plan and the arithmetic; the server owns the
//! wire (`server/src/regions.rs`): the inter-region endpoints, their
//! credentials, and the audit log.

use std::time::Instant;
use strata_schemas::{Labels, Matcher, ReadStore, TenantId, TimeRange};

/// The aggregation operators a push point may use, as error messages list them.
pub const PUSHABLE_OPS: &str = "sum, count, min, max, avg, group, topk, bottomk, stddev, stdvar, count_values";

/// Whether `expr` is an aggregation a data region may evaluate for an
/// aggregates-only export: one aggregation (parentheses around it allowed)
/// with an operator of [`PUSHABLE_OPS`] (a number literal as the `topk` /
/// `bottomk` parameter, a string literal as `count_values`'), over a
/// *series-local* operand, one whose every output series depends on one
/// stored series only:
///
/// * vector selectors (with `offset` / `@`);
/// * range functions (`rate`, `increase`, `delta`, `irate`, `idelta`,
///   `*_over_time`, `changes`, `resets`, `deriv`, `predict_linear`, ...)
///   of a range selector, their other arguments number literals;
/// * element-wise functions (`abs`, `ceil`, `floor`, `round`, `clamp*`,
///   `exp`, `ln`, `log2`, `log10`, `sqrt`, `sgn`, trigonometry, `timestamp`,
///   the date functions with an argument, `label_replace`, `label_join`) of a
///   series-local expression, their other arguments literals;
/// * unary minus, and arithmetic or comparison between a series-local
///   expression and a constant (number literals and their arithmetic).
///
/// Refused: nested aggregations, subqueries, operations between two
/// vectors (set operators included), `histogram_quantile` and every
/// function that looks at more than one series, `quantile`, `limitk`,
/// `limit_ratio`. The text is parsed under the default `max_query_length`.
/// `Err` says why, for the refusal message.
pub fn check_pushable(expr: &str) -> Result<(), String> {
    let parsed =
        crate::engine::parse(expr, crate::QueryConfig::default().max_query_length).map_err(|e| e.to_string())?;
    crate::engine::federate::pushable_root(&parsed).map(|_| ())
}

/// Why a remote part of a query has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// No region of the jurisdiction answered in time (down, timeout,
    /// connection refused, 5xx). The message names the regions tried.
    #[error("{0}")]
    Unreachable(String),
    /// The data region refused the request under the tenant's policy (a
    /// geo-fence decision made where the data is). The message names the rule.
    #[error("{0}")]
    Refused(String),
}

/// One series of a partial aggregation: one optional value per step of the
/// grid the partial was evaluated on.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialSeries {
    /// The series' labels (group labels; the selected series' for topk/bottomk).
    pub labels: Labels,
    /// Value per step (`None`: no value at that step).
    pub points: Vec<Option<f64>>,
}

/// The step grid (and query bounds, for `@ start()` / `@ end()`) a partial
/// is evaluated on. An instant query is `start == end`, `step == 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    /// First step (ms).
    pub start: i64,
    /// Last step (ms).
    pub end: i64,
    /// Step width (ms, > 0).
    pub step: i64,
    /// Start of the whole query (ms), what `@ start()` means.
    pub query_start: i64,
    /// End of the whole query (ms), what `@ end()` means.
    pub query_end: i64,
}

/// The federated part of one query, as the server sees it.
pub trait FederatedQuery: Send + Sync {
    /// The raw series this node may read for the tenant: its own store merged
    /// with the regions of its jurisdiction and of `raw` jurisdictions.
    /// Unreachable regions are skipped with a warning (see
    /// [`FederatedQuery::warnings`]), or fail the read with
    /// `ReadError::Unavailable` when partial responses are off.
    fn store(&self) -> &dyn ReadStore;

    /// Jurisdictions holding the tenant's data that only answer with
    /// aggregates (pushdown targets), in a stable order.
    fn aggregate_jurisdictions(&self) -> &[String];

    /// Jurisdictions holding the tenant's data that this node may not read at
    /// all (`none`), in a stable order.
    fn excluded_jurisdictions(&self) -> &[String];

    /// Evaluates each of `exprs` (PromQL text, each one aggregation that
    /// [`check_pushable`] accepts) over the tenant's data in `jurisdiction`
    /// on `grid`. One list of series per expression, in order.
    fn partials(
        &self,
        jurisdiction: &str,
        exprs: &[String],
        grid: Grid,
        deadline: Instant,
    ) -> Result<Vec<Vec<PartialSeries>>, RemoteError>;

    /// How many series of the tenant match `matchers` within `range` in
    /// `jurisdiction` (a count, which `aggregates` lets cross).
    fn count_series(
        &self,
        jurisdiction: &str,
        matchers: &[Matcher],
        range: TimeRange,
        deadline: Instant,
    ) -> Result<u64, RemoteError>;

    /// Warnings so far (unreachable regions), each naming the region or
    /// jurisdiction whose data is missing from the answer.
    fn warnings(&self) -> Vec<String>;
}

/// Starts the federated part of queries. Implemented by the server.
pub trait Federation: Send + Sync + std::fmt::Debug {
    /// The federated part of one query of `tenant` (`query`: its text, for
    /// the audit log; `partial_response`: whether a missing region is a
    /// warning rather than an error). `None` when every region holding the
    /// tenant's data is this node's own (nothing to federate). `Err` when the
    /// tenant may not be queried from this region at all (a geo-fence error
    /// message).
    fn begin(
        &self,
        tenant: &TenantId,
        query: &str,
        partial_response: bool,
    ) -> Result<Option<Box<dyn FederatedQuery>>, String>;
}

#[cfg(test)]
mod tests;
