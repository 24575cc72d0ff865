//! Pre-aggregation: per-measurement windows of min, max, sum, count and last
//! per series, forwarded as their own series, corrected (replaced, never
//! added to) by late samples, and mergeable across an HA pair of agents.
//!
//! ```text
//! intake ──append (fsync)──► queue ◄──────────── emission batches (Agent::append)
//!                              │  raw batches, in seq order        ▲
//!                              ▼                                   │ end + delay passed, or
//!                      Aggregator::fold ── windows ── due() ───────┘ dirty and the previous
//!                              │   {min,max,sum,count,last,          emission acknowledged
//!                              │    emitted_seq, dirty}
//!                              ▼ ≤ 1/s, or when the forwarder waits
//!                      <data_dir>/aggregate/state  (tmp + fsync + rename + fsync dir)
//!                              │ durable_through
//!                              ▼
//! forwarder: strip(batch) ─send─► 2xx ─► wait_durable(seq) ─► ack_one(seq)
//! ```
//!
//! * **Fold.** The aggregator thread (`driver.rs`) reads every batch of the
//!   queue in sequence order and folds the lines of measurements with a
//!   `[[aggregate]]` rule into per-(series, window) state: per numeric field
//!   min, max, sum, count and last (the value at the greatest timestamp;
//!   on equal timestamps the one folded later). Windows are aligned to the
//!   Unix epoch: `[k·window, (k+1)·window)`.
//! * **Strip.** The forwarder sends each batch through [`strip`]: lines of
//!   an aggregated measurement without `passthrough` are removed (a pure
//!   function of the rules and the payload); an empty remainder is
//!   acknowledged without a request.
//! * **Acknowledge only what the checkpoint covers.** The forwarder
//!   acknowledges a batch only once the aggregator's durable state file
//!   covers it ([`Handle::wait_durable`]), so a crash at any instant re-folds
//!   exactly the batches the state file does not cover, and a raw sample is
//!   in its window exactly once.
//! * **Emit.** When `end + delay` has passed (the agent's wall clock), the
//!   window is appended to the queue as an emission section (one line per
//!   series, timestamp = the window end, label `edge_agent` = the origin id
//!   `<agent_id>.<queue id>`), durable and forwarded like any batch. Lines
//!   of an emission are written between [`SECTION_BEGIN`] and
//!   [`SECTION_END`] comment lines (the server skips comments), so they stay
//!   recognisable when the writer thread merges them with intake requests.
//! * **Correct, never add.** A sample folded into an emitted window marks it
//!   dirty; its full new state is appended (same series, same timestamp)
//!   only once the previous emission is acknowledged in the queue, so the
//!   server applies one window's emissions in order and keeps the last.
//! * **Late.** A sample whose batch was queued more than `max_late` after
//!   its window's end, or whose window was already closed, is dropped,
//!   counted (`strata_edge_aggregate_late_samples_dropped_total`) and logged
//!   at most once a minute. Decisions use the batch's enqueue time, so a
//!   re-fold after a crash decides the same (except that a window closed
//!   after the last state file is open again: a sample the first fold found
//!   late for it is then kept, never the other way round).
//! * **Restart.** Emission sections of batches queued before this process
//!   started (made by the previous one, maybe unknown to the state file) mark
//!   their windows emitted at that batch and dirty: the window is emitted
//!   again, with its full state, only after that batch is acknowledged.
//! * **Close.** A window whose `end + max_late` (plus a 10 s margin) is
//!   behind the aggregator's horizon (the greatest enqueue time folded, or
//!   the clock when everything queued is folded), and whose last emission is
//!   acknowledged and clean, is dropped from memory; its measurement's
//!   `closed` mark moves to its end, and later samples for it are late.
//!
//! The state file's layout is in `aggregate/FORMAT.md` (`state.rs`).

mod driver;
mod state;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strata_schemas::ConfigError;
use strata_schemas::line_protocol::{FieldValue, ParsedLine, parse_lines, write_line};

pub use driver::{AggregateStatus, Handle, open, spawn};
pub use state::StateError;

use crate::queue::{Batch, Queue};

