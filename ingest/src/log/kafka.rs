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
//! consumer groups and offset commit/fetch work with librdkafka 2.12. Three
//! tansu behaviours are worked around here: it keeps a session-expired
//! member's partitions assigned to nobody (see `ConsumerCtx`: the member
//! rejoins); after a broker outage longer than the session timeout it keeps
//! the departed member as the group's leader, so no member is ever assigned
//! anything (see `GroupRepair`: the group is deleted and joined anew); and it
//! holds every fetch for the full `fetch.wait.max.ms`
//! (hence the short `fetch_wait` default). Consumers use eager `range`
//! assignment; asynchronous commit results were never delivered to the
//! consumer's callback in our tests, so commits are synchronous.

use super::{AppendFuture, IngestLog, LogRecord, LogSink};
use crate::error::{Error, Result};
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of the Kafka ingest log (`[log.kafka]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaLogConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// The region's topic is `<topic_prefix>.<region>.ingest`.
    pub topic_prefix: String,
    /// Consumer group of the hot-store nodes of the region; empty means `strata-<region>`.
    pub group_id: String,
    /// Whether this node consumes (applies its assigned partitions to its hot
    /// store). `false` makes a write-only ingest node.
    pub consume: bool,
    /// Create the topic with `[log] partitions` partitions when it is missing.
    pub create_topic: bool,
    /// Replication factor of a topic this node creates.
    pub replication_factor: i32,
    /// Producer compression: `lz4` (default), `zstd` is not built in; `none`, `gzip`, `snappy` also work.
    pub compression: String,
    /// How long the producer waits to fill a batch (`linger.ms`).
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Largest producer batch per partition in bytes (`batch.size`).
    pub batch_bytes: usize,
    /// A record not confirmed by the brokers within this time fails its write (`message.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// A consumer that misses heartbeats this long is dropped from the group
    /// and its partitions move (`session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Longest a consumer fetch waits at the broker for new records
    /// (`fetch.wait.max.ms`). Short, because it bounds how soon an
    /// acknowledged write becomes queryable on brokers that hold every fetch
    /// for the full wait (tansu 0.6.0 does; Kafka answers as soon as data is there).
    #[serde(with = "humantime_serde")]
    pub fetch_wait: Duration,
    /// Largest record (one write's batch for one partition) in bytes.
    pub max_record_bytes: usize,
    /// Further librdkafka properties for both clients, e.g. `{ "socket.timeout.ms" = "5000" }`.
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaLogConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            topic_prefix: "strata".to_owned(),
            group_id: String::new(),
            consume: true,
            create_topic: true,
            replication_factor: 1,
            compression: "lz4".to_owned(),
            linger: Duration::from_millis(5),
            batch_bytes: 1 << 20,
            delivery_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(6),
            fetch_wait: Duration::from_millis(20),
            max_record_bytes: 8 << 20,
            options: BTreeMap::new(),
        }
    }
}

impl KafkaLogConfig {
    /// Rejects settings the Kafka log cannot run with.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("log.kafka.brokers must name at least one broker".to_owned());
        }
        if self.topic_prefix.is_empty() || !self.topic_prefix.chars().all(topic_char) {
            return Err(format!(
                "log.kafka.topic_prefix must be non-empty and use only [a-zA-Z0-9._-], got {:?}",
                self.topic_prefix
            ));
        }
        if self.replication_factor < 1 {
            return Err("log.kafka.replication_factor must be at least 1".to_owned());
        }
        if self.delivery_timeout < Duration::from_millis(100) {
            return Err("log.kafka.delivery_timeout must be at least 100ms".to_owned());
        }
        if self.max_record_bytes < 1024 {
            return Err("log.kafka.max_record_bytes must be at least 1024".to_owned());
        }
        Ok(())
    }

    /// The region's topic name.
    pub fn topic(&self, region: &str) -> String {
        let region: String = region.chars().map(|c| if topic_char(c) { c } else { '_' }).collect();
        format!("{}.{region}.ingest", self.topic_prefix)
    }

    /// The consumer group of the region's hot-store nodes.
    pub fn group(&self, region: &str) -> String {
        if self.group_id.is_empty() { format!("strata-{region}") } else { self.group_id.clone() }
    }
}

fn topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// `-1` stands for "unknown" in the partition gauges.
const UNKNOWN: i64 = -1;

/// Consumer-side state of one partition.
#[derive(Debug)]
struct PartitionState {
    assigned: AtomicBool,
    /// Offset of the next record to apply (the last applied + 1).
    next: AtomicI64,
    /// The broker's high watermark (offset the next produced record gets), from statistics.
    high: AtomicI64,
    /// Last offset committed to the group.
    committed: AtomicI64,
    /// High watermark when the partition was assigned: the replay target shown in progress lines.
    replay_target: AtomicI64,
    applied_records: AtomicU64,
    applied_bytes: AtomicU64,
    /// Records per second over the last rate window, as `f64` bits.
    rate: AtomicU64,
}

