//! The query error type, classified like Prometheus's API error types.

use strata_schemas::{ErrorKind, ReadError};

/// Result alias for this crate.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Why a query failed. [`QueryError::error_type`] is the Prometheus API `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request or the expression is invalid (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed on the data (`execution`, HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The expression uses a construct this engine does not implement (`execution`).
    #[error("unsupported PromQL construct: {0}")]
    Unsupported(String),
    /// The query ran longer than its timeout (`timeout`, HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The client went away or the query was canceled (`canceled`, HTTP 499).
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// The query would load more samples than `max_samples` (`execution`, HTTP 422).
    #[error(
        "query processing would load too many samples into memory in {0} (limit max_query_samples / query.max_samples)"
    )]
    TooManySamples(&'static str),
    /// The storage read failed.
    #[error("reading series: {0}")]
    Read(#[from] ReadError),
    /// A bug or an unexpected failure (`internal`, HTTP 500).
    #[error("{0}")]
    Internal(String),
    /// The tenant's geo-fence forbids answering the query from here
    /// (`execution`, HTTP 422): the message names the tenant's rule and the
    /// jurisdiction (see [`crate::federation`]).
    #[error("{0}")]
    GeoFence(String),
    /// A jurisdiction holding part of the data did not answer and the request
    /// set `partial_response=false` (`unavailable`, HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// An inline run ([`crate::Engine::try_query_instant_inline`]) outgrew
    /// its budget or needed a read that may block; the query is then run
    /// on a blocking thread. Never reaches a client.
    #[error("query too large to run inline")]
    NotInline,
}

impl QueryError {
    /// Classifies the error for the rest of Strata.
    pub fn kind(&self) -> ErrorKind {
        match self {
            QueryError::BadData(_) | QueryError::Unsupported(_) => ErrorKind::InvalidInput,
            QueryError::Execution(_) => ErrorKind::InvalidInput,
            QueryError::Timeout(_) | QueryError::Canceled(_) => ErrorKind::Unavailable,
            QueryError::TooManySamples(_) => ErrorKind::QuotaExceeded,
            QueryError::Read(e) => e.kind(),
            QueryError::GeoFence(_) => ErrorKind::InvalidInput,
            QueryError::Unavailable(_) => ErrorKind::Unavailable,
            QueryError::Internal(_) | QueryError::NotInline => ErrorKind::Internal,
        }
    }

    /// The Prometheus API `errorType` string.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::Unsupported(_) | QueryError::TooManySamples(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Canceled(_) => "canceled",
            QueryError::GeoFence(_) | QueryError::Read(ReadError::GeoFence(_)) => "execution",
            QueryError::Unavailable(_) => "unavailable",
            QueryError::Read(e) => match e.kind() {
                ErrorKind::QuotaExceeded => "execution",
                ErrorKind::Unavailable => "unavailable",
                _ => "internal",
            },
            QueryError::Internal(_) | QueryError::NotInline => "internal",
        }
    }

    /// The HTTP status Prometheus uses for this error type.
    pub fn http_status(&self) -> u16 {
        match self.error_type() {
            "bad_data" => 400,
            "execution" => 422,
            "timeout" | "unavailable" => 503,
            "canceled" => 499,
            _ => 500,
        }
    }

    /// A federated read's geo-fence refusal or missing region as the
    /// query's own error ([`QueryError::GeoFence`], [`QueryError::Unavailable`]),
    /// without the "reading series" prefix.
    pub(crate) fn federated(self) -> Self {
        match self {
            QueryError::Read(ReadError::GeoFence(m)) => QueryError::GeoFence(m),
            QueryError::Read(ReadError::Unavailable(m)) => QueryError::Unavailable(m),
            e => e,
        }
    }

    pub(crate) fn exec(msg: impl Into<String>) -> Self {
        QueryError::Execution(msg.into())
    }

    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        QueryError::BadData(msg.into())
    }
}
