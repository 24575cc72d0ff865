//! Erasure (issue 18): a model-based property test with crashes at every
//! step of an erase, and a scan of the segment files' bytes for an erased
//! device id.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use strata_hot_store::{EraseRequest, HotStore, HotStoreConfig, HotVerifyReport, failpoint};
use strata_schemas::{BatchSeries, Labels, Matcher, ReadStore, Sample, TimeRange, WriteBatch};

use crate::util::{Log, tenant};

/// Small buckets so the generated timestamps (-5..80) span four or five.
const BUCKET_MS: i64 = 20;
const TENANTS: [&str; 2] = ["acme", "beta"];
const SERIES_PER_TENANT: usize = 6;

fn open(dir: &Path) -> HotStore {
    let config = HotStoreConfig { bucket: Duration::from_millis(BUCKET_MS as u64), ..HotStoreConfig::default() };
    HotStore::open(dir, config).unwrap()
}

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", format!("m{}", i % 2)), ("dev", format!("d{i}")), ("zone", format!("z{}", i % 3))])
}

/// All records of a series go to one partition, as in the server.
fn partition_of(t: usize, i: usize) -> u32 {
    ((t + i) % 3) as u32
}

/// Crash points an erase passes (its memtable step, its flush, each segment replacement).
const CRASH_POINTS: [&str; 9] = [
    "erase.after_memtable",
    "segment.before_fsync",
    "segment.before_rename",
    "flush.after_segments",
    "manifest.before_fsync",
    "manifest.before_rename",
    "manifest.after_rename",
    "erase.after_write",
    "erase.before_delete_input",
];

#[derive(Debug, Clone)]
struct Spec {
    tenant: usize,
    /// Matcher sets of (label, op, value) indexes, see [`matcher`].
    sets: Vec<Vec<(usize, usize, usize)>>,
    start: i64,
    end: i64,
}

#[derive(Debug, Clone)]
enum Op {
    Apply {
        gap: u64,
        tenant: usize,
        series: Vec<(usize, Vec<(i64, u64)>)>,
    },
    Flush,
    Compact,
    /// Drop the store and reopen it, replaying the log.
    Reopen,
    /// Erase; with a crash at pass `skip` of a crash point first (then reopen, replay, erase again).
    Erase {
        spec: Spec,
        crash: Option<(usize, u32)>,
    },
}

fn matcher(label: usize, op: usize, value: usize) -> Matcher {
    let name = ["__name__", "dev", "zone"][label];
    let v = match (label, value) {
        (_, 0) => String::new(),
        (0, v) => format!("m{}", v % 2),
        (1, v) => format!("d{}", v % 6),
        (_, v) => format!("z{}", v % 3),
    };
    match op {
        0 => Matcher::equal(name, v),
        1 => Matcher::not_equal(name, v),
        2 => Matcher::regex(name, format!("{v}|.1")).unwrap(),
        _ => Matcher::not_regex(name, format!("{v}|.[2-3]")).unwrap(),
    }
}

fn request(s: &Spec) -> EraseRequest {
    EraseRequest {
        tenant: tenant(TENANTS[s.tenant]),
        selectors: s.sets.iter().map(|set| set.iter().map(|&(l, o, v)| matcher(l, o, v)).collect()).collect(),
        start: s.start,
        end: s.end,
    }
}

fn value_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0i32..100).prop_map(|v| (f64::from(v) / 4.0).to_bits()),
        1 => any::<u64>(),
        1 => Just(strata_schemas::labels::STALE_NAN_BITS),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let set = prop::collection::vec((0usize..3, 0usize..4, 0usize..7), 1..3);
    (0..TENANTS.len(), prop::collection::vec(set, 1..3), -10i64..80, 0i64..60)
        .prop_map(|(tenant, sets, start, len)| Spec { tenant, sets, start, end: start + len })
}