impl Default for PartitionState {
    fn default() -> Self {
        Self {
            assigned: AtomicBool::new(false),
            next: AtomicI64::new(UNKNOWN),
            high: AtomicI64::new(UNKNOWN),
            committed: AtomicI64::new(UNKNOWN),
            replay_target: AtomicI64::new(UNKNOWN),
            applied_records: AtomicU64::new(0),
            applied_bytes: AtomicU64::new(0),
            rate: AtomicU64::new(0),
        }
    }
}

/// State shared by the log, its consumer thread and the client callbacks.
#[derive(Debug, Default)]
struct Shared {
    partitions: Vec<PartitionState>,
    produced_records: AtomicU64,
    produced_bytes: AtomicU64,
    delivery_failures: AtomicU64,
    apply_errors: AtomicU64,
    rebalances: AtomicU64,
    /// Forced rejoins (the broker workaround, see [`ConsumerCtx`]).
    rejoins: AtomicU64,
    /// Group resets (the broker workaround, see [`GroupRepair`]).
    group_resets: AtomicU64,
    /// Whether the last rebalance event was an assignment (possibly of no
    /// partition: a member beyond the partition count), i.e. the group synced.
    synced: AtomicBool,
    stop: AtomicBool,
    /// Set by the rebalance callback: leave and rejoin the group (served by the consumer thread).
    rejoin: AtomicBool,
}

impl Shared {
    fn partition(&self, p: i32) -> Option<&PartitionState> {
        usize::try_from(p).ok().and_then(|p| self.partitions.get(p))
    }
}

/// One partition in [`KafkaStatus`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionStatus {
    /// Partition number.
    pub partition: u32,
    /// Whether this node's consumer holds the partition now.
    pub assigned: bool,
    /// Next offset this node applies (`None` before the first assignment).
    pub next_offset: Option<i64>,
    /// The broker's high watermark, as last reported (`None` until known).
    pub high_watermark: Option<i64>,
    /// Records produced but not yet applied here (`None` when unknown or not assigned).
    pub lag: Option<i64>,
    /// Offset last committed to the consumer group by this node.
    pub committed_offset: Option<i64>,
    /// Records applied since start.
    pub applied_records: u64,
    /// Bytes of records applied since start.
    pub applied_bytes: u64,
    /// Records applied per second (recent).
    pub apply_rate: f64,
}

/// A snapshot of the Kafka log, for `/metrics` and the status endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KafkaStatus {
    /// The region's topic.
    pub topic: String,
    /// The consumer group (`None` when this node does not consume).
    pub group: Option<String>,
    /// Records delivered by this node's producer.
    pub produced_records: u64,
    /// Bytes of records delivered by this node's producer.
    pub produced_bytes: u64,
    /// Records whose delivery failed (their writes got an error).
    pub delivery_failures: u64,
    /// Failed attempts to apply a record (retried).
    pub apply_errors: u64,
    /// Assignments and revocations seen by the consumer.
    pub rebalances: u64,
    /// Times the consumer left and rejoined the group to work around a broker
    /// that handed back a departed member's stale assignment.
    pub forced_rejoins: u64,
    /// Times the consumer group was deleted and joined anew because nobody
    /// had held a partition for [`KafkaLog`]'s stuck-group delay while the
    /// broker answered (see `GroupRepair`).
    pub group_resets: u64,
    /// Per partition.
    pub partitions: Vec<PartitionStatus>,
}

impl KafkaStatus {
    /// Partitions this node's consumer holds now.
    pub fn assigned(&self) -> usize {
        self.partitions.iter().filter(|p| p.assigned).count()
    }

    /// True when this node consumes, holds at least one partition, and every
    /// partition it holds has applied up to the last known high watermark.
    /// A consumer with no partition (before the group's first assignment,
    /// after a session timeout revoked them) is not caught up: it applies
    /// nothing. A node that does not consume (`consume = false`) has
    /// nothing to catch up with: true.
    pub fn caught_up(&self) -> bool {
        if self.group.is_none() {
            return true;
        }
        self.assigned() > 0 && self.partitions.iter().filter(|p| p.assigned).all(|p| p.lag == Some(0))
    }
}

