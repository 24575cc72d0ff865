//! The ingest log: the write-ahead log of Strata.
//!
//! A write is acknowledged only once its records are durable here. The log is
//! split into P partitions (`device_hash % P`); each partition is a sequence
//! of records numbered by a dense `u64` offset, like a Kafka partition, so
//! the hot store can record "flushed up to offset N" per partition and replay
//! only the tail after a restart.
//!
//! ```text
//!  HTTP write ──append(records)──► partition channel ──► writer thread (one per partition)
//!                                                          │ drain queue (group commit)
//!                                                          │ write frames, fdatasync
//!                                                          │ sink.apply(p, offset, payload)  in offset order
//!                                                          ▼
//!                                                        ack every waiter of the group
//! ```
//!
//! [`IngestLog`] is the contract the write path uses; [`LocalLog`] is the
//! embedded implementation (segment files on local disk, see [`segment`]
//! for the byte layout). A Kafka implementation follows in a later issue.

pub mod local;
pub(crate) mod segment;

use crate::error::Result;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;

pub use local::{LocalLog, LogConfig};

/// The decoded form of a record, handed to the sink beside its bytes so the
/// write path does not decode what it just encoded.
pub type Decoded = Box<dyn Any + Send>;

/// One record to append.
pub struct LogRecord {
    /// Target partition.
    pub partition: u32,
    /// The bytes made durable.
    pub payload: Vec<u8>,
    /// What `payload` decodes to, if the writer has it at hand.
    pub decoded: Option<Decoded>,
}

impl std::fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRecord").field("partition", &self.partition).field("bytes", &self.payload.len()).finish()
    }
}

impl LogRecord {
    /// A record with only its bytes.
    pub fn new(partition: u32, payload: Vec<u8>) -> Self {
        Self { partition, payload, decoded: None }
    }
}

/// Receives every record of the log, in offset order per partition, right
/// after it became durable (and during replay).
pub trait LogSink: Send + Sync {
    /// Applies record `offset` of `partition`. `decoded` is the record's
    /// decoded form when the writer supplied it (never during replay). An
    /// error fails the write that produced the record (the record itself
    /// stays in the log).
    fn apply(
        &self,
        partition: u32,
        offset: u64,
        payload: &[u8],
        decoded: Option<&(dyn Any + Send)>,
    ) -> std::result::Result<(), String>;
}

/// A boxed future returned by [`IngestLog::append`].
pub type AppendFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u64>>> + Send + 'a>>;

/// The durable, partitioned log every write goes through.
pub trait IngestLog: Send + Sync + std::fmt::Debug {
    /// Number of partitions.
    fn partitions(&self) -> u32;

    /// Appends records and resolves, with their offsets, once every one of
    /// them is durable and applied. On error some records may still have
    /// been stored; callers retry the whole write, which is idempotent (same
    /// series and timestamps, same values).
    fn append(&self, records: Vec<LogRecord>) -> AppendFuture<'_>;
}