fn op() -> impl Strategy<Value = Op> {
    let samples = prop::collection::vec((-5i64..80, value_bits()), 0..8);
    let apply = (1u64..3, 0..TENANTS.len(), prop::collection::vec((0..SERIES_PER_TENANT, samples), 1..4))
        .prop_map(|(gap, tenant, series)| Op::Apply { gap, tenant, series });
    let crash = prop::option::weighted(0.6, (0..CRASH_POINTS.len(), 0u32..3));
    prop_oneof![
        8 => apply,
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        3 => (spec(), crash).prop_map(|(spec, crash)| Op::Erase { spec, crash }),
    ]
}

type Model = BTreeMap<(usize, Labels), BTreeMap<i64, u64>>;

fn to_batch(t: usize, series: &[(usize, Vec<(i64, u64)>)]) -> WriteBatch {
    let series = series
        .iter()
        .map(|(i, samples)| BatchSeries {
            id: strata_schemas::series_id(&tenant(TENANTS[t]), &series_labels(*i)),
            device_hash: 0,
            labels: series_labels(*i),
            samples: samples.iter().map(|&(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect(),
        })
        .collect();
    WriteBatch { tenant: tenant(TENANTS[t]), series, origin: None }
}

/// Every tenant's whole history, its series and device values equal the model.
fn check(store: &HotStore, model: &Model) -> Result<(), TestCaseError> {
    for (t, name) in TENANTS.iter().enumerate() {
        let want: Vec<(Labels, Vec<(i64, u64)>)> = model
            .iter()
            .filter(|((tn, _), s)| *tn == t && !s.is_empty())
            .map(|((_, l), s)| (l.clone(), s.iter().map(|(&k, &v)| (k, v)).collect()))
            .collect();
        let got: Vec<(Labels, Vec<(i64, u64)>)> = store
            .select(&tenant(name), &[], TimeRange::ALL)
            .unwrap()
            .into_iter()
            .map(|s| (s.labels, s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
            .collect();
        prop_assert_eq!(&got, &want, "tenant {}", name);
        let mut devs: Vec<String> = want.iter().filter_map(|(l, _)| l.get("dev").map(str::to_owned)).collect();
        devs.sort();
        let all = TimeRange::ALL;
        prop_assert_eq!(store.label_values(&tenant(name), "dev", &[], all).unwrap(), devs, "index");
        prop_assert_eq!(store.tenant_series(&tenant(name)), want.len() as u64, "index");
    }
    Ok(())
}

fn reopen(dir: &Path, store: HotStore, log: &Log) -> HotStore {
    drop(store);
    let store = open(dir);
    log.replay(&store);
    store
}

fn erase(dir: &Path, mut store: HotStore, log: &Log, req: &EraseRequest, crash: Option<(usize, u32)>) -> HotStore {
    if let Some((point, skip)) = crash {
        failpoint::arm_nth(CRASH_POINTS[point], skip);
        let result = store.erase(req);
        if failpoint::armed() {
            failpoint::disarm(); // the point was not reached: the erase ran to the end
            result.unwrap();
            return store;
        }
        assert!(result.is_err(), "a crash point fired: the erase must report failure");
        store = reopen(dir, store, log); // the process died at the point
    }
    store.erase(req).unwrap();
    store
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut log = Log::default();
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Apply { gap, tenant: t, series } => {
                for (i, samples) in &series {
                    model.entry((t, series_labels(*i))).or_default().extend(samples.iter().copied());
                }
                for p in 0..3 {
                    let part: Vec<_> = series.iter().filter(|(i, _)| partition_of(t, *i) == p).cloned().collect();
                    if !part.is_empty() {
                        log.append_and_apply(&store, p, gap, to_batch(t, &part));
                    }
                }
            }
            Op::Flush => {
                store.flush().unwrap();
            }
            Op::Compact => {
                store.compact().unwrap();
            }
            Op::Reopen => store = reopen(dir.path(), store, &log),
            Op::Erase { spec, crash } => {
                let req = request(&spec);
                store = erase(dir.path(), store, &log, &req, crash);
                for ((t, labels), samples) in model.iter_mut() {
                    if *t == spec.tenant && req.matches(labels) {
                        samples.retain(|&ts, _| ts < spec.start || ts > spec.end);
                    }
                }
                model.retain(|_, s| !s.is_empty());
                let v = store.verify_erased(&req).unwrap();
                prop_assert_eq!(
                    HotVerifyReport { segments_scanned: v.segments_scanned, ..HotVerifyReport::default() },
                    v
                );
                check(&store, &model)?;
                // What the erase left is durable: a restart (with log replay) shows the same.
                store = reopen(dir.path(), store, &log);
                check(&store, &model)?;
                prop_assert_eq!(store.verify_erased(&req).unwrap().samples_found, 0);
            }
        }
        check(&store, &model)?;
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES=2000 for a longer soak.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96)
    ))]

    #[test]
    fn erase_matches_model_with_crashes_at_every_step(ops in prop::collection::vec(op(), 1..30)) {
        run(ops)?;
    }
}