/// Client context of the consumer: positions assigned partitions at the
/// sink's floor and records statistics.
///
/// It also works around a group-coordinator bug of tansu 0.6.0: when a
/// member's session expires (a `kill -9`ed node) and the expiry is noticed on
/// a heartbeat, tansu drops the member but keeps the group "formed" with the
/// same generation and the old assignment map, so the survivors rejoin and
/// get their *old* partitions back and the dead member's partitions are
/// consumed by nobody (`tansu-broker` 0.6.0,
/// `coordinator/group/administrator.rs`: `Inner<Formed>::heartbeat` removes the
/// member itself, so the wrapper's `missed_heartbeat` no longer sees a change
/// and does not move the group to `Forming`; `Inner<Formed>::sync` ignores the
/// leader's new assignments). A revocation followed by the assignment of
/// exactly the partitions just revoked, fewer than all, is that signature:
/// the member then leaves and rejoins under a new member id, which makes
/// tansu form the group anew. A broker that legitimately hands back the same
/// set costs one extra rebalance: when the rejoin yields that set again it is
/// taken as genuine for [`GENUINE_FOR`], which ends the chain of rejoins the
/// other members' identical reaction would otherwise start.
struct ConsumerCtx {
    topic: String,
    shared: Arc<Shared>,
    floor: Arc<dyn Fn(u32) -> u64 + Send + Sync>,
    partitions: usize,
    rejoin: Mutex<RejoinState>,
}

/// What the rejoin workaround remembers between rebalances.
#[derive(Debug, Default)]
struct RejoinState {
    /// Partitions of the last revocation.
    last_revoked: Option<Vec<i32>>,
    /// The set a forced rejoin was made for, until the next assignment.
    rejoined_for: Option<Vec<i32>>,
    /// A set a forced rejoin gave back unchanged, and when.
    genuine: Option<(Vec<i32>, Instant)>,
}

impl RejoinState {
    /// Called with each (sorted) assignment: true when the member should
    /// leave and rejoin the group.
    fn on_assign(&mut self, assigned: &[i32], partitions: usize, now: Instant) -> bool {
        let revoked = self.last_revoked.take();
        if let Some(set) = self.rejoined_for.take() {
            if set == assigned {
                self.genuine = Some((set, now));
            }
            return false;
        }
        let recently_genuine =
            self.genuine.as_ref().is_some_and(|(set, at)| set == assigned && now.duration_since(*at) < GENUINE_FOR);
        if revoked.as_deref() == Some(assigned) && assigned.len() < partitions && !recently_genuine {
            self.rejoined_for = Some(assigned.to_vec());
            return true;
        }
        false
    }
}

/// How long an assignment that survived a forced rejoin unchanged is not questioned again.
const GENUINE_FOR: Duration = Duration::from_secs(20);

impl ClientContext for ConsumerCtx {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        for (&p, stats) in &topic.partitions {
            if let Some(state) = self.shared.partition(p)
                && stats.hi_offset >= 0
            {
                state.high.store(stats.hi_offset, Ordering::Release);
                if state.assigned.load(Ordering::Acquire) && state.replay_target.load(Ordering::Acquire) == UNKNOWN {
                    state.replay_target.store(stats.hi_offset, Ordering::Release);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(error = %error, reason, topic = %self.topic, "kafka consumer error");
    }
}

impl ConsumerContext for ConsumerCtx {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        self.shared.rebalances.fetch_add(1, Ordering::Relaxed);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut assigned: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                assigned.sort_unstable();
                if self.rejoin.lock().on_assign(&assigned, self.partitions, Instant::now()) {
                    self.shared.rejoin.store(true, Ordering::Release);
                    tracing::warn!(
                        partitions = ?assigned,
                        "rebalance handed back exactly the revoked partitions: a departed member's partitions may \
                         have no consumer (tansu 0.6.0 group coordinator); leaving and rejoining the group"
                    );
                }
                let mut seeks = Vec::new();
                for elem in tpl.elements() {
                    let p = elem.partition();
                    let floor = u32::try_from(p).map(|p| (self.floor)(p)).unwrap_or(0);
                    seeks.push((p, floor));
                }
                for &(p, floor) in &seeks {
                    // Floor 0: the whole retained partition (the first retained offset may be above 0).
                    let offset = if floor == 0 { Offset::Beginning } else { Offset::Offset(floor as i64) };
                    if let Err(e) = tpl.set_partition_offset(&self.topic, p, offset) {
                        tracing::error!(partition = p, error = %e, "cannot position assigned partition");
                    }
                    if let Some(state) = self.shared.partition(p) {
                        state.next.store(floor as i64, Ordering::Release);
                        state.replay_target.store(UNKNOWN, Ordering::Release);
                        state.assigned.store(true, Ordering::Release);
                        progress::assigned(p, floor);
                    }
                }
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "kafka assign failed");
                }
                self.shared.synced.store(true, Ordering::Release);
                let positions: Vec<String> = seeks.iter().map(|(p, f)| format!("{p}@{f}")).collect();
                tracing::info!(
                    topic = %self.topic,
                    partitions = %positions.join(","),
                    "kafka partitions assigned; replaying each from the hot store's flushed offset"
                );
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<String> = tpl.elements().iter().map(|e| e.partition().to_string()).collect();
                let mut set: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                set.sort_unstable();
                self.rejoin.lock().last_revoked = Some(set);
                self.shared.synced.store(false, Ordering::Release);
                for elem in tpl.elements() {
                    if let Some(state) = self.shared.partition(elem.partition()) {
                        state.assigned.store(false, Ordering::Release);
                    }
                }
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "kafka unassign failed");
                }
                tracing::info!(topic = %self.topic, partitions = %revoked.join(","), "kafka partitions revoked");
            }
            other => {
                tracing::error!(error = ?other, "kafka rebalance error; dropping the assignment");
                self.shared.synced.store(false, Ordering::Release);
                for state in &self.shared.partitions {
                    state.assigned.store(false, Ordering::Release);
                }
                let _ = consumer.unassign();
            }
        }
    }
}

