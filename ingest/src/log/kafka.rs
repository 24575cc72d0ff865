//! [`KafkaLog`]: the regional ingest log on a Kafka-protocol broker (`rdkafka`).
//!
//! ## Topic and records
//!
//! One topic per region, `<topic_prefix>.<region>.ingest` (default
//! `strata.<region>.ingest`), with `[log] partitions` partitions. Opening the
//! log creates the topic when it is missing (`create_topic`) and refuses to
//! run when it exists with another partition count: the partition of a
//! device is `device_hash % partitions`, so the count is fixed for the life
//! of the topic.
//!
//! | part of a Kafka record | content |
//! |---|---|
//! | partition | `device_hash % P`, chosen by the write path (the producer never picks one) |
//! | key | the partition number, 4 bytes big-endian (a record batches many devices of one partition) |
//! | value | one `WriteBatch` in its log-record encoding (`schemas/src/batch.rs`, the same bytes [`super::LocalLog`] frames) |
//! | offset | assigned by the broker; the hot store records it as the record's log offset |
//!
//! ## Producer (every node that takes writes)
//!
//! Idempotent (`enable.idempotence=true`, so `acks=all`, retries without
//! duplicates or reordering), lz4-compressed batches (`compression`,
//! `linger`, `batch_bytes`). [`IngestLog::append`] resolves once every
//! record of the write has a delivery report; a failed or timed-out
//! delivery (`delivery_timeout`, broker down) fails the write with an
//! [`ErrorKind::Unavailable`](strata_schemas::ErrorKind) error, which the
//! HTTP layer answers with `503` and `Retry-After`. Nothing is dropped
//! silently: a record either has a broker offset or its write failed.
//!
//! ## Consumer (nodes with `consume = true`)
//!
//! A member of consumer group `group_id` on the topic. On every assignment
//! each assigned partition is positioned at the sink's *floor* (the hot
//! store's "first offset not yet in segments") rather than at the group's
//! committed offset, so exactly the unflushed tail is replayed; records the
//! hot store already holds in its memtable are skipped by it. An empty data
//! dir has floor 0: the partition is rebuilt from the start of the topic's
//! retention, with progress lines in the log. One thread polls; records are
//! applied by one worker per core, partition `p` always by worker
//! `p % workers`, so each partition is applied in offset order; an apply
//! error is retried every second (the partition never skips a record). [`KafkaLog::commit`] commits the offsets
//! the hot store flushed into segments, so the group's committed offset
//! never runs ahead of durable data.
//!
//! Per-partition state (assigned, next offset, high watermark, lag, commit,
//! apply rate) is exported by [`KafkaLog::status`].
//!
//! ## Broker compatibility (tested: tansu 0.6.0, in-memory engine)
//!
//! Idempotent produce (`InitProducerId`), topic creation, metadata, fetch,
//! consumer groups and offset commit/fetch work with librdkafka 2.12. Four
//! tansu behaviours are worked around here: a fetch at an offset inside a
//! batch answers from the next batch on, skipping the records at and above
//! the offset (see `cursor`: the consumer notices the skipped offsets and
//! fetches again from further back; a node restarting at a flushed offset
//! in the middle of a batch lost acknowledged records before); it keeps a session-expired
//! member's partitions assigned to nobody (see `ConsumerCtx`: the member
//! rejoins); after a broker outage longer than the session timeout it keeps
//! the departed member as the group's leader, so no member is ever assigned
//! anything (see `GroupRepair`: the group is deleted and joined anew); and it
//! holds every fetch for the full `fetch.wait.max.ms`
//! (hence the short `fetch_wait` default). Consumers use eager `range`
//! assignment; asynchronous commit results were never delivered to the
//! consumer's callback in our tests, so commits are synchronous.
//!
//! ## Modules
//!
//! | module | what it holds |
//! |---|---|
//! | this one | [`KafkaLog`]: open, status, close, the [`IngestLog`] contract |
//! | `config` | [`KafkaLogConfig`], its checks, topic and group names, the clients' librdkafka properties |
//! | `produce` | a write's records sent and acknowledged; a fatal or fenced producer replaced |
//! | `consume` | the consumer thread and apply workers, rejoins, progress, [`KafkaLog::commit`] |
//! | `cursor` | each partition's position: records skipped below it, a re-fetch when the broker skipped offsets, gaps reported |
//! | `rebalance` | the consumer's client context: assignments at the sink's floor, revocations, statistics, the stale-assignment rejoin |
//! | `group_repair` | the stuck-group reset (a departed leader) |
//! | `admin` | topic creation and check, high watermarks, group deletion |
//! | `status` | state shared with the consumer thread and callbacks; [`KafkaStatus`] |
//! | `progress` | replay and rebuild of assigned partitions as progress tasks |

