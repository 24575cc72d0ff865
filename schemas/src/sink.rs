//! The contract between the ingest log and the store it feeds.
//!
//! The log (embedded segments or Kafka, in `ingest`) hands every record to a
//! [`LogSink`] in offset order per partition: right after the record became
//! durable, with the [`WriteBatch`] the writer encoded, or during replay
//! and Kafka consumption with only its bytes. A store (the embedded hot
//! store, the ScyllaDB tier) implements [`BatchSink`], which makes it a
//! [`LogSink`] that decodes the records that arrive as bytes (one that does
//! not decode is *Corruption*). A refusal keeps its [`ErrorKind`] all the
//! way to the write's answer: a store refusing writes for now (*Unavailable*)
//! answers 503 with `Retry-After`, never a 500.

use crate::batch::WriteBatch;
use crate::error::ErrorKind;

/// Why a sink did not apply a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApplyError {
    /// How the write path answers it (Unavailable: 503 and Retry-After).
    pub kind: ErrorKind,
    /// What happened.
    pub message: String,
}

impl ApplyError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// Receives every record of the log, in offset order per partition, right
/// after it became durable (and during replay). With the Kafka log a record
/// may arrive again after a restart or rebalance (offsets below the sink's
/// floor are re-delivered); applying a record twice must be harmless.
pub trait LogSink: Send + Sync {
    /// Applies record `offset` of `partition`. `decoded` is the record's
    /// batch when the writer supplied it (never during replay); otherwise the
    /// sink decodes `payload`. An error fails the write that produced the
    /// record (the record itself stays in the log).
    fn apply(
        &self,
        partition: u32,
        offset: u64,
        payload: &[u8],
        decoded: Option<&WriteBatch>,
    ) -> Result<(), ApplyError>;
}

/// A store that applies decoded batches. Every `BatchSink` is a [`LogSink`]:
/// a record that arrives as bytes only is decoded first, and one that does
/// not decode is refused as *Corruption* without reaching the store.
pub trait BatchSink: Send + Sync {
    /// Applies record `offset` of `partition`, already decoded; the same
    /// contract as [`LogSink::apply`] (applying a record twice is harmless).
    fn apply_batch(&self, partition: u32, offset: u64, batch: &WriteBatch) -> Result<(), ApplyError>;
}

impl<S: BatchSink> LogSink for S {
    fn apply(
        &self,
        partition: u32,
        offset: u64,
        payload: &[u8],
        decoded: Option<&WriteBatch>,
    ) -> Result<(), ApplyError> {
        match decoded {
            Some(batch) => self.apply_batch(partition, offset, batch),
            None => {
                let batch = WriteBatch::decode(payload).map_err(|e| {
                    ApplyError::new(ErrorKind::Corruption, format!("record {partition}/{offset} does not decode: {e}"))
                })?;
                self.apply_batch(partition, offset, &batch)
            }
        }
    }
}

/// A sink that takes every record and keeps nothing: where the log itself is
/// what runs (its fuzz targets, format fixtures and tests), not a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardSink;

impl LogSink for DiscardSink {
    fn apply(&self, _: u32, _: u64, _: &[u8], _: Option<&WriteBatch>) -> Result<(), ApplyError> {
        Ok(())
    }
}
