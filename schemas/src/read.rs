//! The read contract between storage and the query engine.
//!
//! `query` evaluates PromQL against a `dyn ReadStore` and never learns which
//! tier (hot memtable, hot segments, cold Iceberg, a peer region) answered.
//! Implementations must return, for each series, samples sorted by
//! timestamp with at most one sample per timestamp (the latest write wins).

use crate::{ErrorKind, Labels, Matcher, Sample, TenantId};

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
}

impl ReadError {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ReadError::Corrupted { .. } => ErrorKind::Corruption,
            ReadError::Io { .. } => ErrorKind::Unavailable,
            ReadError::LimitExceeded { .. } => ErrorKind::QuotaExceeded,
        }
    }
}

/// Read access to a tenant's series, implemented by every storage tier.
///
/// Matchers follow Prometheus semantics (see [`Matcher`]); an empty matcher
/// list selects every series of the tenant. Methods are synchronous: callers
/// on an async runtime run them on a blocking thread.
pub trait ReadStore: Send + Sync + std::fmt::Debug {
    /// Series matching `matchers` that have samples in `range`, with those samples.
    fn select(&self, tenant: &TenantId, matchers: &[Matcher], range: TimeRange) -> Result<Vec<SeriesData>, ReadError>;

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
