//! The ingest log: the write-ahead log of Strata.
//!
//! A write is acknowledged only once its records are durable here. The log is
//! split into P partitions (`device_hash % P`); each partition is a sequence
//! of records numbered by a `u64` offset, like a Kafka partition, so the hot
//! store can record "flushed up to offset N" per partition and replay only the
//! tail after a restart.
//!
//! Two implementations of the [`IngestLog`] contract, picked by `[log] kind`:
//!
//! * [`LocalLog`] (`kind = "local"`, the default): segment files on local
//!   disk, see [`segment`] for the byte layout. The writer thread hands each
//!   record to the [`LogSink`] right after its group commit, so a write is
//!   applied to the hot store before it is acknowledged.
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
//! * [`KafkaLog`] (`kind = "kafka"`): one Kafka topic per region
//!   (`<topic_prefix>.<region>.ingest`), written by an idempotent producer
//!   with `acks=all`; a write is acknowledged once the broker confirmed
//!   every record. A consumer-group member applies the partitions assigned
//!   to this node to the [`LogSink`]; the write becomes queryable when that
//!   happens (usually milliseconds later, possibly on another node). See
//!   [`kafka`].
//!
//! ```text
//!  HTTP write ──append──► producer (lz4 batches) ──► broker, acks=all ──► delivery reports ──► ack
//!                                                      │
//!  consumer group member ◄── assigned partitions ──────┘  seek to sink.floor(p) on assignment
//!        │ sink.apply(p, kafka offset, payload)
//!        ▼ hot store;  after a flush: commit the flushed offsets to the group
//! ```

pub mod kafka;
pub mod kafka_records;
pub mod local;
mod metrics;
pub(crate) mod segment;

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;
use strata_schemas::{ConfigError, WriteBatch};

pub use kafka::{KafkaLog, KafkaLogConfig, KafkaStatus, PartitionStatus};
pub use kafka_records::KafkaRecords;
pub use local::LocalLog;

/// Configuration of the ingest log (`[log]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Which implementation holds the log: `local` (segment files under the
    /// data dir) or `kafka` (a topic per region on the brokers of `[log.kafka]`).
    pub kind: LogKind,
    /// Number of partitions; a device's records always go to `device_hash % partitions`.
    /// Fixed when the log is created: opening an existing log with another count fails.
    /// 0 (the default) is automatic, [`LogConfig::resolved_partitions`]: an
    /// existing local log keeps its count, a new one gets one partition per
    /// core (at most [`AUTO_PARTITIONS_MAX`]); a Kafka log gets
    /// [`AUTO_PARTITIONS_MAX`].
    pub partitions: u32,
    /// A partition starts a new segment file once the active one reaches this many bytes.
    pub segment_bytes: u64,
    /// Most records written and fsynced together in one group commit.
    pub max_group_records: usize,
    /// Records queued per partition before writers wait (back-pressure).
    pub queue_depth: usize,
    /// When a local log acknowledges a write: `always` (the default) once
    /// its group is on disk (`fdatasync`); `interval` once written to the
    /// segment file, which is synced every `sync_interval` in the background
    /// (see [`SyncMode`]).
    pub sync: SyncMode,
    /// How often an `interval` log syncs its partitions' files (1 ms – 10 s).
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// The Kafka log (used when `kind = "kafka"`).
    pub kafka: KafkaLogConfig,
}

/// The ingest log implementations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// [`LocalLog`]: partitioned segment files on local disk.
    #[default]
    Local,
    /// [`KafkaLog`]: a Kafka topic per region.
    Kafka,
}

/// When a local log acknowledges a write (`[log] sync`).
///
/// Both modes survive the process dying (`kill -9`, a crash, the OOM
/// killer): an acknowledged write is in the segment file, in the kernel's
/// page cache at least, and the next start replays it. They differ on a
/// power loss or kernel crash:
///
/// * `always`: nothing acknowledged is lost; a write waits for its group's
///   `fdatasync` (group commit across partitions, see [`local::syncer`]),
///   so its latency includes the disk's: on a disk whose single syncs
///   sometimes stall for 100–250 ms, so does a write's acknowledgement.
/// * `interval`: the writes acknowledged in the last `sync_interval` (plus
///   the sync in progress) may be lost; nothing older. A write waits for
///   its `write` and its apply, never for the disk. Prometheus's WAL and
///   VictoriaMetrics acknowledge the same way, with longer windows.
///
/// A failed background sync poisons the partition (its writes are refused
/// until restart, as after any failed sync) and is logged at error level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Acknowledge once synced.
    #[default]
    Always,
    /// Acknowledge once written; sync every `sync_interval`.
    Interval,
}

