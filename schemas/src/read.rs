//! The read contract between storage and the query engine.
//!
//! `query` evaluates PromQL against a `dyn ReadStore` and never learns which
//! tier (hot memtable, hot segments, cold Iceberg, a peer region) answered.
//! Implementations must return, for each series, samples sorted by
//! timestamp with at most one sample per timestamp (the latest write wins).

use crate::{ErrorKind, Labels, Matcher, Sample, TenantId};

mod grid;
pub use grid::{RollupAnswer, RollupBlock, RollupBlockBuilder, RollupFields, RollupGrid, SumCheck};

/// Rollup window widths a store may keep (ms): 5 minutes, 1 hour and 1 day.
pub const ROLLUP_WIDTHS_MS: [i64; 3] = [300_000, 3_600_000, 86_400_000];

/// An inclusive time range in milliseconds: `start <= ts <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// First millisecond included.
    pub start: i64,
    /// Last millisecond included.
    pub end: i64,
}

impl TimeRange {
    /// The whole representable time line.
    pub const ALL: TimeRange = TimeRange { start: i64::MIN, end: i64::MAX };

    /// Builds a range; `start > end` yields an empty range.
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }

    /// True when `ts` lies in the range.
    pub fn contains(&self, ts: i64) -> bool {
        self.start <= ts && ts <= self.end
    }

    /// True when `[min, max]` overlaps the range.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        min <= self.end && max >= self.start
    }
}

/// One series and its samples in the requested range.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// The series' labels, `__name__` included.
    pub labels: Labels,
    /// Samples sorted by timestamp, unique timestamps.
    pub samples: Vec<Sample>,
}

/// The aggregates of one series over one rollup window `(end - width, end]`
/// (left-open, right-closed, `end` a multiple of the width), stale markers
/// excluded. Two partial windows of the same series and `end` (e.g. written
/// from two hot buckets) combine with [`RollupPoint::merge`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollupPoint {
    /// The window's end (ms, included).
    pub end: i64,
    /// Prometheus `min_over_time` of the window (NaN only when every value is NaN).
    pub min: f64,
    /// Prometheus `max_over_time` of the window.
    pub max: f64,
    /// Sum of the values.
    pub sum: f64,
    /// Number of samples (at least 1).
    pub count: u64,
    /// Value of the latest sample.
    pub last: f64,
    /// Timestamp of the latest sample (ms).
    pub last_ts: i64,
    /// `Some(e)`: every value is finite and an integer multiple of `2^e`
    /// ([`exact_exp`]; [`EXP_NONE_SET`] for a window of zeros), or
    /// `Some(`[`EXP_NAN`]`)`: a value is NaN; `None`: a value is ±Inf (and
    /// none NaN), or the row was stored without it. With `count` and
    /// `min`/`max` it proves when sums of windows are exact
    /// ([`RollupPoint::sums_exactly`]).
    pub exp: Option<i32>,
}

/// [`RollupPoint::exp`] of a window holding a NaN value: every sum and
/// mean over it is NaN, raw or from rollups.
pub const EXP_NAN: i32 = i32::MIN;

/// [`RollupPoint::exp`] of a window holding only zeros (multiples of any
/// power of two; above every finite value's exponent).
pub const EXP_NONE_SET: i32 = 1024;

/// The largest `e` such that `v` is an integer multiple of `2^e` (the
/// weight of its lowest set mantissa bit), [`EXP_NONE_SET`] for ±0,
/// [`EXP_NAN`] for NaN, `None` for ±Inf.
pub fn exact_exp(v: f64) -> Option<i32> {
    if v.is_nan() {
        return Some(EXP_NAN);
    }
    if v.is_infinite() {
        return None;
    }
    let bits = v.to_bits();
    let (biased, mantissa) = (((bits >> 52) & 0x7ff) as i32, bits & ((1u64 << 52) - 1));
    let (m, e0) = if biased == 0 { (mantissa, -1074) } else { (mantissa | (1u64 << 52), biased - 1075) };
    if m == 0 {
        return Some(EXP_NONE_SET);
    }
    Some(e0 + m.trailing_zeros() as i32)
}

/// `2^n` for `n` in `-1074..`, `+Inf` from 1024 on.
fn pow2(n: i32) -> f64 {
    match n {
        1024.. => f64::INFINITY,
        -1022.. => f64::from_bits(((n + 1023) as u64) << 52),
        -1074.. => f64::from_bits(1u64 << (n + 1074)),
        _ => 0.0,
    }
}