/// First line of an emission section in a queued batch.
pub const SECTION_BEGIN: &str = "# strata-edge aggregate v1 begin";
/// Last line of an emission section.
pub const SECTION_END: &str = "# strata-edge aggregate end";
/// The label naming the agent (origin) an aggregate series comes from.
pub const AGENT_LABEL: &str = "edge_agent";

/// How far behind the horizon a window's `end + max_late` must be before it
/// is closed (batches queued concurrently may carry slightly older times).
const CLOSE_MARGIN_MS: i64 = 10_000;
/// Emission payloads are cut at about this size.
const MAX_EMISSION_BYTES: usize = 256 << 10;

fn default_delay() -> Duration {
    Duration::from_secs(10)
}

fn default_max_late() -> Duration {
    Duration::from_secs(3600)
}

/// One `[[aggregate]]` rule: windows of one measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateRule {
    /// The measurement (line protocol) whose lines are aggregated.
    pub measurement: String,
    /// Window length (at least 1 s, whole milliseconds); windows are aligned
    /// to the Unix epoch.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Also forward the raw lines (default: only the aggregates).
    #[serde(default)]
    pub passthrough: bool,
    /// How long after a window's end it is first emitted (default 10 s).
    #[serde(default = "default_delay", with = "humantime_serde")]
    pub delay: Duration,
    /// How long after a window's end late samples still correct it (default
    /// 1 h; at least `delay`, at most 7 days). Later ones are dropped,
    /// counted and logged.
    #[serde(default = "default_max_late", with = "humantime_serde")]
    pub max_late: Duration,
}

impl AggregateRule {
    fn validate(&self) -> Result<(), ConfigError> {
        let m = &self.measurement;
        let bad = |key: &str, value: Duration, rule: &str| {
            Err(ConfigError::invalid("aggregate", key, value, format!("{rule} (the rule of measurement {m:?})")))
        };
        if m.is_empty() || m.starts_with('#') || m.contains('\n') || m.chars().any(char::is_control) {
            let rule = "must be non-empty, without control characters or a leading #";
            return Err(ConfigError::invalid("aggregate", "measurement", m, rule));
        }
        if self.window < Duration::from_secs(1) || !self.window.subsec_nanos().is_multiple_of(1_000_000) {
            return bad("window", self.window, "must be at least 1s and whole milliseconds");
        }
        if self.window > Duration::from_secs(7 * 86_400) {
            return bad("window", self.window, "must be at most 7 days");
        }
        if self.max_late > Duration::from_secs(7 * 86_400) {
            return bad("max_late", self.max_late, "must be at most 7 days");
        }
        if self.max_late < self.delay {
            return bad("max_late", self.max_late, &format!("must be at least delay ({:?})", self.delay));
        }
        Ok(())
    }
}

/// Checks the `[[aggregate]]` rules: each valid, one per measurement.
pub fn validate_rules(rules: &[AggregateRule]) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for r in rules {
        r.validate()?;
        if !seen.insert(r.measurement.as_str()) {
            return Err(ConfigError::invalid("aggregate", "measurement", &r.measurement, "has two rules"));
        }
    }
    Ok(())
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A rule in the units the aggregator computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    window_ns: i64,
    delay_ms: i64,
    max_late_ms: i64,
}

/// The rules by measurement.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    by_measurement: BTreeMap<String, Rule>,
}

impl Rules {
    /// From validated `[[aggregate]]` rules.
    pub fn new(rules: &[AggregateRule]) -> Rules {
        let by_measurement = rules
            .iter()
            .map(|r| {
                let window_ns = i64::try_from(r.window.as_nanos()).unwrap_or(i64::MAX);
                (r.measurement.clone(), Rule { window_ns, delay_ms: ms(r.delay), max_late_ms: ms(r.max_late) })
            })
            .collect();
        Rules { by_measurement }
    }

    /// A window of a measurement whose rule is gone (the configuration
    /// changed) is emitted and closed as soon as possible.
    fn timing(&self, measurement: &str) -> (i64, i64) {
        self.by_measurement.get(measurement).map_or((0, 0), |r| (r.delay_ms, r.max_late_ms))
    }
}

