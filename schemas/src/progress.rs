//! Progress of long-running work: log replay at startup, rebuilding a moved
//! partition from Kafka, hot → cold rolls and cold merges.
//!
//! ```text
//!  replay loop / Kafka consumer / roll pass / merge pass        (any thread, any crate)
//!     │ let task = progress::global().start(kind, tenant, partition, unit, total)
//!     │ task.add(n) / task.set_done(n) / task.set_total(n)     relaxed atomics, no lock, no clock
//!     │ task.finish()  (or drop: "stopped")
//!     ▼
//!  Registry ── running tasks (Arc<TaskState>, a short Vec behind a mutex taken only on start/finish/read)
//!           └─ the last RECENT finished ones (a ring), and per-kind counts of finished tasks
//!     │ snapshot(): TaskSnapshot { done, total, rate, eta, started_ms, … }
//!     ▼
//!  server: a reporter thread logs running tasks every 2 s (tracing, bounded rate);
//!          GET /api/v1/status/tasks (tenant-scoped) for the console's storage page;
//!          strata_progress_* gauges in /metrics
//! ```
//!
//! The loops only touch atomics: `add` is one `fetch_add`, so calling it per
//! record is fine. Rate and ETA are computed by readers from the counters
//! and the task's age ([`rate_per_sec`], [`eta_secs`]), never by the loops.
//! A task has an optional tenant (a roll or merge of one tenant's table)
//! and an optional log partition (a replay or rebuild); readers decide who
//! may see what (a tenant sees only its own tasks; node-wide work such as a
//! partition's replay holds every tenant's records and is shown to the
//! admin token). `schemas` stays I/O-free: nothing here logs.
//!
//! Tests and tools make their own [`Registry`]; the server and the crates it
//! wires share [`global`].

use crate::TenantId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How many finished tasks a registry remembers.
pub const RECENT: usize = 32;

/// `total` of a task whose size is not known (yet).
const UNKNOWN: u64 = u64::MAX;

/// What kind of work a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Replaying a log partition's unflushed tail into the hot store (startup, or a Kafka assignment).
    Replay,
    /// Rebuilding a partition from Kafka into an empty hot store (a moved partition, a lost disk).
    Rebuild,
    /// Rolling sealed hot buckets of a tenant into its cold table.
    Roll,
    /// Merging a tenant's small cold files.
    Merge,
}

impl TaskKind {
    /// Every kind, in display order.
    pub const ALL: [TaskKind; 4] = [TaskKind::Replay, TaskKind::Rebuild, TaskKind::Roll, TaskKind::Merge];

    /// The kind's name in logs, JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Replay => "replay",
            TaskKind::Rebuild => "rebuild",
            TaskKind::Roll => "roll",
            TaskKind::Merge => "merge",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Still running.
    Running,
    /// [`Task::finish`] was called.
    Finished,
    /// Dropped without `finish` (an error, a revoked partition, shutdown).
    Stopped,
}

/// What a running task shares with the registry's readers.
#[derive(Debug)]
struct Shared {
    id: u64,
    kind: TaskKind,
    tenant: Option<TenantId>,
    partition: Option<u32>,
    unit: &'static str,
    started_ms: i64,
    started: Instant,
    done: AtomicU64,
    total: AtomicU64,
}

/// A point-in-time view of one task (what the API and the logs show).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskSnapshot {
    /// Unique within the process, increasing.
    pub id: u64,
    /// What the task does.
    pub kind: TaskKind,
    /// The tenant whose data it works on, if one.
    pub tenant: Option<TenantId>,
    /// The log partition it works on, if one.
    pub partition: Option<u32>,
    /// What `done` and `total` count (`records`, `buckets`, `merges`).
    pub unit: &'static str,
    /// Units done.
    pub done: u64,
    /// Units in all, when known.
    pub total: Option<u64>,
    /// Wall-clock start, ms since the epoch.
    pub started_ms: i64,
    /// Seconds since the start (running) or the task's duration (finished).
    pub elapsed_secs: f64,
    /// Units per second over the task's life.
    pub rate_per_sec: f64,
    /// Seconds left at that rate, when the total is known and the rate is not zero.
    pub eta_secs: Option<f64>,
    /// Running, finished or stopped.
    pub state: TaskState,
    /// Wall-clock end, ms since the epoch (finished and stopped tasks).
    pub ended_ms: Option<i64>,
}

impl TaskSnapshot {
    /// `done / total` in `0..=1`, when the total is known (an empty task is complete).
    pub fn fraction(&self) -> Option<f64> {
        self.total.map(|t| if t == 0 { 1.0 } else { (self.done.min(t)) as f64 / t as f64 })
    }
}

/// Units per second: `done` over `elapsed` (0 before any time has passed).
pub fn rate_per_sec(done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 { 0.0 } else { done as f64 / secs }
}

