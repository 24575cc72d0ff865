//! Unit tests of the aggregator, the frozen state-file format, and the
//! convergence property test (`converges_to_aggregating_every_sample_once`).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;
use strata_schemas::line_protocol::{FieldValue, parse_lines};

use super::*;
use crate::queue::{FsyncPolicy, Queue, QueueConfig};

const SEC: i64 = 1_000_000_000;

fn rule(measurement: &str, window_s: u64, delay_s: u64, max_late_s: u64, passthrough: bool) -> AggregateRule {
    AggregateRule {
        measurement: measurement.to_owned(),
        window: Duration::from_secs(window_s),
        passthrough,
        delay: Duration::from_secs(delay_s),
        max_late: Duration::from_secs(max_late_s),
    }
}

fn queue_config() -> QueueConfig {
    QueueConfig { fsync: FsyncPolicy::Never, segment_bytes: 4096, ..QueueConfig::default() }
}

fn open_queue(dir: &Path) -> Mutex<Queue> {
    Mutex::new(Queue::open(&dir.join("queue"), queue_config()).unwrap().0)
}

fn open_agg(dir: &Path, rules: &[AggregateRule], queue: &Mutex<Queue>) -> Aggregator {
    let next = queue.lock().unwrap().stats().next_seq;
    Aggregator::open(&dir.join("aggregate"), Rules::new(rules), "gw.q", next, false).unwrap()
}

/// Appends a batch queued at `at_ms`.
fn append(queue: &Mutex<Queue>, payload: &str, at_ms: i64) -> u64 {
    queue.lock().unwrap().append(payload.as_bytes(), at_ms).unwrap()
}

/// A round at `now_ms` whose emissions are queued at `now_ms`; returns their payloads.
fn round(agg: &mut Aggregator, queue: &Mutex<Queue>, now_ms: i64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    agg.round(queue, now_ms, &mut |p| {
        let seq = queue.lock().unwrap().append(&p, now_ms)?;
        out.push((seq, String::from_utf8(p).unwrap()));
        Ok(seq)
    })
    .unwrap();
    out
}

#[test]
fn strip_removes_only_raw_lines_of_aggregated_measurements() {
    let rules = [rule("soil", 60, 10, 3600, false), rule("air", 60, 10, 3600, true)];
    let payload = format!(
        "soil,dev=a moisture=1 1\nair,dev=a t=2 1\nother v=3 1\n{SECTION_BEGIN}\nsoil,dev=a,edge_agent=g moisture_min=1 60000000000\n{SECTION_END}\nsoil v=4 2\n"
    );
    let out = strip(&rules, payload.as_bytes());
    let expected = format!(
        "air,dev=a t=2 1\nother v=3 1\n{SECTION_BEGIN}\nsoil,dev=a,edge_agent=g moisture_min=1 60000000000\n{SECTION_END}\n"
    );
    assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
    assert!(strip(&rules, b"soil v=1 1\nsoil v=2 2\n").is_empty(), "nothing left to send");
    assert!(matches!(strip(&rules, b"air v=1 1\n"), Cow::Borrowed(_)), "unchanged: not copied");
    assert!(matches!(strip(&[], b"soil v=1 1\n"), Cow::Borrowed(_)));
}

