//! The aggregator thread and the handle the forwarder and `/status` use.
//!
//! ```text
//! loop (every 200 ms, or when the forwarder waits: at once, at most every 20 ms):
//!   now = clock
//!   catch_up(queue)                 fold every batch appended since the last round
//!   advance_horizon(now)            everything queued is folded
//!   close(acked)                    windows past end + max_late, clean and acknowledged
//!   due(now, acked) → Agent::append_blocking(emission) → emitted(seq)   (queue full: retried next round)
//!   checkpoint if changed and (1 s since the last one, or the forwarder waits and 20 ms passed)
//!   durable_through = folded_through of the file written → wake the forwarder
//! ```
//!
//! A failed state-file write stops the aggregator (like a poisoned queue):
//! the forwarder's waits fail, so nothing more is acknowledged (batches are
//! sent again, and skipped by the server) until the agent restarts.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Aggregator, Counters, Rules, STATE_FILE, StateError};
use crate::agent::Agent;
use crate::config::AgentConfig;
use crate::queue::{FsyncPolicy, Queue};

/// How often the aggregator looks at the queue when nothing wakes it.
const TICK: Duration = Duration::from_millis(200);
/// Least time between two state files written on the aggregator's own account.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Least time between two state files the forwarder asked for: under load
/// one file covers the batches of ~20 ms, not one file per batch.
const ASKED_GAP: Duration = Duration::from_millis(20);

/// The aggregator as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AggregateStatus {
    /// `[[aggregate]]` rules configured.
    pub rules: usize,
    /// Windows held (open, or emitted and still correctable).
    pub windows_open: u64,
    /// Windows changed by late samples (or a restart) since their last
    /// emission: a correction is appended once that emission is acknowledged.
    pub corrections_pending: u64,
    /// Every queued batch up to this one is folded.
    pub folded_through: u64,
    /// The state file on disk covers the batches up to this one: the
    /// forwarder acknowledges nothing above it.
    pub durable_through: u64,
    /// Counters since the agent started.
    #[serde(flatten)]
    pub counters: Counters,
    /// The last error of the aggregator (an emission the queue refused, a failed state write).
    pub last_error: Option<String>,
}

impl AggregateStatus {
    /// Appends the Prometheus text of these gauges and counters.
    pub fn prometheus(&self, out: &mut String) {
        use strata_schemas::metrics_text::MetricKind::{self, Counter, Gauge};
        let mut m = strata_schemas::metrics_text::MetricsText::new(out);
        let mut metric = |name: &str, kind: MetricKind, help: &str, value: u64| {
            m.family(name, kind, help).sample(name, &[], value);
        };
        let c = &self.counters;
        metric(
            "strata_edge_aggregate_windows_open",
            Gauge,
            "Aggregation windows held (open or correctable).",
            self.windows_open,
        );
        metric(
            "strata_edge_aggregate_corrections_pending",
            Gauge,
            "Emitted windows changed since, waiting for their previous emission to be acknowledged.",
            self.corrections_pending,
        );
        metric(
            "strata_edge_aggregate_folded_through",
            Gauge,
            "Every queued batch up to this one is folded.",
            self.folded_through,
        );
        metric(
            "strata_edge_aggregate_durable_through",
            Gauge,
            "The aggregate state file covers the batches up to this one.",
            self.durable_through,
        );
        metric("strata_edge_aggregate_samples_folded_total", Counter, "Samples folded into windows.", c.samples_folded);
        metric(
            "strata_edge_aggregate_late_samples_dropped_total",
            Counter,
            "Samples dropped because their window was closed or they came after max_late.",
            c.late_samples_dropped,
        );
        metric("strata_edge_aggregate_emissions_total", Counter, "First emissions of windows queued.", c.emissions);
        metric(
            "strata_edge_aggregate_corrections_total",
            Counter,
            "Corrected emissions of windows queued (replacing the earlier one).",
            c.corrections,
        );
        metric(
            "strata_edge_aggregate_windows_closed_total",
            Counter,
            "Windows closed after max_late.",
            c.windows_closed,
        );
        metric("strata_edge_aggregate_checkpoints_total", Counter, "Aggregate state files written.", c.checkpoints);
    }
}

#[derive(Debug, Default)]
struct Progress {
    /// `folded_through` of the last state file written.
    durable: u64,
    /// The highest batch the forwarder waits for.
    wanted: u64,
    /// Set when the aggregator stopped for good.
    failed: Option<String>,
}

/// Shared between the aggregator thread, the forwarder and `/status`.
#[derive(Debug)]
pub struct Handle {
    progress: Mutex<Progress>,
    signal: Condvar,
    status: Mutex<AggregateStatus>,
}

impl Handle {
    fn new(rules: usize, durable: u64) -> Handle {
        Handle {
            progress: Mutex::new(Progress { durable, ..Progress::default() }),
            signal: Condvar::new(),
            status: Mutex::new(AggregateStatus { rules, durable_through: durable, ..AggregateStatus::default() }),
        }
    }

    /// Blocks until the state file covers batch `seq` (the forwarder calls it
    /// before acknowledging a batch), asking the aggregator to write one now.
    /// An error when the aggregator stopped or `timeout` passed: the batch
    /// must then stay unacknowledged.
    pub fn wait_durable(&self, seq: u64, timeout: Duration) -> Result<(), StateError> {
        let deadline = Instant::now() + timeout;
        let mut p = self.progress.lock().expect("aggregate lock is never poisoned");
        if p.durable >= seq {
            return Ok(());
        }
        p.wanted = p.wanted.max(seq);
        self.signal.notify_all();
        loop {
            if p.durable >= seq {
                return Ok(());
            }
            if let Some(e) = &p.failed {
                return Err(StateError::Stopped(e.clone()));
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(StateError::Stopped(format!("batch {seq} not in the aggregate state after {timeout:?}")));
            };
            p = self.signal.wait_timeout(p, left).expect("aggregate lock is never poisoned").0;
        }
    }