type Consumer_ = BaseConsumer<ConsumerCtx>;

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
    consumer: Option<Arc<Consumer_>>,
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
        config.validate().map_err(|detail| Error::KafkaConfig { detail })?;
        let topic = config.topic(region);
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", &config.brokers)
            .set("client.id", format!("strata-{region}"))
            .set("message.max.bytes", (config.max_record_bytes + (64 << 10)).to_string());
        for (k, v) in &config.options {
            base.set(k, v);
        }
        ensure_topic(&base, &topic, partitions, config.replication_factor, config.create_topic)?;

        let mut pconf = base.clone();
        pconf
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &config.compression)
            .set("linger.ms", config.linger.as_millis().to_string())
            .set("batch.size", config.batch_bytes.to_string())
            .set("batch.num.messages", "100000")
            .set("message.timeout.ms", config.delivery_timeout.as_millis().to_string());
        let producer: FutureProducer =
            pconf.create().map_err(|source| Error::KafkaClient { what: "producer", source })?;

        let shared = Arc::new(Shared {
            partitions: (0..partitions).map(|_| PartitionState::default()).collect(),
            ..Shared::default()
        });
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
            let session_ms = config.session_timeout.as_millis().max(1000);
            let mut cconf = base.clone();
            cconf
                .set("group.id", &group)
                // Eager rebalancing: the callback revokes and assigns whole sets.
                .set("partition.assignment.strategy", "range")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest")
                .set("isolation.level", "read_uncommitted")
                .set("session.timeout.ms", session_ms.to_string())
                .set("heartbeat.interval.ms", (session_ms / 3).max(100).to_string())
                .set("statistics.interval.ms", "1000")
                .set("fetch.wait.max.ms", config.fetch_wait.as_millis().clamp(1, 60_000).to_string())
                .set("fetch.max.bytes", (config.max_record_bytes.max(1 << 20) * 4).to_string())
                .set("max.partition.fetch.bytes", (config.max_record_bytes + (64 << 10)).to_string());
            let ctx = ConsumerCtx {
                topic: topic.clone(),
                shared: Arc::clone(&shared),
                floor,
                partitions: partitions as usize,
                rejoin: Mutex::new(RejoinState::default()),
            };
            let consumer: Consumer_ =
                cconf.create_with_context(ctx).map_err(|source| Error::KafkaClient { what: "consumer", source })?;
            consumer.subscribe(&[&topic]).map_err(|source| Error::KafkaClient { what: "subscribe", source })?;
            let consumer = Arc::new(consumer);
            let (c, s, t) = (Arc::clone(&consumer), Arc::clone(&shared), topic.clone());
            let repair = GroupRepair::new(group.clone(), base.clone(), config.session_timeout);
            let thread = std::thread::Builder::new()
                .name("kafka-consumer".to_owned())
                .spawn(move || consume(&c, &s, sink.as_ref(), &t, repair))
                .map_err(|source| Error::KafkaThread { source })?;
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

    /// Commits to the consumer group, for the partitions this node holds,
    /// the offsets below which the sink has flushed everything
    /// (`FlushOutcome::flushed_offsets` of the hot store). Synchronous (one
    /// broker round trip, once per flush): call from a blocking thread. The
    /// result shows in [`KafkaLog::status`] (`committed_offset`).
    pub fn commit(&self, flushed: &BTreeMap<u32, u64>) -> Result<()> {
        let Some(consumer) = &self.consumer else { return Ok(()) };
        let mut tpl = TopicPartitionList::new();
        for (&p, &offset) in flushed {
            let Some(state) = self.shared.partition(p as i32) else { continue };
            if !state.assigned.load(Ordering::Acquire) || offset == 0 {
                continue;
            }
            if state.committed.load(Ordering::Acquire) == offset as i64 {
                continue;
            }
            tpl.add_partition_offset(&self.topic, p as i32, Offset::Offset(offset as i64))
                .map_err(|source| Error::KafkaClient { what: "commit", source })?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }

        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                for elem in tpl.elements() {
                    if let (Some(s), Offset::Offset(o)) = (self.shared.partition(elem.partition()), elem.offset()) {
                        s.committed.store(o, Ordering::Release);
                    }
                }
                Ok(())
            }
            // Not in the group right now (rebalancing): the next flush commits again.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(source) => Err(Error::KafkaClient { what: "commit", source }),
        }
    }

    /// The broker's high watermark (the offset the next record gets) of
    /// every partition, asked now rather than taken from the last
    /// statistics report (which, after a reassignment, may predate it).
    /// Blocking: one request per partition, each up to `timeout`. The cold
    /// tier's compactor rolls a partition only when this node has applied it
    /// up to this offset.
    pub fn fetch_high_watermarks(&self, timeout: Duration) -> Result<Vec<i64>> {
        let producer = self.producer.lock().clone();
        (0..self.partitions)
            .map(|p| {
                let (_, high) = producer
                    .client()
                    .fetch_watermarks(&self.topic, p as i32, timeout)
                    .map_err(|source| Error::KafkaClient { what: "fetch watermarks", source })?;
                Ok(high)
            })
            .collect()
    }

    /// A snapshot of producer and consumer state.
    pub fn status(&self) -> KafkaStatus {
        let known = |v: i64| (v >= 0).then_some(v);
        let partitions = self
            .shared
            .partitions
            .iter()
            .enumerate()
            .map(|(p, s)| {
                let assigned = s.assigned.load(Ordering::Acquire);
                let next = known(s.next.load(Ordering::Acquire));
                let high = known(s.high.load(Ordering::Acquire));
                let lag = match (assigned, next, high) {
                    (true, Some(n), Some(h)) => Some((h - n).max(0)),
                    _ => None,
                };
                PartitionStatus {
                    partition: p as u32,
                    assigned,
                    next_offset: next,
                    high_watermark: high,
                    lag,
                    committed_offset: known(s.committed.load(Ordering::Acquire)),
                    applied_records: s.applied_records.load(Ordering::Relaxed),
                    applied_bytes: s.applied_bytes.load(Ordering::Relaxed),
                    apply_rate: f64::from_bits(s.rate.load(Ordering::Relaxed)),
                }
            })
            .collect();
        KafkaStatus {
            topic: self.topic.clone(),
            group: self.group.clone(),
            produced_records: self.shared.produced_records.load(Ordering::Relaxed),
            produced_bytes: self.shared.produced_bytes.load(Ordering::Relaxed),
            delivery_failures: self.shared.delivery_failures.load(Ordering::Relaxed),
            apply_errors: self.shared.apply_errors.load(Ordering::Relaxed),
            rebalances: self.shared.rebalances.load(Ordering::Relaxed),
            forced_rejoins: self.shared.rejoins.load(Ordering::Relaxed),
            group_resets: self.shared.group_resets.load(Ordering::Relaxed),
            partitions,
        }
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

    async fn append_all(&self, records: Vec<LogRecord>) -> Result<Vec<u64>> {
        let mut waits = Vec::with_capacity(records.len());
        for LogRecord { partition, payload, .. } in &records {
            if payload.len() > self.max_record_bytes {
                return Err(Error::RecordTooLarge { size: payload.len(), max: self.max_record_bytes });
            }
            if *partition >= self.partitions {
                return Err(Error::KafkaConfig {
                    detail: format!("partition {partition} outside the topic's {} partitions", self.partitions),
                });
            }
        }
        let producer = self.producer.lock().clone();
        for LogRecord { partition, payload, .. } in &records {
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
        let mut offsets = Vec::with_capacity(waits.len());
        let mut failure = None;
        // Await every report even after a failure, so no record is left in flight unaccounted.
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
            Some(e) => {
                let fenced = matches!(
                    &e,
                    Error::KafkaDeliver { source: KafkaError::MessageProduction(code), .. } if matches!(
                        code,
                        RDKafkaErrorCode::ProducerFenced
                            | RDKafkaErrorCode::InvalidProducerEpoch
                            | RDKafkaErrorCode::UnknownProducerId
                            | RDKafkaErrorCode::OutOfOrderSequenceNumber
                    )
                );
                self.replace_fatal_producer(&producer, fenced);
                Err(e)
            }
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

impl Drop for KafkaLog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
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

/// Creates the topic if needed and checks its partition count.
#[expect(
    clippy::disallowed_methods,
    reason = "called once at startup, before the consumer and producer threads exist: a throwaway current-thread runtime waits for rdkafka's async topic creation"
)]
fn ensure_topic(base: &ClientConfig, topic: &str, partitions: u32, replication: i32, create: bool) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        base.create().map_err(|source| Error::KafkaClient { what: "admin client", source })?;
    let timeout = Duration::from_secs(10);
    let found = topic_partitions(&admin, topic, timeout)?;
    if found.is_none() {
        if !create {
            return Err(Error::KafkaTopic {
                topic: topic.to_owned(),
                detail: "topic does not exist and log.kafka.create_topic is off".to_owned(),
            });
        }
        let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(replication));
        let opts = AdminOptions::new().operation_timeout(Some(timeout));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|source| Error::KafkaThread { source })?;
        let results = rt
            .block_on(admin.create_topics([&new], &opts))
            .map_err(|source| Error::KafkaClient { what: "create topic", source })?;
        for r in results {
            match r {
                Ok(_) => tracing::info!(topic, partitions, replication, "created the region's ingest topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(Error::KafkaTopic { topic: topic.to_owned(), detail: format!("creating: {code}") });
                }
            }
        }
    }
    // Metadata can lag a fresh topic by a moment.
    let deadline = Instant::now() + timeout;
    loop {
        match topic_partitions(&admin, topic, timeout)? {
            Some(n) if n == partitions => return Ok(()),
            Some(n) if n > 0 => {
                return Err(Error::KafkaTopic {
                    topic: topic.to_owned(),
                    detail: format!(
                        "the topic has {n} partitions but log.partitions is {partitions}; the partition count of an \
                         existing log cannot change"
                    ),
                });
            }
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                return Err(Error::KafkaTopic {
                    topic: topic.to_owned(),
                    detail: "topic not visible in the brokers' metadata".to_owned(),
                });
            }
        }
    }
}