#[test]
fn emits_one_line_per_series_after_end_plus_delay() {
    let dir = tempfile::tempdir().unwrap();
    let q = open_queue(dir.path());
    let mut agg = open_agg(dir.path(), &[rule("soil", 60, 10, 3600, false)], &q);
    let t0 = 1_700_000_040 * SEC; // window [1_700_000_040, 1_700_000_100) s
    append(
        &q,
        &format!(
            "soil,dev=a moisture=3,temp=1i,ok=true,note=\"x\" {}\nsoil,dev=a moisture=1 {}\nsoil,dev=b value=5 {}\nair v=1 {}\n",
            t0 + 5 * SEC,
            t0 + 2 * SEC,
            t0,
            t0
        ),
        1_700_000_050_000,
    );
    let end_ms = 1_700_000_100_000;
    assert!(round(&mut agg, &q, end_ms + 9_999).is_empty(), "not before end + delay");
    let out = round(&mut agg, &q, end_ms + 10_000);
    assert_eq!(out.len(), 1);
    let end_ns = end_ms * 1_000_000;
    assert_eq!(
        out[0].1,
        format!(
            "{SECTION_BEGIN}\n\
             soil,dev=a,edge_agent=gw.q moisture_min=1,moisture_max=3,moisture_sum=4,moisture_count=2i,moisture_last=3,\
             ok_min=1,ok_max=1,ok_sum=1,ok_count=1i,ok_last=1,temp_min=1,temp_max=1,temp_sum=1,temp_count=1i,temp_last=1 {end_ns}\n\
             soil,dev=b,edge_agent=gw.q min=5,max=5,sum=5,count=1i,last=5 {end_ns}\n\
             {SECTION_END}\n"
        )
    );
    assert_eq!(agg.counters().emissions, 2);
    assert_eq!(agg.counters().samples_folded, 5);
    assert!(round(&mut agg, &q, end_ms + 20_000).is_empty(), "emitted once");
}

#[test]
fn a_late_sample_is_corrected_only_after_the_previous_emission_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let q = open_queue(dir.path());
    let mut agg = open_agg(dir.path(), &[rule("m", 10, 1, 60, false)], &q);
    let t = 1_000 * SEC; // window [1000, 1010)
    append(&q, &format!("m v=1 {}\n", t + SEC), 1_005_000);
    let first = round(&mut agg, &q, 1_011_000);
    assert_eq!(first.len(), 1);
    append(&q, &format!("m v=7 {}\n", t + 2 * SEC), 1_020_000);
    assert!(round(&mut agg, &q, 1_021_000).is_empty(), "the first emission is not acknowledged yet");
    assert_eq!(agg.windows(), (1, 1));
    q.lock().unwrap().ack_one(first[0].0).unwrap();
    let second = round(&mut agg, &q, 1_022_000);
    assert_eq!(second.len(), 1);
    assert!(second[0].1.contains(" v_min=1,v_max=7,v_sum=8,v_count=2i,v_last=7 1010000000000\n"), "{}", second[0].1);
    assert_eq!(agg.counters().corrections, 1);
    // Past max_late (enqueued after end + 60 s): dropped and counted.
    append(&q, &format!("m v=100 {}\n", t + 3 * SEC), 1_071_000);
    q.lock().unwrap().ack_one(second[0].0).unwrap();
    assert!(round(&mut agg, &q, 1_072_000).is_empty());
    assert_eq!(agg.counters().late_samples_dropped, 1);
    // Closed once end + max_late + margin is behind the horizon; later samples are late.
    round(&mut agg, &q, 1_010_000 + 60_000 + CLOSE_MARGIN_MS + 1);
    assert_eq!(agg.windows(), (0, 0));
    assert_eq!(agg.counters().windows_closed, 1);
    append(&q, &format!("m v=100 {}\n", t + 4 * SEC), 1_030_000);
    round(&mut agg, &q, 1_090_000);
    assert_eq!(agg.counters().late_samples_dropped, 2, "the window is closed");
}

