//! The purge worker: one background task per node that takes every delete
//! request not yet completed through this node's steps, writing the
//! request's status to the registry before and after each one.
//!
//! ```text
//! every [erasure] check_interval:
//!   for each request with completed_at NULL (oldest first):
//!     status.nodes.<this node>:  log → hot → cold → verify      (Tiers::run / Tiers::verify)
//!       before a step: state running, started_at      ─┐ compare-and-swap of the row's status
//!       after it:      state done, counters, report   ─┘ (other nodes update their own entry)
//!       verify clean → done_at;  found data → attempts + 1, every step pending again
//!     when every expected node is done: completed_at, bound_met, the audit record,
//!     deletes_generation bumped (nodes reload: rollups come back for the tenant)
//! ```
//!
//! A crash anywhere leaves the row saying which step was running; the next
//! pass runs it again (the tiers' erase calls are idempotent). A failing
//! step is recorded in `last_error` and retried at the next check. Tests
//! crash the process at any point of the purge with `STRATA_ERASURE_CRASH_AT`
//! (`super::crash`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use strata_schemas::{Matcher, TenantId};

use super::status::{NodeProgress, Status, Step, StepProgress, StepState, Verification};
use super::{DeleteSpec, parse_selector};
use crate::registry::Registry;
use crate::registry::store::DeleteRow;

/// Purge rounds per request within one pass before it waits for the next check.
const ROUNDS_PER_PASS: u32 = 3;

/// A delete request as the worker runs it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Request id.
    pub id: String,
    /// Whose data.
    pub tenant: TenantId,
    /// What was asked.
    pub spec: DeleteSpec,
    /// `spec.selectors` parsed.
    pub selectors: Vec<Vec<Matcher>>,
    /// When it was recorded.
    pub requested_at: i64,
}