enum Marker {
    Begin,
    End,
}

fn marker(line: &[u8]) -> Option<Marker> {
    let line = line.trim_ascii_end();
    if line == SECTION_BEGIN.as_bytes() {
        Some(Marker::Begin)
    } else if line == SECTION_END.as_bytes() {
        Some(Marker::End)
    } else {
        None
    }
}

/// Whether a raw line belongs to an aggregated measurement without passthrough.
fn aggregated_only(rules: &[AggregateRule], line: &[u8]) -> bool {
    match parse_lines(line).next() {
        Some(Ok(parsed)) => rules.iter().any(|r| !r.passthrough && r.measurement == parsed.measurement),
        _ => false,
    }
}

/// The part of a queued batch the forwarder sends: every line but the raw
/// lines of aggregated measurements without `passthrough` (emission
/// sections are kept whole). Borrowed when nothing is removed; empty when
/// nothing is left to send.
pub fn strip<'a>(rules: &[AggregateRule], payload: &'a [u8]) -> Cow<'a, [u8]> {
    if rules.iter().all(|r| r.passthrough) {
        return Cow::Borrowed(payload);
    }
    let mut out = Vec::with_capacity(payload.len());
    let (mut section, mut removed) = (false, false);
    for line in payload.split_inclusive(|&b| b == b'\n') {
        let keep = match marker(line) {
            Some(Marker::Begin) => {
                section = true;
                true
            }
            Some(Marker::End) => {
                section = false;
                true
            }
            None => section || !aggregated_only(rules, line),
        };
        if keep {
            out.extend_from_slice(line);
        } else {
            removed = true;
        }
    }
    if removed { Cow::Owned(out) } else { Cow::Borrowed(payload) }
}

/// [`strip`] applied to a batch about to be sent (the forwarder's one call).
pub fn strip_batch(rules: &[AggregateRule], mut batch: Batch) -> Batch {
    if let Cow::Owned(p) = strip(rules, &batch.payload) {
        batch.payload = p;
    }
    batch
}

/// How long the forwarder waits for the state file to cover a batch before
/// it gives up on acknowledging it (the batch is then sent again).
const WAIT_DURABLE: Duration = Duration::from_secs(30);

/// Blocks until the aggregator's state file covers batch `seq` (no-op
/// without aggregation); the forwarder calls it before `ack_one(seq)`.
pub fn wait_durable(agent: &crate::agent::Agent, seq: u64) -> crate::Result<()> {
    match &agent.aggregate {
        Some(handle) => Ok(handle.wait_durable(seq, WAIT_DURABLE)?),
        None => Ok(()),
    }
}

/// A series: measurement and tags sorted by key (without [`AGENT_LABEL`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SeriesKey {
    pub(crate) measurement: String,
    pub(crate) tags: Vec<(String, String)>,
}

impl SeriesKey {
    fn of(line: &ParsedLine<'_>) -> SeriesKey {
        let mut tags: Vec<(String, String)> = line
            .tags
            .iter()
            .filter(|(k, _)| k != AGENT_LABEL)
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        tags.sort();
        SeriesKey { measurement: line.measurement.as_ref().to_owned(), tags }
    }
}

/// One field's aggregate in one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) sum: f64,
    pub(crate) count: u64,
    pub(crate) last: f64,
    pub(crate) last_ts: i64,
}

impl Stats {
    fn new(v: f64, ts: i64) -> Stats {
        Stats { min: v, max: v, sum: v, count: 1, last: v, last_ts: ts }
    }

    fn add(&mut self, v: f64, ts: i64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v;
        self.count += 1;
        if ts >= self.last_ts {
            self.last = v;
            self.last_ts = ts;
        }
    }
}

/// One (series, window).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Window {
    /// Window start (ns); the end is the key.
    pub(crate) start: i64,
    /// Sequence number of the batch holding its last emission (0: never emitted).
    pub(crate) emitted_seq: u64,
    /// Changed since that emission (a correction is due once it is acknowledged).
    pub(crate) dirty: bool,
    /// Per field.
    pub(crate) fields: BTreeMap<String, Stats>,
}