#[test]
fn a_restart_refolds_what_the_state_file_does_not_cover_and_reemits_after_the_old_emission() {
    let dir = tempfile::tempdir().unwrap();
    let rules = [rule("m", 10, 1, 60, false)];
    let q = open_queue(dir.path());
    let mut agg = open_agg(dir.path(), &rules, &q);
    append(&q, &format!("m v=1 {}\n", 1_001 * SEC), 1_002_000);
    round(&mut agg, &q, 1_003_000);
    assert_eq!(agg.checkpoint().unwrap(), 1);
    append(&q, &format!("m v=2 {}\n", 1_002 * SEC), 1_004_000);
    let e1 = round(&mut agg, &q, 1_011_000);
    assert_eq!(e1.len(), 1);
    // kill -9: the state file covers batch 1 only; batch 2 and the emission (3) are re-read.
    drop(agg);
    let mut agg = open_agg(dir.path(), &rules, &q);
    assert_eq!(agg.folded_through(), 1);
    assert!(round(&mut agg, &q, 1_012_000).is_empty(), "emission 3 (the previous process's) is not acknowledged");
    assert_eq!(agg.windows(), (1, 1));
    q.lock().unwrap().ack_one(e1[0].0).unwrap();
    let e2 = round(&mut agg, &q, 1_013_000);
    assert!(e2[0].1.contains(" v_min=1,v_max=2,v_sum=3,v_count=2i,v_last=2 1010000000000\n"), "{}", e2[0].1);
}

#[test]
fn emission_sections_merged_into_intake_batches_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let rules = [rule("m", 10, 1, 60, false)];
    let q = open_queue(dir.path());
    let mut agg = open_agg(dir.path(), &rules, &q);
    append(&q, &format!("m v=1 {}\n", 1_001 * SEC), 1_002_000);
    let mut payloads = Vec::new();
    agg.round(&q, 1_011_000, &mut |p| {
        // The writer thread merged the emission with an intake request.
        let merged = format!("m v=5 {}\n{}", 1_012 * SEC, String::from_utf8(p).unwrap());
        payloads.push(merged.clone());
        q.lock().unwrap().append(merged.as_bytes(), 1_011_000)
    })
    .unwrap();
    round(&mut agg, &q, 1_011_100);
    assert_eq!(agg.counters().samples_folded, 2, "the raw line beside the section is folded, the section is not");
    let sent = strip(&rules, payloads[0].as_bytes());
    assert!(std::str::from_utf8(&sent).unwrap().starts_with(SECTION_BEGIN), "raw line stripped, section kept");
}

#[test]
fn rules_are_validated_and_the_example_file_shows_the_defaults() {
    let c: crate::config::AgentConfig = toml::from_str(include_str!("../../strata-edge.example.toml")).unwrap();
    assert_eq!(c.aggregate, [rule("soil", 300, 10, 3600, false)]);
    let mut parsed: crate::config::AgentConfig = toml::from_str(
        "[forward]\nendpoints = [\"http://a:1\"]\n[[aggregate]]\nmeasurement = \"m\"\nwindow = \"5m\"\n",
    )
    .unwrap();
    assert_eq!(parsed.aggregate, [rule("m", 300, 10, 3600, false)], "defaults");
    parsed.validate().unwrap();
    let bad = |rules: Vec<AggregateRule>| validate_rules(&rules).unwrap_err().to_string();
    assert!(bad(vec![rule("m", 0, 0, 0, false)]).contains("at least 1s"));
    assert!(bad(vec![rule("m", 60, 20, 10, false)]).contains("at least delay"));
    assert!(bad(vec![rule("#m", 60, 1, 10, false)]).contains("leading #"));
    assert!(bad(vec![rule("m", 60, 1, 10, false), rule("m", 30, 1, 10, true)]).contains("two rules"));
    let mut sub_ms = rule("m", 1, 0, 0, false);
    sub_ms.window = Duration::from_micros(1_500_500);
    assert!(bad(vec![sub_ms]).contains("whole milliseconds"));
}

// ---- the state file ----