    /// A snapshot for `/status` and `/metrics`.
    pub fn status(&self) -> AggregateStatus {
        self.status.lock().expect("aggregate lock is never poisoned").clone()
    }

    fn set_error(&self, e: String) {
        self.status.lock().expect("aggregate lock is never poisoned").last_error = Some(e);
    }
}

/// Loads the aggregator for an agent: when `[[aggregate]]` rules are set,
/// or a state file is left from when they were (its windows are still
/// emitted and closed). `None`: no aggregation.
pub fn open(config: &AgentConfig, origin: &str, queue: &Queue) -> crate::Result<Option<(Arc<Handle>, Aggregator)>> {
    let dir = config.data_dir.join("aggregate");
    if config.aggregate.is_empty() && !dir.join(STATE_FILE).exists() {
        return Ok(None);
    }
    let fsync = config.queue.fsync == FsyncPolicy::EveryBatch;
    let mut agg = Aggregator::open(&dir, Rules::new(&config.aggregate), origin, queue.stats().next_seq, fsync)?;
    // Well within the writer thread's group cap (a quarter of the bound).
    agg.set_max_emission_bytes(usize::try_from(config.queue.max_bytes / 8).unwrap_or(usize::MAX));
    let (windows, dirty) = agg.windows();
    tracing::info!(
        dir = %dir.display(),
        rules = config.aggregate.len(),
        folded_through = agg.folded_through(),
        windows,
        dirty,
        "aggregate state opened"
    );
    let handle = Arc::new(Handle::new(config.aggregate.len(), agg.folded_through()));
    Ok(Some((handle, agg)))
}

/// Starts the aggregator thread; it ends when the agent is dropped.
pub fn spawn(agent: &Arc<Agent>, agg: Aggregator, handle: Arc<Handle>) -> crate::Result<()> {
    let weak = Arc::downgrade(agent);
    std::thread::Builder::new()
        .name("aggregator".to_owned())
        .spawn(move || run(&weak, agg, &handle))
        .map_err(|source| StateError::Write { path: agent.config.data_dir.join("aggregate"), source })?;
    Ok(())
}

fn run(agent: &Weak<Agent>, mut agg: Aggregator, handle: &Handle) {
    let mut last_checkpoint: Option<Instant> = None;
    let mut last_log: Option<Instant> = None;
    // The forwarder asked but the last round had nothing new to write.
    let mut stalled = false;
    loop {
        {
            let p = handle.progress.lock().expect("aggregate lock is never poisoned");
            let since = last_checkpoint.map_or(ASKED_GAP, |t| t.elapsed());
            let wait = if p.wanted > p.durable && !stalled { ASKED_GAP.saturating_sub(since) } else { TICK };
            if !wait.is_zero() {
                // Woken early by the forwarder asking.
                drop(handle.signal.wait_timeout(p, wait).expect("aggregate lock is never poisoned"));
            }
        }
        let Some(agent) = agent.upgrade() else { return };
        match step(&agent, &mut agg, handle, &mut last_checkpoint, &mut last_log) {
            Ok(()) => {
                let p = handle.progress.lock().expect("aggregate lock is never poisoned");
                stalled = p.wanted > p.durable && !agg.changed();
            }
            Err(e) => {
                tracing::error!(error = %e, "aggregator stopped: the aggregate state cannot be written; restart the agent");
                handle.set_error(e.to_string());
                handle.progress.lock().expect("aggregate lock is never poisoned").failed = Some(e.to_string());
                handle.signal.notify_all();
                return;
            }
        }
    }
}

/// One round (see the module doc).
fn step(
    agent: &Agent,
    agg: &mut Aggregator,
    handle: &Handle,
    last_checkpoint: &mut Option<Instant>,
    last_log: &mut Option<Instant>,
) -> Result<(), StateError> {
    let mut log = |e: String| {
        if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(error = %e, "aggregator: will retry");
            *last_log = Some(Instant::now());
        }
        handle.set_error(e);
    };
    let now = strata_schemas::time::now_millis();
    let mut append = |payload: Vec<u8>| {
        let seq = agent.append_blocking(payload)?;
        agent.wake.notify_one();
        Ok(seq)
    };
    if let Err(e) = agg.round(&agent.queue, now, &mut append) {
        log(e.to_string());
    }
    let (wanted, durable_before) = {
        let p = handle.progress.lock().expect("aggregate lock is never poisoned");
        (p.wanted, p.durable)
    };
    let since = last_checkpoint.map_or(CHECKPOINT_EVERY, |t| t.elapsed());
    let asked = wanted > durable_before && since >= ASKED_GAP;
    let wrote = agg.changed() && (asked || since >= CHECKPOINT_EVERY);
    let durable = if wrote {
        let through = agg.checkpoint()?;
        *last_checkpoint = Some(Instant::now());
        let mut p = handle.progress.lock().expect("aggregate lock is never poisoned");
        p.durable = p.durable.max(through);
        handle.signal.notify_all();
        p.durable
    } else {
        durable_before
    };
    let (windows_open, corrections_pending) = agg.windows();
    let mut s = handle.status.lock().expect("aggregate lock is never poisoned");
    s.windows_open = windows_open;
    s.corrections_pending = corrections_pending;
    s.folded_through = agg.folded_through();
    s.durable_through = durable;
    s.counters = agg.counters();
    Ok(())
}