/// The topic's partition count, `None` when the brokers do not know it.
fn topic_partitions(admin: &AdminClient<DefaultClientContext>, topic: &str, timeout: Duration) -> Result<Option<u32>> {
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), timeout)
        .map_err(|source| Error::KafkaClient { what: "fetch metadata", source })?;
    Ok(md.topics().iter().find(|t| t.name() == topic).and_then(|t| {
        if t.error().is_some() || t.partitions().is_empty() { None } else { Some(t.partitions().len() as u32) }
    }))
}

/// Records queued per apply worker before the consumer thread waits.
const APPLY_QUEUE: usize = 256;

/// One consumed record on its way to an apply worker.
struct Job {
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
}

/// The consumer loop until `stop`: polls on this thread and applies on one
/// worker per core (partition `p` always on worker `p % workers`, so each
/// partition is applied in offset order).
fn consume(consumer: &Consumer_, shared: &Shared, sink: &dyn LogSink, topic: &str, repair: GroupRepair) {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, shared.partitions.len().max(1));
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(APPLY_QUEUE);
            let spawned = std::thread::Builder::new()
                .name(format!("kafka-apply-{i}"))
                .spawn_scoped(scope, move || apply_loop(&rx, shared, sink));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a kafka apply thread; the consumer stops");
                return;
            }
            senders.push(tx);
        }
        poll_loop(consumer, shared, topic, &senders, repair);
    });
    // Leave the group so the partitions move to the other members now rather
    // than after the session timeout; polling serves the revocation.
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && shared.partitions.iter().any(|s| s.assigned.load(Ordering::Acquire)) {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    tracing::info!("left the kafka consumer group");
}