impl Request {
    /// The request of a stored row.
    pub fn of(row: &DeleteRow) -> anyhow::Result<Request> {
        let spec: DeleteSpec = serde_json::from_str(&row.request).context("delete request does not parse")?;
        let selectors = spec
            .selectors
            .iter()
            .map(|s| parse_selector(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        let tenant = TenantId::new(row.tenant_id.as_str()).context("delete request's tenant")?;
        Ok(Request { id: row.id.clone(), tenant, spec, selectors, requested_at: row.requested_at })
    }

    /// Whether a sample of a series with `labels` at `ts` is covered.
    pub fn covers(&self, tenant: &TenantId, labels: &strata_schemas::Labels, ts: i64) -> bool {
        *tenant == self.tenant
            && ts >= self.spec.start
            && ts <= self.spec.end
            && self.selectors.iter().any(|m| Matcher::matches_all(m, labels))
    }
}

/// A boxed future (the tiers are used as trait objects).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// This node's tiers, as the worker drives them (`super::tiers::NodeTiers`
/// in the server; fakes in the unit tests).
pub trait Tiers: Send + Sync {
    /// This node's id in the request's status.
    fn node_id(&self) -> &str;
    /// Nodes whose purge must finish before a request completes.
    fn nodes_expected(&self) -> u32;
    /// How the ingest log is purged and what bound that gives (shown in the status).
    fn log_policy(&self) -> String;
    /// Whether the step has anything to do on this node (`false`: `off`).
    fn has(&self, step: Step) -> bool;
    /// Runs a purge step (not [`Step::Verify`]); its counters and report.
    fn run<'a>(&'a self, step: Step, req: &'a Request) -> BoxFuture<'a, anyhow::Result<StepProgress>>;
    /// Scans every tier of this node for covered samples.
    fn verify<'a>(&'a self, req: &'a Request) -> BoxFuture<'a, anyhow::Result<Verification>>;
}

/// What a completed request leaves behind (the audit record and `/metrics`).
pub type OnComplete = Arc<dyn Fn(&Request, &Status) + Send + Sync>;

/// The worker of one node.
pub struct Worker {
    registry: Arc<Registry>,
    tiers: Arc<dyn Tiers>,
    purge_within: Duration,
    on_complete: OnComplete,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("node", &self.tiers.node_id()).finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker over `tiers`, keeping request status in `registry`.
    pub fn new(
        registry: Arc<Registry>,
        tiers: Arc<dyn Tiers>,
        purge_within: Duration,
        on_complete: OnComplete,
    ) -> Self {
        Self { registry, tiers, purge_within, on_complete }
    }

    fn purge_within_ms(&self) -> i64 {
        i64::try_from(self.purge_within.as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs [`Worker::pass`] every `interval` (the first one interval after
    /// start, once the node serves) until `stop` turns true.
    pub async fn run(self: Arc<Self>, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopped = tokio::select! {
                _ = stop.wait_for(|s| *s) => true,
                _ = tick.tick() => false,
            };
            if stopped {
                return;
            }
            if let Err(e) = self.pass().await {
                tracing::error!(error = %format!("{e:#}"), "erasure pass failed; retried at the next check");
            }
        }
    }

    /// Takes every pending request through this node's steps. Returns the
    /// number of requests this node finished its part of in this pass.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let pending = self.registry.store().pending_deletes().await?;
        super::metrics().pending.store(pending.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut finished = 0;
        for row in pending {
            let req = match Request::of(&row) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(id = %row.id, error = %format!("{e:#}"), "delete request cannot be purged");
                    continue;
                }
            };
            match self.purge(&req).await {
                Ok(true) => finished += 1,
                Ok(false) => {}
                Err(e) => {
                    let msg = format!("{e:#}");
                    tracing::warn!(id = %req.id, error = %msg, "erasure step failed; retried at the next check");
                    let _ = self.update(&req, |n| n.last_error = Some(msg.clone())).await;
                }
            }
        }
        Ok(finished)
    }

    /// Runs this node's remaining steps of `req`; true once its part is done.
    async fn purge(&self, req: &Request) -> anyhow::Result<bool> {
        let t0 = Instant::now();
        let (mut rounds, mut worked) = (0, false);
        loop {
            let status = self.update(req, |_| {}).await?;
            let node = status.nodes.get(self.tiers.node_id()).cloned().unwrap_or_default();
            if node.done_at.is_some() {
                if worked {
                    super::metrics().record_purge_time(t0.elapsed());
                }
                return Ok(true);
            }
            worked = true;
            let Some(step) = node.next_step() else {
                // Every step done but no verdict (cannot happen): verify again.
                self.update(req, |n| n.restart()).await?;
                continue;
            };
            if step == Step::Log && node.step(Step::Log).state == StepState::Pending {
                rounds += 1;
                if rounds > ROUNDS_PER_PASS {
                    return Ok(false);
                }
            }
            if !self.tiers.has(step) {
                self.update(req, |n| set_state(n, step, StepState::Off, None)).await?;
                continue;
            }
            let now = crate::registry::now_ms();
            self.update(req, |n| {
                let mut p = n.step(step);
                p.state = StepState::Running;
                p.started_at = Some(now);
                p.finished_at = None;
                n.steps.insert(step.key().to_owned(), p);
            })
            .await?;
            super::crash::step_point(step, "started");
            if step == Step::Verify {
                let v = self.tiers.verify(req).await?;
                super::crash::step_point(step, "done");
                if self.finish_verify(req, v).await? {
                    super::crash::step_point(step, "recorded");
                    return Ok(false);
                }
            } else {
                let report = self.tiers.run(step, req).await?;
                super::crash::step_point(step, "done");
                tracing::info!(id = %req.id, step = step.key(), rows_removed = report.rows_removed,
                    files_rewritten = report.files_rewritten, files_deleted = report.files_deleted,
                    bytes_rewritten = report.bytes_rewritten, "erasure step done");
                super::metrics().samples_removed.fetch_add(report.rows_removed, std::sync::atomic::Ordering::Relaxed);
                self.update(req, |n| set_state(n, step, StepState::Done, Some(report.clone()))).await?;
            }
            super::crash::step_point(step, "recorded");
        }
    }

    /// Records a verification: done when clean; every step again when it
    /// found covered data; true (the log step again at the next check) when
    /// only Kafka records wait for their buckets to roll and the request's
    /// bound has not passed.
    async fn finish_verify(&self, req: &Request, v: Verification) -> anyhow::Result<bool> {
        let now = crate::registry::now_ms();
        let clean = v.clean();
        let waiting = clean && v.kafka_samples > 0 && now < req.requested_at.saturating_add(self.purge_within_ms());
        if !clean {
            tracing::warn!(id = %req.id, verification = ?v, "erasure verification found covered data; purging again");
        } else if waiting {
            tracing::info!(id = %req.id, kafka_samples = v.kafka_samples,
                "covered samples wait in kafka records for their buckets to roll; deleting again at the next check");
        }
        self.update(req, |n| {
            n.attempts += 1;
            n.verification = Some(v.clone());
            n.last_error = None;
            if waiting {
                n.restart_log();
            } else if clean {
                set_state(n, Step::Verify, StepState::Done, None);
                n.done_at = Some(now);
            } else {
                n.restart();
            }
        })
        .await?;
        Ok(waiting)
    }

    /// Applies `f` to this node's entry of the request's status and stores
    /// it (compare-and-swap, retried when another node wrote in between).
    async fn update(&self, req: &Request, f: impl Fn(&mut NodeProgress)) -> anyhow::Result<Status> {
        loop {
            let row = self
                .registry
                .store()
                .delete_request(&req.id)
                .await?
                .with_context(|| format!("delete request {} vanished from the registry", req.id))?;
            let mut status = Status::parse(&row.status, row.requested_at, self.purge_within_ms());
            status.nodes_expected = self.tiers.nodes_expected();
            status.log_policy = self.tiers.log_policy();
            f(status.nodes.entry(self.tiers.node_id().to_owned()).or_default());
            let was_complete = row.completed_at.is_some();
            status.summarise(crate::registry::now_ms());
            let text = serde_json::to_string(&status)?;
            if text == row.status {
                return Ok(status);
            }
            let completed_at = status.completed_at.filter(|_| status.state == super::status::COMPLETED);
            if self.registry.store().swap_delete_status(&req.id, &row.status, &text, completed_at).await? {
                if completed_at.is_some() && !was_complete {
                    self.completed(req, &status).await;
                }
                return Ok(status);
            }
        }
    }

    async fn completed(&self, req: &Request, status: &Status) {
        tracing::info!(id = %req.id, tenant = %req.tenant, bound_met = ?status.bound_met,
            rows_removed = status.rows_removed, bytes_rewritten = status.bytes_rewritten,
            files_touched = status.files_touched, "delete request completed");
        (self.on_complete)(req, status);
        if let Err(e) = self.registry.reload().await {
            tracing::warn!(error = %format!("{e:#}"), "registry reload after a completed delete failed");
        }
    }
}

/// Marks a step `state`, adding `report`'s counters to what earlier rounds
/// (or a run cut short by a crash) counted; the newest non-empty report's
/// detail is kept.
fn set_state(n: &mut NodeProgress, step: Step, state: StepState, report: Option<StepProgress>) {
    let mut p = n.step(step);
    p.state = state;
    p.finished_at = Some(crate::registry::now_ms());
    if let Some(r) = report {
        p.files_rewritten += r.files_rewritten;
        p.files_deleted += r.files_deleted;
        p.rows_removed += r.rows_removed;
        p.bytes_rewritten += r.bytes_rewritten;
        if !r.detail.is_null() {
            p.detail = r.detail;
        }
    }
    n.steps.insert(step.key().to_owned(), p);
}

#[cfg(test)]
mod tests;
