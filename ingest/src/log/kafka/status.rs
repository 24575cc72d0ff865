//! The state the log, its consumer thread and the client callbacks share
//! ([`Shared`]: per-partition atomics and counters), and the snapshot of it
//! the log exports ([`KafkaStatus`], for `/metrics` and the status endpoint).
//!
//! Offsets are `i64` atomics with [`UNKNOWN`] (`-1`) for "not known yet";
//! the snapshot turns them into `Option`s.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// `-1` stands for "unknown" in the partition gauges.
pub(super) const UNKNOWN: i64 = -1;

/// Consumer-side state of one partition.
#[derive(Debug)]
pub(super) struct PartitionState {
    pub(super) assigned: AtomicBool,
    /// Offset of the next record to apply (the last applied + 1).
    pub(super) next: AtomicI64,
    /// The broker's high watermark (offset the next produced record gets), from statistics.
    pub(super) high: AtomicI64,
    /// Last offset committed to the group.
    pub(super) committed: AtomicI64,
    /// High watermark when the partition was assigned: the replay target shown in progress lines.
    pub(super) replay_target: AtomicI64,
    /// One past the highest offset this node's producer had acknowledged
    /// (delivery reports): a floor of the partition's end that does not
    /// depend on the broker's answer to a watermark request.
    pub(super) produced: AtomicI64,
    /// Where the latest assignment positioned the consumer ([`UNKNOWN`]:
    /// the partition's beginning), and how many assignments there were:
    /// the consumer thread starts its [`FetchCursor`](super::cursor::FetchCursor) anew on each.
    pub(super) positioned_at: AtomicI64,
    pub(super) assignments: AtomicU64,
    pub(super) applied_records: AtomicU64,
    pub(super) applied_bytes: AtomicU64,
    /// Records per second over the last rate window, as `f64` bits.
    pub(super) rate: AtomicU64,
}

impl Default for PartitionState {
    fn default() -> Self {
        Self {
            assigned: AtomicBool::new(false),
            next: AtomicI64::new(UNKNOWN),
            high: AtomicI64::new(UNKNOWN),
            committed: AtomicI64::new(UNKNOWN),
            replay_target: AtomicI64::new(UNKNOWN),
            produced: AtomicI64::new(UNKNOWN),
            positioned_at: AtomicI64::new(UNKNOWN),
            assignments: AtomicU64::new(0),
            applied_records: AtomicU64::new(0),
            applied_bytes: AtomicU64::new(0),
            rate: AtomicU64::new(0),
        }
    }
}

impl PartitionState {
    /// This partition (number `partition`) in a status snapshot.
    fn status(&self, partition: u32) -> PartitionStatus {
        let known = |v: i64| (v >= 0).then_some(v);
        let assigned = self.assigned.load(Ordering::Acquire);
        let next = known(self.next.load(Ordering::Acquire));
        let high = known(self.high.load(Ordering::Acquire));
        let lag = match (assigned, next, high) {
            (true, Some(n), Some(h)) => Some((h - n).max(0)),
            _ => None,
        };
        PartitionStatus {
            partition,
            assigned,
            next_offset: next,
            high_watermark: high,
            lag,
            committed_offset: known(self.committed.load(Ordering::Acquire)),
            applied_records: self.applied_records.load(Ordering::Relaxed),
            applied_bytes: self.applied_bytes.load(Ordering::Relaxed),
            apply_rate: f64::from_bits(self.rate.load(Ordering::Relaxed)),
        }
    }
}

/// State shared by the log, its consumer thread and the client callbacks.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) partitions: Vec<PartitionState>,
    pub(super) produced_records: AtomicU64,
    pub(super) produced_bytes: AtomicU64,
    pub(super) delivery_failures: AtomicU64,
    pub(super) apply_errors: AtomicU64,
    pub(super) rebalances: AtomicU64,
    /// Forced rejoins (the broker workaround, see [`ConsumerCtx`](super::rebalance::ConsumerCtx)).
    pub(super) rejoins: AtomicU64,
    /// Group resets (the broker workaround, see [`GroupRepair`](super::group_repair::GroupRepair)).
    pub(super) group_resets: AtomicU64,
    /// Re-fetches from further back after the broker skipped offsets (see `cursor.rs`).
    pub(super) refetches: AtomicU64,
    /// Offsets the consumer went past because the broker has no record for them.
    pub(super) missing_offsets: AtomicU64,
    /// Whether the last rebalance event was an assignment (possibly of no
    /// partition: a member beyond the partition count), i.e. the group synced.
    pub(super) synced: AtomicBool,
    pub(super) stop: AtomicBool,
    /// Set by the rebalance callback: leave and rejoin the group (served by the consumer thread).
    pub(super) rejoin: AtomicBool,
}

impl Shared {
    /// State for a topic of `partitions` partitions, nothing known yet.
    pub(super) fn new(partitions: u32) -> Self {
        Self { partitions: (0..partitions).map(|_| PartitionState::default()).collect(), ..Self::default() }
    }

    pub(super) fn partition(&self, p: i32) -> Option<&PartitionState> {
        usize::try_from(p).ok().and_then(|p| self.partitions.get(p))
    }

    /// A snapshot of producer and consumer state.
    pub(super) fn status(&self, topic: &str, group: Option<&str>) -> KafkaStatus {
        KafkaStatus {
            topic: topic.to_owned(),
            group: group.map(str::to_owned),
            produced_records: self.produced_records.load(Ordering::Relaxed),
            produced_bytes: self.produced_bytes.load(Ordering::Relaxed),
            delivery_failures: self.delivery_failures.load(Ordering::Relaxed),
            apply_errors: self.apply_errors.load(Ordering::Relaxed),
            rebalances: self.rebalances.load(Ordering::Relaxed),
            forced_rejoins: self.rejoins.load(Ordering::Relaxed),
            group_resets: self.group_resets.load(Ordering::Relaxed),
            refetches: self.refetches.load(Ordering::Relaxed),
            missing_offsets: self.missing_offsets.load(Ordering::Relaxed),
            partitions: self.partitions.iter().enumerate().map(|(p, s)| s.status(p as u32)).collect(),
        }
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
    /// had held a partition for [`KafkaLog`](super::KafkaLog)'s stuck-group
    /// delay while the broker answered (see `GroupRepair`).
    pub group_resets: u64,
    /// Times the consumer fetched a partition again from further back
    /// because the broker's answer started past the offset it needed (a
    /// batch skipped: tansu 0.6.0 does so for a fetch inside a batch).
    pub refetches: u64,
    /// Offsets the consumer went past because the broker has no record for
    /// them (deleted by retention or erasure below this node's floor); each
    /// gap is logged with its range.
    pub missing_offsets: u64,
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