/// A fleet of 20 devices over 5 buckets, flushed and compacted.
fn fleet(dir: &Path) -> (HotStore, Log) {
    let store = open(dir);
    let mut log = Log::default();
    for bucket in 0..5i64 {
        for d in 0..20usize {
            let labels = Labels::from_pairs([("__name__", "soil_moisture"), ("device", &format!("d-{d}"))]);
            let batch = WriteBatch {
                tenant: tenant("farm"),
                series: vec![BatchSeries {
                    id: strata_schemas::series_id(&tenant("farm"), &labels),
                    device_hash: d as u64,
                    labels,
                    samples: (0..4).map(|k| Sample::new(bucket * BUCKET_MS + k * 5, d as f64 + 0.5)).collect(),
                }],
                origin: None,
            };
            log.append_and_apply(&store, 0, 1, batch);
        }
        store.flush().unwrap();
    }
    store.compact().unwrap();
    (store, log)
}

fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle) {
            out.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

fn d17() -> EraseRequest {
    EraseRequest {
        tenant: tenant("farm"),
        selectors: vec![vec![Matcher::equal("device", "d-17")]],
        start: i64::MIN,
        end: i64::MAX,
    }
}

#[test]
fn an_erased_device_id_is_in_no_file_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _log) = fleet(dir.path());
    // A few samples of it still in the memtable too.
    store.apply(0, 1000, &to_device(17, 99)).unwrap();
    assert_eq!(files_holding(dir.path(), b"d-17").len(), 5, "one compacted segment per bucket holds it");
    let before = store.select(&tenant("farm"), &[], TimeRange::ALL).unwrap();

    let report = store.erase(&d17()).unwrap();
    assert_eq!((report.segments_rewritten, report.segments_dropped), (5, 0), "{report:?}");
    assert_eq!(report.samples_removed, 20);
    assert_eq!(report.memtable_samples_removed, 1);
    assert_eq!(report.series_forgotten, 1);
    assert_eq!(files_holding(dir.path(), b"d-17"), Vec::<String>::new());
    assert!(files_holding(dir.path(), b"d-16").len() == 5, "its neighbours stay");
    let after = store.select(&tenant("farm"), &[], TimeRange::ALL).unwrap();
    let others: Vec<_> = before.into_iter().filter(|s| s.labels.get("device") != Some("d-17")).collect();
    assert_eq!(after, others, "every other device's samples are unchanged");
    assert!(store.verify_erased(&d17()).unwrap().samples_found == 0);
    assert!(store.label_values(&tenant("farm"), "device", &[], TimeRange::ALL).unwrap().iter().all(|d| d != "d-17"));
}