fn sample_state() -> State {
    let series = SeriesKey { measurement: "soil".to_owned(), tags: vec![("dev".to_owned(), "a".to_owned())] };
    let stats = Stats { min: 1.0, max: 3.5, sum: 4.5, count: 2, last: 3.5, last_ts: 1_700_000_045 * SEC };
    let mut fields = BTreeMap::new();
    fields.insert("moisture".to_owned(), stats);
    let window = Window { start: 1_700_000_040 * SEC, emitted_seq: 7, dirty: true, fields };
    let mut state = State {
        origin: "gw.0123456789abcdef".to_owned(),
        folded_through: 9,
        horizon_ms: 1_700_000_100_000,
        ..State::default()
    };
    state.closed.insert("soil".to_owned(), 1_700_000_040 * SEC);
    state.windows.insert((series, 1_700_000_100 * SEC), window);
    state
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/aggregate/v1/state");

/// The version 1 bytes are frozen: the committed fixture decodes to the
/// sample state and the encoder still writes exactly those bytes.
#[test]
fn format_is_pinned() {
    let bytes = encode(&sample_state());
    if std::env::var_os("STRATA_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(Path::new(FIXTURE).parent().unwrap()).unwrap();
        std::fs::write(FIXTURE, &bytes).unwrap();
    }
    let fixture = std::fs::read(FIXTURE).expect("fixture (write it with STRATA_WRITE_FIXTURES=1)");
    assert_eq!(bytes, fixture, "the version 1 encoding changed: that is version 2");
    assert_eq!(&fixture[..12], b"STEDGAGG\x01\x00\x00\x00");
    assert_eq!(&fixture[12..20], &((fixture.len() - 32) as u64).to_le_bytes());
    assert_eq!(&fixture[20..24], &crc32fast::hash(&fixture[32..]).to_le_bytes());
    assert_eq!(&fixture[24..28], &[0, 0, 0, 0]);
    assert_eq!(&fixture[28..32], &crc32fast::hash(&fixture[..28]).to_le_bytes());
    // Body: origin, folded_through, horizon.
    assert_eq!(&fixture[32..36], &19u32.to_le_bytes());
    assert_eq!(&fixture[36..55], b"gw.0123456789abcdef");
    assert_eq!(&fixture[55..63], &9u64.to_le_bytes());
    assert_eq!(decode(&fixture, Path::new(FIXTURE)).unwrap(), sample_state());
}

use super::state::{decode, encode};

#[test]
fn damaged_state_files_are_refused() {
    let good = encode(&sample_state());
    let p = Path::new("state");
    let mut body = good.clone();
    *body.last_mut().unwrap() ^= 1;
    assert!(matches!(decode(&body, p), Err(StateError::ChecksumMismatch { what: "body", .. })));
    let mut header = good.clone();
    header[13] ^= 1;
    assert!(matches!(decode(&header, p), Err(StateError::ChecksumMismatch { what: "header", .. })));
    let mut v2 = good.clone();
    v2[8] = 2;
    let crc = crc32fast::hash(&v2[..28]);
    v2[28..32].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(decode(&v2, p), Err(StateError::UnsupportedFormatVersion { found: 2, .. })));
    for cut in [0, 10, 31, 32, good.len() - 1] {
        assert!(decode(&good[..cut], p).is_err(), "cut at {cut}");
    }
    let mut magic = good;
    magic[0] = b'X';
    assert!(matches!(decode(&magic, p), Err(StateError::Corrupted { .. })));
}

#[test]
fn a_torn_state_write_leaves_the_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let rules = [rule("m", 10, 1, 60, false)];
    let q = open_queue(dir.path());
    let mut agg = open_agg(dir.path(), &rules, &q);
    append(&q, &format!("m v=1 {}\n", 1_001 * SEC), 1_002_000);
    round(&mut agg, &q, 1_003_000);
    agg.checkpoint().unwrap();
    let good = std::fs::read(dir.path().join("aggregate/state")).unwrap();
    for cut in [0, 5, good.len() / 2, good.len() - 1] {
        std::fs::write(dir.path().join("aggregate/state.tmp"), &good[..cut]).unwrap();
        let agg = open_agg(dir.path(), &rules, &q);
        assert_eq!((agg.folded_through(), agg.windows()), (1, (1, 0)));
        assert!(!dir.path().join("aggregate/state.tmp").exists());
    }
    // The same queue under a new agent_id keeps its state (and label); another queue's is set aside.
    let renamed = Aggregator::open(&dir.path().join("aggregate"), Rules::new(&rules), "gw2.q", 2, false).unwrap();
    assert_eq!((renamed.folded_through(), renamed.state.origin.as_str()), (1, "gw.q"));
    let other = Aggregator::open(&dir.path().join("aggregate"), Rules::new(&rules), "gw.other", 2, false).unwrap();
    assert_eq!((other.folded_through(), other.state.origin.as_str()), (0, "gw.other"));
}

