//! The progress of a delete request, as stored in its registry row
//! (`strata_deletes.status`, JSON) and shown by `GET /admin/v1/deletes/{id}`.
//!
//! ```text
//! state: invisible ──► purging ──► completed
//!            (request recorded)   (every node's steps done and its verification clean)
//!
//! per node (nodes.<node id>):  log ──► hot ──► cold ──► verify
//!   each step: pending → running → done (counters, started_at, finished_at); a step
//!   left `running` by a crash is run again on restart (every step is idempotent);
//!   a verification that finds covered data sends the node back to `log` (attempts + 1).
//! ```
//!
//! Every field is written before and after each step, so the row is the
//! worker's durable state: a restarted worker resumes at the first step not
//! `done`. `tiers` sums the nodes (the view for people); `bound_met` compares
//! `completed_at` with `deadline` (`requested_at + [erasure] purge_within`).
//!
//! Rows written before the purge existed (`tiers` holding strings) are read
//! as a fresh status with every step pending.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The state of a request.
pub const INVISIBLE: &str = "invisible";
/// Some node is purging.
pub const PURGING: &str = "purging";
/// Every tier purged and verified.
pub const COMPLETED: &str = "completed";

/// A step of a node's purge, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Seal the ingest log, flush the hot store, release log segments below the flush.
    Log,
    /// Rewrite or drop hot segments holding covered samples.
    Hot,
    /// Rewrite the cold tier's files and rollups, expire snapshots, delete objects.
    Cold,
    /// Scan every tier for covered samples.
    Verify,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 4] = [Step::Log, Step::Hot, Step::Cold, Step::Verify];

    /// The key of the step in `steps`.
    pub fn key(self) -> &'static str {
        match self {
            Step::Log => "log",
            Step::Hot => "hot",
            Step::Cold => "cold",
            Step::Verify => "verify",
        }
    }
}

/// `pending`, `running`, `done` or `off` (the tier does not exist on the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not started.
    #[default]
    Pending,
    /// Started (left so by a crash: run again).
    Running,
    /// Finished.
    Done,
    /// Nothing to do: the tier is off on this node.
    Off,
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepProgress {
    /// See [`StepState`].
    pub state: StepState,
    /// When it last started, ms since the epoch.
    pub started_at: Option<i64>,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// Files rewritten without the covered samples.
    pub files_rewritten: u64,
    /// Files deleted (wholly covered, released, or no longer referenced).
    pub files_deleted: u64,
    /// Samples or rows removed.
    pub rows_removed: u64,
    /// Bytes written by rewrites.
    pub bytes_rewritten: u64,
    /// The tier's own report (names of files touched, snapshots expired, …).
    pub detail: serde_json::Value,
}

/// What the verification found (all zeros: nothing covered is left).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Verification {
    /// When it ran.
    pub at: i64,
    /// Covered samples in hot segments and the memtable.
    pub hot_samples: u64,
    /// Series with covered samples in the hot store.
    pub hot_series: u64,
    /// Covered rows in any live snapshot's samples files or rollup/series tables.
    pub cold_rows: u64,
    /// Objects under the tenant's tables that no retained snapshot or metadata
    /// version references. Shown, but not part of [`Verification::clean`]:
    /// besides a crashed writer's files they are metadata versions older
    /// than the table's metadata log (100 versions), which hold no rows; the
    /// cold erase deletes at once every object the snapshots it expired
    /// reached, and the compactor deletes the others after `orphan_grace`.
    pub cold_unreferenced_objects: u64,
    /// Covered samples in the remaining embedded log segments.
    pub log_samples: u64,
    /// Covered samples still in the Kafka topic's records (partitions this
    /// node holds, from their low watermarks): records that could not be
    /// deleted yet (their buckets not rolled to the cold tier, or not
    /// flushed). Not part of [`Verification::clean`]: while there are any
    /// the request stays open and the worker deletes again at the next
    /// check, until the request's bound passes (`tiers.rs`, "Kafka records").
    pub kafka_samples: u64,
    /// Kafka partitions scanned (their records count in `log_records_scanned`).
    pub kafka_partitions_scanned: u64,
    /// Log segments and records scanned.
    pub log_segments_scanned: u64,
    /// See `log_segments_scanned`.
    pub log_records_scanned: u64,
    /// Quarantined hot segments (moved aside as corrupt: unreadable, served
    /// by no query) of the tenant, or of an unknown tenant, whose bucket
    /// starts at or before the request's end. Neither scanned nor erased:
    /// their content cannot be decoded reliably, and deleting them would
    /// remove other series' data, which a delete never does. Listed in
    /// `not_scanned` with their paths; not part of [`Verification::clean`]
    /// (an operator deletes or restores them by hand).
    pub hot_quarantined_segments: u64,
    /// What was not scanned, and why (e.g. Kafka partitions held by other
    /// nodes, quarantined hot segments), and Kafka records left waiting.
    pub not_scanned: Vec<String>,
}

