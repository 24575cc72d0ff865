//! Errors of the ScyllaDB hot tier, classified with [`ErrorKind`].

use strata_schemas::ErrorKind;

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What failed, named after the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `[hot.scylla]` setting breaks a rule ([`crate::ScyllaConfig::validate`]).
    #[error(transparent)]
    InvalidConfig(#[from] strata_schemas::ConfigError),
    /// No contact point answered, or the session could not be built.
    #[error("connecting to the CQL cluster at {nodes}: {detail}")]
    Connect {
        /// The contact points tried.
        nodes: String,
        /// The driver's error.
        detail: String,
    },
    /// A schema statement (keyspace, table) failed.
    #[error("creating the hot tier's schema ({statement}): {detail}")]
    Schema {
        /// The statement's first words.
        statement: String,
        /// The driver's error.
        detail: String,
    },
    /// The keyspace was written by another format version or bucket width.
    #[error("keyspace {keyspace} holds {found}, this build needs {expected}")]
    Incompatible {
        /// The keyspace.
        keyspace: String,
        /// What the keyspace records.
        found: String,
        /// What this build needs.
        expected: String,
    },
    /// Preparing a statement failed.
    #[error("preparing `{statement}`: {detail}")]
    Prepare {
        /// The statement.
        statement: String,
        /// The driver's error.
        detail: String,
    },
    /// A write was not acknowledged at the configured consistency level.
    #[error("writing {what} of tenant {tenant}: {detail}")]
    Write {
        /// The tenant.
        tenant: String,
        /// Which table.
        what: &'static str,
        /// The driver's error.
        detail: String,
    },
    /// A read failed.
    #[error("reading {what}: {detail}")]
    Read {
        /// Which table.
        what: &'static str,
        /// The driver's error.
        detail: String,
    },
    /// A stored row does not decode (labels JSON).
    #[error("corrupt row in {what}: {detail}")]
    Corrupted {
        /// Which table.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The tier's runtime is gone (the store is shutting down).
    #[error("the ScyllaDB hot tier is shut down")]
    ShutDown,
}

impl Error {
    /// Classifies the error: cluster failures are retryable (*Unavailable*).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidConfig(_) | Error::Incompatible { .. } => ErrorKind::InvalidInput,
            // A statement is prepared when first needed (per TTL): failing to
            // is, like a failed write, the cluster not answering.
            Error::Connect { .. }
            | Error::Write { .. }
            | Error::Read { .. }
            | Error::Prepare { .. }
            | Error::ShutDown => ErrorKind::Unavailable,
            Error::Schema { .. } => ErrorKind::Internal,
            Error::Corrupted { .. } => ErrorKind::Corruption,
        }
    }
}

impl From<Error> for strata_schemas::ReadError {
    fn from(e: Error) -> Self {
        match e {
            Error::Corrupted { what, detail } => {
                strata_schemas::ReadError::Corrupted { location: format!("scylla table {what}"), detail }
            }
            other => strata_schemas::ReadError::Unavailable(other.to_string()),
        }
    }
}
