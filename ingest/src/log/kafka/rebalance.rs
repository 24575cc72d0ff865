//! The consumer's client context ([`ConsumerCtx`]): what happens on a
//! rebalance (assigned partitions positioned at the sink's floor, revoked
//! ones dropped), the statistics callback (high watermarks), and the
//! rejoin workaround for tansu 0.6.0's stale assignments ([`RejoinState`]).
//!
//! ```text
//!  rebalance: assign [p..]  ──► RejoinState::on_assign (the revoked set handed back? rejoin)
//!                           ──► each p: seek to floor(p) (0: the beginning), state assigned, progress task,
//!                               the consumer thread's fetch cursor starts anew (cursor.rs)
//!                           ──► consumer.assign; synced
//!             revoke [p..]  ──► remembered for on_assign; state unassigned; consumer.unassign
//!  stats (every second)     ──► high watermark per partition; replay target on first sight
//! ```

use super::progress;
use super::status::{Shared, UNKNOWN};
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The consumer-group member of the log.
pub(super) type GroupConsumer = BaseConsumer<ConsumerCtx>;

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
pub(super) struct ConsumerCtx {
    topic: String,
    shared: Arc<Shared>,
    floor: Arc<dyn Fn(u32) -> u64 + Send + Sync>,
    partitions: usize,
    rejoin: Mutex<RejoinState>,
}

impl ConsumerCtx {
    /// The context of a consumer of `topic`, positioning assigned partitions at `floor(p)`.
    pub(super) fn new(topic: String, shared: Arc<Shared>, floor: Arc<dyn Fn(u32) -> u64 + Send + Sync>) -> Self {
        let partitions = shared.partitions.len();
        Self { topic, shared, floor, partitions, rejoin: Mutex::new(RejoinState::default()) }
    }

    /// An assignment: checks for the stale-assignment signature, positions
    /// each partition at the sink's floor and takes the set.
    fn assign(&self, consumer: &GroupConsumer, tpl: &mut TopicPartitionList) {
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
        let seeks = self.position_at_floors(tpl);
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

    /// Sets each assigned partition's start offset to the sink's floor and
    /// marks it assigned (with a progress task); returns `(partition, floor)`s.
    fn position_at_floors(&self, tpl: &mut TopicPartitionList) -> Vec<(i32, u64)> {
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
                state.positioned_at.store(if floor == 0 { UNKNOWN } else { floor as i64 }, Ordering::Release);
                state.assignments.fetch_add(1, Ordering::AcqRel);
                state.replay_target.store(UNKNOWN, Ordering::Release);
                state.assigned.store(true, Ordering::Release);
                progress::assigned(p, floor);
            }
        }
        seeks
    }

    /// A revocation: remembers the set (for [`RejoinState::on_assign`]) and gives the partitions up.
    fn revoke(&self, consumer: &GroupConsumer, tpl: &TopicPartitionList) {
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

    /// A rebalance error: every partition is given up.
    fn drop_assignment(&self, consumer: &GroupConsumer, err: RDKafkaRespErr) {
        tracing::error!(error = ?err, "kafka rebalance error; dropping the assignment");
        self.shared.synced.store(false, Ordering::Release);
        for state in &self.shared.partitions {
            state.assigned.store(false, Ordering::Release);
        }
        let _ = consumer.unassign();
    }
}

/// What the rejoin workaround remembers between rebalances.
#[derive(Debug, Default)]
pub(super) struct RejoinState {
    /// Partitions of the last revocation.
    pub(super) last_revoked: Option<Vec<i32>>,
    /// The set a forced rejoin was made for, until the next assignment.
    pub(super) rejoined_for: Option<Vec<i32>>,
    /// A set a forced rejoin gave back unchanged, and when.
    pub(super) genuine: Option<(Vec<i32>, Instant)>,
}

impl RejoinState {
    /// Called with each (sorted) assignment: true when the member should
    /// leave and rejoin the group.
    pub(super) fn on_assign(&mut self, assigned: &[i32], partitions: usize, now: Instant) -> bool {
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
pub(super) const GENUINE_FOR: Duration = Duration::from_secs(20);

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
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => self.drop_assignment(consumer, other),
        }
    }
}
