//! The server's errors, and the one place their HTTP statuses are chosen.
//!
//! The server's own handlers (the operational routes of [`crate::http`],
//! the admin API, erasure, the status pages, read-your-writes) return an
//! [`Error`]. Its [`Error::kind`] classifies it like every other crate's
//! error ([`ErrorKind`]); [`Error::status`] turns it into the HTTP status,
//! [`Error::error_type`] into Prometheus's `errorType`, and
//! [`IntoResponse`] into the answer:
//!
//! ```text
//!   handler ──Err(Error)──► status()  ─┬─ request refusals the kinds do not name:
//!                                      │    401 Unauthenticated, RegionUnauthenticated,
//!                                      │    403 Forbidden, GeoFence,
//!                                      │    409 Conflict, 413 BodyTooLarge
//!                                      ├─ Query: the Prometheus query API's status
//!                                      │    (QueryError::http_status)
//!                                      └─ everything else: status_of(kind())
//!                                           InvalidInput 400, NotFound 404,
//!                                           QuotaExceeded 429, Unavailable 503,
//!                                           Corruption 500, Internal 500
//!   body: {"status":"error","errorType":error_type(),"error":"<message>"}
//!   Retry-After: retry_after() (a node still starting)
//! ```
//!
//! The write path (`strata_ingest::http`) and the Prometheus query API
//! (`strata_query::QueryError::http_status`) keep their own mappings: their
//! answers follow InfluxDB's and Prometheus's documented statuses (a query a
//! region evaluates for another, [`Error::Query`], answers with the query
//! API's). The inter-region endpoints of [`crate::regions`] answer their
//! refusals with `errorType: "geo_fence"` (their peers read the status and
//! the message). While the node starts, [`crate::startup`] answers every
//! route it does not serve yet with [`Error::Starting`] (503 and
//! `Retry-After`; write routes in the write APIs' body shape). Startup
//! failures (`anyhow`) stay at the binary's edge: a node that cannot start
//! prints the chain and exits.

use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use strata_query::QueryError;
use strata_schemas::{AuthError, ErrorKind, ReadError};

