//! The ingest crate's errors.

use std::path::PathBuf;
use strata_schemas::ErrorKind;

/// Errors of the ingest log and the write path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating or opening the log directory failed.
    #[error("opening ingest log directory {path}: {source}")]
    OpenLog {
        /// Directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading a log segment failed.
    #[error("reading ingest log segment {path}: {source}")]
    ReadSegment {
        /// Segment file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing or syncing a log segment failed; the partition is poisoned.
    #[error("writing ingest log segment {path}: {source}")]
    WriteSegment {
        /// Segment file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The disk (or quota) holding the log is full: the write was rolled back
    /// and not acknowledged; the partition stays writable and the next write
    /// succeeds once space is freed.
    #[error("ingest log segment {path}: disk full, write not stored (free space on that file system): {source}")]
    DiskFull {
        /// Segment file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A log segment holds damaged data that is not a torn tail.
    #[error("ingest log segment {path} is corrupt at byte {position}: {detail}")]
    Corrupted {
        /// Segment file.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What is wrong.
        detail: String,
    },
    /// The segment header names a format version this build cannot read.
    #[error("ingest log segment {path} has format version {found}, this build reads {supported}")]
    UnsupportedFormatVersion {
        /// Segment file.
        path: PathBuf,
        /// Version found.
        found: u8,
        /// Version supported.
        supported: u8,
    },
    /// An earlier write or fsync failed (for another reason than a full
    /// disk), so the partition refuses writes until restart.
    #[error("ingest log partition {partition} is poisoned after an earlier write failure; restart required")]
    Poisoned {
        /// Partition.
        partition: u32,
    },
    /// The log is shutting down.
    #[error("ingest log is closed")]
    Closed,
    /// A record of the log could not be applied downstream.
    #[error("applying ingest log record {partition}/{offset}: {detail}")]
    Apply {
        /// Partition.
        partition: u32,
        /// Offset.
        offset: u64,
        /// The sink's classification (a store refusing writes for now is Unavailable).
        kind: ErrorKind,
        /// Description.
        detail: String,
    },
    /// The log on disk was created with another partition count.
    #[error(
        "ingest log {path} has {on_disk} partitions but the configuration says {configured}; the partition count of an existing log cannot change"
    )]
    PartitionCountChanged {
        /// The log's metadata file.
        path: PathBuf,
        /// Partitions on disk.
        on_disk: u32,
        /// Partitions configured.
        configured: u32,
    },
    /// The Kafka log's settings are unusable.
    #[error("kafka ingest log configuration: {detail}")]
    KafkaConfig {
        /// What is wrong.
        detail: String,
    },
    /// A Kafka client operation failed (creating a client, metadata, commit).
    #[error("kafka {what}: {source}")]
    KafkaClient {
        /// The operation.
        what: &'static str,
        /// Cause.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The region's topic is missing or does not match the configuration.
    #[error("kafka topic {topic}: {detail}")]
    KafkaTopic {
        /// Topic.
        topic: String,
        /// What is wrong.
        detail: String,
    },
    /// The brokers did not confirm a record (timeout, broker down, refused):
    /// the write is not acknowledged and may be retried.
    #[error("kafka did not confirm a record for {topic} partition {partition}: {source}")]
    KafkaDeliver {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Cause.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Starting a Kafka log thread failed.
    #[error("starting a kafka log thread: {source}")]
    KafkaThread {
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A record is larger than the log accepts.
    #[error("record of {size} bytes exceeds the ingest log's maximum record size of {max} bytes")]
    RecordTooLarge {
        /// Record size.
        size: usize,
        /// Limit.
        max: usize,
    },
}

impl Error {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Corrupted { .. } | Error::UnsupportedFormatVersion { .. } => ErrorKind::Corruption,
            Error::Closed
            | Error::Poisoned { .. }
            | Error::WriteSegment { .. }
            | Error::DiskFull { .. }
            | Error::KafkaClient { .. }
            | Error::KafkaDeliver { .. } => ErrorKind::Unavailable,
            Error::RecordTooLarge { .. }
            | Error::PartitionCountChanged { .. }
            | Error::KafkaConfig { .. }
            | Error::KafkaTopic { .. } => ErrorKind::InvalidInput,
            Error::Apply { kind, .. } => *kind,
            Error::OpenLog { .. } | Error::ReadSegment { .. } | Error::KafkaThread { .. } => ErrorKind::Internal,
        }
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