/// Applies one worker's records in order, retrying a failed apply every second.
fn apply_loop(rx: &std::sync::mpsc::Receiver<Job>, shared: &Shared, sink: &dyn LogSink) {
    while let Ok(Job { partition: p, offset, payload }) = rx.recv() {
        let Some(state) = shared.partition(p) else { continue };
        let mut attempt = 0u32;
        while let Err(e) = sink.apply(p as u32, offset as u64, &payload, None) {
            let detail = e.to_string();
            attempt += 1;
            shared.apply_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(partition = p, offset, attempt, detail, "applying kafka record failed; retrying");
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        state.next.store(offset + 1, Ordering::Release);
        state.applied_records.fetch_add(1, Ordering::Relaxed);
        state.applied_bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
    }
}

/// Polls records and hands them to the apply workers; rate and progress bookkeeping.
fn poll_loop(
    consumer: &Consumer_,
    shared: &Shared,
    topic: &str,
    workers: &[std::sync::mpsc::SyncSender<Job>],
    mut repair: GroupRepair,
) {
    let mut last_rate = Instant::now();
    let mut last_counts: Vec<u64> = vec![0; shared.partitions.len()];
    let mut last_progress = Instant::now();
    let mut caught_up: Vec<bool> = vec![false; shared.partitions.len()];
    while !shared.stop.load(Ordering::Acquire) {
        if shared.rejoin.swap(false, Ordering::AcqRel) {
            shared.rejoins.fetch_add(1, Ordering::Relaxed);
            rejoin(consumer, shared, topic);
        }
        if repair.due(shared, Instant::now()) && repair.reset_if_stuck(consumer) {
            shared.group_resets.fetch_add(1, Ordering::Relaxed);
            rejoin(consumer, shared, topic);
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "kafka consumer poll failed");
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(Ok(msg)) => {
                let (p, offset) = (msg.partition(), msg.offset());
                if shared.partition(p).is_none() {
                    tracing::error!(partition = p, "record of a partition beyond log.partitions; skipped");
                    continue;
                }
                let job = Job { partition: p, offset, payload: msg.payload().unwrap_or_default().to_vec() };
                let worker = &workers[p.unsigned_abs() as usize % workers.len()];
                if worker.send(job).is_err() {
                    return; // the worker stopped (shutdown during a failing apply)
                }
            }
        }
        let elapsed = last_rate.elapsed();
        if elapsed >= Duration::from_secs(1) {
            for (i, s) in shared.partitions.iter().enumerate() {
                let n = s.applied_records.load(Ordering::Relaxed);
                let rate = (n - last_counts[i]) as f64 / elapsed.as_secs_f64();
                s.rate.store(rate.to_bits(), Ordering::Relaxed);
                last_counts[i] = n;
            }
            last_rate = Instant::now();
        }
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            report_progress(shared, &mut caught_up);
        }
    }
}

