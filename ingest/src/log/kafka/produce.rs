//! The write side of [`KafkaLog`]: a write's records sent to their
//! partitions by the idempotent producer, acknowledged once every record
//! has a delivery report, and the producer replaced after a fatal error.
//!
//! ```text
//!  append(records) ──check sizes and partitions──► send each (key = partition, 4 bytes BE)
//!                  ──await every delivery report──► offsets  (or the first failure; a fatal
//!                                                   or fenced producer is replaced)
//! ```

use super::KafkaLog;
use crate::error::{Error, Result};
use crate::log::LogRecord;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::sync::atomic::Ordering;

/// A sent record waiting for its delivery report: partition, payload bytes, report.
type Pending = (u32, usize, DeliveryFuture);

impl KafkaLog {
    /// Sends `records` and resolves with their offsets once every one has a
    /// delivery report; fails with the first failed delivery (after
    /// awaiting all of them).
    pub(super) async fn append_all(&self, records: Vec<LogRecord>) -> Result<Vec<u64>> {
        self.check_records(&records)?;
        let producer = self.producer.lock().clone();
        let waits = self.send_all(&producer, &records)?;
        match self.await_deliveries(waits).await {
            Ok(offsets) => {
                for (r, &offset) in records.iter().zip(&offsets) {
                    if let Some(s) = i32::try_from(r.partition).ok().and_then(|p| self.shared.partition(p)) {
                        s.produced
                            .fetch_max(i64::try_from(offset).unwrap_or(i64::MAX).saturating_add(1), Ordering::AcqRel);
                    }
                }
                Ok(offsets)
            }
            Err(e) => {
                self.replace_fatal_producer(&producer, is_fenced(&e));
                Err(e)
            }
        }
    }

    /// Refuses a write with a record over `max_record_bytes` or outside the topic's partitions.
    fn check_records(&self, records: &[LogRecord]) -> Result<()> {
        for LogRecord { partition, payload, .. } in records {
            if payload.len() > self.max_record_bytes {
                return Err(Error::RecordTooLarge { size: payload.len(), max: self.max_record_bytes });
            }
            if *partition >= self.partitions {
                return Err(Error::KafkaConfig {
                    detail: format!("partition {partition} outside the topic's {} partitions", self.partitions),
                });
            }
        }
        Ok(())
    }

    /// Hands every record to the producer; a record it refuses at once fails the write.
    fn send_all(&self, producer: &FutureProducer, records: &[LogRecord]) -> Result<Vec<Pending>> {
        let mut waits = Vec::with_capacity(records.len());
        for LogRecord { partition, payload, .. } in records {
            let key = partition.to_be_bytes();
            let record = FutureRecord::to(&self.topic).partition(*partition as i32).key(&key[..]).payload(payload);
            match producer.send_result(record) {
                Ok(delivery) => waits.push((*partition, payload.len(), delivery)),
                Err((source, _)) => {
                    self.shared.delivery_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(Error::KafkaDeliver { topic: self.topic.clone(), partition: *partition, source });
                }
            }
        }
        Ok(waits)
    }

    /// Awaits every report even after a failure, so no record is left in
    /// flight unaccounted; the offsets in record order, or the first failure.
    async fn await_deliveries(&self, waits: Vec<Pending>) -> Result<Vec<u64>> {
        let mut offsets = Vec::with_capacity(waits.len());
        let mut failure = None;
        for (partition, bytes, delivery) in waits {
            match delivery.await {
                Ok(Ok(d)) => {
                    self.shared.produced_records.fetch_add(1, Ordering::Relaxed);
                    self.shared.produced_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                    offsets.push(d.offset as u64);
                }
                Ok(Err((source, _))) => {
                    self.shared.delivery_failures.fetch_add(1, Ordering::Relaxed);
                    failure.get_or_insert(Error::KafkaDeliver { topic: self.topic.clone(), partition, source });
                }
                Err(_) => {
                    self.shared.delivery_failures.fetch_add(1, Ordering::Relaxed);
                    failure.get_or_insert(Error::Closed);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(offsets),
        }
    }

    /// After a fatal producer error, or a delivery refused for the
    /// producer's identity (`ProducerFenced` and kin: after an outage timed
    /// out in-flight records of the idempotent producer, tansu 0.6.0 fences
    /// its epoch bump), every later send fails, so the node would refuse
    /// writes until restart. librdkafka's rule is to destroy such a producer
    /// and create a new one (a new producer id); the old one's records
    /// already failed their writes.
    fn replace_fatal_producer(&self, failed: &FutureProducer, fenced: bool) {
        let (code, reason) = match failed.client().fatal_error() {
            Some((code, reason)) => (code, reason),
            None if fenced => (RDKafkaErrorCode::ProducerFenced, "delivery refused for the producer id".to_owned()),
            None => return,
        };
        let mut current = self.producer.lock();
        if current.client().native_ptr() != failed.client().native_ptr() {
            return; // another write replaced it already
        }
        match self.producer_config.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!(error = ?code, %reason, "kafka producer hit a fatal error; replaced with a new producer");
                *current = fresh;
            }
            Err(e) => {
                tracing::error!(error = %e, "kafka producer hit a fatal error and a new one could not be created")
            }
        }
    }
}

/// Whether a delivery failed for the producer's identity (fenced, its epoch
/// or id unknown, its sequence broken): the producer must be replaced.
fn is_fenced(e: &Error) -> bool {
    matches!(
        e,
        Error::KafkaDeliver { source: KafkaError::MessageProduction(code), .. } if matches!(
            code,
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
        )
    )
}