/// Everything the state file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct State {
    /// The queue's origin id the state belongs to (`<agent_id>.<queue id>`).
    pub(crate) origin: String,
    /// Every batch numbered up to this one is folded (or was acknowledged
    /// before it could be: aggregation off at the time, or dropped).
    pub(crate) folded_through: u64,
    /// Greatest enqueue time folded, or the clock when all was folded (ms).
    pub(crate) horizon_ms: i64,
    /// Per measurement: windows ending at or before this (ns) are closed.
    pub(crate) closed: BTreeMap<String, i64>,
    /// Open and correctable windows, by (series, window end ns).
    pub(crate) windows: BTreeMap<(SeriesKey, i64), Window>,
}

/// Counters since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Numeric fields folded into windows.
    pub samples_folded: u64,
    /// Samples dropped because their window was closed or they came after `max_late`.
    pub late_samples_dropped: u64,
    /// First emissions of windows appended to the queue.
    pub emissions: u64,
    /// Corrected emissions (a window emitted again after late samples or a restart).
    pub corrections: u64,
    /// Windows closed (dropped from memory after `max_late`).
    pub windows_closed: u64,
    /// State files written.
    pub checkpoints: u64,
}

/// Windows to append as one emission batch.
#[derive(Debug)]
pub struct Emission {
    /// Line protocol: an emission section.
    pub payload: Vec<u8>,
    /// The windows in it, and whether it is their first emission.
    windows: Vec<((SeriesKey, i64), bool)>,
}

/// The aggregator's state and logic (synchronous; `driver.rs` runs it on a
/// thread next to the queue). Also driven directly by the property tests.
#[derive(Debug)]
pub struct Aggregator {
    rules: Rules,
    path: PathBuf,
    fsync: bool,
    state: State,
    /// Batches numbered from here were appended by this process: their
    /// emission sections are this aggregator's own.
    run_start: u64,
    /// Emission payloads are cut at about this size.
    max_emission_bytes: usize,
    counters: Counters,
    last_late_log: Option<Instant>,
    late_unlogged: u64,
    /// Changed since the state file was last written.
    changed: bool,
}

/// The state file in `dir`.
pub const STATE_FILE: &str = "state";
const STATE_TMP: &str = "state.tmp";

fn floor_ms(ns: i64) -> i64 {
    ns.div_euclid(1_000_000)
}