mod admin;
mod config;
mod consume;
mod cursor;
mod group_repair;
mod produce;
mod progress;
mod rebalance;
mod status;

pub use config::KafkaLogConfig;
pub use status::{KafkaStatus, PartitionStatus};

use super::{AppendFuture, IngestLog, LogRecord, LogSink};
use crate::error::{Error, Result};
use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, Producer};
use rebalance::GroupConsumer;
use status::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

/// The ingest log on Kafka: a producer for writes and, when `consume` is
/// on, a consumer-group member applying assigned partitions to the sink.
pub struct KafkaLog {
    topic: String,
    group: Option<String>,
    partitions: u32,
    max_record_bytes: usize,
    /// Replaced after a fatal error (see [`KafkaLog::replace_fatal_producer`]).
    producer: Mutex<FutureProducer>,
    /// What a replacement producer is created from.
    producer_config: ClientConfig,
    consumer: Option<Arc<GroupConsumer>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Connects to the brokers, makes sure the region's topic exists with
    /// `partitions` partitions, and (with `consume`) joins the consumer
    /// group. `floor(p)` is the first offset of partition `p` the sink still
    /// needs; assigned partitions are replayed from there into `sink`.
    /// Blocking: call from a blocking thread.
    pub fn open(
        config: &KafkaLogConfig,
        partitions: u32,
        region: &str,
        floor: Arc<dyn Fn(u32) -> u64 + Send + Sync>,
        sink: Arc<dyn LogSink>,
    ) -> Result<Self> {
        config.clone().validate().map_err(|e| Error::KafkaConfig { detail: e.to_string() })?;
        let topic = config.topic(region);
        let base = config.base_client(&format!("strata-{region}"));
        admin::ensure_topic(&base, &topic, partitions, config.replication_factor, config.create_topic)?;
        let pconf = config.producer_client(&base);
        let producer: FutureProducer =
            pconf.create().map_err(|source| Error::KafkaClient { what: "producer", source })?;
        let shared = Arc::new(Shared::new(partitions));
        let mut log = Self {
            topic: topic.clone(),
            group: None,
            partitions,
            max_record_bytes: config.max_record_bytes,
            producer: Mutex::new(producer),
            producer_config: pconf,
            consumer: None,
            thread: Mutex::new(None),
            shared: Arc::clone(&shared),
        };
        if config.consume {
            let group = config.group(region);
            let (consumer, thread) = consume::start(config, &base, &topic, &group, &shared, floor, sink)?;
            *log.thread.lock() = Some(thread);
            log.consumer = Some(consumer);
            log.group = Some(group.clone());
            tracing::info!(topic = %topic, group = %group, partitions, "joined the kafka consumer group");
        }
        Ok(log)
    }

    /// The region's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether this node's consumer holds `partition` now.
    pub fn is_assigned(&self, partition: u32) -> bool {
        self.shared.partition(partition as i32).is_some_and(|s| s.assigned.load(Ordering::Acquire))
    }

    /// A snapshot of producer and consumer state.
    pub fn status(&self) -> KafkaStatus {
        self.shared.status(&self.topic, self.group.as_deref())
    }

    /// Waits for queued records to be delivered (up to `timeout`), stops the
    /// consumer and leaves the group. Blocking; idempotent.
    pub fn close(&self, timeout: Duration) {
        let producer = self.producer.lock().clone();
        if let Err(e) = producer.flush(timeout) {
            tracing::warn!(error = %e, "kafka producer did not deliver everything before shutdown");
        }
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.lock().take()
            && t.join().is_err()
        {
            tracing::error!("kafka consumer thread panicked");
        }
    }
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl KafkaLog {
    /// One past the highest offset of `partition` this node's producer has
    /// had acknowledged (`None` before its first write there): a partition
    /// is not applied to its end while the consumer is below it, whatever
    /// a watermark request answers.
    pub fn produced_end(&self, partition: u32) -> Option<u64> {
        let s = self.shared.partition(i32::try_from(partition).ok()?)?;
        u64::try_from(s.produced.load(Ordering::Acquire)).ok()
    }
}

impl IngestLog for KafkaLog {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    fn append(&self, records: Vec<LogRecord>) -> AppendFuture<'_> {
        Box::pin(self.append_all(records))
    }

    /// The consumer's next offset to apply, while this node holds the partition.
    fn applied(&self, partition: u32) -> Option<u64> {
        let s = self.shared.partition(i32::try_from(partition).ok()?)?;
        if !s.assigned.load(Ordering::Acquire) {
            return None;
        }
        u64::try_from(s.next.load(Ordering::Acquire)).ok()
    }
}

#[cfg(test)]
mod tests;
