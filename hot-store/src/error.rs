//! The crate's error type.

use std::io;
use std::path::PathBuf;

use strata_schemas::{ErrorKind, ReadError};

use crate::format::FormatVersion;

/// Everything that can go wrong in the hot store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `[hot_store]` setting breaks a rule ([`crate::HotStoreConfig::validate`]).
    /// Boxed: a `ConfigError` is four strings, and this enum is every
    /// store operation's `Err` (and nested in the compactor's).
    #[error(transparent)]
    Config(Box<strata_schemas::ConfigError>),
    /// The store directory could not be created.
    #[error("creating hot-store directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The store directory could not be listed or synced.
    #[error("accessing hot-store directory {path}: {source}")]
    AccessDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The manifest could not be read.
    #[error("reading manifest {path}: {source}")]
    ReadManifest {
        /// The manifest file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The manifest could not be written durably.
    #[error("writing manifest {path}: {source}")]
    WriteManifest {
        /// The file being written (temp or final).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The directory holds segment files but no manifest: refusing to guess.
    #[error("manifest {path} is missing but the directory holds segment files ({files}); refusing to delete them")]
    ManifestMissing {
        /// Where the manifest should be.
        path: PathBuf,
        /// The segment files found.
        files: String,
    },
    /// A segment the manifest lists does not exist.
    #[error("segment {path} is listed in the manifest but missing")]
    MissingSegment {
        /// The missing file.
        path: PathBuf,
    },
    /// A segment could not be opened or its index read.
    #[error("opening segment {path}: {source}")]
    OpenSegment {
        /// The segment file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A segment could not be written durably.
    #[error("writing segment {path}: {source}")]
    WriteSegment {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A segment's sample block could not be read during compaction.
    #[error("reading segment {path} for compaction: {source}")]
    CompactRead {
        /// The segment file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: ReadError,
    },
    /// An erase request was refused before anything was touched.
    #[error("invalid erase request for tenant {tenant}: {detail}")]
    InvalidErase {
        /// The request's tenant.
        tenant: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A segment's sample block could not be read while erasing or verifying an erasure.
    #[error("reading segment {path} for erasure: {source}")]
    EraseRead {
        /// The segment file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: ReadError,
    },
    /// A memtable chunk failed to decode while erasing or verifying an erasure.
    #[error("decoding the memtable for erasure: {detail}")]
    EraseMemtable {
        /// What the decoder reported.
        detail: String,
    },
    /// A leftover file from a crash could not be removed.
    #[error("removing leftover file {path}: {source}")]
    RemoveLeftover {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A stored checksum does not match the bytes.
    #[error("checksum mismatch in {what} of {path}: stored {expected:#010x}, computed {actual:#010x}")]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Which part (`header`, `index`, `footer`, `manifest body`).
        what: &'static str,
        /// The stored checksum.
        expected: u32,
        /// The checksum of the bytes read.
        actual: u32,
    },
    /// A file carries a format version this build cannot read.
    #[error("{path}: unsupported format version {found} (supported: {}..={})", supported.start().as_u8(), supported.end().as_u8())]
    UnsupportedFormatVersion {
        /// The file.
        path: PathBuf,
        /// The version byte found.
        found: u8,
        /// The versions this build reads.
        supported: std::ops::RangeInclusive<FormatVersion>,
    },
    /// A file is structurally invalid.
    #[error("corrupt {path}: {detail}")]
    Corrupted {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A write was refused because an earlier flush failed (the store is
    /// poisoned until restart; the ingest log still holds the data).
    #[error("apply to partition {partition} at offset {offset} refused: store poisoned by an earlier failure: {cause}")]
    ApplyRefused {
        /// Log partition.
        partition: u32,
        /// Log offset.
        offset: u64,
        /// The failure that poisoned the store.
        cause: String,
    },
    /// A flush or compaction was refused because the store is poisoned.
    #[error("{operation} refused: store poisoned by an earlier failure: {cause}")]
    Poisoned {
        /// `flush` or `compact`.
        operation: &'static str,
        /// The failure that poisoned the store.
        cause: String,
    },
}

impl Error {
    /// Classifies the error for the server's status mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ChecksumMismatch { .. }
            | Error::Corrupted { .. }
            | Error::MissingSegment { .. }
            | Error::ManifestMissing { .. }
            | Error::UnsupportedFormatVersion { .. } => ErrorKind::Corruption,
            Error::CompactRead { source, .. } | Error::EraseRead { source, .. } => source.kind(),
            Error::InvalidErase { .. } | Error::Config(_) => ErrorKind::InvalidInput,
            Error::EraseMemtable { .. } => ErrorKind::Corruption,
            Error::ApplyRefused { .. } | Error::Poisoned { .. } => ErrorKind::Unavailable,
            Error::CreateDir { .. }
            | Error::AccessDir { .. }
            | Error::ReadManifest { .. }
            | Error::WriteManifest { .. }
            | Error::OpenSegment { .. }
            | Error::WriteSegment { .. }
            | Error::RemoveLeftover { .. } => ErrorKind::Internal,
        }
    }
}

impl From<strata_schemas::ConfigError> for Error {
    fn from(e: strata_schemas::ConfigError) -> Self {
        Error::Config(Box::new(e))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An integrity failure found while decoding a file, before the caller adds
/// the path.
#[derive(Debug)]
pub(crate) enum Invalid {
    Checksum { what: &'static str, expected: u32, actual: u32 },
    Version(u8),
    Corrupt(String),
}

impl Invalid {
    pub(crate) fn at(self, path: PathBuf) -> Error {
        match self {
            Invalid::Checksum { what, expected, actual } => Error::ChecksumMismatch { path, what, expected, actual },
            Invalid::Version(found) => Error::UnsupportedFormatVersion {
                path,
                found,
                supported: FormatVersion::OLDEST_SUPPORTED..=FormatVersion::CURRENT,
            },
            Invalid::Corrupt(detail) => Error::Corrupted { path, detail },
        }
    }
}

impl From<&'static str> for Invalid {
    fn from(detail: &'static str) -> Self {
        Invalid::Corrupt(detail.to_owned())
    }
}

/// Verifies `crc32(bytes) == expected`.
pub(crate) fn check_crc(what: &'static str, bytes: &[u8], expected: u32) -> Result<(), Invalid> {
    let actual = crc32fast::hash(bytes);
    if actual == expected { Ok(()) } else { Err(Invalid::Checksum { what, expected, actual }) }
}