impl Verification {
    /// True when nothing covered was found (see `cold_unreferenced_objects`).
    pub fn clean(&self) -> bool {
        self.hot_samples == 0 && self.hot_series == 0 && self.cold_rows == 0 && self.log_samples == 0
    }
}

/// One node's purge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeProgress {
    /// Per step (`log`, `hot`, `cold`, `verify`).
    pub steps: BTreeMap<String, StepProgress>,
    /// Purge rounds run (a round whose verification found data is followed by another).
    pub attempts: u32,
    /// The last verification.
    pub verification: Option<Verification>,
    /// When the node's verification came back clean.
    pub done_at: Option<i64>,
    /// The last error (the step is retried at the next check).
    pub last_error: Option<String>,
}

impl NodeProgress {
    /// The step's progress (pending when absent).
    pub fn step(&self, step: Step) -> StepProgress {
        self.steps.get(step.key()).cloned().unwrap_or_default()
    }

    /// The first step not done or off.
    pub fn next_step(&self) -> Option<Step> {
        Step::ALL.into_iter().find(|s| !matches!(self.step(*s).state, StepState::Done | StepState::Off))
    }

    /// Sets every step back to pending (a verification found covered data).
    pub fn restart(&mut self) {
        for s in self.steps.values_mut() {
            s.state = StepState::Pending;
        }
    }

    /// Sets the log and verify steps back to pending, the others staying
    /// done (Kafka records wait for their buckets to roll).
    pub fn restart_log(&mut self) {
        for step in [Step::Log, Step::Verify] {
            if let Some(s) = self.steps.get_mut(step.key()) {
                s.state = StepState::Pending;
            }
        }
    }
}

/// The status of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// `invisible`, `purging` or `completed`.
    pub state: String,
    /// When the samples became invisible (the request was recorded).
    pub invisible_at: i64,
    /// The bound: `requested_at + [erasure] purge_within`.
    pub deadline: i64,
    /// Nodes whose purge must finish: this node plus its `[cluster] peers`.
    pub nodes_expected: u32,
    /// Per node id.
    pub nodes: BTreeMap<String, NodeProgress>,
    /// The nodes summed, per tier (`log`, `hot`, `cold`, `verify`).
    pub tiers: BTreeMap<String, StepProgress>,
    /// The verifications summed (set once every node verified).
    pub verification: Option<Verification>,
    /// How the ingest log is purged, and the bound that gives.
    pub log_policy: String,
    /// When the request completed.
    pub completed_at: Option<i64>,
    /// Whether it completed by `deadline`.
    pub bound_met: Option<bool>,
    /// Samples and rows removed over every tier and node.
    pub rows_removed: u64,
    /// Bytes rewritten over every tier and node.
    pub bytes_rewritten: u64,
    /// Files rewritten or deleted over every tier and node.
    pub files_touched: u64,
}