// ---- convergence ----

const W: i64 = 10; // window, seconds
const DELAY_S: u64 = 2;
const MAX_LATE_S: u64 = 60;

fn sim_rules() -> Vec<AggregateRule> {
    vec![rule("m", W as u64, DELAY_S, MAX_LATE_S, false), rule("p", W as u64, DELAY_S, MAX_LATE_S, true)]
}

/// One step of the simulation.
#[derive(Debug, Clone)]
enum Op {
    /// Agent `a` takes a write of samples (series, windows back from now, value).
    Write(usize, Vec<(u8, u8, u8)>),
    /// The aggregator of agent `a` runs a round.
    Round(usize),
    /// Agent `a` writes its state file.
    Checkpoint(usize),
    /// The clock moves on (ms).
    Advance(u16),
    /// Agent `a`'s forwarder sends the `i`-th unacknowledged batch (any lane order).
    Send(usize, usize),
    /// The network delivers message `i` (kept in flight for a duplicate when the flag is set).
    Deliver(usize, bool),
    /// The network loses message `i` (request or answer).
    Lose(usize),
    /// Agent `a`'s forwarder acknowledges the answered batches the state file covers.
    Ack(usize),
    /// `kill -9` of agent `a` (memory lost, files kept) and restart.
    Restart(usize),
}

fn op(agents: usize) -> impl Strategy<Value = Op> {
    let a = 0..agents;
    prop_oneof![
        3 => (a.clone(), proptest::collection::vec((0u8..3, 0u8..4, 0u8..50), 1..5)).prop_map(|(a, s)| Op::Write(a, s)),
        3 => a.clone().prop_map(Op::Round),
        1 => a.clone().prop_map(Op::Checkpoint),
        3 => (0u16..4000).prop_map(Op::Advance),
        4 => (a.clone(), 0usize..8).prop_map(|(a, i)| Op::Send(a, i)),
        4 => (0usize..8, any::<bool>()).prop_map(|(i, d)| Op::Deliver(i, d)),
        1 => (0usize..8).prop_map(Op::Lose),
        3 => a.clone().prop_map(Op::Ack),
        1 => a.prop_map(Op::Restart),
    ]
}

struct SimAgent {
    dir: tempfile::TempDir,
    origin: String,
    queue: Mutex<Queue>,
    agg: Aggregator,
    /// `folded_through` of the last state file written (or loaded).
    durable: u64,
    /// Batches the server answered, not yet acknowledged (the forwarder's memory).
    answered: Vec<u64>,
}

impl SimAgent {
    fn open(dir: tempfile::TempDir, origin: String) -> SimAgent {
        let queue = open_queue(dir.path());
        let next = queue.lock().unwrap().stats().next_seq;
        let agg =
            Aggregator::open(&dir.path().join("aggregate"), Rules::new(&sim_rules()), &origin, next, false).unwrap();
        let durable = agg.folded_through();
        SimAgent { dir, origin, queue, agg, durable, answered: Vec::new() }
    }

    fn restart(self) -> SimAgent {
        let SimAgent { dir, origin, .. } = self;
        SimAgent::open(dir, origin)
    }
}

/// A stored point: (metric, sorted labels, ms).
type Point = (String, Vec<(String, String)>, i64);

/// The server: applies an (origin, seq) once; for equal (series, timestamp)
/// keeps the write applied later.
#[derive(Default)]
struct Server {
    applied: HashSet<(String, u64)>,
    /// (metric, labels, ms) → value.
    values: BTreeMap<Point, f64>,
}