impl Aggregator {
    /// Loads `<dir>/state` (a missing file is an empty state; a damaged one
    /// is an error; one written for another queue is set aside with a
    /// warning). `next_seq` is the queue's next sequence number: batches from
    /// it on are this process's.
    pub fn open(dir: &Path, rules: Rules, origin: &str, next_seq: u64, fsync: bool) -> Result<Aggregator, StateError> {
        fs::create_dir_all(dir).map_err(|source| StateError::Write { path: dir.to_owned(), source })?;
        let _ = fs::remove_file(dir.join(STATE_TMP));
        let path = dir.join(STATE_FILE);
        let mut state = match fs::read(&path) {
            Ok(bytes) => state::decode(&bytes, &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let queue_id = |o: &str| o.rsplit_once('.').map(|(_, q)| q.to_owned());
        if state.origin.is_empty() {
            state.origin = origin.to_owned();
        } else if queue_id(&state.origin) != queue_id(origin) {
            tracing::warn!(
                path = %path.display(), found = %state.origin, queue = %origin,
                "aggregate state belongs to another queue (the queue was re-created); starting empty"
            );
            state = State { origin: origin.to_owned(), ..State::default() };
        } else if state.origin != origin {
            // The same queue under a new agent_id: its windows were (partly)
            // emitted under the old label; a new label would count them twice.
            tracing::warn!(
                found = %state.origin, agent = %origin,
                "agent_id changed: aggregates keep the label edge_agent={} for this queue", state.origin
            );
        }
        Ok(Aggregator {
            rules,
            path,
            fsync,
            state,
            run_start: next_seq,
            max_emission_bytes: MAX_EMISSION_BYTES,
            counters: Counters::default(),
            last_late_log: None,
            late_unlogged: 0,
            changed: true,
        })
    }

    /// Cuts emission payloads at about `bytes` (at least one window each),
    /// so that they fit a small queue bound.
    pub fn set_max_emission_bytes(&mut self, bytes: usize) {
        self.max_emission_bytes = bytes.clamp(1, MAX_EMISSION_BYTES);
    }

    /// Every batch up to this one is folded.
    pub fn folded_through(&self) -> u64 {
        self.state.folded_through
    }

    /// Counters since open.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Windows held, and how many of them wait for a correction.
    pub fn windows(&self) -> (u64, u64) {
        let dirty = self.state.windows.values().filter(|w| w.dirty).count();
        (self.state.windows.len() as u64, dirty as u64)
    }

    /// Whether the state changed since the state file was written.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Folds every batch appended and not yet folded, reading the queue one
    /// batch at a time (the lock is not held while folding). Batches already
    /// acknowledged (aggregation was off) or gone (dropped) are passed over.
    pub fn catch_up(&mut self, queue: &std::sync::Mutex<Queue>) -> crate::Result<()> {
        loop {
            let (seq, batch) = {
                let q = queue.lock().expect("queue lock is never poisoned");
                let next = q.stats().next_seq;
                match q.next_unacked_seq_below(self.state.folded_through + 1, next) {
                    Some(seq) => (seq, q.read(seq)?),
                    None => {
                        self.pass_to(next - 1);
                        return Ok(());
                    }
                }
            };
            self.pass_to(seq - 1);
            match batch {
                Some(b) => self.fold(&b),
                None => self.pass_to(seq),
            }
        }
    }

    /// Marks every batch up to `seq` as passed (acknowledged or gone without folding).
    fn pass_to(&mut self, seq: u64) {
        if seq > self.state.folded_through {
            self.state.folded_through = seq;
            self.changed = true;
        }
    }

    /// Folds one batch (the next one after [`Aggregator::folded_through`],
    /// or a later one when those between are acknowledged or gone).
    pub fn fold(&mut self, batch: &Batch) {
        if batch.seq <= self.state.folded_through {
            return;
        }
        let ours = batch.seq >= self.run_start;
        let mut section = false;
        for line in batch.payload.split_inclusive(|&b| b == b'\n') {
            match marker(line) {
                Some(Marker::Begin) => section = true,
                Some(Marker::End) => section = false,
                None => {
                    let Some(Ok(parsed)) = parse_lines(line).next() else { continue };
                    if !section {
                        self.fold_line(&parsed, batch.enqueued_ms);
                    } else if !ours {
                        self.replayed_emission(&parsed, batch.seq);
                    }
                }
            }
        }
        self.state.folded_through = batch.seq;
        self.state.horizon_ms = self.state.horizon_ms.max(batch.enqueued_ms);
        self.changed = true;
    }

    fn fold_line(&mut self, line: &ParsedLine<'_>, enqueued_ms: i64) {
        let Some(rule) = self.rules.by_measurement.get(line.measurement.as_ref()).copied() else { return };
        let Some(ts) = line.timestamp else { return };
        let numeric = |v: &FieldValue<'_>| match v {
            FieldValue::Float(f) => Some(*f),
            FieldValue::Integer(i) => Some(*i as f64),
            FieldValue::UInteger(u) => Some(*u as f64),
            FieldValue::Boolean(b) => Some(f64::from(u8::from(*b))),
            FieldValue::String(_) => None,
        };
        let n = line.fields.iter().filter(|(_, v)| numeric(v).is_some()).count() as u64;
        if n == 0 {
            return;
        }
        let closed = |end: i64| self.state.closed.get(line.measurement.as_ref()).is_some_and(|&c| end <= c);
        let window = ts.div_euclid(rule.window_ns).checked_mul(rule.window_ns).and_then(|start| {
            let end = start.checked_add(rule.window_ns)?;
            (!closed(end) && enqueued_ms <= floor_ms(end).saturating_add(rule.max_late_ms)).then_some((start, end))
        });
        // Outside i64 nanoseconds, a closed window or past max_late: dropped, counted.
        let Some((start, end)) = window else { return self.late(n, line, ts) };
        let w = self.state.windows.entry((SeriesKey::of(line), end)).or_insert_with(|| Window {
            start,
            emitted_seq: 0,
            dirty: false,
            fields: BTreeMap::new(),
        });
        for (k, v) in &line.fields {
            let Some(v) = numeric(v) else { continue };
            match w.fields.get_mut(k.as_ref()) {
                Some(s) => s.add(v, ts),
                None => {
                    w.fields.insert(k.as_ref().to_owned(), Stats::new(v, ts));
                }
            }
        }
        if w.emitted_seq != 0 {
            w.dirty = true;
        }
        self.counters.samples_folded += n;
    }

    fn late(&mut self, n: u64, line: &ParsedLine<'_>, ts: i64) {
        self.counters.late_samples_dropped += n;
        self.late_unlogged += n;
        if self.last_late_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            tracing::warn!(
                measurement = %line.measurement,
                timestamp_ns = ts,
                samples = self.late_unlogged,
                "aggregate: samples for a window closed or past max_late were dropped (logged at most once a minute)"
            );
            self.last_late_log = Some(Instant::now());
            self.late_unlogged = 0;
        }
    }