/// Partitions of an automatic count (`partitions = 0`) at most, and those
/// of a Kafka log's topic. Each partition of a local log has a writer
/// thread that syncs and applies its records, and a write request waits
/// for every partition its devices hash to: on two cores, at the same
/// offered load, eight partitions took a fifth to a third more server CPU than two and
/// their p99 write acknowledgement at 80 % of capacity was 4–5 times as
/// long (`docs/benchmarks/2026-12-05-write-latency.md`).
pub const AUTO_PARTITIONS_MAX: u32 = 8;

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            kind: LogKind::Local,
            partitions: 0,
            segment_bytes: 64 << 20,
            max_group_records: 1024,
            queue_depth: 4096,
            sync: SyncMode::Always,
            sync_interval: Duration::from_millis(10),
            kafka: KafkaLogConfig::default(),
        }
    }
}

impl LogConfig {
    /// Rejects settings the log cannot run with (nothing is fixed in place),
    /// `[log.kafka]`'s too when `kind = "kafka"`.
    pub fn validate(&mut self) -> std::result::Result<(), ConfigError> {
        if self.partitions > 4096 {
            return Err(ConfigError::invalid(
                "log",
                "partitions",
                self.partitions,
                "must be in 0..=4096 (0: automatic)",
            ));
        }
        if self.segment_bytes < 4096 {
            return Err(ConfigError::invalid("log", "segment_bytes", self.segment_bytes, "must be at least 4096"));
        }
        for (key, v) in [("max_group_records", self.max_group_records), ("queue_depth", self.queue_depth)] {
            if v == 0 {
                return Err(ConfigError::invalid("log", key, v, "must be positive"));
            }
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(10)).contains(&self.sync_interval) {
            return Err(ConfigError::invalid(
                "log",
                "sync_interval",
                self.sync_interval,
                "must be between 1ms and 10s",
            ));
        }
        if self.kind == LogKind::Kafka {
            self.kafka.validate()?;
        }
        Ok(())
    }
}

impl LogConfig {
    /// The partition count to run with: `partitions` when set; when 0
    /// (automatic), a local log's count in `log_dir/log.meta` if the log
    /// exists (the count of an existing log cannot change), else the cores
    /// of this machine up to [`AUTO_PARTITIONS_MAX`]; a Kafka log's
    /// [`AUTO_PARTITIONS_MAX`] (its topic's layout does not depend on the
    /// machine). An unreadable `log.meta` leaves the choice to the log's
    /// open, which reports it.
    pub fn resolved_partitions(&self, log_dir: &Path) -> u32 {
        if self.partitions > 0 {
            return self.partitions;
        }
        if self.kind == LogKind::Kafka {
            return AUTO_PARTITIONS_MAX;
        }
        if let Some(n) = local::meta_partitions(log_dir) {
            return n;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32).clamp(1, AUTO_PARTITIONS_MAX)
    }
}

/// The decoded form of a record, handed to the sink beside its bytes so the
/// write path does not decode what it just encoded.
pub type Decoded = Box<WriteBatch>;

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

/// Where records go: [`strata_schemas::LogSink`] (typed batches, errors
/// with their kind), re-exported here beside the logs that call it.
pub use strata_schemas::{ApplyError, LogSink};

/// A boxed future returned by [`IngestLog::append`].
pub type AppendFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u64>>> + Send + 'a>>;

/// The durable, partitioned log every write goes through.
pub trait IngestLog: Send + Sync + std::fmt::Debug {
    /// Number of partitions.
    fn partitions(&self) -> u32;

