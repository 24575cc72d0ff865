//! Model-based test, the hot store's (`hot-store/tests/it/model.rs`) where the
//! trait allows: the same tenants, series (4 and 5 share a fake series id),
//! value bits (NaN, stale markers) and matchers; random writes as log
//! records, replays of records already applied, reconnections (a new node
//! on the same keyspace) and reads, compared with a `BTreeMap` model after
//! every read. Flushes, crash points and compaction are the embedded
//! store's own; expiry is the cluster's TTL (not run by kassandra).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use strata_hot_scylla::ScyllaHot;
use strata_schemas::{BatchSeries, Labels, Matcher, ReadStore, Sample, SeriesId, TenantId, TimeRange, WriteBatch};

use crate::kassandra::Kassandra;

/// Small buckets so the generated timestamps (-5..60) span several of them.
const BUCKET: Duration = Duration::from_secs(20);
const TENANTS: [&str; 2] = ["acme", "beta"];
const SERIES_PER_TENANT: usize = 6;

fn tenant(t: &str) -> TenantId {
    TenantId::new(t).unwrap()
}

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", format!("m{}", i % 2)), ("dev", format!("d{i}"))])
}

fn series_id(t: &str, i: usize) -> SeriesId {
    if i >= 4 { SeriesId(42) } else { strata_schemas::series_id(&tenant(t), &series_labels(i)) }
}

#[derive(Debug, Clone)]
enum Op {
    Apply {
        tenant: usize,
        series: Vec<(usize, Vec<(i64, u64)>)>,
    },
    /// Applies the n-th record of the log again (a replay after a crash or rebalance).
    Replay(usize),
    Reconnect,
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
    // Timestamps in seconds × 1000 so buckets of 20 s hold several.
    let samples = prop::collection::vec(((-5i64..60).prop_map(|s| s * 1000), value_bits()), 0..8);
    let apply = (0..TENANTS.len(), prop::collection::vec((0..SERIES_PER_TENANT, samples), 0..4))
        .prop_map(|(tenant, series)| Op::Apply { tenant, series });
    let range = prop_oneof![Just(None), (-10i64..70, 0i64..40).prop_map(|(s, len)| Some((s * 1000, (s + len) * 1000)))];
    let select =
        (0..TENANTS.len(), 0usize..6, range).prop_map(|(tenant, matcher, range)| Op::Select { tenant, matcher, range });
    prop_oneof![10 => apply, 2 => (0usize..64).prop_map(Op::Replay), 1 => Just(Op::Reconnect), 4 => select]
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

fn to_batch(t: usize, series: &[(usize, Vec<(i64, u64)>)]) -> WriteBatch {
    let name = TENANTS[t];
    let series = series
        .iter()
        .map(|(i, samples)| BatchSeries {
            id: series_id(name, *i),
            device_hash: (*i % 3) as u64,
            labels: series_labels(*i),
            samples: samples.iter().map(|&(ts, bits)| Sample::new(ts, f64::from_bits(bits))).collect(),
        })
        .collect();
    WriteBatch { tenant: tenant(name), series, origin: None }
}

fn check(store: &ScyllaHot, model: &Model, t: usize, m: &[Matcher], range: TimeRange) -> Result<(), TestCaseError> {
    let want: Vec<(Labels, Vec<(i64, u64)>)> = model
        .iter()
        .filter(|((tn, labels), _)| tn == TENANTS[t] && Matcher::matches_all(m, labels))
        .map(|((_, labels), s)| (labels.clone(), s.range(range.start..=range.end).map(|(&k, &v)| (k, v)).collect()))
        .filter(|(_, s): &(Labels, Vec<(i64, u64)>)| !s.is_empty())
        .collect();
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

fn run(k: &Kassandra, keyspace: &str, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut store = k.connect(keyspace, BUCKET);
    let mut model = Model::new();
    // The log: (partition, record); series i of tenant t lives in partition (t + i) % 3.
    let mut log: Vec<(u32, WriteBatch)> = Vec::new();
    let mut next = [0u64; 3];
    for op in ops {
        match op {
            Op::Apply { tenant: t, series } => {
                for (i, samples) in &series {
                    let e = model.entry((TENANTS[t].to_owned(), series_labels(*i))).or_default();
                    e.extend(samples.iter().copied());
                }
                model.retain(|_, s| !s.is_empty());
                for p in 0..3u32 {
                    let part: Vec<_> = series.iter().filter(|(i, _)| ((t + i) % 3) as u32 == p).cloned().collect();
                    if !part.is_empty() {
                        let b = to_batch(t, &part);
                        store.apply(p, next[p as usize], &b).unwrap();
                        next[p as usize] += 1;
                        log.push((p, b));
                    }
                }
            }
            Op::Replay(n) => {
                // Replays the partition's records from that one on, in order, as the log would.
                if let Some(&(p, _)) = log.get(n) {
                    for (q, b) in log.iter().skip(n).filter(|(q, _)| *q == p) {
                        store.apply(*q, 0, b).unwrap();
                    }
                }
            }
            Op::Reconnect => {
                drop(store);
                store = k.connect(keyspace, BUCKET);
            }
            Op::Select { tenant: t, matcher, range } => {
                let range = range.map_or(TimeRange::ALL, |(s, e)| TimeRange::new(s, e));
                check(&store, &model, t, &matchers(matcher), range)?;
            }
        }
    }
    for t in 0..TENANTS.len() {
        for m in 0..6 {
            check(&store, &model, t, &matchers(m), TimeRange::ALL)?;
        }
    }
    Ok(())
}

#[test]
fn the_tier_matches_a_model_of_writes_replays_and_reads() {
    let k = Kassandra::start();
    let case = AtomicUsize::new(0);
    let cases = std::env::var("STRATA_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    proptest!(ProptestConfig { cases, ..ProptestConfig::default() }, |(ops in prop::collection::vec(op(), 1..40))| {
        // One keyspace per case: the server cannot drop one.
        let keyspace = format!("model{}", case.fetch_add(1, Ordering::Relaxed));
        run(&k, &keyspace, ops)?;
    });
}
