//! Long-running work made visible: the log lines, the API and the gauges
//! over [`strata_schemas::progress`]'s shared registry.
//!
//! ```text
//!  replay (node.rs) ─┐
//!  Kafka replay /    │  progress::global(): atomics per task
//!   rebuild (ingest) ├──────────────────────────────► Registry
//!  roll, merge       │                                   │
//!   (compactor)     ─┘                                   │ snapshots
//!        ┌───────────────────────────────┬───────────────┴──────────────┐
//!  reporter thread (every 2 s)     GET /api/v1/status/tasks        /metrics
//!  "task progress" per task running   running + recent, scoped:      strata_progress_* per kind
//!   ≥ 2 s: done/total/%/rate/ETA      a tenant's token sees its own
//!  "task finished" / "task stopped"   roll/merge tasks; node-wide work
//!   (replay/rebuild always; others    (replay, rebuild: every tenant's
//!   when they ran ≥ 2 s)              records) needs the admin token
//!                                     (or open mode)
//! ```
//!
//! The log rate is bounded: one line per running task every
//! `progress_log_interval` (default [`REPORT_EVERY`], 2 s), one when it
//! ends; a roll or merge shorter than that (most passes) logs nothing here
//! (the compactor's own pass lines remain). The reporter starts with the
//! node, before the listeners open, so the startup replay and Kafka
//! rebuilds are reported too.

use crate::error::Error;
use crate::registry::Registry;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use strata_schemas::metrics_text::{MetricKind, MetricsText};
use strata_schemas::progress::{self, TaskKind, TaskSnapshot, TaskState};
use strata_schemas::{Access, TenantResolver};

/// How often the reporter logs running tasks by default (`progress_log_interval`).
pub const REPORT_EVERY: Duration = Duration::from_secs(2);

/// Starts the reporter thread once per process, logging `every` interval
/// (later calls do nothing).
pub fn start_reporter(every: Duration) {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("progress-log".into()).spawn(move || {
            let mut logged = std::collections::HashSet::new();
            loop {
                std::thread::sleep(every);
                report(progress::global(), &mut logged, every);
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the progress reporter; long tasks log no progress lines");
        }
    });
}

/// Logs the tasks running for at least `every`, and the ended tasks not in
/// `logged` (the ids of those already seen; kept to the registry's recent
/// ones). Tasks end in any order (Kafka partitions catch up concurrently),
/// hence a set, not the newest id.
fn report(registry: &progress::Registry, logged: &mut std::collections::HashSet<u64>, every: Duration) {
    for t in registry.running().iter().filter(|t| t.elapsed_secs >= every.as_secs_f64()) {
        tracing::info!(
            task = t.kind.as_str(),
            tenant = t.tenant.as_ref().map_or("", |x| x.as_str()),
            partition = t.partition.map_or(-1, i64::from),
            done = t.done,
            total = t.total.map_or(-1, |v| v as i64),
            unit = t.unit,
            percent = t.fraction().map_or(-1.0, |f| (f * 1000.0).round() / 10.0),
            per_sec = t.rate_per_sec.round() as u64,
            eta_secs = t.eta_secs.map_or(-1, |e| e.ceil() as i64),
            elapsed_secs = t.elapsed_secs.round() as u64,
            "task progress"
        );
    }
    let recent = registry.recent();
    for t in recent.iter().rev() {
        if !logged.insert(t.id) {
            continue;
        }
        let always = matches!(t.kind, TaskKind::Replay | TaskKind::Rebuild);
        if !always && t.elapsed_secs < every.as_secs_f64() {
            continue;
        }
        let msg = if t.state == TaskState::Finished { "task finished" } else { "task stopped" };
        tracing::info!(
            task = t.kind.as_str(),
            tenant = t.tenant.as_ref().map_or("", |x| x.as_str()),
            partition = t.partition.map_or(-1, i64::from),
            done = t.done,
            total = t.total.map_or(-1, |v| v as i64),
            unit = t.unit,
            per_sec = t.rate_per_sec.round() as u64,
            elapsed_ms = (t.elapsed_secs * 1000.0).round() as u64,
            "{msg}"
        );
    }
    logged.retain(|id| recent.iter().any(|t| t.id == *id));
}

/// What the tasks endpoint needs.
#[derive(Clone)]
pub struct TasksState {
    /// Token → tenant.
    pub resolver: Arc<dyn TenantResolver>,
    /// The tenant registry (open mode shows node-wide tasks to anyone).
    pub registry: Arc<Registry>,
    /// The admin token: sees every task.
    pub admin_token: Arc<str>,
}

impl std::fmt::Debug for TasksState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TasksState").finish_non_exhaustive()
    }
}

/// `GET /api/v1/status/tasks`.
pub fn router(state: TasksState) -> Router {
    Router::new().route("/api/v1/status/tasks", get(tasks)).with_state(state)
}

/// Who may see what: every task, or one tenant's (and node-wide work in open mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The admin token: everything.
    All,
    /// A tenant's token: its own tasks; node-wide ones too when `node_wide`.
    Tenant {
        /// The token's tenant.
        tenant: strata_schemas::TenantId,
        /// Open mode: the node has one user, who may see replays.
        node_wide: bool,
    },
}

