//! The hot store as the ingest log's sink: records arrive from the log in
//! offset order per partition, as the batch the writer encoded or as bytes
//! to decode (replay, Kafka). Errors keep their kind: a store refusing
//! writes after a failed flush is *Unavailable* (the write answers 503 with
//! `Retry-After`), a record that does not decode is *Corruption*.

use strata_schemas::{ApplyError, ErrorKind, LogSink, WriteBatch};

use crate::store::HotStore;

impl LogSink for HotStore {
    fn apply(
        &self,
        partition: u32,
        offset: u64,
        payload: &[u8],
        decoded: Option<&WriteBatch>,
    ) -> Result<(), ApplyError> {
        let refused = |e: crate::Error| ApplyError::new(e.kind(), e.to_string());
        match decoded {
            Some(batch) => HotStore::apply(self, partition, offset, batch).map_err(refused),
            None => {
                let batch = WriteBatch::decode(payload).map_err(|e| {
                    ApplyError::new(ErrorKind::Corruption, format!("record {partition}/{offset} does not decode: {e}"))
                })?;
                HotStore::apply(self, partition, offset, &batch).map_err(refused)
            }
        }
    }
}