    /// Appends records and resolves, with their offsets, once every one of
    /// them is durable ([`LocalLog`]: and applied to the sink; [`KafkaLog`]:
    /// the consumer applies them shortly after). On error some records may
    /// still have been stored; callers retry the whole write, which is
    /// idempotent (same series and timestamps, same values).
    fn append(&self, records: Vec<LogRecord>) -> AppendFuture<'_>;

    /// How far this node has applied `partition` (read-your-writes,
    /// `write_token`): `Some(next)` when it applies the partition and every
    /// record below offset `next` is applied; `None` when another node
    /// applies it (or none does right now).
    fn applied(&self, partition: u32) -> Option<u64> {
        let _ = partition;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_names_its_key() {
        LogConfig::default().validate().unwrap();
        let bad = |f: fn(&mut LogConfig)| {
            let mut c = LogConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.partitions = 5000).to_string(),
            "[log] partitions = 5000: must be in 0..=4096 (0: automatic)"
        );
        assert_eq!(bad(|c| c.partitions = 5000).path(), "log.partitions");
        assert_eq!(bad(|c| c.segment_bytes = 100).path(), "log.segment_bytes");
        assert_eq!(bad(|c| c.max_group_records = 0).path(), "log.max_group_records");
        assert_eq!(bad(|c| c.queue_depth = 0).path(), "log.queue_depth");
        assert_eq!(
            bad(|c| c.sync_interval = Duration::ZERO).to_string(),
            "[log] sync_interval = 0ns: must be between 1ms and 10s"
        );
        assert_eq!(bad(|c| c.sync_interval = Duration::from_secs(11)).path(), "log.sync_interval");
        let c: LogConfig = serde_json::from_str(r#"{"sync":"interval","sync_interval":"25ms"}"#).unwrap();
        assert_eq!((c.sync, c.sync_interval), (SyncMode::Interval, Duration::from_millis(25)));
        assert_eq!(LogConfig::default().sync, SyncMode::Always, "synced acknowledgements unless asked");
        let e = serde_json::from_str::<LogConfig>(r#"{"sync":"sometimes"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `sometimes`, expected `always` or `interval`"), "{e}");
        let kafka = |c: &mut LogConfig| {
            c.kind = LogKind::Kafka;
            c.kafka.brokers = String::new();
        };
        assert_eq!(bad(kafka).section, "log.kafka", "[log.kafka] is checked when kind = \"kafka\"");
        let mut local =
            LogConfig { kafka: KafkaLogConfig { brokers: String::new(), ..Default::default() }, ..Default::default() };
        local.validate().unwrap();
    }

    #[test]
    fn automatic_partitions_keep_an_existing_logs_count_else_one_per_core() {
        let dir = tempfile::tempdir().unwrap();
        let auto = LogConfig::default();
        assert_eq!(auto.partitions, 0, "automatic by default");
        let cores = std::thread::available_parallelism().unwrap().get() as u32;
        assert_eq!(auto.resolved_partitions(dir.path()), cores.min(AUTO_PARTITIONS_MAX));
        let set = LogConfig { partitions: 5, ..LogConfig::default() };
        assert_eq!(set.resolved_partitions(dir.path()), 5, "a count set is kept");
        let kafka = LogConfig { kind: LogKind::Kafka, ..LogConfig::default() };
        assert_eq!(kafka.resolved_partitions(dir.path()), AUTO_PARTITIONS_MAX, "a topic's layout: not the machine's");
        // A log created with 8 partitions (the fixed default before) opens with 8.
        std::fs::write(dir.path().join("log.meta"), br#"{"version":1,"partitions":8}"#).unwrap();
        assert_eq!(auto.resolved_partitions(dir.path()), 8);
        let sink: std::sync::Arc<dyn LogSink> = std::sync::Arc::new(strata_schemas::DiscardSink);
        let log = LocalLog::open(dir.path(), &auto, |_| 0, sink).unwrap();
        assert_eq!(log.partitions(), 8);
        // A count set that differs from the log's still fails to open it.
        let sink: std::sync::Arc<dyn LogSink> = std::sync::Arc::new(strata_schemas::DiscardSink);
        drop(log);
        let err = LocalLog::open(dir.path(), &set, |_| 0, sink).unwrap_err();
        assert!(err.to_string().contains("has 8 partitions but the configuration says 5"), "{err}");
    }
}