impl Scope {
    /// Whether `task` is visible in this scope.
    pub fn sees(&self, task: &TaskSnapshot) -> bool {
        match (self, &task.tenant) {
            (Scope::All, _) => true,
            (Scope::Tenant { tenant, .. }, Some(t)) => t == tenant,
            (Scope::Tenant { node_wide, .. }, None) => *node_wide,
        }
    }
}

/// The scope of a request: the admin token, else the token's tenant.
pub fn scope(
    headers: &HeaderMap,
    admin_token: &str,
    resolver: &dyn TenantResolver,
    open_mode: bool,
) -> Result<Scope, Error> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = auth.and_then(|h| strata_schemas::tenant::parse_authorization(h).ok());
    if !admin_token.is_empty() && token.is_some_and(|t| crate::auth::token_eq(t.as_bytes(), admin_token.as_bytes())) {
        return Ok(Scope::All);
    }
    match resolver.resolve(auth, Access::Read) {
        Ok(tenant) => Ok(Scope::Tenant { tenant, node_wide: open_mode }),
        Err(e) => Err(e.into()),
    }
}

async fn tasks(State(st): State<TasksState>, headers: HeaderMap) -> Result<Response, Error> {
    let scope = scope(&headers, &st.admin_token, st.resolver.as_ref(), st.registry.open_mode())?;
    let registry = progress::global();
    let running: Vec<TaskSnapshot> = registry.running().into_iter().filter(|t| scope.sees(t)).collect();
    let recent: Vec<TaskSnapshot> = registry.recent().into_iter().filter(|t| scope.sees(t)).collect();
    Ok(axum::Json(json!({
        "status": "success",
        "data": {
            "scope": if scope == Scope::All { "all" } else { "tenant" },
            "running": running,
            "recent": recent,
        }
    }))
    .into_response())
}

/// A `/metrics` family: name, help, type, and a task's contribution.
type Family = (&'static str, &'static str, MetricKind, fn(&TaskSnapshot) -> u64);

/// Appends the `strata_progress_*` families (per task kind; node-wide figures, no tenant label).
pub fn render_metrics(out: &mut String) {
    let registry = progress::global();
    let running = registry.running();
    let per_kind = |kind: TaskKind| running.iter().filter(move |t| t.kind == kind);
    let families: [Family; 3] = [
        (
            "strata_progress_running_tasks",
            "Long-running tasks (replay, rebuild, roll, merge) in progress.",
            MetricKind::Gauge,
            |_| 1,
        ),
        (
            "strata_progress_done_units",
            "Units (records, buckets, merges) done by the running tasks.",
            MetricKind::Gauge,
            |t| t.done,
        ),
        ("strata_progress_total_units", "Units of the running tasks whose total is known.", MetricKind::Gauge, |t| {
            t.total.unwrap_or(0)
        }),
    ];
    let mut text = MetricsText::new(out);
    for (name, help, kind_of_metric, f) in families {
        text.family(name, kind_of_metric, help);
        for kind in TaskKind::ALL {
            let v: u64 = per_kind(kind).map(f).sum();
            text.sample(name, &[("task", kind.as_str())], v);
        }
    }
    let name = "strata_progress_ended_tasks_total";
    text.family(name, MetricKind::Counter, "Long-running tasks that finished or stopped since start.");
    for kind in TaskKind::ALL {
        text.sample(name, &[("task", kind.as_str())], registry.ended_count(kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> strata_schemas::TenantId {
        strata_schemas::TenantId::new(s).unwrap()
    }

    #[test]
    fn a_tenant_sees_its_own_tasks_and_node_wide_ones_only_in_open_mode() {
        let r = progress::Registry::new();
        let _mine = r.start(TaskKind::Roll, Some(&tenant("acme")), None, "buckets", Some(3));
        let _theirs = r.start(TaskKind::Merge, Some(&tenant("other")), None, "merges", Some(1));
        let _replay = r.start(TaskKind::Replay, None, Some(0), "records", Some(10));
        let seen = |s: &Scope| r.running().iter().filter(|t| s.sees(t)).map(|t| t.kind).collect::<Vec<_>>();
        assert_eq!(seen(&Scope::All), [TaskKind::Roll, TaskKind::Merge, TaskKind::Replay]);
        assert_eq!(seen(&Scope::Tenant { tenant: tenant("acme"), node_wide: false }), [TaskKind::Roll]);
        assert_eq!(
            seen(&Scope::Tenant { tenant: tenant("acme"), node_wide: true }),
            [TaskKind::Roll, TaskKind::Replay]
        );
        assert_eq!(seen(&Scope::Tenant { tenant: tenant("other"), node_wide: false }), [TaskKind::Merge]);
    }

    #[test]
    fn the_reporter_logs_each_ended_task_once_in_any_order() {
        let r = progress::Registry::new();
        let first = r.start(TaskKind::Rebuild, None, Some(0), "records", Some(1));
        let second = r.start(TaskKind::Rebuild, None, Some(1), "records", Some(1));
        let second_id = second.finish().id;
        let mut logged = std::collections::HashSet::new();
        report(&r, &mut logged, REPORT_EVERY);
        assert_eq!(logged, [second_id].into());
        // The older task ends after the newer one was logged: it is still logged.
        let first_id = first.finish().id;
        report(&r, &mut logged, REPORT_EVERY);
        assert_eq!(logged, [first_id, second_id].into());
        report(&r, &mut logged, REPORT_EVERY);
        assert_eq!(logged.len(), 2, "nothing new");
    }
}
