//! The hot store as the ingest log's sink: records arrive from the log in
//! offset order per partition, as the batch the writer encoded or as bytes
//! to decode (replay, Kafka: [`BatchSink`]'s [`LogSink`](strata_schemas::LogSink)
//! decodes them). Errors keep their kind: a store refusing writes after a
//! failed flush is *Unavailable* (the write answers 503 with `Retry-After`),
//! a record that does not decode is *Corruption*.

use strata_schemas::{ApplyError, BatchSink, WriteBatch};

use crate::store::HotStore;

impl BatchSink for HotStore {
    fn apply_batch(&self, partition: u32, offset: u64, batch: &WriteBatch) -> Result<(), ApplyError> {
        HotStore::apply(self, partition, offset, batch).map_err(|e| ApplyError::new(e.kind(), e.to_string()))
    }
}