/// The second tansu 0.6.0 group-coordinator workaround: a group whose leader
/// is gone for good.
///
/// When the broker stops answering for longer than the session timeout (a
/// frozen or partitioned broker), librdkafka drops its assignment and joins
/// again under a new member id. tansu, meanwhile, has removed the old member
/// on a missed heartbeat but kept it as the group's *leader*
/// (`tansu-broker` 0.6.0, `coordinator/group/administrator.rs`:
/// `Inner<Formed>::join` moves the group to `Forming` with
/// `leader: Some(self.state.leader)` without checking that the leader is still
/// a member, and `Inner<Forming>::join` only elects a leader when there is
/// none). Every JoinGroup then answers with the departed leader's id, the
/// joining members are followers, nobody sends the assignment, and SyncGroup
/// fails with "rebalance in progress" / "unknown member" forever: no node
/// consumes until the group state is gone. Leaving and rejoining does not
/// help (the leader is group state, not member state), nor does a new
/// consumer.
///
/// So when this consumer has had no assignment at all for `after` (not even
/// an empty one: a member beyond the partition count gets an empty
/// assignment, so the group synced) while the broker answers (ListGroups),
/// and the group's description, when the broker lists the group, shows no
/// member holding a partition either, the group is deleted (DeleteGroups)
/// and joined anew (tansu 0.6.0 lists a group only once it has committed
/// offsets); tansu then starts a fresh group whose first member
/// leads. Nothing is lost: partitions are positioned at the hot store's floor,
/// not at the committed offsets (which the delete removes and the next flush
/// commits again). A broker with a working coordinator (Kafka) never gets
/// here; if it did, its DeleteGroups refuses a group with members
/// (`NON_EMPTY_GROUP`), which is logged and otherwise harmless.
struct GroupRepair {
    group: String,
    admin_config: ClientConfig,
    /// How long without any partition (nobody in the group holding one) before the group is reset.
    after: Duration,
    unassigned_since: Option<Instant>,
    last_attempt: Option<Instant>,
}

impl GroupRepair {
    fn new(group: String, admin_config: ClientConfig, session_timeout: Duration) -> Self {
        let after = (session_timeout * 3).max(Duration::from_secs(20));
        Self { group, admin_config, after, unassigned_since: None, last_attempt: None }
    }

    /// Whether the consumer has had no assignment for `after` (and no attempt was made within `after`).
    fn due(&mut self, shared: &Shared, now: Instant) -> bool {
        if shared.synced.load(Ordering::Acquire) {
            self.unassigned_since = None;
            return false;
        }
        let since = *self.unassigned_since.get_or_insert(now);
        now.duration_since(since) >= self.after
            && self.last_attempt.is_none_or(|at| now.duration_since(at) >= self.after)
    }

