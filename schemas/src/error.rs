//! Error classification shared by every crate.

/// What kind of failure an error is, independent of which crate raised it.
///
/// Each HTTP surface maps a kind to its status: the write path in
/// `ingest::http::log_error` (503 with `Retry-After` for `Unavailable`), the
/// query API through `query::QueryError::error_type` (Prometheus's
/// `errorType` and status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The caller sent something invalid; retrying the same request fails again.
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// A tenant limit was hit.
    QuotaExceeded,
    /// A transient failure; retrying later may succeed.
    Unavailable,
    /// Stored data failed an integrity check.
    Corruption,
    /// A bug or an unexpected environment failure.
    Internal,
}
