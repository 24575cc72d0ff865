//! [`KafkaRecords`]: the region's Kafka topic read and trimmed outside the
//! consumer group, for the right to erasure (issue 18; the server's
//! `erasure/kafka.rs` decides what to delete).
//!
//! ```text
//!  watermarks()        (low, high) of every partition, asked now
//!  scan(p, from, to)   a consumer of its own (no group, nothing committed) assigned to p at
//!                      `from` (the low watermark when below it), each record's offset and value
//!                      in offset order until `to` or the partition's end
//!  delete_before(p→X)  DeleteRecords (API key 21): every record of p below X is dropped, of
//!                      every device and tenant; returns the new low watermarks
//! ```
//!
//! Kafka cannot rewrite a record: the only way to remove one is to move its
//! partition's start offset past it. On Apache Kafka the records below X are
//! unreadable at once and their bytes go when the segment holding them lies
//! wholly below X and the next retention check runs. tansu 0.6.0 implements
//! DeleteRecords only in its SlateDB engine, which drops whole producer
//! batches whose base offset is below X (a batch straddling X loses its
//! records at and above X), and its ListOffsets answers the earliest offset
//! from the remaining batches, 0 for a partition DeleteRecords emptied (a
//! consumer positioned there then gets no record and no end of partition).
//! So [`KafkaRecords::watermarks`] answers at least the low watermark the
//! broker returned to this value's last delete in the partition.
//! Blocking calls (`watermarks`, `scan`) run on a blocking thread.

use crate::error::{Error, Result};
use crate::log::KafkaLogConfig;
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The region's topic, for reading and deleting records outside the group.
#[derive(Clone)]
pub struct KafkaRecords {
    base: ClientConfig,
    topic: String,
    partitions: u32,
    /// Per partition, the highest low watermark a delete of this value (or
    /// a clone) was answered with.
    deleted: Arc<Mutex<BTreeMap<u32, i64>>>,
}

impl std::fmt::Debug for KafkaRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaRecords").field("topic", &self.topic).field("partitions", &self.partitions).finish()
    }
}

impl KafkaRecords {
    /// The topic of `region` on the brokers of `config` (the same client
    /// settings as the log's own clients). Creates no connection yet.
    pub fn new(config: &KafkaLogConfig, partitions: u32, region: &str) -> Self {
        let base = config.base_client(&format!("strata-{region}-erasure"));
        Self { base, topic: config.topic(region), partitions, deleted: Arc::default() }
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn consumer(&self, max_record_bytes: usize) -> Result<BaseConsumer> {
        let mut c = self.base.clone();
        // librdkafka refuses an assignment without a group id; this group is
        // never joined and nothing is committed to it (explicit offsets).
        c.set("group.id", format!("{}.erasure-reader", self.topic))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_uncommitted")
            // tansu holds a fetch for the whole wait even when it has records.
            .set("fetch.wait.max.ms", "50")
            .set("max.partition.fetch.bytes", (max_record_bytes.max(1 << 20) + (64 << 10)).to_string());
        c.create().map_err(|source| Error::KafkaClient { what: "erasure consumer", source })
    }

    /// The (low, high) watermarks of every partition, asked now (the low one
    /// at least what this value's last delete there was answered). Blocking.
    pub fn watermarks(&self, timeout: Duration) -> Result<Vec<(i64, i64)>> {
        let consumer = self.consumer(0)?;
        (0..self.partitions)
            .map(|p| {
                let (low, high) = consumer
                    .fetch_watermarks(&self.topic, p as i32, timeout)
                    .map_err(|source| Error::KafkaClient { what: "fetch watermarks", source })?;
                let deleted = self.deleted.lock().get(&p).copied().unwrap_or(low);
                Ok((low.max(deleted).min(high), high))
            })
            .collect()
    }

    /// Calls `f(offset, value)` for every record of `partition` from `from`
    /// (or the low watermark, when `from` is below it) up to `to`
    /// (exclusive) or the partition's end, in offset order, until `f`
    /// returns false. Fails when the records do not arrive within `timeout`.
    /// Blocking.
    pub fn scan(
        &self,
        partition: u32,
        from: i64,
        to: i64,
        timeout: Duration,
        f: &mut dyn FnMut(i64, &[u8]) -> bool,
    ) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let consumer = self.consumer(1 << 20)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition as i32, Offset::Offset(from.max(0)))
            .map_err(|source| Error::KafkaClient { what: "erasure scan", source })?;
        consumer.assign(&tpl).map_err(|source| Error::KafkaClient { what: "erasure scan", source })?;
        let deadline = Instant::now() + timeout;
        loop {
            if Instant::now() >= deadline {
                return Err(Error::KafkaTopic {
                    topic: self.topic.clone(),
                    detail: format!("reading partition {partition} from {from} to {to}: timed out after {timeout:?}"),
                });
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Ok(m)) => {
                    let offset = m.offset();
                    if offset >= to || !f(offset, m.payload().unwrap_or_default()) || offset + 1 >= to {
                        return Ok(());
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(()),
                Some(Err(source)) => return Err(Error::KafkaClient { what: "erasure scan", source }),
            }
        }
    }

    /// Drops every record of each partition below its offset (DeleteRecords)
    /// and returns the partitions' new low watermarks.
    pub async fn delete_before(&self, offsets: &BTreeMap<u32, i64>, timeout: Duration) -> Result<BTreeMap<u32, i64>> {
        if offsets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let admin: AdminClient<DefaultClientContext> =
            self.base.create().map_err(|source| Error::KafkaClient { what: "admin client", source })?;
        let mut tpl = TopicPartitionList::new();
        for (&p, &offset) in offsets {
            tpl.add_partition_offset(&self.topic, p as i32, Offset::Offset(offset))
                .map_err(|source| Error::KafkaClient { what: "delete records", source })?;
        }
        let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
        let result = admin
            .delete_records(&tpl, &opts)
            .await
            .map_err(|source| Error::KafkaClient { what: "delete records", source })?;
        let mut out = BTreeMap::new();
        for e in result.elements() {
            e.error().map_err(|source| Error::KafkaClient { what: "delete records", source })?;
            if let Offset::Offset(low) = e.offset() {
                let p = e.partition() as u32;
                out.insert(p, low);
                let mut deleted = self.deleted.lock();
                let d = deleted.entry(p).or_insert(low);
                *d = (*d).max(low);
            }
        }
        Ok(out)
    }
}