    /// Deletes the group when the broker describes it and no member holds a
    /// partition; true when it was deleted (the caller rejoins).
    #[expect(
        clippy::disallowed_methods,
        reason = "rdkafka's admin API is async; the consumer's own thread (no runtime there) waits for the group deletion on a throwaway current-thread runtime"
    )]
    fn reset_if_stuck(&mut self, consumer: &Consumer_) -> bool {
        self.last_attempt = Some(Instant::now());
        let timeout = Duration::from_secs(5);
        let list = match consumer.fetch_group_list(Some(&self.group), timeout) {
            Ok(list) => list,
            Err(e) => {
                // The broker does not answer: an outage, not a stuck group.
                tracing::warn!(group = %self.group, error = %e, "no kafka partition assigned, and the group cannot be described");
                return false;
            }
        };
        let group = list.groups().iter().find(|g| g.name() == self.group);
        let holding: usize = group
            .map(|g| g.members().iter().map(|m| assigned_partitions(m.assignment().unwrap_or_default())).sum())
            .unwrap_or(0);
        if holding > 0 {
            tracing::debug!(group = %self.group, holding, "no kafka assignment here; other members hold partitions");
            return false;
        }
        tracing::warn!(
            group = %self.group,
            state = group.map_or("not listed", |g| g.state()),
            members = group.map_or(0, |g| g.members().len()),
            unassigned_for_s = self.unassigned_since.map_or(0, |t| t.elapsed().as_secs()),
            "no member of the kafka consumer group has held a partition for a while although the broker answers \
             (tansu 0.6.0 keeps a departed leader after a session timeout); deleting the group and joining anew"
        );
        let admin: AdminClient<DefaultClientContext> = match self.admin_config.create() {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot create a kafka admin client to reset the consumer group");
                return false;
            }
        };
        let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a runtime to reset the consumer group");
                return false;
            }
        };
        let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
        match rt.block_on(admin.delete_groups(&[&self.group], &opts)) {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) | None => {
                    tracing::info!(group = %self.group, "deleted the stuck kafka consumer group; rejoining");
                    true
                }
                Some(Err((_, code))) => {
                    tracing::warn!(group = %self.group, error = %code, "deleting the kafka consumer group failed");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(group = %self.group, error = %e, "deleting the kafka consumer group failed");
                false
            }
        }
    }
}

/// Partitions in a consumer-protocol member assignment (version i16, then
/// topics: name (i16 length + bytes) and partitions (i32 count + i32 each);
/// big-endian). 0 when empty or unreadable.
fn assigned_partitions(bytes: &[u8]) -> usize {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|x| i16::from_be_bytes([x[0], x[1]]))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    let mut b = bytes;
    let mut total = 0usize;
    let parse = |b: &mut &[u8], total: &mut usize| -> Option<()> {
        i16_(b)?;
        let topics = i32_(b)?;
        for _ in 0..topics.max(0) {
            let len = i16_(b)?;
            take(b, usize::try_from(len).unwrap_or(0))?;
            let n = i32_(b)?;
            take(b, 4 * usize::try_from(n).unwrap_or(0))?;
            *total += usize::try_from(n).unwrap_or(0);
        }
        Some(())
    };
    let _ = parse(&mut b, &mut total);
    total
}

/// Leaves the group (serving the revocation) and subscribes again under a new member id.
fn rejoin(consumer: &Consumer_, shared: &Shared, topic: &str) {
    shared.synced.store(false, Ordering::Release);
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && shared.partitions.iter().any(|s| s.assigned.load(Ordering::Acquire)) {
        // Records of revoked partitions are not applied: they are re-read from the floor by their next owner.
        let _ = consumer.poll(Duration::from_millis(100));
    }
    if let Err(e) = consumer.subscribe(&[topic]) {
        tracing::error!(error = %e, topic, "resubscribing to the ingest topic failed");
    }
}

/// Logs replay progress of assigned partitions behind their assignment-time high watermark.
fn report_progress(shared: &Shared, caught_up: &mut [bool]) {
    for (p, s) in shared.partitions.iter().enumerate() {
        let (assigned, next, target) = (
            s.assigned.load(Ordering::Acquire),
            s.next.load(Ordering::Acquire),
            s.replay_target.load(Ordering::Acquire),
        );
        progress::update(p as i32, assigned, next, target);
        if !s.assigned.load(Ordering::Acquire) {
            caught_up[p] = false;
            continue;
        }
        let (next, target) = (s.next.load(Ordering::Acquire), s.replay_target.load(Ordering::Acquire));
        if next < 0 || target < 0 {
            continue;
        }
        if next < target {
            caught_up[p] = false;
            tracing::info!(
                partition = p,
                offset = next,
                target,
                remaining = target - next,
                records_per_sec = f64::from_bits(s.rate.load(Ordering::Relaxed)) as u64,
                "replaying kafka partition into the hot store"
            );
        } else if !caught_up[p] {
            caught_up[p] = true;
            tracing::info!(partition = p, offset = next, "kafka partition caught up");
        }
    }
}

mod progress;

#[cfg(test)]
mod tests;