fn to_device(d: usize, ts: i64) -> WriteBatch {
    let labels = Labels::from_pairs([("__name__", "soil_moisture"), ("device", &format!("d-{d}"))]);
    WriteBatch {
        tenant: tenant("farm"),
        series: vec![BatchSeries {
            id: strata_schemas::series_id(&tenant("farm"), &labels),
            device_hash: d as u64,
            labels,
            samples: vec![Sample::new(ts, 1.0)].into(),
        }],
        origin: None,
    }
}

#[test]
fn a_partial_range_removes_the_device_from_the_buckets_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _log) = fleet(dir.path());
    // Buckets 1 and 2 wholly, and the first sample of bucket 3 (ts 60).
    let req = EraseRequest { start: BUCKET_MS, end: 3 * BUCKET_MS, ..d17() };
    store.erase(&req).unwrap();
    assert_eq!(files_holding(dir.path(), b"d-17").len(), 3, "buckets 0, 3 and 4 still hold other samples of it");
    let got = store.select(&tenant("farm"), &[Matcher::equal("device", "d-17")], TimeRange::ALL).unwrap();
    let ts: Vec<i64> = got[0].samples.iter().map(|s| s.ts).collect();
    assert_eq!(ts, vec![0, 5, 10, 15, 65, 70, 75, 80, 85, 90, 95]);
}

/// Samples of one device of the fleet at the given timestamps.
fn device_batch(d: usize, ts: &[i64], v: f64) -> WriteBatch {
    let mut b = to_device(d, 0);
    b.series[0].samples = ts.iter().map(|&t| Sample::new(t, v + t as f64)).collect();
    b
}

#[test]
fn writes_applied_while_erases_run_are_kept() {
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let mut offsets = [0u64; 10];
    for (d, next) in offsets.iter_mut().enumerate() {
        store.apply(d as u32, *next, &device_batch(d, &(0..100).collect::<Vec<_>>(), 0.0)).unwrap();
        *next += 1;
    }
    store.flush().unwrap();
    let req = EraseRequest { start: 0, end: 500, ..d17() };
    let req = EraseRequest { selectors: vec![vec![Matcher::equal("device", "d-3")]], ..req };
    const ROUNDS: i64 = 300;
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for round in 0..ROUNDS {
                for (d, next) in offsets.iter_mut().enumerate() {
                    // New samples of every device, and late ones inside the erased range.
                    let ts = [1000 + round, 200 + round % 300];
                    store.apply(d as u32, *next, &device_batch(d, &ts, 1.0)).unwrap();
                    *next += 1;
                }
                if round % 7 == 0 {
                    store.flush().unwrap();
                }
                if round % 13 == 0 {
                    store.compact().unwrap();
                }
            }
            ROUNDS
        })
    };
    let mut erases = 0;
    while !writer.is_finished() || erases < 5 {
        store.erase(&req).unwrap();
        erases += 1;
    }
    let rounds = writer.join().unwrap();
    store.erase(&req).unwrap();
    let v = store.verify_erased(&req).unwrap();
    assert_eq!((v.samples_found, v.memtable_samples_found, v.series_found), (0, 0, 0), "after {erases} erases");
    let got = store.select(&tenant("farm"), &[], TimeRange::ALL).unwrap();
    assert_eq!(got.len(), 10);
    for s in got {
        let d: usize = s.labels.get("device").unwrap().trim_start_matches("d-").parse().unwrap();
        let mut want: BTreeMap<i64, f64> = (0..100).map(|t| (t, t as f64)).collect();
        for round in 0..rounds {
            want.insert(1000 + round, 1.0 + (1000 + round) as f64);
            want.insert(200 + round % 300, 1.0 + (200 + round % 300) as f64);
        }
        if d == 3 {
            want.retain(|&t, _| !(0..=500).contains(&t));
        }
        let got: BTreeMap<i64, f64> = s.samples.iter().map(|x| (x.ts, x.value)).collect();
        assert_eq!(got, want, "device d-{d}");
    }
}
