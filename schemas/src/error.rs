//! Error classification shared by every crate.

/// What kind of failure an error is, independent of which crate raised it.
///
/// Kinds are mapped to HTTP statuses in three places, one per API family:
/// the write path in `ingest::http::log_error` (503 with `Retry-After` for
/// `Unavailable`; InfluxDB's statuses), the query API through
/// `query::QueryError::error_type` and `http_status` (Prometheus's
/// `errorType` and status), and the server's own handlers (admin, erasure,
/// status pages, `/internal/*`, the inter-region endpoints, the startup
/// gate) through `server/src/error.rs` (`status_of(kind)`; 401, 403, 409
/// and 413 by their own variants, the inter-region refusals with
/// `errorType: "geo_fence"`). When a kind is added or its meaning changes,
/// touch all three.
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
