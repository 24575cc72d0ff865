//! The read side of [`KafkaLog`]: the consumer-group member's thread, which
//! polls the assigned partitions and hands each record to an apply worker,
//! and the commit of flushed offsets to the group.
//!
//! ```text
//!  kafka-consumer thread: poll ──record of p──► fetch cursor of p (cursor.rs: skip / re-fetch / gap)
//!                              ──► worker p % W (kafka-apply-i) ──► sink.apply(p, offset, payload)
//!     │ serves rejoins (rebalance.rs) and group resets (group_repair.rs)            retried every second
//!     │ every 1 s: apply rate per partition;  every 2 s: replay progress (lines and progress tasks)
//!     ▼ on stop: leave the group (the partitions move now, not after the session timeout)
//! ```
//!
//! One worker per core (at most one per partition), partition `p` always on
//! worker `p % workers`, so each partition is applied in offset order and a
//! failing apply holds back only its own worker's partitions.

use super::KafkaLog;
use super::config::KafkaLogConfig;
use super::cursor::{FetchCursor, Step};
use super::group_repair::GroupRepair;
use super::progress;
use super::rebalance::{ConsumerCtx, GroupConsumer};
use super::status::{PartitionState, Shared, UNKNOWN};
use crate::error::{Error, Result};
use crate::log::LogSink;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Records queued per apply worker before the consumer thread waits.
const APPLY_QUEUE: usize = 256;

/// One consumed record on its way to an apply worker.
struct Job {
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
}

/// Creates the consumer-group member of `group` on `topic`, subscribes it
/// and starts its thread (`kafka-consumer`), which applies assigned
/// partitions to `sink` from `floor(p)` on.
pub(super) fn start(
    config: &KafkaLogConfig,
    base: &ClientConfig,
    topic: &str,
    group: &str,
    shared: &Arc<Shared>,
    floor: Arc<dyn Fn(u32) -> u64 + Send + Sync>,
    sink: Arc<dyn LogSink>,
) -> Result<(Arc<GroupConsumer>, JoinHandle<()>)> {
    let cconf = config.consumer_client(base, group);
    let ctx = ConsumerCtx::new(topic.to_owned(), Arc::clone(shared), floor);
    let consumer: GroupConsumer =
        cconf.create_with_context(ctx).map_err(|source| Error::KafkaClient { what: "consumer", source })?;
    consumer.subscribe(&[topic]).map_err(|source| Error::KafkaClient { what: "subscribe", source })?;
    let consumer = Arc::new(consumer);
    let (c, s, t) = (Arc::clone(&consumer), Arc::clone(shared), topic.to_owned());
    let repair = GroupRepair::new(group.to_owned(), base.clone(), config.session_timeout);
    let thread = std::thread::Builder::new()
        .name("kafka-consumer".to_owned())
        .spawn(move || consume(&c, &s, sink.as_ref(), &t, repair))
        .map_err(|source| Error::KafkaThread { source })?;
    Ok((consumer, thread))
}

/// The consumer loop until `stop`: polls on this thread and applies on one
/// worker per core (partition `p` always on worker `p % workers`, so each
/// partition is applied in offset order).
fn consume(consumer: &GroupConsumer, shared: &Shared, sink: &dyn LogSink, topic: &str, repair: GroupRepair) {
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
fn apply_loop(rx: &Receiver<Job>, shared: &Shared, sink: &dyn LogSink) {
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

/// Polls records and hands them to the apply workers; serves rejoins and
/// group resets; rate and progress bookkeeping.
fn poll_loop(
    consumer: &GroupConsumer,
    shared: &Shared,
    topic: &str,
    workers: &[SyncSender<Job>],
    mut repair: GroupRepair,
) {
    let mut rates = ApplyRates::new(shared.partitions.len());
    let mut last_progress = Instant::now();
    let mut caught_up: Vec<bool> = vec![false; shared.partitions.len()];
    let mut cursors: Vec<Tracked> = vec![Tracked::default(); shared.partitions.len()];
    let mut last_idle_check = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        if shared.rejoin.swap(false, Ordering::AcqRel) {
            shared.rejoins.fetch_add(1, Ordering::Relaxed);
            rejoin(consumer, shared, topic);
        }
        if repair.due(shared, Instant::now()) && repair.reset_if_stuck(consumer) {
            shared.group_resets.fetch_add(1, Ordering::Relaxed);
            rejoin(consumer, shared, topic);
        }
        if !dispatch(consumer.poll(Duration::from_millis(100)), consumer, shared, &mut cursors, workers) {
            return; // the worker stopped (shutdown during a failing apply)
        }
        if last_idle_check.elapsed() >= Duration::from_secs(1) {
            last_idle_check = Instant::now();
            refetch_idle(consumer, shared, topic, &mut cursors);
        }
        rates.update(shared);
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            report_progress(shared, &mut caught_up);
        }
    }
}

