//! The cold tier's error type.

use strata_schemas::{ErrorKind, ReadError, TenantId};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a cold-tier operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work (bad URL, unknown scheme, …).
    #[error("invalid cold-tier configuration: {detail}")]
    InvalidConfig {
        /// What is wrong.
        detail: String,
    },
    /// A `[cold]` setting breaks a rule ([`crate::ColdTierConfig::validate`]).
    #[error(transparent)]
    Config(#[from] strata_schemas::ConfigError),
    /// Building the object store behind the warehouse URL failed.
    #[error("opening object store {url}: {source}")]
    OpenObjectStore {
        /// The warehouse URL.
        url: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },
    /// Opening the SQL catalog failed.
    #[error("opening iceberg catalog {url}: {source}")]
    OpenCatalog {
        /// The catalog URL (credentials are never part of the message: see config docs).
        url: String,
        /// The underlying error.
        #[source]
        source: Box<iceberg::Error>,
    },
    /// Creating the namespace or a tenant's table failed.
    #[error("creating cold table for tenant {tenant}: {source}")]
    CreateTable {
        /// The tenant.
        tenant: TenantId,
        /// The underlying error.
        #[source]
        source: Box<iceberg::Error>,
    },
    /// Loading a tenant's table failed.
    #[error("loading cold table of tenant {tenant}: {source}")]
    LoadTable {
        /// The tenant.
        tenant: TenantId,
        /// The underlying error.
        #[source]
        source: Box<iceberg::Error>,
    },
    /// Building an Arrow batch failed (a bug: the schema is ours).
    #[error("building arrow batch for tenant {tenant}: {source}")]
    BuildBatch {
        /// The tenant.
        tenant: TenantId,
        /// The underlying error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// Writing Parquet data files failed.
    #[error("writing data files for tenant {tenant}: {source}")]
    WriteDataFiles {
        /// The tenant.
        tenant: TenantId,
        /// The underlying error.
        #[source]
        source: Box<iceberg::Error>,
    },
    /// Committing a snapshot failed (nothing of it is visible).
    #[error("committing to cold table of tenant {tenant} (source {source_id}): {source}")]
    Commit {
        /// The tenant.
        tenant: TenantId,
        /// The `strata.source` of the commit.
        source_id: String,
        /// The underlying error.
        #[source]
        source: Box<iceberg::Error>,
    },
    /// Scanning a table failed (a damaged data file whose footer does not
    /// decode is [`Error::Corrupted`], naming the file, instead).
    #[error("scanning cold table {table} of tenant {tenant}: {source}")]
    Scan {
        /// The tenant.
        tenant: TenantId,
        /// The table's name in its namespace (`rollup5m_acme`, ...).
        table: String,
        /// The underlying error.
        #[source]
        source: Box<iceberg::Error>,
    },
    /// A maintenance step (snapshot expiry, orphan removal, rewrite, purge)
    /// failed; nothing of it is visible unless it committed.
    #[error("cold-tier maintenance ({what}) of tenant {tenant}: {source}")]
    Maintenance {
        /// The tenant.
        tenant: TenantId,
        /// Which step.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: Box<iceberg::Error>,
    },
    /// The catalog database refused or failed a metadata swap.
    #[error("catalog update of tenant {tenant}'s table: {source}")]
    CatalogSwap {
        /// The tenant.
        tenant: TenantId,
        /// The underlying error.
        #[source]
        source: Box<sqlx::Error>,
    },
    /// Another writer changed the table (or the files to replace are gone)
    /// and retries did not help; nothing was committed.
    #[error("concurrent change to the cold table of tenant {tenant}: {detail}")]
    Conflict {
        /// The tenant.
        tenant: TenantId,
        /// What conflicted.
        detail: String,
    },
    /// Listing or deleting objects failed.
    #[error("object store, tenant {tenant}: {source}")]
    ObjectStore {
        /// The tenant.
        tenant: TenantId,
        /// The underlying error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// An erase request cannot be applied as given (no selector, a selector
    /// that matches every series, `start` after `end`).
    #[error("invalid erase request for tenant {tenant}: {detail}")]
    InvalidEraseRequest {
        /// The tenant.
        tenant: TenantId,
        /// What is wrong.
        detail: String,
    },
    /// A failure injected by a crash test ([`crate::ColdTier::arm_failpoint`];
    /// feature `failpoints`).
    #[cfg(feature = "failpoints")]
    #[error("injected failure at {point}")]
    Injected {
        /// The failpoint's name.
        point: String,
    },
    /// A data file or table metadata does not have the layout this crate
    /// writes (e.g. a `strata.roll.p<partition>` property that is not a
    /// roll state).
    #[error("unexpected data in cold table of tenant {tenant}: {detail}")]
    Corrupted {
        /// The tenant.
        tenant: TenantId,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// [`Error::Scan`] of `table`.
    pub(crate) fn scan(tenant: &TenantId, table: &iceberg::table::Table, source: iceberg::Error) -> Error {
        Error::Scan { tenant: tenant.clone(), table: table.identifier().name().to_owned(), source: Box::new(source) }
    }

    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig { .. } | Error::Config(_) | Error::InvalidEraseRequest { .. } => {
                ErrorKind::InvalidInput
            }
            #[cfg(feature = "failpoints")]
            Error::Injected { .. } => ErrorKind::Internal,
            Error::Corrupted { .. } => ErrorKind::Corruption,
            Error::BuildBatch { .. } => ErrorKind::Internal,
            Error::OpenObjectStore { .. } | Error::CatalogSwap { .. } | Error::ObjectStore { .. } => {
                ErrorKind::Unavailable
            }
            Error::Conflict { .. } => ErrorKind::Unavailable,
            Error::OpenCatalog { source, .. }
            | Error::CreateTable { source, .. }
            | Error::LoadTable { source, .. }
            | Error::WriteDataFiles { source, .. }
            | Error::Commit { source, .. }
            | Error::Scan { source, .. }
            | Error::Maintenance { source, .. } => iceberg_kind(source),
        }
    }
}

fn iceberg_kind(e: &iceberg::Error) -> ErrorKind {
    use iceberg::ErrorKind as K;
    match e.kind() {
        K::DataInvalid | K::FeatureUnsupported => ErrorKind::Internal,
        K::TableNotFound | K::NamespaceNotFound => ErrorKind::NotFound,
        _ => ErrorKind::Unavailable,
    }
}

impl From<Error> for ReadError {
    fn from(e: Error) -> Self {
        match e {
            Error::Corrupted { tenant, detail } => {
                ReadError::Corrupted { location: format!("cold table of tenant {tenant}"), detail }
            }
            other => ReadError::Io { location: "cold tier".into(), source: std::io::Error::other(other) },
        }
    }
}
