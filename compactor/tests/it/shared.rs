//! Rolls owned per ingest-log partition (several nodes on one Kafka log,
//! issue 17): each node rolls the partitions it may roll, partitions without
//! data are advanced by empty claims, and no sample of a partition is ever
//! passed over by its roll state without being committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_compactor::{Compactor, CompactorConfig};
use strata_hot_store::HotStore;
use strata_schemas::{BatchSeries, Labels, ReadStore, Sample, TimeRange, WriteBatch};

use crate::util::{BASE, BUCKET_MS, Env, hot_config, labels, tenant};

/// `now` at which the first two buckets are sealed (grace zero).
const NOW: i64 = BASE + 2 * BUCKET_MS + 10;

/// Log partitions of these tests.
const PARTITIONS: u32 = 2;

fn partition_of(device: &str) -> u32 {
    (strata_schemas::device_hash_of(&tenant("acme"), device) % u64::from(PARTITIONS)) as u32
}

/// A device of each partition: `[device of p0, device of p1]`.
fn devices() -> [String; 2] {
    let find = |p: u32| (0..).map(|i| format!("d{i}")).find(|d| partition_of(d) == p).unwrap();
    [find(0), find(1)]
}

fn all_rollable() -> strata_compactor::RollableFn {
    Arc::new(|n| (0..n).collect())
}

/// The regression of the kafka_cold loss: a bucket whose samples are in the
/// memtable when the pass plans (so it is not sealed) and flushed while the
/// pass runs was advanced over by the empty claims of partitions "without
/// data" (the limit was the memtable as it was at the end of the pass): the
/// roll state and the watermark passed samples that never reached cold.
#[test]
fn a_bucket_flushed_during_a_pass_is_not_advanced_over_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::open(dir.path());
    env.compactor.set_partitioning(PARTITIONS, all_rollable(), true);
    let [d0, d1] = devices();
    env.write("acme", "temp", &d0, &[(BASE + 1, 1.0), (BASE + 2, 2.0)]);
    env.write("acme", "temp", &d1, &[(BASE + 3, 3.0)]);
    env.write("acme", "temp", &d1, &[(BASE + BUCKET_MS + 5, 4.0)]);
    // Nothing is flushed when the pass plans; the flush lands right after.
    let hot = Arc::clone(&env.hot);
    env.compactor.set_pass_hook(Arc::new(move |point| {
        if point == "planned" {
            hot.flush().unwrap();
        }
    }));
    let out = env.rt.block_on(env.compactor.roll_once(NOW)).unwrap();
    assert_eq!(out.samples, 0, "nothing was sealed when the pass planned: {out:?}");
    let state = env.rt.block_on(env.cold.roll_state(&tenant("acme"))).unwrap();
    assert!(state.values().all(|&end| end <= BASE), "roll state passed unrolled samples: {state:?}");
    env.assert_exactly_once("after the pass that saw the buckets unflushed");
    // The next pass finds both buckets sealed and rolls them.
    let out = env.rt.block_on(env.compactor.roll_once(NOW)).unwrap();
    assert_eq!(out.samples, 4, "{out:?}");
    assert_eq!(env.hot.cold_watermark(&tenant("acme")), Some(BASE + 2 * BUCKET_MS));
    assert_eq!(env.cold_rows("acme"), (4, true));
    env.assert_exactly_once("after the rolls");
}

fn batch(device: &str, samples: &[(i64, f64)]) -> WriteBatch {
    let t = tenant("acme");
    let l = labels("temp", device);
    WriteBatch {
        tenant: t.clone(),
        series: vec![BatchSeries {
            id: strata_schemas::series_id(&t, &l),
            device_hash: strata_schemas::device_hash_of(&t, device),
            labels: l,
            samples: samples.iter().map(|&(ts, v)| Sample::new(ts, v)).collect(),
        }],
        origin: None,
    }
}