/// Hands a polled record to its partition's worker; false when that worker has stopped.
///
/// Each record goes through its partition's [`FetchCursor`] first: one below
/// the partition's next offset is skipped, and one past it (the broker
/// skipped offsets) makes the consumer fetch again from further back, or is
/// applied past a gap the broker really has, which is logged and counted.
fn dispatch(
    polled: Option<KafkaResult<BorrowedMessage<'_>>>,
    consumer: &GroupConsumer,
    shared: &Shared,
    cursors: &mut [Tracked],
    workers: &[SyncSender<Job>],
) -> bool {
    match polled {
        None => true,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "kafka consumer poll failed");
            std::thread::sleep(Duration::from_millis(200));
            true
        }
        Some(Ok(msg)) => {
            let (p, offset) = (msg.partition(), msg.offset());
            let (Some(state), Some(tracked)) =
                (shared.partition(p), usize::try_from(p).ok().and_then(|i| cursors.get_mut(i)))
            else {
                tracing::error!(partition = p, "record of a partition beyond log.partitions; skipped");
                return true;
            };
            let log_start =
                || consumer.fetch_watermarks(msg.topic(), p, Duration::from_secs(2)).ok().map(|(low, _)| low);
            let step = tracked.current(state).on_record(offset, log_start);
            tracked.moved = Instant::now();
            match step {
                Step::Apply => {}
                Step::Skip => return true,
                Step::Refetch { from } => {
                    refetch(consumer, shared, msg.topic(), p, from, offset);
                    return true;
                }
                Step::Gap { missing } => {
                    shared.missing_offsets.fetch_add((missing.end - missing.start).unsigned_abs(), Ordering::Relaxed);
                    tracing::warn!(
                        partition = p,
                        first_missing = missing.start,
                        next = missing.end,
                        "offsets of this partition are not in the topic (deleted by retention or erasure, or never \
                         written); applying on from the next record"
                    );
                }
            }
            let job = Job { partition: p, offset, payload: msg.payload().unwrap_or_default().to_vec() };
            let worker = &workers[p.unsigned_abs() as usize % workers.len()];
            worker.send(job).is_ok()
        }
    }
}

/// A partition's [`FetchCursor`], the assignment it belongs to, and when it last moved.
#[derive(Debug, Clone)]
struct Tracked {
    /// `PartitionState::assignments` when the cursor was positioned.
    generation: u64,
    cursor: FetchCursor,
    /// The last record, re-fetch or assignment.
    moved: Instant,
}

impl Default for Tracked {
    fn default() -> Self {
        Self { generation: 0, cursor: FetchCursor::default(), moved: Instant::now() }
    }
}

impl Tracked {
    /// The cursor of `state`'s current assignment: positioned anew after a (re)assignment.
    fn current(&mut self, state: &PartitionState) -> &mut FetchCursor {
        let assignments = state.assignments.load(Ordering::Acquire);
        if self.generation != assignments {
            let at = state.positioned_at.load(Ordering::Acquire);
            self.cursor = FetchCursor::positioned((at != UNKNOWN).then_some(at));
            self.generation = assignments;
            self.moved = Instant::now();
        }
        &mut self.cursor
    }
}