impl Server {
    fn apply(&mut self, origin: &str, seq: u64, payload: &[u8]) {
        if !self.applied.insert((origin.to_owned(), seq)) {
            return;
        }
        for line in parse_lines(payload) {
            let line = line.unwrap();
            let mut labels: Vec<(String, String)> =
                line.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            labels.sort();
            for (k, v) in &line.fields {
                let v = match v {
                    FieldValue::Float(f) => *f,
                    FieldValue::Integer(i) => *i as f64,
                    other => panic!("{other:?}"),
                };
                let metric =
                    if k == "value" { line.measurement.to_string() } else { format!("{}_{k}", line.measurement) };
                self.values.insert((metric, labels.clone(), line.timestamp.unwrap() / 1_000_000), v);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Truth {
    min: f64,
    max: f64,
    sum: f64,
    count: f64,
    last: f64,
    last_ts: i64,
    agents: u8,
}

fn run_sim(agents: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut sim: Vec<SimAgent> =
        (0..agents).map(|i| SimAgent::open(tempfile::tempdir().unwrap(), format!("gw-{i}.q"))).collect();
    let mut network: Vec<(usize, u64, Vec<u8>)> = Vec::new();
    let mut server = Server::default();
    let mut now_ms: i64 = 1_000_000_000;
    let mut unique: i64 = 0;
    // Every sample acknowledged: (measurement, series, ts ns, value, agent).
    let mut written: Vec<(String, u8, i64, f64, usize)> = Vec::new();
    let mut apply = |sim: &mut Vec<SimAgent>, network: &mut Vec<(usize, u64, Vec<u8>)>, op: Op, now_ms: &mut i64| {
        match op {
            Op::Write(a, samples) => {
                let mut payload = String::new();
                for (series, back, value) in samples {
                    unique += 1;
                    let window_start = ((*now_ms / 1000).div_euclid(W) - i64::from(back)) * W;
                    let ts = window_start * SEC + unique * 1_000_000; // unique in ms (the server's unit)
                    let m = if series == 2 { "p" } else { "m" };
                    payload.push_str(&format!("{m},dev=d{series} v={value} {ts}\n"));
                    written.push((m.to_owned(), series, ts, f64::from(value), a));
                }
                append(&sim[a].queue, &payload, *now_ms);
            }
            Op::Round(a) => {
                let s = &mut sim[a];
                let q = &s.queue;
                s.agg.round(q, *now_ms, &mut |p| q.lock().unwrap().append(&p, *now_ms)).unwrap();
            }
            Op::Checkpoint(a) => sim[a].durable = sim[a].agg.checkpoint().unwrap(),
            Op::Advance(ms) => *now_ms += i64::from(ms),
            Op::Send(a, i) => {
                let q = sim[a].queue.lock().unwrap();
                let next = q.stats().next_seq;
                let unacked: Vec<u64> = (1..next).filter(|&s| !q.is_acked(s)).collect();
                if let Some(&seq) = unacked.get(i % unacked.len().max(1)) {
                    let batch = q.read(seq).unwrap().unwrap();
                    let batch = strip_batch(&sim_rules(), batch);
                    drop(q);
                    if batch.payload.is_empty() {
                        sim[a].answered.push(seq);
                    } else {
                        network.push((a, seq, batch.payload));
                    }
                }
            }
            Op::Deliver(i, dup) if !network.is_empty() => {
                let i = i % network.len();
                let (a, seq, payload) = if dup { network[i].clone() } else { network.remove(i) };
                server.apply(&sim[a].origin, seq, &payload);
                sim[a].answered.push(seq);
            }
            Op::Deliver(..) => {}
            Op::Lose(i) if !network.is_empty() => {
                let (a, seq, payload) = network.remove(i % network.len());
                if i % 2 == 0 {
                    server.apply(&sim[a].origin, seq, &payload); // the answer was lost
                }
            }
            Op::Lose(_) => {}
            Op::Ack(a) => {
                let s = &mut sim[a];
                let durable = s.durable;
                let mut q = s.queue.lock().unwrap();
                s.answered.retain(|&seq| {
                    if seq <= durable {
                        q.ack_one(seq).unwrap();
                        false
                    } else {
                        true
                    }
                });
            }
            Op::Restart(a) => {
                let dir = tempfile::tempdir().unwrap();
                let old = std::mem::replace(&mut sim[a], SimAgent::open(dir, String::new()));
                sim[a] = old.restart();
            }
        }
    };
    for op in ops {
        apply(&mut sim, &mut network, op, &mut now_ms);
    }
    // Drain: the clock passes every window's end + max_late; every agent rounds,
    // checkpoints, sends and acknowledges until nothing moves.
    now_ms += (MAX_LATE_S as i64 + 40) * 1000;
    for _ in 0..200 {
        while !network.is_empty() {
            apply(&mut sim, &mut network, Op::Deliver(0, false), &mut now_ms);
        }
        let mut idle = true;
        for a in 0..agents {
            apply(&mut sim, &mut network, Op::Round(a), &mut now_ms);
            apply(&mut sim, &mut network, Op::Checkpoint(a), &mut now_ms);
            let unacked = sim[a].queue.lock().unwrap().stats().unacked_batches;
            for _ in 0..unacked {
                apply(&mut sim, &mut network, Op::Send(a, 0), &mut now_ms);
                while !network.is_empty() {
                    apply(&mut sim, &mut network, Op::Deliver(0, false), &mut now_ms);
                }
                apply(&mut sim, &mut network, Op::Ack(a), &mut now_ms);
            }
            idle &= unacked == 0 && sim[a].agg.windows().0 == 0;
        }
        if idle {
            break;
        }
    }
    for s in &sim {
        prop_assert_eq!(s.agg.windows(), (0, 0), "every window closed");
        prop_assert_eq!(s.queue.lock().unwrap().stats().unacked_batches, 0);
        prop_assert_eq!(s.agg.counters().late_samples_dropped, 0);
    }
    check(&server, &written)
}

/// The server's merged answers equal aggregating every written sample once.
fn check(server: &Server, written: &[(String, u8, i64, f64, usize)]) -> Result<(), TestCaseError> {
    let mut truth: BTreeMap<(u8, i64), Truth> = BTreeMap::new();
    let mut raw_truth: BTreeMap<(u8, i64), f64> = BTreeMap::new();
    for (m, series, ts, v, agent) in written {
        if m == "p" {
            raw_truth.insert((*series, ts / 1_000_000), *v);
        }
        let end_ms = ((ts / SEC).div_euclid(W) + 1) * W * 1000;
        let bit = 1u8 << agent;
        let t = truth.entry((*series, end_ms)).or_insert(Truth {
            min: *v,
            max: *v,
            sum: 0.0,
            count: 0.0,
            last: *v,
            last_ts: *ts,
            agents: 0,
        });
        t.min = t.min.min(*v);
        t.max = t.max.max(*v);
        t.sum += v;
        t.count += 1.0;
        if *ts >= t.last_ts {
            t.last = *v;
            t.last_ts = *ts;
        }
        t.agents |= bit;
    }
    // The server's answers, merged over edge_agent (sum / min / max without (edge_agent)).
    let mut merged: BTreeMap<(u8, i64), [Option<f64>; 4]> = BTreeMap::new();
    let mut lasts: BTreeMap<(u8, i64), Vec<f64>> = BTreeMap::new();
    let mut raw: BTreeMap<(u8, i64), f64> = BTreeMap::new();
    for ((metric, labels, ms), v) in &server.values {
        let dev = labels.iter().find(|(k, _)| k == "dev").map(|(_, d)| d[1..].parse::<u8>().unwrap()).unwrap();
        let has_agent = labels.iter().any(|(k, _)| k == AGENT_LABEL);
        let key = (dev, *ms);
        let slot = |i: usize, merged: &mut BTreeMap<(u8, i64), [Option<f64>; 4]>, f: fn(f64, f64) -> f64| {
            let e = &mut merged.entry(key).or_default()[i];
            *e = Some(e.map_or(*v, |x| f(x, *v)));
        };
        match metric.as_str() {
            "p_v" => {
                prop_assert!(!has_agent);
                raw.insert(key, *v);
            }
            "m_v" => prop_assert!(false, "a raw line of an aggregated measurement was stored"),
            m if m.ends_with("_v_sum") => slot(0, &mut merged, |a, b| a + b),
            m if m.ends_with("_v_count") => slot(1, &mut merged, |a, b| a + b),
            m if m.ends_with("_v_min") => slot(2, &mut merged, f64::min),
            m if m.ends_with("_v_max") => slot(3, &mut merged, f64::max),
            m if m.ends_with("_v_last") => lasts.entry(key).or_default().push(*v),
            other => prop_assert!(false, "unexpected series {other}"),
        }
    }
    prop_assert_eq!(&raw, &raw_truth, "passthrough raw samples stored exactly once");
    let expected: BTreeMap<(u8, i64), [Option<f64>; 4]> =
        truth.iter().map(|(k, t)| (*k, [Some(t.sum), Some(t.count), Some(t.min), Some(t.max)])).collect();
    prop_assert_eq!(&merged, &expected, "sum, count, min, max per series and window");
    for (k, t) in &truth {
        if t.agents.count_ones() == 1 {
            prop_assert_eq!(lasts.get(k).map(Vec::as_slice), Some(&[t.last][..]), "last of {:?}", k);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any duplication, loss, reordering and interleaving of sends and
    /// emissions, agent restarts (`kill -9`: memory lost) and 1–2 agents
    /// leave the server with the answers of aggregating every acknowledged
    /// raw sample once.
    #[test]
    fn converges_to_aggregating_every_sample_once(
        agents in 1usize..=2,
        ops in proptest::collection::vec(op(2), 1..120),
    ) {
        let ops = ops.into_iter().map(|o| clamp(o, agents)).collect();
        run_sim(agents, ops)?;
    }
}

fn clamp(o: Op, agents: usize) -> Op {
    let a = |x: usize| x % agents;
    match o {
        Op::Write(x, s) => Op::Write(a(x), s),
        Op::Round(x) => Op::Round(a(x)),
        Op::Checkpoint(x) => Op::Checkpoint(a(x)),
        Op::Send(x, i) => Op::Send(a(x), i),
        Op::Ack(x) => Op::Ack(a(x)),
        Op::Restart(x) => Op::Restart(a(x)),
        other => other,
    }
}

/// Without the acknowledgement gate (acknowledging before the state file
/// covers a batch) a restart loses samples: the property test's oracle sees it.
#[test]
fn acknowledging_before_the_state_file_covers_a_batch_loses_samples() {
    let dir = tempfile::tempdir().unwrap();
    let s = SimAgent::open(dir, "gw-0.q".to_owned());
    append(&s.queue, &format!("m,dev=d0 v=5 {}\n", 1_001 * SEC), 1_002_000);
    s.queue.lock().unwrap().ack_one(1).unwrap(); // acknowledged unfolded
    let mut s = s.restart();
    round(&mut s.agg, &s.queue, 1_100_000);
    assert_eq!(s.agg.counters().samples_folded, 0, "the sample is gone: hence the gate");
}

#[test]
fn timestamps_at_the_ends_of_i64_are_counted_as_late_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let q = open_queue(dir.path());
    let mut agg = open_agg(dir.path(), &[rule("m", 7, 1, 60, false)], &q);
    append(&q, &format!("m v=1 {}\nm v=2 {}\n", i64::MAX, i64::MIN + 1), 1_000);
    round(&mut agg, &q, 2_000);
    assert_eq!((agg.counters().late_samples_dropped, agg.windows()), (2, (0, 0)));
}