impl Status {
    /// The status of a request just recorded.
    pub fn new(requested_at: i64, purge_within_ms: i64) -> Self {
        Self {
            state: INVISIBLE.to_owned(),
            invisible_at: requested_at,
            deadline: requested_at.saturating_add(purge_within_ms),
            ..Self::default()
        }
    }

    /// Parses a stored status; an older or unreadable one becomes a fresh status.
    pub fn parse(text: &str, requested_at: i64, purge_within_ms: i64) -> Self {
        match serde_json::from_str::<Status>(text) {
            Ok(s) if !s.state.is_empty() && s.deadline != 0 => s,
            _ => Self::new(requested_at, purge_within_ms),
        }
    }

    /// Recomputes `tiers`, `verification`, the totals and the state from
    /// `nodes`; completes the request at `now` when every expected node is done.
    pub fn summarise(&mut self, now: i64) {
        let mut tiers: BTreeMap<String, StepProgress> = BTreeMap::new();
        for step in Step::ALL {
            let mut sum = StepProgress::default();
            let mut states = Vec::new();
            for node in self.nodes.values() {
                let p = node.step(step);
                states.push(p.state);
                sum.files_rewritten += p.files_rewritten;
                sum.files_deleted += p.files_deleted;
                sum.rows_removed += p.rows_removed;
                sum.bytes_rewritten += p.bytes_rewritten;
                sum.started_at = min_some(sum.started_at, p.started_at);
                sum.finished_at = sum.finished_at.max(p.finished_at);
            }
            sum.state = combine(&states, self.nodes.len() < self.nodes_expected as usize);
            if sum.state != StepState::Done {
                sum.finished_at = None;
            }
            sum.detail = serde_json::Value::Null;
            tiers.insert(step.key().to_owned(), sum);
        }
        self.rows_removed = tiers.values().map(|t| t.rows_removed).sum();
        self.bytes_rewritten = tiers.values().map(|t| t.bytes_rewritten).sum();
        self.files_touched = tiers.values().map(|t| t.files_rewritten + t.files_deleted).sum();
        self.tiers = tiers;
        let all_done =
            self.nodes.len() >= self.nodes_expected.max(1) as usize && self.nodes.values().all(|n| n.done_at.is_some());
        if all_done {
            let mut v = Verification::default();
            for n in self.nodes.values().filter_map(|n| n.verification.as_ref()) {
                v.at = v.at.max(n.at);
                v.hot_samples += n.hot_samples;
                v.hot_series += n.hot_series;
                v.cold_rows += n.cold_rows;
                v.cold_unreferenced_objects += n.cold_unreferenced_objects;
                v.hot_quarantined_segments += n.hot_quarantined_segments;
                v.log_samples += n.log_samples;
                v.kafka_samples += n.kafka_samples;
                v.kafka_partitions_scanned += n.kafka_partitions_scanned;
                v.log_segments_scanned += n.log_segments_scanned;
                v.log_records_scanned += n.log_records_scanned;
                v.not_scanned.extend(n.not_scanned.iter().cloned());
            }
            self.verification = Some(v);
            if self.completed_at.is_none() {
                self.completed_at = Some(now);
            }
            self.bound_met = self.completed_at.map(|c| c <= self.deadline);
            self.state = COMPLETED.to_owned();
        } else if !self.nodes.is_empty() {
            self.state = PURGING.to_owned();
        }
    }
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    }
}

/// A tier's state over the nodes: done when all are done (or off), running
/// when any started, off when all are off.
fn combine(states: &[StepState], missing_nodes: bool) -> StepState {
    if states.is_empty() {
        return StepState::Pending;
    }
    if states.iter().all(|s| *s == StepState::Off) && !missing_nodes {
        return StepState::Off;
    }
    if states.iter().all(|s| matches!(s, StepState::Done | StepState::Off)) && !missing_nodes {
        return StepState::Done;
    }
    if states.iter().any(|s| *s != StepState::Pending) {
        return StepState::Running;
    }
    StepState::Pending
}

#[cfg(test)]
mod tests;