/// Seconds left to reach `total` at `rate` (None: unknown total, or no progress yet).
pub fn eta_secs(done: u64, total: Option<u64>, rate: f64) -> Option<f64> {
    let total = total?;
    if done >= total {
        return Some(0.0);
    }
    (rate > 0.0).then(|| (total - done) as f64 / rate)
}

/// The progress of every long-running task of a process.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    running: Mutex<Vec<Arc<Shared>>>,
    recent: Mutex<VecDeque<TaskSnapshot>>,
    finished: [AtomicU64; 4],
}

/// The process-wide registry the server and its crates share.
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::default)
}

/// A poisoned lock still holds consistent data here (plain pushes and removals).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Registry {
    /// A new, empty registry (tests, tools); the server uses [`global`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a running task. `total` is `None` when not known yet
    /// ([`Task::set_total`] sets it later).
    pub fn start(
        &self,
        kind: TaskKind,
        tenant: Option<&TenantId>,
        partition: Option<u32>,
        unit: &'static str,
        total: Option<u64>,
    ) -> Task<'_> {
        let shared = Arc::new(Shared {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            kind,
            tenant: tenant.cloned(),
            partition,
            unit,
            started_ms: crate::time::now_millis(),
            started: Instant::now(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(total.unwrap_or(UNKNOWN)),
        });
        lock(&self.running).push(Arc::clone(&shared));
        Task { registry: self, shared, ended: false }
    }

    /// The running tasks, oldest first.
    pub fn running(&self) -> Vec<TaskSnapshot> {
        let now = Instant::now();
        lock(&self.running).iter().map(|s| snapshot(s, now, TaskState::Running, None)).collect()
    }

    /// The last [`RECENT`] finished or stopped tasks, newest first.
    pub fn recent(&self) -> Vec<TaskSnapshot> {
        lock(&self.recent).iter().rev().cloned().collect()
    }

    /// Tasks of `kind` that finished or stopped since the registry was made.
    pub fn ended_count(&self, kind: TaskKind) -> u64 {
        self.finished.get(kind.index()).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn end(&self, shared: &Arc<Shared>, state: TaskState) {
        let snap = snapshot(shared, Instant::now(), state, Some(crate::time::now_millis()));
        lock(&self.running).retain(|s| !Arc::ptr_eq(s, shared));
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(snap);
        drop(recent);
        if let Some(c) = self.finished.get(shared.kind.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn snapshot(s: &Shared, now: Instant, state: TaskState, ended_ms: Option<i64>) -> TaskSnapshot {
    let elapsed = now.saturating_duration_since(s.started);
    let done = s.done.load(Ordering::Relaxed);
    let total = s.total.load(Ordering::Relaxed);
    let total = (total != UNKNOWN).then_some(total);
    let rate = rate_per_sec(done, elapsed);
    TaskSnapshot {
        id: s.id,
        kind: s.kind,
        tenant: s.tenant.clone(),
        partition: s.partition,
        unit: s.unit,
        done,
        total,
        started_ms: s.started_ms,
        elapsed_secs: elapsed.as_secs_f64(),
        rate_per_sec: rate,
        eta_secs: if state == TaskState::Running { eta_secs(done, total, rate) } else { None },
        state,
        ended_ms,
    }
}

/// A running task's handle: the loop doing the work updates it; dropping it
/// without [`Task::finish`] records the task as stopped.
#[derive(Debug)]
pub struct Task<'r> {
    registry: &'r Registry,
    shared: Arc<Shared>,
    ended: bool,
}

impl Task<'_> {
    /// Adds `n` units done.
    pub fn add(&self, n: u64) {
        self.shared.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the units done (a loop that knows its position, e.g. an offset).
    pub fn set_done(&self, done: u64) {
        self.shared.done.store(done, Ordering::Relaxed);
    }

    /// Sets (or corrects) the total.
    pub fn set_total(&self, total: u64) {
        self.shared.total.store(total.min(UNKNOWN - 1), Ordering::Relaxed);
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.shared.done.load(Ordering::Relaxed)
    }

    /// The task's id (as in its snapshots).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Ends the task as finished; returns its last snapshot.
    pub fn finish(mut self) -> TaskSnapshot {
        self.ended = true;
        self.registry.end(&self.shared, TaskState::Finished);
        self.registry.recent().into_iter().find(|s| s.id == self.shared.id).unwrap_or_else(|| {
            // Pushed out of the ring by RECENT tasks ending meanwhile: rebuild it.
            snapshot(&self.shared, Instant::now(), TaskState::Finished, Some(crate::time::now_millis()))
        })
    }
}

impl Drop for Task<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.registry.end(&self.shared, TaskState::Stopped);
        }
    }
}

#[cfg(test)]
mod tests;
