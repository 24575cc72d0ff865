//! Model-based test: random operations against the store and a `BTreeMap`
//! model, compared after every step. Values are compared bitwise (NaN too).

use std::collections::BTreeMap;

use proptest::prelude::*;
use std::time::Duration;

use strata_hot_store::{HotStore, HotStoreConfig, failpoint};
use strata_schemas::{BatchSeries, Labels, Matcher, ReadStore, Sample, SeriesId, TimeRange, WriteBatch};

use crate::util::{Log, tenant};

/// Small buckets so the generated timestamps (-5..60) span several of them.
const BUCKET_MS: i64 = 20;
/// Hot TTL of each tenant ("beta" has an override).
const TTL_MS: [i64; 2] = [30, 50];

fn config() -> HotStoreConfig {
    HotStoreConfig {
        bucket: Duration::from_millis(BUCKET_MS as u64),
        default_hot_ttl: Duration::from_millis(TTL_MS[0] as u64),
        tenant_hot_ttl: [("beta".to_owned(), humantime_serde::Serde::from(Duration::from_millis(TTL_MS[1] as u64)))]
            .into(),
        ..HotStoreConfig::default()
    }
}

fn open(dir: &std::path::Path) -> HotStore {
    HotStore::open(dir, config()).unwrap()
}

fn bucket_start(ts: i64) -> i64 {
    ts.div_euclid(BUCKET_MS) * BUCKET_MS
}

/// Crash points exercised by the model, with the operation that reaches them.
const CRASH_POINTS: [(&str, bool); 8] = [
    ("segment.before_fsync", false),
    ("segment.before_rename", false),
    ("flush.after_segments", false),
    ("manifest.before_rename", false),
    ("manifest.after_rename", false),
    ("compact.after_write", true),
    ("compact.before_delete_inputs", true),
    ("manifest.before_fsync", true),
];

const TENANTS: [&str; 2] = ["acme", "beta"];
const SERIES_PER_TENANT: usize = 6;

/// Series `i` of a tenant; 4 and 5 share a fake id to force a collision.
fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", format!("m{}", i % 2)), ("dev", format!("d{i}"))])
}

/// The log partition of series `i` of tenant `t`. As in the server
/// (partition = device_hash % P), all records of a series go to one
/// partition, which is what keeps "latest write wins" across log replay.
fn partition_of(t: usize, i: usize) -> u32 {
    ((t + i) % 3) as u32
}

fn series_id(t: &str, i: usize) -> SeriesId {
    if i >= 4 { SeriesId(42) } else { strata_schemas::series_id(&tenant(t), &series_labels(i)) }
}

#[derive(Debug, Clone)]
enum Op {
    /// One client write; split into one log record per partition.
    Apply {
        gap: u64,
        tenant: usize,
        series: Vec<(usize, Vec<(i64, u64)>)>,
    },
    Flush,
    Compact,
    Reopen,
    CrashBeforeManifest,
    /// Arm a crash point, run the flush or compaction that reaches it, "die", reopen and replay.
    CrashAt(usize),
    /// TTL expiry at wall-clock `now`.
    Expire(i64),
    /// The cold tier reports it holds the tenant's data below `ts`.
    Watermark {
        tenant: usize,
        ts: i64,
    },
    Select {
        tenant: usize,
        matcher: usize,
        range: Option<(i64, i64)>,
    },
}

fn value_bits() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0i32..100).prop_map(|v| (f64::from(v) / 4.0).to_bits()),
        1 => any::<u64>(),
        1 => Just(f64::NAN.to_bits()),
        1 => Just(strata_schemas::labels::STALE_NAN_BITS),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let samples = prop::collection::vec((-5i64..60, value_bits()), 0..8);
    let apply = (1u64..4, 0..TENANTS.len(), prop::collection::vec((0..SERIES_PER_TENANT, samples), 0..4))
        .prop_map(|(gap, tenant, series)| Op::Apply { gap, tenant, series });
    let range = prop_oneof![Just(None), (-10i64..70, 0i64..40).prop_map(|(s, len)| Some((s, s + len)))];
    let select =
        (0..TENANTS.len(), 0usize..6, range).prop_map(|(tenant, matcher, range)| Op::Select { tenant, matcher, range });
    prop_oneof![
        10 => apply,
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => Just(Op::CrashBeforeManifest),
        1 => (0..CRASH_POINTS.len()).prop_map(Op::CrashAt),
        1 => (0i64..150).prop_map(Op::Expire),
        1 => (0..TENANTS.len(), -10i64..100).prop_map(|(tenant, ts)| Op::Watermark { tenant, ts }),
        3 => select,
    ]
}

fn matchers(i: usize) -> Vec<Matcher> {
    match i {
        0 => vec![],
        1 => vec![Matcher::equal("__name__", "m0")],
        2 => vec![Matcher::regex("dev", "d[0-2]|d5").unwrap()],
        3 => vec![Matcher::not_equal("dev", "d1"), Matcher::equal("__name__", "m1")],
        4 => vec![Matcher::equal("dev", "")],
        _ => vec![Matcher::not_regex("dev", "d4").unwrap()],
    }
}

type Model = BTreeMap<(String, Labels), BTreeMap<i64, u64>>;

/// Per tenant: expiry bound (samples below are gone and later dropped) and cold watermark.
#[derive(Debug, Default, Clone, Copy)]
struct TenantModel {
    /// The store has seen a sample of this tenant (expiry only tracks known tenants).
    known: bool,
    expired_before: Option<i64>,
    watermark: Option<i64>,
}