impl RollupPoint {
    /// The aggregates of `samples` (sorted by ts, all in one window ending at
    /// `end`); `None` when nothing but stale markers is left.
    pub fn of(end: i64, samples: &[Sample]) -> Option<RollupPoint> {
        let mut it = samples.iter().filter(|s| !s.is_stale_marker());
        let first = it.next()?;
        let mut p = RollupPoint {
            end,
            min: first.value,
            max: first.value,
            sum: first.value,
            count: 1,
            last: first.value,
            last_ts: first.ts,
            exp: exact_exp(first.value),
        };
        // Kahan–Neumaier within the window, like the engine's raw sums.
        let (mut sum, mut c) = (first.value, 0.0f64);
        for s in it {
            let t = sum + s.value;
            c += if t.is_infinite() {
                0.0
            } else if sum.abs() >= s.value.abs() {
                (sum - t) + s.value
            } else {
                (s.value - t) + sum
            };
            sum = t;
            p.merge(&RollupPoint {
                end,
                min: s.value,
                max: s.value,
                sum: s.value,
                count: 1,
                last: s.value,
                last_ts: s.ts,
                exp: exact_exp(s.value),
            });
        }
        p.sum = if sum.is_infinite() { sum } else { sum + c };
        Some(p)
    }

    /// Folds `later` (a window or partial window whose samples all follow
    /// this one's) into `self` with Prometheus's `min/max_over_time` rules:
    /// a NaN is replaced by any later value, a number only by a smaller
    /// (larger) one, so folding window results in time order equals folding
    /// the raw samples.
    pub fn merge(&mut self, later: &RollupPoint) {
        if later.min < self.min || self.min.is_nan() {
            self.min = later.min;
        }
        if later.max > self.max || self.max.is_nan() {
            self.max = later.max;
        }
        self.sum += later.sum;
        self.count += later.count;
        if later.last_ts >= self.last_ts {
            self.last = later.last;
            self.last_ts = later.last_ts;
        }
        self.exp = match (self.exp, later.exp) {
            (Some(EXP_NAN), _) | (_, Some(EXP_NAN)) => Some(EXP_NAN),
            (a, b) => a.zip(b).map(|(a, b)| a.min(b)),
        };
    }

    /// Whether, for these windows and every subset of them (one step's
    /// windows), the compensated sum of the window sums is bit for bit the
    /// compensated sum of the raw samples (Prometheus's `sum_over_time`, and
    /// `avg_over_time` = sum / count without the overflow fallback).
    /// Windows holding a NaN ([`EXP_NAN`]) are left aside: any sum over one
    /// is NaN both ways (NaN is sticky in the compensated sum and in the
    /// mean). Every sum of the others' values, added in any order and
    /// grouping, must be exact: every value is an integer multiple
    /// of `2^e` (`e` the smallest [`RollupPoint::exp`]) and
    /// `Σ count × max(|min|, |max|)`, a bound of every partial sum, is
    /// below `2^(51 + e)` (one bit of margin for the rounding of the bound
    /// itself), so every partial sum is a multiple of `2^e` with fewer than
    /// 53 significant bits: representable, no rounding, no overflow (a
    /// subset has a larger `e` and a smaller bound). `false` when a window
    /// has no `exp` (±Inf, or not stored).
    pub fn sums_exactly(windows: &[RollupPoint]) -> bool {
        let mut check = SumCheck::default();
        windows.iter().for_each(|w| check.add_point(w));
        check.exact()
    }
}

/// Rollup windows of one series, sorted by `end`, one per `end`.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupSeries {
    /// The series' labels, `__name__` included.
    pub labels: Labels,
    /// Windows with at least one sample.
    pub points: Vec<RollupPoint>,
}

/// What [`ReadStore::select_rollup`] answers.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupData {
    /// Windows ending in `[ends.start, covered_end]` are complete in
    /// `series`; windows ending after `covered_end` (data not in the rollups
    /// yet, e.g. above the cold watermark) must come from raw samples.
    pub covered_end: i64,
    /// Series with at least one complete window, sorted by labels.
    pub series: Vec<RollupSeries>,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Stored data failed an integrity check.
    #[error("corrupt data in {location}: {detail}")]
    Corrupted {
        /// File or object that failed.
        location: String,
        /// What was wrong.
        detail: String,
    },
    /// An I/O failure while reading.
    #[error("reading {location}: {source}")]
    Io {
        /// File or object being read.
        location: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The query touched more than a limit allows.
    #[error("{what} limit exceeded: {limit} (tenant {tenant})")]
    LimitExceeded {
        /// Tenant whose limit applies.
        tenant: TenantId,
        /// Which limit (e.g. `max_query_series`).
        what: &'static str,
        /// Its value.
        limit: u64,
    },
    /// A streamed read ([`ReadStore::select_each`]) was stopped by its
    /// consumer, which reports its own error instead.
    #[error("read stopped by its consumer")]
    Stopped,
    /// A region holding part of the data did not answer (and partial
    /// answers were not accepted). The message names the region.
    #[error("{0}")]
    Unavailable(String),
    /// A region holding part of the data refused the read under the
    /// tenant's policy (a geo-fence decision). The message names the rule.
    #[error("{0}")]
    GeoFence(String),
}

impl ReadError {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ReadError::Corrupted { .. } => ErrorKind::Corruption,
            ReadError::Io { .. } => ErrorKind::Unavailable,
            ReadError::LimitExceeded { .. } => ErrorKind::QuotaExceeded,
            ReadError::Stopped => ErrorKind::Internal,
            ReadError::Unavailable(_) => ErrorKind::Unavailable,
            ReadError::GeoFence(_) => ErrorKind::InvalidInput,
        }
    }
}