/// Two nodes share one catalog and warehouse; each applies and rolls the
/// partition it holds, node A also keeps a stale partial copy of partition
/// 1 (it held it before a rebalance). Then partition 1 moves to A (which
/// replays it in full) while B still holds its copy: the cold table holds
/// every sample once, whichever node rolled it.
#[test]
fn two_nodes_roll_their_own_partitions_and_a_moved_partition_continues_from_its_roll_state() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::open(dir.path());
    let hot_b = Arc::new(HotStore::open(&dir.path().join("hot-b"), hot_config()).unwrap());
    let cc = CompactorConfig { grace: Some(std::time::Duration::ZERO), ..CompactorConfig::default() };
    let b = Compactor::new(Arc::clone(&hot_b), Arc::clone(&env.cold), cc);
    let a = &env.compactor;
    let a_rolls: Arc<parking_lot::Mutex<BTreeSet<u32>>> = Arc::new(parking_lot::Mutex::new(BTreeSet::from([0])));
    let b_rolls: Arc<parking_lot::Mutex<BTreeSet<u32>>> = Arc::new(parking_lot::Mutex::new(BTreeSet::from([1])));
    let (ar, br) = (Arc::clone(&a_rolls), Arc::clone(&b_rolls));
    a.set_partitioning(PARTITIONS, Arc::new(move |_| ar.lock().clone()), true);
    b.set_partitioning(PARTITIONS, Arc::new(move |_| br.lock().clone()), true);
    let [d0, d1] = devices();
    let mut model: BTreeMap<Labels, BTreeMap<i64, u64>> = BTreeMap::new();
    let mut offsets = [0u64; 2];
    // Each record goes to the nodes given (a partition's owner has all of it).
    let mut write = |nodes: &[&HotStore], device: &str, samples: &[(i64, f64)]| {
        let p = partition_of(device);
        for h in nodes {
            h.apply(p, offsets[p as usize], &batch(device, samples)).unwrap();
        }
        offsets[p as usize] += 1;
        let m = model.entry(labels("temp", device)).or_default();
        for &(ts, v) in samples {
            m.insert(ts, v.to_bits());
        }
    };
    let (ha, hb) = (&*env.hot, &*hot_b);
    // Buckets 0 and 1: A has p0 and the first record of p1 (stale copy), B has all of p1.
    write(&[ha], &d0, &[(BASE + 1, 1.0)]);
    write(&[ha, hb], &d1, &[(BASE + 2, 2.0)]);
    write(&[hb], &d1, &[(BASE + 3, 3.0), (BASE + BUCKET_MS + 3, 5.0)]);
    write(&[ha], &d0, &[(BASE + BUCKET_MS + 1, 4.0)]);
    ha.flush().unwrap();
    hb.flush().unwrap();
    env.rt.block_on(a.roll_once(NOW)).unwrap();
    env.rt.block_on(b.roll_once(NOW)).unwrap();
    // What the write path refuses below, per partition: A has not seen B's
    // commit yet (it lags by up to one pass), B has.
    let acme = tenant("acme");
    assert_eq!(a.partition_roll_state(&acme, 0), Some(BASE + 2 * BUCKET_MS));
    assert_eq!(a.partition_roll_state(&acme, 1), None);
    assert_eq!(b.partition_roll_state(&acme, 1), Some(BASE + 2 * BUCKET_MS));
    // Bucket 2 and 3: p1 moves to A, which replays it from the start; B keeps its copy.
    *b_rolls.lock() = BTreeSet::new();
    ha.apply(1, 1, &batch(&d1, &[(BASE + 3, 3.0), (BASE + BUCKET_MS + 3, 5.0)])).unwrap();
    write(&[ha], &d1, &[(BASE + 2 * BUCKET_MS + 7, 6.0)]);
    write(&[ha], &d0, &[(BASE + 3 * BUCKET_MS + 8, 7.0)]);
    *a_rolls.lock() = BTreeSet::from([0, 1]);
    ha.flush().unwrap();
    let later = NOW + 2 * BUCKET_MS;
    env.rt.block_on(b.roll_once(later)).unwrap();
    env.rt.block_on(a.roll_once(later)).unwrap();
    env.rt.block_on(b.roll_once(later)).unwrap();
    let state = env.rt.block_on(env.cold.roll_state(&tenant("acme"))).unwrap();
    assert_eq!(state, BTreeMap::from([(0, BASE + 4 * BUCKET_MS), (1, BASE + 4 * BUCKET_MS)]));
    let got = env.cold_reader().select(&tenant("acme"), &[], TimeRange::ALL).unwrap();
    let got: BTreeMap<Labels, BTreeMap<i64, u64>> =
        got.into_iter().map(|s| (s.labels, s.samples.iter().map(|x| (x.ts, x.value.to_bits())).collect())).collect();
    assert_eq!(got, model, "the cold table holds every sample once");
    assert_eq!(env.cold_rows("acme"), (7, true));
    for (h, name) in [(ha, "a"), (hb, "b")] {
        assert_eq!(h.cold_watermark(&acme), Some(BASE + 4 * BUCKET_MS), "{name}");
    }
    for p in 0..PARTITIONS {
        assert_eq!(a.partition_roll_state(&acme, p), Some(BASE + 4 * BUCKET_MS));
        assert_eq!(b.partition_roll_state(&acme, p), Some(BASE + 4 * BUCKET_MS));
    }
}