fn to_batch(t: usize, series: &[(usize, Vec<(i64, u64)>)]) -> WriteBatch {
    let name = TENANTS[t];
    let series = series
        .iter()
        .map(|(i, samples)| BatchSeries {
            id: series_id(name, *i),
            device_hash: 0,
            labels: series_labels(*i),
            samples: samples.iter().map(|&(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect(),
        })
        .collect();
    WriteBatch { tenant: tenant(name), series, origin: None }
}

/// The model's answer: per series (sorted by labels), its samples in range.
fn expected(model: &Model, t: usize, m: &[Matcher], range: TimeRange) -> Vec<(Labels, Vec<(i64, u64)>)> {
    model
        .iter()
        .filter(|((tn, labels), _)| tn == TENANTS[t] && Matcher::matches_all(m, labels))
        .map(|((_, labels), s)| (labels.clone(), s.range(range.start..=range.end).map(|(&k, &v)| (k, v)).collect()))
        .filter(|(_, s): &(Labels, Vec<(i64, u64)>)| !s.is_empty())
        .collect()
}

fn check(store: &HotStore, model: &Model, t: usize, m: &[Matcher], range: TimeRange) -> Result<(), TestCaseError> {
    let want = expected(model, t, m, range);
    let got: Vec<(Labels, Vec<(i64, u64)>)> = store
        .select(&tenant(TENANTS[t]), m, range)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect()))
        .collect();
    prop_assert_eq!(&got, &want);
    let series = store.series(&tenant(TENANTS[t]), m, range).unwrap();
    prop_assert_eq!(series, want.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>());
    let mut devs: Vec<String> = want.iter().filter_map(|(l, _)| l.get("dev").map(str::to_owned)).collect();
    devs.sort();
    prop_assert_eq!(store.label_values(&tenant(TENANTS[t]), "dev", m, range).unwrap(), devs);
    Ok(())
}

fn crash_before_manifest(dir: &std::path::Path, store: HotStore, log: &Log) -> HotStore {
    let manifest = dir.join("MANIFEST");
    let before = std::fs::read(&manifest).unwrap();
    store.flush().unwrap();
    drop(store);
    std::fs::write(&manifest, before).unwrap(); // the rename never happened
    let store = open(dir);
    log.replay(&store);
    store
}

fn crash_at(dir: &std::path::Path, store: HotStore, log: &Log, point: usize) -> HotStore {
    let (name, compaction) = CRASH_POINTS[point];
    failpoint::arm(name);
    let _ = if compaction { store.compact().map(|_| ()) } else { store.flush().map(|_| ()) };
    failpoint::disarm();
    drop(store); // the process dies here: nothing after the crash point ran
    let store = open(dir);
    log.replay(&store);
    store
}

fn expire(model: &mut Model, tenants: &mut [TenantModel; 2], now: i64) {
    for (t, tm) in tenants.iter_mut().enumerate().filter(|(_, tm)| tm.known) {
        let mut bound = bucket_start(now - TTL_MS[t]);
        if let Some(wm) = tm.watermark {
            bound = bound.min(bucket_start(wm));
        }
        if tm.expired_before.is_none_or(|b| bound > b) {
            tm.expired_before = Some(bound);
        }
        let b = tm.expired_before.unwrap_or(i64::MIN);
        for ((tn, _), s) in model.iter_mut() {
            if tn == TENANTS[t] {
                s.retain(|&ts, _| ts >= b);
            }
        }
    }
    model.retain(|_, s| !s.is_empty());
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut log = Log::default();
    let mut model = Model::new();
    let mut tenants = [TenantModel::default(); 2];
    for op in ops {
        match op {
            Op::Apply { gap, tenant: t, series } => {
                let floor = tenants[t].expired_before.unwrap_or(i64::MIN);
                tenants[t].known |= series.iter().any(|(_, s)| !s.is_empty());
                for (i, samples) in &series {
                    let entry = model.entry((TENANTS[t].to_owned(), series_labels(*i))).or_default();
                    entry.extend(samples.iter().copied().filter(|&(ts, _)| ts >= floor));
                }
                model.retain(|_, s| !s.is_empty());
                for p in 0..3 {
                    let part: Vec<_> = series.iter().filter(|(i, _)| partition_of(t, *i) == p).cloned().collect();
                    if !part.is_empty() {
                        log.append_and_apply(&store, p, gap, to_batch(t, &part));
                    }
                }
            }
            Op::Flush => {
                store.flush().unwrap();
                prop_assert_eq!(store.memtable_samples(), 0);
            }
            Op::Compact => {
                store.compact().unwrap();
                let stats = store.stats();
                prop_assert_eq!(stats.segments, stats.buckets, "one segment per (tenant, bucket) after compaction");
            }
            Op::CrashAt(point) => store = crash_at(dir.path(), store, &log, point),
            Op::Expire(now) => {
                store.expire(now).unwrap();
                expire(&mut model, &mut tenants, now);
            }
            Op::Watermark { tenant: t, ts } => {
                store.set_cold_watermark(&tenant(TENANTS[t]), ts).unwrap();
                let tm = &mut tenants[t];
                tm.watermark = Some(tm.watermark.map_or(ts, |w| w.max(ts)));
            }
            Op::Reopen => {
                drop(store);
                store = open(dir.path());
                log.replay(&store);
            }
            Op::CrashBeforeManifest => store = crash_before_manifest(dir.path(), store, &log),
            Op::Select { tenant: t, matcher, range } => {
                let range = range.map_or(TimeRange::ALL, |(s, e)| TimeRange::new(s, e));
                check(&store, &model, t, &matchers(matcher), range)?;
            }
        }
        for t in 0..TENANTS.len() {
            check(&store, &model, t, &[], TimeRange::ALL)?;
        }
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES=5000 for a longer soak.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96)
    ))]

    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
