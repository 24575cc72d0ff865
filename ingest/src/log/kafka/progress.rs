//! Replay and rebuild of assigned Kafka partitions as tasks of the shared
//! progress registry ([`strata_schemas::progress`]).
//!
//! On assignment a partition starts a task: a *rebuild* when the hot store
//! has nothing of it (floor 0: a moved partition, a lost disk; everything
//! within the topic's retention is read), else a *replay* of the unflushed
//! tail. The poll loop's 2-second progress report sets its counters from the
//! partition's next offset and its replay target (the high watermark at
//! assignment); the task finishes when the target is reached and stops when
//! the partition is revoked first. The consumer thread is the only writer.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use strata_schemas::progress::{self, Task, TaskKind};

/// A partition's task and the offset its replay started from.
struct Tracked {
    task: Task<'static>,
    start: i64,
}

static TASKS: Mutex<BTreeMap<i32, Tracked>> = Mutex::new(BTreeMap::new());

fn tasks() -> MutexGuard<'static, BTreeMap<i32, Tracked>> {
    TASKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The partition was assigned, to be read from `floor` (replaces an earlier task: it stops).
pub(super) fn assigned(partition: i32, floor: u64) {
    let kind = if floor == 0 { TaskKind::Rebuild } else { TaskKind::Replay };
    let task = progress::global().start(kind, None, u32::try_from(partition).ok(), "records", None);
    let start = i64::try_from(floor).unwrap_or(i64::MAX);
    tasks().insert(partition, Tracked { task, start });
}

/// The progress report's view of a partition: assigned or not, its next
/// offset and replay target (`-1`: unknown).
pub(super) fn update(partition: i32, assigned: bool, next: i64, target: i64) {
    let mut tasks = tasks();
    if !assigned {
        tasks.remove(&partition);
        return;
    }
    let Some(t) = tasks.get_mut(&partition) else { return };
    if next < 0 || target < 0 {
        return;
    }
    t.task.set_total(target.saturating_sub(t.start).max(0) as u64);
    t.task.set_done(next.saturating_sub(t.start).max(0) as u64);
    if next >= target
        && let Some(t) = tasks.remove(&partition)
    {
        t.task.finish();
    }
}