    /// An emission section queued by the previous process: its windows count
    /// as emitted at `seq` and are emitted again (whole) once it is acknowledged.
    fn replayed_emission(&mut self, line: &ParsedLine<'_>, seq: u64) {
        let Some(end) = line.timestamp else { return };
        if let Some(w) = self.state.windows.get_mut(&(SeriesKey::of(line), end)) {
            w.emitted_seq = w.emitted_seq.max(seq);
            w.dirty = true;
        }
    }

    /// One round of the aggregator (without the state file): folds what was
    /// queued, moves the horizon to `now_ms`, closes what may be closed, and
    /// appends every emission due through `append` (the agent: the queue's
    /// writer thread). The queue lock is not held while `append` runs.
    pub fn round(
        &mut self,
        queue: &std::sync::Mutex<Queue>,
        now_ms: i64,
        append: &mut dyn FnMut(Vec<u8>) -> crate::Result<u64>,
    ) -> crate::Result<()> {
        self.catch_up(queue)?;
        self.advance_horizon(now_ms);
        let lock = || queue.lock().expect("queue lock is never poisoned");
        {
            let q = lock();
            self.close(&mut |s| q.is_acked(s));
        }
        loop {
            let due = {
                let q = lock();
                self.due(now_ms, &mut |s| q.is_acked(s))
            };
            let Some(emission) = due else { return Ok(()) };
            let seq = append(emission.payload.clone())?;
            self.emitted(&emission, seq);
        }
    }

    /// Moves the horizon to `now_ms` (call when every batch queued is folded).
    /// Not a change worth a state file of its own: an older horizon after a
    /// restart only closes windows later.
    pub fn advance_horizon(&mut self, now_ms: i64) {
        self.state.horizon_ms = self.state.horizon_ms.max(now_ms);
    }

    /// The windows due for emission at `now_ms`: never emitted and past
    /// `end + delay`, or dirty with their last emission acknowledged. `None`
    /// when nothing is due. Append the payload, then call [`Aggregator::emitted`].
    pub fn due(&self, now_ms: i64, is_acked: &mut dyn FnMut(u64) -> bool) -> Option<Emission> {
        let mut out = String::new();
        let mut windows = Vec::new();
        for (key, w) in &self.state.windows {
            let (delay_ms, _) = self.rules.timing(&key.0.measurement);
            let ready = match w.emitted_seq {
                0 => floor_ms(key.1).saturating_add(delay_ms) <= now_ms,
                seq => w.dirty && is_acked(seq),
            };
            if !ready {
                continue;
            }
            if out.is_empty() {
                out.push_str(SECTION_BEGIN);
                out.push('\n');
            }
            write_window(&mut out, &key.0, key.1, w, &self.state.origin);
            windows.push((key.clone(), w.emitted_seq == 0));
            if out.len() >= self.max_emission_bytes {
                break;
            }
        }
        if windows.is_empty() {
            return None;
        }
        out.push_str(SECTION_END);
        out.push('\n');
        Some(Emission { payload: out.into_bytes(), windows })
    }

