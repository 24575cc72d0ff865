//! The agent's errors.

use std::path::PathBuf;
use strata_schemas::ErrorKind;

/// Errors of the durable queue and the agent around it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating, listing or syncing the queue directory failed.
    #[error("opening queue directory {path}: {source}")]
    OpenQueue {
        /// Directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading a segment or the cursor failed.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing or syncing a segment or the cursor failed; the queue is poisoned.
    #[error("writing {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A queue file holds damaged data that is not a torn tail.
    #[error("queue file {path} is corrupt at byte {position}: {detail}")]
    Corrupted {
        /// File.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What is wrong.
        detail: String,
    },
    /// A checksum did not match.
    #[error(
        "queue file {path}: checksum mismatch at byte {position} (expected {expected:#010x}, found {actual:#010x})"
    )]
    ChecksumMismatch {
        /// File.
        path: PathBuf,
        /// Byte position of the checksummed block.
        position: u64,
        /// Stored checksum.
        expected: u32,
        /// Computed checksum.
        actual: u32,
    },
    /// A file names a format version this build cannot read.
    #[error("queue file {path} has format version {found}, this build reads versions up to {supported}")]
    UnsupportedFormatVersion {
        /// File.
        path: PathBuf,
        /// Version found.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The queue is at its size bound and the overflow policy is `refuse`.
    #[error("queue full: {used} of {max} bytes used, a batch of {needed} bytes does not fit")]
    Full {
        /// Bytes on disk.
        used: u64,
        /// The bound.
        max: u64,
        /// Bytes the refused batch needs.
        needed: u64,
    },
    /// One batch is larger than the whole queue bound.
    #[error("batch of {size} bytes is larger than the queue bound of {max} bytes")]
    TooLarge {
        /// Bytes the batch needs.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// An earlier write or fsync failed; the queue refuses writes until restart.
    #[error("queue poisoned by an earlier write failure; restart the agent")]
    Poisoned,
    /// The configuration file cannot be read or parsed.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A setting breaks a rule ([`crate::config::AgentConfig::validate`]).
    #[error("invalid configuration: {0}")]
    InvalidConfig(#[from] strata_schemas::ConfigError),
    /// The aggregator's state file (`aggregate/FORMAT.md`) or its thread.
    #[error(transparent)]
    Aggregate(#[from] crate::aggregate::StateError),
}

impl Error {
    /// The error's class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Corrupted { .. } | Error::ChecksumMismatch { .. } | Error::UnsupportedFormatVersion { .. } => {
                ErrorKind::Corruption
            }
            Error::Full { .. } | Error::Poisoned => ErrorKind::Unavailable,
            Error::TooLarge { .. } | Error::Config(_) | Error::InvalidConfig(_) => ErrorKind::InvalidInput,
            Error::OpenQueue { .. } | Error::Read { .. } | Error::Write { .. } => ErrorKind::Internal,
            Error::Aggregate(e) => e.kind(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