/// Result alias of the server's handlers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one of the server's own endpoints refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request carries no credential, or a wrong one, for what it asks (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The credential is valid but may not do what the request asks (403).
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed: a bad parameter, body or id (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request body is larger than the endpoint reads (413).
    #[error("{0}")]
    BodyTooLarge(String),
    /// What the request names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the node's state or configuration (409):
    /// a tenant that already exists, a roll asked of a node without a cold tier.
    #[error("{0}")]
    Conflict(String),
    /// A read-your-writes wait ran out before the positions were applied
    /// (503, `errorType: "timeout"`); the message names what is missing.
    #[error("{0}")]
    ReadAfterTimeout(String),
    /// An inter-region request from a region that is not in this region's
    /// directory, or with a credential that is not the one the directory
    /// knows for it (401, `errorType: "geo_fence"`).
    #[error("{0}")]
    RegionUnauthenticated(String),
    /// The data region refuses an inter-region request under the tenant's
    /// export policy, or for an expression it may not answer (403,
    /// `errorType: "geo_fence"`); the message names the rule.
    #[error("{0}")]
    GeoFence(String),
    /// The audit record an inter-region request needs could not be made
    /// durable, so the request is refused (503: retry).
    #[error("{0}")]
    AuditRecord(String),
    /// The node is starting (its log replaying): nothing that reads or
    /// writes its stores is served yet (503 with `Retry-After`).
    #[error("{0}")]
    Starting(String),
    /// A query this node evaluated for another region failed: the
    /// Prometheus query API's status and `errorType`.
    #[error("{0}")]
    Query(#[from] QueryError),
    /// Reading series from a store failed; the read error's kind decides.
    #[error("{context}: {source}")]
    ReadSeries {
        /// What was being read.
        context: &'static str,
        /// Cause.
        #[source]
        source: ReadError,
    },
    /// Listing the cold tier's tenant tables failed; the cold tier's kind decides.
    #[error("listing cold tables: {0}")]
    ListColdTables(#[source] Box<strata_cold_tier::Error>),
    /// Rolling sealed hot buckets into the cold tier failed.
    #[error("rolling into the cold tier: {0}")]
    Roll(#[from] strata_compactor::Error),
    /// A registry operation the request needs could not be done now (the
    /// registry's database is unreachable, a reload failed): retry (503).
    #[error("{context}: {source:#}")]
    Registry {
        /// The operation, as the client reads it.
        context: String,
        /// Cause.
        #[source]
        source: anyhow::Error,
    },
    /// Reading an audit log failed (500).
    #[error("reading the {log} audit log: {source:#}")]
    ReadAudit {
        /// Which log (`admin`, `erasure`, `inter-region`).
        log: &'static str,
        /// Cause.
        #[source]
        source: anyhow::Error,
    },
    /// A blocking task panicked or was cancelled (500).
    #[error("{what} task failed: {source}")]
    Task {
        /// The task.
        what: &'static str,
        /// Cause.
        #[source]
        source: tokio::task::JoinError,
    },
    /// Any other failure of the node's own work: a flush, a compaction, a
    /// purge (500). The message carries the whole chain.
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// Classifies the error for the rest of Strata.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unauthenticated(_)
            | Error::Forbidden(_)
            | Error::BadRequest(_)
            | Error::BodyTooLarge(_)
            | Error::Conflict(_) => ErrorKind::InvalidInput,
            Error::RegionUnauthenticated(_) | Error::GeoFence(_) => ErrorKind::InvalidInput,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::ReadAfterTimeout(_) | Error::Registry { .. } | Error::AuditRecord(_) | Error::Starting(_) => {
                ErrorKind::Unavailable
            }
            Error::Query(e) => e.kind(),
            Error::ReadSeries { source, .. } => source.kind(),
            Error::Roll(e) => e.kind(),
            Error::ListColdTables(e) => e.kind(),
            Error::ReadAudit { .. } | Error::Task { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The HTTP status of the answer: the refusals [`ErrorKind`] does not
    /// distinguish by their own variant, everything else by its kind.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthenticated(_) | Error::RegionUnauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::GeoFence(_) => StatusCode::FORBIDDEN,
            Error::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Query(e) => StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            _ => status_of(self.kind()),
        }
    }

    /// Prometheus's `errorType` for the answer's body.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Unauthenticated(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::BodyTooLarge(_) => "bad_data",
            Error::Conflict(_) => "conflict",
            Error::ReadAfterTimeout(_) => "timeout",
            Error::RegionUnauthenticated(_) | Error::GeoFence(_) => "geo_fence",
            Error::Query(e) => e.error_type(),
            _ => match self.kind() {
                ErrorKind::InvalidInput => "bad_data",
                ErrorKind::NotFound => "not_found",
                ErrorKind::QuotaExceeded => "execution",
                ErrorKind::Unavailable => "unavailable",
                ErrorKind::Corruption | ErrorKind::Internal => "internal",
            },
        }
    }

    /// Seconds the client is told to wait before retrying (`Retry-After`),
    /// for the errors that end by themselves soon.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Error::Starting(_) => Some(crate::startup::RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// A `Task` error for a failed `spawn_blocking`.
    pub fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Error {
        move |source| Error::Task { what, source }
    }
}

impl From<AuthError> for Error {
    /// A token that may not do this is forbidden (403); a missing, malformed
    /// or unknown one is unauthenticated (401).
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Forbidden { .. } => Error::Forbidden(e.to_string()),
            _ => Error::Unauthenticated(e.to_string()),
        }
    }
}

/// The HTTP status of an error kind: the one mapping of the server's handlers.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Corruption | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Error {
    /// `{"status":"error","errorType":…,"error":…}` with [`Error::status`]
    /// and [`Error::retry_after`]; server-side failures (5xx but a node
    /// that is starting) are logged with their chain.
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        if status.is_server_error() && !matches!(self, Error::Starting(_)) {
            tracing::error!(status = status.as_u16(), error = %message, "request failed");
        }
        let body = serde_json::json!({"status": "error", "errorType": self.error_type(), "error": message});
        with_retry_after((status, axum::Json(body)).into_response(), self.retry_after())
    }
}

/// `resp` with `Retry-After: secs` when given.
pub fn with_retry_after(mut resp: Response, secs: Option<u32>) -> Response {
    if let Some(secs) = secs {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

#[cfg(test)]
mod tests;