    /// Records that `e` was appended to the queue as batch `seq`.
    pub fn emitted(&mut self, e: &Emission, seq: u64) {
        for (key, first) in &e.windows {
            if let Some(w) = self.state.windows.get_mut(key) {
                w.emitted_seq = seq;
                w.dirty = false;
            }
            if *first {
                self.counters.emissions += 1;
            } else {
                self.counters.corrections += 1;
            }
        }
        self.changed = true;
    }

    /// Closes the windows past `end + max_late` (and the margin) behind the
    /// horizon whose last emission is acknowledged and clean. Returns how many.
    pub fn close(&mut self, is_acked: &mut dyn FnMut(u64) -> bool) -> usize {
        let horizon = self.state.horizon_ms;
        let mut gone = Vec::new();
        for (key, w) in &self.state.windows {
            let (_, max_late_ms) = self.rules.timing(&key.0.measurement);
            let expired = floor_ms(key.1).saturating_add(max_late_ms).saturating_add(CLOSE_MARGIN_MS) < horizon;
            if expired && w.emitted_seq != 0 && !w.dirty && is_acked(w.emitted_seq) {
                gone.push(key.clone());
            }
        }
        for key in &gone {
            self.state.windows.remove(key);
            let c = self.state.closed.entry(key.0.measurement.clone()).or_insert(i64::MIN);
            *c = (*c).max(key.1);
        }
        if !gone.is_empty() {
            self.counters.windows_closed += gone.len() as u64;
            self.changed = true;
        }
        gone.len()
    }

    /// Writes the state file atomically (tmp + fsync + rename + fsync dir;
    /// no fsyncs under `fsync = "never"`). Returns the batches it covers.
    pub fn checkpoint(&mut self) -> Result<u64, StateError> {
        let bytes = state::encode(&self.state);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(STATE_TMP);
        let werr = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Write { path, source }
        };
        {
            use std::io::Write as _;
            let mut f = fs::File::create(&tmp).map_err(werr(&tmp))?;
            f.write_all(&bytes).map_err(werr(&tmp))?;
            if self.fsync {
                f.sync_all().map_err(werr(&tmp))?;
            }
        }
        fs::rename(&tmp, &self.path).map_err(werr(&self.path))?;
        if self.fsync {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(werr(dir))?;
        }
        self.changed = false;
        self.counters.checkpoints += 1;
        Ok(self.state.folded_through)
    }
}

/// One emission line: `<measurement>,<tags>,edge_agent=<origin>
/// <f>_min=…,<f>_max=…,<f>_sum=…,<f>_count=…i,<f>_last=… <end_ns>` (the
/// field `value` gives `min`, `max`, … so the series are `<measurement>_min`, …).
fn write_window(out: &mut String, series: &SeriesKey, end: i64, w: &Window, origin: &str) {
    let mut tags: Vec<(Cow<'_, str>, Cow<'_, str>)> =
        series.tags.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str()))).collect();
    tags.push((Cow::Borrowed(AGENT_LABEL), Cow::Borrowed(origin)));
    tags.sort();
    let mut fields = Vec::with_capacity(w.fields.len() * 5);
    for (name, s) in &w.fields {
        let prefix = if name == "value" { String::new() } else { format!("{name}_") };
        fields.push((Cow::Owned(format!("{prefix}min")), FieldValue::Float(s.min)));
        fields.push((Cow::Owned(format!("{prefix}max")), FieldValue::Float(s.max)));
        if s.sum.is_finite() {
            fields.push((Cow::Owned(format!("{prefix}sum")), FieldValue::Float(s.sum)));
        }
        fields.push((
            Cow::Owned(format!("{prefix}count")),
            FieldValue::Integer(i64::try_from(s.count).unwrap_or(i64::MAX)),
        ));
        fields.push((Cow::Owned(format!("{prefix}last")), FieldValue::Float(s.last)));
    }
    let line = ParsedLine {
        line_no: 0,
        measurement: Cow::Borrowed(series.measurement.as_str()),
        tags,
        fields,
        timestamp: Some(end),
    };
    write_line(out, &line);
}