/// How long a partition below its high watermark may go without a record
/// before the consumer fetches it again from further back.
const IDLE_REFETCH: Duration = Duration::from_secs(2);

/// Fetches again, from further back, each assigned partition that had no
/// record for [`IDLE_REFETCH`] although its high watermark lies past the
/// offset it needs (the broker skipped its last batch; see `cursor.rs`).
fn refetch_idle(consumer: &GroupConsumer, shared: &Shared, topic: &str, cursors: &mut [Tracked]) {
    for (p, (state, tracked)) in shared.partitions.iter().zip(cursors.iter_mut()).enumerate() {
        let high = state.high.load(Ordering::Acquire);
        if !state.assigned.load(Ordering::Acquire) || high == UNKNOWN {
            continue;
        }
        tracked.current(state);
        if tracked.moved.elapsed() < IDLE_REFETCH {
            continue;
        }
        if let Some(from) = tracked.cursor.on_idle(high) {
            tracked.moved = Instant::now();
            refetch(consumer, shared, topic, p as i32, from, high);
        }
    }
}

/// Positions partition `p` at `from` again: the broker's answer skipped
/// offsets this node needs (`seen`: the record that came instead, or the
/// high watermark when none did). A failed seek makes the member rejoin,
/// which positions every partition at the sink's floor again.
fn refetch(consumer: &GroupConsumer, shared: &Shared, topic: &str, p: i32, from: i64, seen: i64) {
    shared.refetches.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        partition = p,
        seen,
        from,
        "the broker's answer skipped offsets this node needs (a batch fetched from its middle); fetching the \
         partition again from further back"
    );
    if let Err(e) = consumer.seek(topic, p, Offset::Offset(from), Duration::from_secs(5)) {
        tracing::warn!(partition = p, from, error = %e, "kafka seek failed; rejoining the group");
        shared.rejoin.store(true, Ordering::Release);
    }
}

/// Records applied per second per partition, over windows of at least a second.
struct ApplyRates {
    since: Instant,
    counts: Vec<u64>,
}

impl ApplyRates {
    fn new(partitions: usize) -> Self {
        Self { since: Instant::now(), counts: vec![0; partitions] }
    }

    /// Stores each partition's rate once the window is a second old, and starts the next window.
    fn update(&mut self, shared: &Shared) {
        let elapsed = self.since.elapsed();
        if elapsed < Duration::from_secs(1) {
            return;
        }
        for (i, s) in shared.partitions.iter().enumerate() {
            let n = s.applied_records.load(Ordering::Relaxed);
            let rate = (n - self.counts[i]) as f64 / elapsed.as_secs_f64();
            s.rate.store(rate.to_bits(), Ordering::Relaxed);
            self.counts[i] = n;
        }
        self.since = Instant::now();
    }
}

/// Leaves the group (serving the revocation) and subscribes again under a new member id.
fn rejoin(consumer: &GroupConsumer, shared: &Shared, topic: &str) {
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
pub(super) fn report_progress(shared: &Shared, caught_up: &mut [bool]) {
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

impl KafkaLog {
    /// Commits to the consumer group, for the partitions this node holds,
    /// the offsets below which the sink has flushed everything
    /// (`FlushOutcome::flushed_offsets` of the hot store). Synchronous (one
    /// broker round trip, once per flush): call from a blocking thread. The
    /// result shows in [`KafkaLog::status`] (`committed_offset`).
    pub fn commit(&self, flushed: &BTreeMap<u32, u64>) -> Result<()> {
        let Some(consumer) = &self.consumer else { return Ok(()) };
        let tpl = self.offsets_to_commit(flushed)?;
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

    /// The flushed offsets of partitions this node holds that differ from
    /// their last commit (offset 0, nothing flushed, is never committed).
    fn offsets_to_commit(&self, flushed: &BTreeMap<u32, u64>) -> Result<TopicPartitionList> {
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
        Ok(tpl)
    }
}
