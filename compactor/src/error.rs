//! The compactor's error type.

use strata_schemas::{ErrorKind, ReadError, TenantId};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a compactor step failed. Every step is safe to retry. (The hot-store
/// and cold-tier errors are boxed: with their config variants they are
/// large, and this enum is every roll step's `Err`.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a sealed bucket from the hot store failed.
    #[error("reading hot bucket {bucket_start} of tenant {tenant}: {source}")]
    ReadHotBucket {
        /// The tenant.
        tenant: TenantId,
        /// Bucket start (ms).
        bucket_start: i64,
        /// The underlying error.
        #[source]
        source: ReadError,
    },
    /// Listing the hot tier's sealed buckets or tenants failed.
    #[error("listing the hot tier's buckets: {source}")]
    ListHot {
        /// The underlying error.
        #[source]
        source: ReadError,
    },
    /// Advancing the hot store's cold watermark failed.
    #[error("setting cold watermark {watermark} of tenant {tenant}: {source}")]
    SetWatermark {
        /// The tenant.
        tenant: TenantId,
        /// The watermark (ms).
        watermark: i64,
        /// The underlying error.
        #[source]
        source: Box<strata_hot_store::Error>,
    },
    /// A cold-tier write, commit or lookup failed.
    #[error("cold tier, tenant {tenant}: {source}")]
    Cold {
        /// The tenant.
        tenant: TenantId,
        /// The underlying error.
        #[source]
        source: Box<strata_cold_tier::Error>,
    },
    /// Listing the cold tier's tenant tables failed.
    #[error("listing cold tables: {source}")]
    ListTables {
        /// The underlying error.
        #[source]
        source: Box<strata_cold_tier::Error>,
    },
    /// Deleting a tenant's hot data failed.
    #[error("purging hot data of tenant {tenant}: {source}")]
    PurgeHot {
        /// The tenant.
        tenant: TenantId,
        /// The underlying error.
        #[source]
        source: Box<strata_hot_store::Error>,
    },
    /// A blocking task panicked or was cancelled.
    #[error("compactor task failed: {detail}")]
    Task {
        /// What happened.
        detail: String,
    },
    /// A crash injected by a test at `point` (cargo feature `failpoints`).
    #[cfg(feature = "failpoints")]
    #[error("injected failure at {point}")]
    Injected {
        /// The failpoint name.
        point: &'static str,
    },
    /// Another node committed some of the partitions this roll claimed for
    /// the bucket (a rebalance in flight); nothing was committed, the next
    /// pass plans the bucket again from the catalog's roll state.
    #[error("roll of tenant {tenant} up to {end} lost partitions {partitions:?} to another node's commit")]
    RollLost {
        /// The tenant.
        tenant: TenantId,
        /// The partitions found committed.
        partitions: Vec<u32>,
        /// The bucket end claimed.
        end: i64,
    },
}

impl Error {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ReadHotBucket { source, .. } | Error::ListHot { source } => source.kind(),
            Error::SetWatermark { source, .. } | Error::PurgeHot { source, .. } => source.kind(),
            Error::ListTables { source } => source.kind(),
            Error::Cold { source, .. } => source.kind(),
            Error::Task { .. } => ErrorKind::Internal,
            #[cfg(feature = "failpoints")]
            Error::Injected { .. } => ErrorKind::Internal,
            Error::RollLost { .. } => ErrorKind::Unavailable,
        }
    }
}
