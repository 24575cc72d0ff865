//! Roll and merge passes as tasks of the shared progress registry
//! ([`strata_schemas::progress`]): one roll task per tenant per pass
//! (its sealed buckets this pass takes), one merge task per tenant per
//! maintenance pass that plans merges. The registry's readers (the server's
//! log reporter, `/api/v1/status/tasks`, the console) show them; the
//! compactor's own pass lines stay as they were.

use std::collections::BTreeMap;
use strata_schemas::TenantId;
use strata_schemas::progress::{self, Task, TaskKind};

/// The roll tasks of one pass, one per tenant with buckets to roll. A
/// tenant whose pass stops early (a failed bucket) leaves its task
/// unfinished: it is recorded as stopped when the pass ends.
#[derive(Debug, Default)]
pub(crate) struct RollProgress {
    /// Per tenant: its task and the buckets it takes.
    tasks: BTreeMap<TenantId, (Task<'static>, u64)>,
}

impl RollProgress {
    /// Starts a task per tenant for the buckets (their tenants) this pass takes.
    pub(crate) fn new<'a>(tenants: impl Iterator<Item = &'a TenantId>) -> Self {
        let mut totals: BTreeMap<&TenantId, u64> = BTreeMap::new();
        for t in tenants {
            *totals.entry(t).or_default() += 1;
        }
        let tasks = totals
            .into_iter()
            .map(|(t, n)| (t.clone(), (progress::global().start(TaskKind::Roll, Some(t), None, "buckets", Some(n)), n)))
            .collect();
        Self { tasks }
    }

    /// One of the tenant's buckets was rolled (or found committed).
    pub(crate) fn bucket_done(&mut self, tenant: &TenantId) {
        let Some((task, total)) = self.tasks.get(tenant) else { return };
        task.add(1);
        if task.done() >= *total
            && let Some((task, _)) = self.tasks.remove(tenant)
        {
            task.finish();
        }
    }
}

/// A merge task for `tenant` with `planned` merges (None when there are none).
pub(crate) fn merge_task(tenant: &TenantId, planned: usize) -> Option<Task<'static>> {
    (planned > 0).then(|| progress::global().start(TaskKind::Merge, Some(tenant), None, "merges", Some(planned as u64)))
}