/// Read access to a tenant's series, implemented by every storage tier.
///
/// Matchers follow Prometheus semantics (see [`Matcher`]); an empty matcher
/// list selects every series of the tenant. Methods are synchronous: callers
/// on an async runtime run them on a blocking thread — except small reads
/// for which [`ReadStore::reads_locally`] is true.
pub trait ReadStore: Send + Sync + std::fmt::Debug {
    /// True when reading `range` of `tenant` touches only this process's
    /// memory and local files (no object store, no network, no waiting on
    /// a runtime): a read of a few series of such a range may then run on
    /// an async worker. The default, false, is always safe.
    fn reads_locally(&self, tenant: &TenantId, range: TimeRange) -> bool {
        let _ = (tenant, range);
        false
    }

    /// Series matching `matchers` that have samples in `range`, with those samples.
    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError>;

    /// [`ReadStore::select`], streamed: hands each series to `each`, in the
    /// same (label) order, and stops at the first error `each` returns
    /// ([`ReadError::Stopped`] to end it with the consumer's own error). A
    /// store that reads lazily overrides it so a query holds one series' raw
    /// samples at a time; the default collects [`ReadStore::select`].
    fn select_each(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        for s in self.select(tenant, matchers, range)? {
            each(s)?;
        }
        Ok(())
    }

    /// The newest sample of each series matching `matchers` in `range` (its
    /// latest sample at or before `range.end`, not before `range.start`),
    /// streamed like [`ReadStore::select_each`]: the same series in the same
    /// order, each with exactly one sample, the last one `select_each` would
    /// give — a staleness marker included (the newest sample is what decides
    /// staleness). All an instant vector selector at one time needs. A store
    /// that can find it without decoding the whole range overrides this; the
    /// default reads the range and keeps each series' last sample.
    fn select_newest(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
        each: &mut dyn FnMut(SeriesData) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        self.select_each(tenant, matchers, range, &mut |s| each(keep_newest(s)))
    }

    /// Label sets of the series matching `matchers` with samples in `range`, sorted.
    fn series(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, ReadError>;

    /// Sorted, de-duplicated label names of the matching series.
    fn label_names(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<String>, ReadError> {
        Ok(label_names_of(&self.series(tenant, matchers, range)?))
    }

    /// Sorted, de-duplicated values of label `name` among the matching series.
    fn label_values(
        &self,
        tenant: &TenantId,
        name: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, ReadError> {
        Ok(label_values_of(&self.series(tenant, matchers, range)?, name))
    }

    /// Pre-aggregated windows of `width_ms` (one of [`ROLLUP_WIDTHS_MS`]) of
    /// the matching series, for the windows whose end lies in `ends` (both
    /// bounds multiples of the width). `Ok(None)`: no rollups for this
    /// request (the default; the caller reads raw samples). A store that
    /// answers must answer every window from `ends.start` to
    /// [`RollupData::covered_end`] completely.
    fn select_rollup(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
    ) -> Result<Option<RollupData>, ReadError> {
        let _ = (tenant, matchers, width_ms, ends);
        Ok(None)
    }

    /// [`ReadStore::select_rollup`] for a long read: the same windows, and
    /// the same `None`, but the store may answer them as a
    /// [`RollupGrid`] (one cell per window and series, only `fields` and
    /// `count` filled, each series' [`SumCheck`] when `sum` is asked)
    /// instead of a [`RollupPoint`] per row. The default answers
    /// [`RollupAnswer::Series`] from [`ReadStore::select_rollup`], so a
    /// wrapper that changes what `select_rollup` answers stays right
    /// without overriding this; one that only forwards may forward this
    /// too.
    fn select_rollup_grid(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        width_ms: i64,
        ends: TimeRange,
        fields: RollupFields,
    ) -> Result<Option<RollupAnswer>, ReadError> {
        let _ = fields;
        Ok(self.select_rollup(tenant, matchers, width_ms, ends)?.map(RollupAnswer::Series))
    }
}

/// `s` with its last (newest) sample only: the default
/// [`ReadStore::select_newest`] applied to one series of `select_each`.
pub fn keep_newest(mut s: SeriesData) -> SeriesData {
    if s.samples.len() > 1 {
        s.samples = s.samples.last().copied().into_iter().collect();
    }
    s
}

/// Sorted, de-duplicated label names of `series`.
pub fn label_names_of(series: &[Labels]) -> Vec<String> {
    let mut names: Vec<String> = series.iter().flat_map(|l| l.iter().map(|l| l.name.to_string())).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Sorted, de-duplicated values of label `name` in `series`.
pub fn label_values_of(series: &[Labels], name: &str) -> Vec<String> {
    let mut values: Vec<String> = series.iter().filter_map(|l| l.get(name).map(str::to_owned)).collect();
    values.sort_unstable();
    values.dedup();
    values
}

#[cfg(test)]
mod tests;
